"""docs/segmentation.md really runs: its python blocks in order (one namespace, from the
project root so ``../shared/data`` resolves), then its bash blocks in a temporary directory."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "segmentation.md"
BLOCK = re.compile(r"```(python|bash)\n(.*?)```", re.S)


def _blocks(lang: str) -> list[str]:
    return [code for kind, code in BLOCK.findall(DOC.read_text(encoding="utf-8")) if kind == lang]


def test_doc_has_examples() -> None:
    assert len(_blocks("python")) >= 4 and len(_blocks("bash")) >= 2


def test_python_examples_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    namespace: dict[str, object] = {"__name__": "docs_segmentation"}
    for i, code in enumerate(_blocks("python")):
        exec(compile(code, f"{DOC.name}[python {i}]", "exec"), namespace)
    out = capsys.readouterr().out
    assert "1.0 1.0 1.0" in out  # contacts_7d, issue_refund, nps_detractor of the example user
    assert "kmeans 5" in out


def test_bash_examples_run(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["COLUMNS"] = "200"
    outputs = []
    for code in _blocks("bash"):
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", code],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    for name in ("model.json", "arrays.npz", "assignments.csv", "report.json", "report.html"):
        assert name in outputs[0]
    assert "user_id,segment" in outputs[0]
    report = json.loads((tmp_path / "model" / "report.json").read_text())
    assert report["k"] == 5
    assert "Chosen by" in outputs[1] and "kmeans" in outputs[1]

"""docs/generate.md really runs: its python blocks in order (one namespace), then its bash
blocks, in a temporary directory."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "generate.md"
BLOCK = re.compile(r"```(python|bash|json)\n(.*?)```", re.S)


def _blocks(lang: str) -> list[str]:
    return [code for kind, code in BLOCK.findall(DOC.read_text(encoding="utf-8")) if kind == lang]


def test_doc_has_examples() -> None:
    assert len(_blocks("python")) >= 3 and len(_blocks("bash")) >= 2


def test_python_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "docs_generate"}
    for i, code in enumerate(_blocks("python")):
        exec(compile(code, f"{DOC.name}[python {i}]", "exec"), namespace)
    assert (tmp_path / "data" / "api" / "events.jsonl").is_file()


def test_bash_examples_run(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    outputs = []
    for code in _blocks("bash"):
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", code],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert "events.jsonl" in outputs[0] and "user_id,segment" in outputs[0]
    start, end, per_user = outputs[1].split()
    assert (start, end) == ("2026-08-01", "2026-11-01")
    assert 17 <= int(per_user) <= 23


def test_json_example_matches_the_contract_shape() -> None:
    (example,) = _blocks("json")
    event = json.loads(example)
    assert set(event) == {"event_id", "user_id", "type", "ts", "channel", "device", "payload"}
    assert set(event["payload"]) == {"chat_id", "text", "intent", "category"}

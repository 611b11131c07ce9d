"""docs/cleaning.md: every python block runs (in order, one namespace) and every bash
command succeeds, in a scratch directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "cleaning.md"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)


def test_the_page_has_examples() -> None:
    assert len(_blocks("python")) >= 3
    assert len(_blocks("bash")) >= 1


def test_python_and_bash_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for block in _blocks("python"):
        exec(compile(block, str(DOC), "exec"), namespace)
    assert (tmp_path / "plan.yaml").is_file() and (tmp_path / "fitted.json").is_file()
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    for block in _blocks("bash"):
        script = "set -euo pipefail\n" + block
        res = subprocess.run(
            ["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert res.returncode == 0, res.stderr + res.stdout
    assert (tmp_path / "out" / "users.parquet").is_file()
    html = (tmp_path / "out" / "report.html").read_text()
    assert "<svg" in html
    assert (tmp_path / "out" / "users.report.json").is_file()

"""docs/api.md really runs: its python blocks in order (one namespace) and its bash block
(keys create, serve on a free loopback port, curl) in a temp directory."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
BLOCK = re.compile(r"```(python|bash)\n(.*?)```", re.S)


def _blocks(lang: str) -> list[str]:
    return [code for kind, code in BLOCK.findall(DOC.read_text(encoding="utf-8")) if kind == lang]


def test_doc_has_examples() -> None:
    assert len(_blocks("python")) >= 3 and len(_blocks("bash")) >= 1


def test_python_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "docs_api"}
    for i, code in enumerate(_blocks("python")):
        exec(compile(code, f"{DOC.name}[python {i}]", "exec"), namespace)
    assert "client" in namespace


def test_bash_example_runs(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("CHATPERSONA_STORE_URL", None)
    (code,) = _blocks("bash")
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    profile = json.loads(lines[0])
    assert profile["preferences"] == {"language": "en", "product_interest": "laptops"}
    assert profile["interaction_history"] == ["chat_id_5678", "chat_id_1234"]
    assert lines[1:3] == ["401", "422"]
    erased = json.loads(lines[3])
    assert erased["user_id"] == "42" and erased["erased"]["profile"] == 1
    assert (tmp_path / "chatpersona.db").exists()

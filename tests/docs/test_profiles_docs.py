"""docs/profiles.md really runs: its python blocks in order (one namespace), then its bash
blocks, in a temp directory; server URLs point at the test servers with isolation."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "profiles.md"
BLOCK = re.compile(r"```(python|bash)\n(.*?)```", re.S)
PG_IN_DOC = "postgresql://postgres@127.0.0.1:5432/chatpersona"


def _blocks(lang: str) -> list[str]:
    return [code for kind, code in BLOCK.findall(DOC.read_text(encoding="utf-8")) if kind == lang]


def test_doc_has_examples() -> None:
    assert len(_blocks("python")) >= 5 and len(_blocks("bash")) >= 2


@pytest.mark.integration
def test_python_examples_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_url: str, redis_prefix: str
) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "docs_profiles"}
    for i, code in enumerate(_blocks("python")):
        assert PG_IN_DOC not in code or 'cache_prefix="chatpersona:"' in code
        code = code.replace(PG_IN_DOC, postgres_url)
        code = code.replace('cache_prefix="chatpersona:"', f"cache_prefix={redis_prefix!r}")
        exec(compile(code, f"{DOC.name}[python {i}]", "exec"), namespace)
    assert (tmp_path / "profiles.db").exists()


def test_bash_examples_run(tmp_path: Path) -> None:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("CHATPERSONA_STORE_URL", None)
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
    assert "applied 0001_profiles" in outputs[0] and "up to date" in outputs[0]
    assert "Revoked key" in outputs[1] and "acme" in outputs[1]

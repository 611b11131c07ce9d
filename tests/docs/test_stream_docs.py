"""docs/stream.md really runs: its python blocks in order (one namespace), then its bash
block against the test Redis (stream and state names moved under this test's prefix)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from chatpersona.profiles import open_store
from chatpersona.stream.memory import reset_memory_buses

DOC = Path(__file__).resolve().parents[2] / "docs" / "stream.md"
BLOCK = re.compile(r"```(python|bash)\n(.*?)```", re.S)


def _blocks(lang: str) -> list[str]:
    return [code for kind, code in BLOCK.findall(DOC.read_text(encoding="utf-8")) if kind == lang]


def test_doc_has_examples() -> None:
    assert len(_blocks("python")) >= 5 and len(_blocks("bash")) >= 1


def test_python_examples_run(capsys: pytest.CaptureFixture[str]) -> None:
    reset_memory_buses()
    namespace: dict[str, object] = {"__name__": "docs_stream"}
    for i, code in enumerate(_blocks("python")):
        exec(compile(code, f"{DOC.name}[python {i}]", "exec"), namespace)
    out = capsys.readouterr().out
    assert "unknown_type type" in out
    assert "['c-9'] 5.0" in out
    assert "[(None, '0', 'v1'), ('0', '1', 'v2')]" in out
    assert "1 1\n[('not_json', b'{not json')]" in out
    reset_memory_buses()


@pytest.mark.integration
def test_bash_example_runs(tmp_path: Path, redis_prefix: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    [code] = _blocks("bash")
    code = code.replace("docs:", redis_prefix).replace("9464", str(port))
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert "replayed" in done.stderr and "processed" in done.stderr
    n_events = sum(1 for _ in (tmp_path / "demo-data" / "events.jsonl").open())
    assert f"processed     │ {n_events}" in done.stderr or str(n_events) in done.stderr
    store = open_store(f"sqlite:///{tmp_path / 'profiles.db'}")
    page = store.scan("default", limit=1000)
    assert len(page.items) == 200
    assert all(p.interaction_count >= 1 for p in page.items)
    store.close()

"""docs/chatbot.md really runs: its bash blocks (in a temp dir, the model cached there), then
its python blocks in order in one namespace, the client block against a live API server."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "chatbot.md"
BLOCK = re.compile(r"```(python|bash)\n(.*?)```", re.S)


def _blocks(lang: str) -> list[str]:
    return [code for kind, code in BLOCK.findall(DOC.read_text(encoding="utf-8")) if kind == lang]


@pytest.fixture
def live_api(tmp_path: Path) -> Iterator[tuple[str, str]]:
    import uvicorn

    from chatpersona.api import create_app
    from chatpersona.config import Settings
    from chatpersona.profiles import MemoryStore

    store = MemoryStore()
    _, secret = store.create_key("default", {"admin"})
    settings = Settings(bus_url="", extra={"cache_dir": str(tmp_path / "cache")})
    app = create_app(settings, store=store)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the docs API server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", secret
    server.should_exit = True
    thread.join(timeout=10)


def test_doc_has_examples() -> None:
    assert len(_blocks("python")) >= 5 and len(_blocks("bash")) >= 2


def test_examples_run(
    tmp_path: Path, live_api: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
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
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert "27 intents" in outputs[0] and '"category": "REFUND"' in outputs[0]
    assert "Before you go" in " ".join(outputs[1].split())

    url, key = live_api
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHATPERSONA_URL", url)
    monkeypatch.setenv("CHATPERSONA_API_KEY", key)
    namespace: dict[str, object] = {}
    for code in _blocks("python"):
        exec(compile(code, str(DOC), "exec"), namespace)
    assert namespace["decision"].action in ("concise", "empathetic", "formal")  # type: ignore[attr-defined]

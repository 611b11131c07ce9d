"""No personal data and no keys in logs: canary values go into profiles, keys and bodies,
every request kind is made (successes, 4xx, 413, 400, 500), and every log line is scanned.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from chatpersona.api import create_app
from chatpersona.config import Settings
from chatpersona.profiles import MemoryStore, ProfilePatch, open_store

CANARY_USER = "canary-user-7f3a9"
CANARY_EMAIL = "canary.person.7f3a9@example.org"
CANARY_PREF = "canary-pref-value-7f3a9"
CANARY_CHAT = "canary-chat-7f3a9"
# A well-formed secret that exists nowhere: it must not be echoed either.
CANARY_BAD_KEY = "cp_0123456789abcdef_" + "CANARYbadkey7f3a9".ljust(43, "Z")


def _exercise(client: httpx.Client | TestClient, secret: str) -> None:
    """Every kind of request, all carrying canaries."""
    h = {"Authorization": f"Bearer {secret}"}
    body = {
        "preferences": {"email": CANARY_EMAIL, "note": CANARY_PREF},
        "attributes": {"email": CANARY_EMAIL},
        "interaction_history": [CANARY_CHAT],
    }
    assert client.post(f"/api/user/{CANARY_USER}/profile", json=body, headers=h).status_code == 200
    assert client.get(f"/api/user/{CANARY_USER}/profile", headers=h).status_code == 200
    assert client.get(f"/api/user/{CANARY_USER}/export", headers=h).status_code == 200
    assert client.get("/api/users", headers=h).status_code == 200
    # Rejections that carry canaries in the body, path, key or query.
    bad = {"preferences": {"k": CANARY_PREF}, "segment": CANARY_EMAIL}
    assert client.post(f"/api/user/{CANARY_USER}/profile", json=bad, headers=h).status_code == 422
    nested = ('{"x": "' + CANARY_EMAIL + '", "d": ' + "[" * 40 + "]" * 40 + "}").encode()
    r = client.post(
        f"/api/user/{CANARY_USER}/profile",
        content=nested,
        headers={**h, "Content-Type": "application/json"},
    )
    assert r.status_code == 400
    big = ('{"preferences": {"k": "' + CANARY_PREF * 5000 + '"}}').encode()
    r = client.post(
        f"/api/user/{CANARY_USER}/profile",
        content=big,
        headers={**h, "Content-Type": "application/json"},
    )
    assert r.status_code == 413
    r = client.get(
        f"/api/user/{CANARY_USER}/profile", headers={"Authorization": f"Bearer {CANARY_BAD_KEY}"}
    )
    assert r.status_code == 401
    assert client.get(f"/api/users?cursor={CANARY_EMAIL}", headers=h).status_code == 400
    assert client.get(f"/no/such/{CANARY_USER}", headers=h).status_code == 404
    assert client.delete(f"/api/user/{CANARY_USER}/profile", headers=h).status_code == 200
    assert client.get(f"/api/user/{CANARY_USER}/profile", headers=h).status_code == 404


def _canaries(secret: str) -> list[str]:
    return [
        CANARY_USER,
        CANARY_EMAIL,
        CANARY_PREF,
        CANARY_CHAT,
        secret,
        secret.split("_", 2)[2],  # the random half of the live key (it may hold "_")
        "CANARYbadkey7f3a9",
    ]


class ExplodingState:
    """A service whose erasure hook fails with a message quoting personal data."""

    def delete_user(self, tenant: str, user_id: str) -> int:
        raise RuntimeError(f"state backend failed for {user_id} <{CANARY_EMAIL}>")


def test_no_canary_in_in_process_logs(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore()
    key, secret = store.create_key("acme", {"profile:read", "profile:write"})
    client = TestClient(create_app(Settings(rate_limit_per_minute=0), store=store))
    # The test client's own request log (httpx, client side) prints URLs; silence it so
    # only the server's log lines are judged.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    with caplog.at_level(logging.DEBUG):
        _exercise(client, secret)
        failing = TestClient(
            create_app(Settings(), store=store, services={"state": ExplodingState()}),
            raise_server_exceptions=False,
        )
        store.merge("acme", CANARY_USER, ProfilePatch(preferences={"email": CANARY_EMAIL}))
        r = failing.delete(
            f"/api/user/{CANARY_USER}/profile", headers={"Authorization": f"Bearer {secret}"}
        )
        assert r.status_code == 500
        assert CANARY_EMAIL not in r.text and CANARY_USER not in r.text
    text = "\n".join(
        f"{rec.name} {rec.getMessage()} {rec.exc_text or ''}"
        for rec in caplog.records
        if not rec.name.startswith(("httpx", "httpcore"))
    )
    assert "chatpersona.api.access" in text  # the access log did run
    assert "unhandled RuntimeError" in text  # and the 500 was logged, without its message
    assert key.key_id in text  # the public key id names the caller
    for canary in _canaries(secret):
        assert canary not in text, f"canary {canary[:12]}... leaked into logs"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str, subprocess.Popen[bytes], Path]]:
    """``chatpersona serve`` in a subprocess on loopback, over a SQLite file."""
    db = tmp_path / "p.db"
    store = open_store(f"sqlite:///{db}")
    assert hasattr(store, "create_key")
    _, secret = store.create_key("acme", {"profile:read", "profile:write"})
    store.close()
    port = _free_port()
    log_path = tmp_path / "server.log"
    env = {**os.environ, "CHATPERSONA_LOG_LEVEL": "DEBUG", "CHATPERSONA_RATE_LIMIT_PER_MINUTE": "0"}
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "chatpersona.cli.main",
                "serve",
                "--store",
                f"sqlite:///{db}",
                "--port",
                str(port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            pytest.fail("server did not start:\n" + log_path.read_text())
        yield base, secret, proc, log_path
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_no_canary_in_real_server_output_and_chunked_413(
    served: tuple[str, str, subprocess.Popen[bytes], Path],
) -> None:
    base, secret, _, log_path = served
    with httpx.Client(base_url=base, timeout=10) as client:
        _exercise(client, secret)

        def endless() -> Iterator[bytes]:
            yield b'{"preferences": {"k": "'
            for _ in range(200):  # 200 KiB, chunked: no Content-Length to judge by
                yield CANARY_PREF.encode() * 40
            yield b'"}}'

        r = client.post(
            f"/api/user/{CANARY_USER}/profile",
            content=endless(),
            headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
        )
        assert r.status_code == 413
        assert "content-length" not in r.request.headers
        assert r.request.headers["transfer-encoding"] == "chunked"
    time.sleep(0.3)
    output = log_path.read_text()
    assert "chatpersona.api.access" in output and "GET /api/user/{user_id}/profile 200" in output
    for canary in _canaries(secret):
        assert canary not in output, f"canary {canary[:12]}... leaked into server output"

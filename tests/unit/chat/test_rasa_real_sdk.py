"""examples/rasa with the real ``rasa-sdk``: its action server (from ``.venv-rasa``, which
`make test` builds, because rasa-sdk pins its own pydantic and websockets) runs the custom
actions against a live chatpersona API, driven through the server's real /webhook."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import LiveApi
from .test_rasa_example import RASA_DIR, _seed

ROOT = Path(__file__).resolve().parents[3]
RASA_PY = ROOT / ".venv-rasa" / "bin" / "python"


@pytest.fixture
def action_server(live_api: LiveApi, tmp_path: Path) -> Iterator[str]:
    if not RASA_PY.exists():
        pytest.fail(f"{RASA_PY} is missing; `make rasa-venv` builds it", pytrace=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "CHATPERSONA_URL": live_api.url,
        "CHATPERSONA_API_KEY": live_api.key,
    }
    log = (tmp_path / "actions.log").open("wb")
    proc = subprocess.Popen(
        [str(RASA_PY), "-m", "rasa_sdk", "--actions", "actions", "--port", str(port)],
        cwd=RASA_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
        if proc.poll() is not None:
            break
    else:
        proc.kill()
    if proc.poll() is not None:
        pytest.fail((tmp_path / "actions.log").read_text(errors="replace")[-3000:])
    yield url
    proc.terminate()
    proc.wait(timeout=20)


def _call(url: str, action: str, sender: str, slots: dict[str, object]) -> dict[str, object]:
    body = {
        "next_action": action,
        "sender_id": sender,
        "version": "3.8.0",
        "domain": {},
        "tracker": {
            "sender_id": sender, "slots": slots, "latest_message": {}, "events": [],
            "paused": False, "followup_action": None, "active_loop": {},
            "latest_action_name": None, "latest_event_time": None,
        },
    }  # fmt: skip
    r = httpx.post(f"{url}/webhook", json=body, timeout=30)
    assert r.status_code == 200, r.text
    data: dict[str, object] = r.json()
    return data


def test_real_action_server_sets_slots_from_the_profile_and_rewards(
    live_api: LiveApi, action_server: str
) -> None:
    _seed(live_api)
    events = _call(action_server, "action_session_start", "rasa-user", {})["events"]
    assert isinstance(events, list)
    assert events[0]["event"] == "session_started"
    slots = {e["name"]: e["value"] for e in events if e["event"] == "slot"}
    assert slots["cp_language"] == "es"
    assert slots["cp_user_name"] == "Lu"
    assert slots["cp_open_issue"] == "INVOICE"
    assert slots["cp_open_issue_date"] == "2026-03-12"
    assert slots["cp_returning"] is True
    assert slots["cp_tone"] in {"concise", "empathetic", "formal"}
    assert slots["cp_decision_ids"]

    rewarded = _call(
        action_server,
        "action_chatpersona_reward",
        "rasa-user",
        {"csat": 5, "cp_decision_ids": slots["cp_decision_ids"]},
    )
    assert isinstance(rewarded["events"], list)
    # the rewards reached chatpersona: each decision now refuses a second reward (409)
    ids = slots["cp_decision_ids"]
    assert isinstance(ids, dict) and ids  # decision point -> decision id
    for decision_id in ids.values():
        again = httpx.post(
            f"{live_api.url}/api/decisions/{decision_id}/reward",
            json={"reward": 1.0},
            headers={"Authorization": f"Bearer {live_api.key}"},
        )
        assert again.status_code == 409, again.text

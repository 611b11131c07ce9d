"""A full 500-event batch fits the events route's own body limit at default settings, while
every other route keeps the 64 KiB limit."""

from __future__ import annotations

from fastapi.testclient import TestClient

from chatpersona.api import create_app
from chatpersona.api.app import EVENTS_MAX_BODY_BYTES
from chatpersona.config import Settings
from chatpersona.profiles import open_store
from chatpersona.stream.memory import reset_memory_buses


def _event(i: int) -> dict[str, object]:
    return {
        "event_id": f"ev-{i:05d}",
        "user_id": f"u{i % 50}",
        "type": "message",
        "ts": "2026-05-03T14:22:05Z",
        "channel": "web",
        "device": "desktop",
        "payload": {
            "chat_id": f"c{i % 50}",
            "text": "where is my parcel " * 8,
            "intent": "track_order",
        },
    }


def test_full_batch_accepted_and_other_routes_keep_64_kib() -> None:
    reset_memory_buses()
    store = open_store("memory://")
    secret = store.create_key("acme", ["events:write", "profile:write"])[1]  # type: ignore[attr-defined]
    app = create_app(Settings(bus_url="memory://limit-test"), store=store)
    auth = {"Authorization": f"Bearer {secret}"}
    batch = {"events": [_event(i) for i in range(500)]}
    with TestClient(app) as client:
        r = client.post("/api/events", json=batch, headers=auth)
        assert r.status_code == 202, r.text[:300]
        assert r.json()["accepted"] == 500
        assert len(r.request.content) > 64 * 1024  # really over the general limit
        too_big = client.post(
            "/api/events", content=b"[" + b" " * EVENTS_MAX_BODY_BYTES + b"]", headers=auth
        )
        assert too_big.status_code == 413
        profile = client.post(
            "/api/user/u1/profile",
            json={"preferences": {"k": "y" * 70_000}},
            headers=auth,
        )
        assert profile.status_code == 413
    reset_memory_buses()

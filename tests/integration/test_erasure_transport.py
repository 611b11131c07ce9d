"""DELETE /api/user/{id}/profile also erases the user's events still held by the transport:
published but not yet consumed, and dead letters carrying the user's bytes (memory and real
Redis Streams). Export lists them first; other users and other tenants are untouched."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from chatpersona.api import create_app
from chatpersona.config import Settings
from chatpersona.profiles import open_store
from chatpersona.stream.erasure import TransportEraser, event_owner
from chatpersona.stream.memory import reset_memory_buses


def _event(user: str, i: int, tenant: str | None = None) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "event_id": f"{user}-{i}",
        "user_id": user,
        "type": "message",
        "ts": f"2026-05-03T14:0{i}:00Z",
        "channel": "web",
        "device": "desktop",
        "payload": {"chat_id": f"{user}-c1", "text": f"hello {i}"},
    }
    if tenant is not None:
        ev["tenant"] = tenant
    return ev


@pytest.fixture(params=["memory", "redis"])
def bus_url(request: pytest.FixtureRequest, redis_prefix: str) -> str:
    if request.param == "memory":
        reset_memory_buses()
        return "memory://erasure?shards=4"
    return f"redis://127.0.0.1:6379/{redis_prefix}events?shards=4"


def test_erasure_reaches_queued_events_and_dead_letters(bus_url: str) -> None:
    store = open_store("memory://")
    app = create_app(Settings(bus_url=bus_url), store=store)
    transport = app.state.services["transport"]
    assert isinstance(app.state.services["event_log"], TransportEraser)
    _, secret = store.create_key("default", ["profile:read", "profile:write", "events:write"])  # type: ignore[attr-defined]
    auth = {"Authorization": f"Bearer {secret}"}
    with TestClient(app) as client:
        body = {
            "events": [_event("alice", i) for i in range(3)] + [_event("bob", i) for i in range(2)]
        }
        assert client.post("/api/events", json=body, headers=auth).json()["accepted"] == 5
        # the same user id in another tenant is another person
        transport.publish([json.dumps(_event("alice", 7, "acme")).encode()])
        # one of alice's events has been delivered and dead-lettered (poison)
        got = []
        for _ in range(20):
            got += transport.receive(50, timeout=0.2)
            if len(got) >= 6:
                break
        poison = next(d for d in got if event_owner(d.raw) == ("default", "alice"))
        transport.dead_letter(poison, "invalid_payload", "test")
        transport.nack([d for d in got if d is not poison])
        assert client.post("/api/user/alice/profile", json={"preferences": {"language": "en"}},
                           headers=auth).status_code == 200  # fmt: skip

        exported = client.get("/api/user/alice/export", headers=auth).json()["services"]
        log = exported["event_log"]
        assert (
            len(log["dead_letters"]) == 1 and log["dead_letters"][0]["reason"] == "invalid_payload"
        )
        assert len(log["queued_events"]) >= 2  # the undelivered ones (memory: not in flight)

        erased = client.delete("/api/user/alice/profile", headers=auth).json()["erased"]
        assert erased["profile"] == 1
        assert erased["event_log"] == len(log["queued_events"]) + 1

        assert client.get("/api/user/alice/export", headers=auth).status_code == 404
        assert not any(event_owner(d.raw) == ("default", "alice") for d in transport.dead_letters())
        eraser = TransportEraser(transport)
        assert eraser.export_user("default", "alice") == {}
        assert len(eraser.export_user("default", "bob")["queued_events"]) >= 1
        assert len(eraser.export_user("acme", "alice")["queued_events"]) >= 1
    transport.close()

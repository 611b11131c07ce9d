"""DELETE /api/user/{id}/profile erases the profile, the cache entry, the real-time state
(real Redis) and the chat feed in one call; export shows them first."""

from __future__ import annotations

from fastapi.testclient import TestClient

from chatpersona.api import create_app
from chatpersona.api.erasure import StateEraser
from chatpersona.config import Settings
from chatpersona.pipeline.worker import Pipeline
from chatpersona.profiles import open_store
from chatpersona.stream.state import open_state


def _events(user: str) -> list[dict[str, object]]:
    # event ids are opaque (their dedupe markers stay until their TTL, so a replay of the
    # stream cannot resurrect an erased user); chat ids name the user on purpose
    n = sum(map(ord, user))
    base = {"user_id": user, "channel": "web", "device": "desktop"}
    return [
        {**base, "event_id": f"e{n}-1", "type": "chat_started", "ts": "2026-05-03T14:00:00Z",
         "payload": {"chat_id": f"{user}-c1"}},
        {**base, "event_id": f"e{n}-2", "type": "message", "ts": "2026-05-03T14:01:00Z",
         "payload": {"chat_id": f"{user}-c1", "text": "where is my refund", "intent": "get_refund",
                     "category": "REFUND"}},
        {**base, "event_id": f"e{n}-3", "type": "feedback", "ts": "2026-05-03T14:05:00Z",
         "payload": {"chat_id": f"{user}-c1", "csat": 4}},
    ]  # fmt: skip


def test_erasure_covers_profile_state_and_feed(redis_url: str, redis_prefix: str) -> None:
    state_url = f"{redis_url}?prefix={redis_prefix}"
    store = open_store("memory://")
    state = open_state(state_url)
    pipeline = Pipeline(state=state, store=store)
    for user in ("alice", "bob"):
        for event in _events(user):
            assert pipeline.run_one(event).status == "processed"

    app = create_app(Settings(state_url=state_url), store=store)
    assert isinstance(app.state.services["state"], StateEraser)  # opened from settings
    _, secret = store.create_key("default", ["profile:read", "profile:write"])  # type: ignore[attr-defined]
    auth = {"Authorization": f"Bearer {secret}"}
    app.state.chat.publish("event", "default", {"event": {"user_id": "alice", "type": "x"}})
    app.state.chat.publish("event", "default", {"event": {"user_id": "bob", "type": "x"}})
    with TestClient(app) as client:
        exported = client.get("/api/user/alice/export", headers=auth).json()
        assert exported["profile"]["interaction_count"] == 1
        assert exported["services"]["state"]["realtime_state"]
        assert exported["services"]["chat"]["feed"]

        erased = client.delete("/api/user/alice/profile", headers=auth)
        assert erased.status_code == 200, erased.text
        assert erased.json()["erased"]["profile"] == 1
        assert erased.json()["erased"]["state"] >= 1
        assert erased.json()["erased"]["chat"] == 1

        assert client.get("/api/user/alice/profile", headers=auth).status_code == 404
        assert client.get("/api/user/alice/export", headers=auth).status_code == 404
        # bob is untouched
        bob = client.get("/api/user/bob/export", headers=auth).json()
        assert bob["services"]["state"]["realtime_state"]
        assert bob["services"]["chat"]["feed"]
    import redis

    r = redis.Redis.from_url(redis_url)
    assert not [k for k in r.scan_iter(match=redis_prefix + "*") if b"alice" in k]
    assert [k for k in r.scan_iter(match=redis_prefix + "*") if b"bob" in k]

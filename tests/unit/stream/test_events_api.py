"""POST /api/events: per-event accepted/rejected answer, tenant from the key, scope, limit."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from chatpersona.api import create_app
from chatpersona.config import Settings
from chatpersona.pipeline import Pipeline
from chatpersona.profiles import open_store
from chatpersona.stream.memory import reset_memory_buses

from .helpers import make_events


@pytest.fixture
def env() -> Iterator[tuple[TestClient, dict[str, str], dict[str, str], object]]:
    reset_memory_buses()
    store = open_store("memory://")
    writer = store.create_key("acme", frozenset({"events:write"}))[1]  # type: ignore[attr-defined]
    reader = store.create_key("acme", frozenset({"profile:read"}))[1]  # type: ignore[attr-defined]
    # A full batch of 500 events is larger than the default 64 KiB body limit.
    settings = Settings(store_url="memory://", bus_url="memory://api-test", max_body_bytes=2**21)
    app = create_app(settings, store=store)
    with TestClient(app) as client:
        yield (
            client,
            {"Authorization": f"Bearer {writer}"},
            {"Authorization": f"Bearer {reader}"},
            app.state.services["transport"],
        )
    reset_memory_buses()


def test_accepts_valid_and_rejects_invalid_per_event(env: tuple) -> None:
    client, writer, _reader, transport = env
    good = make_events(1, users=2, chats=1)[:2]
    bad_type = {**good[0], "event_id": "x1", "type": "refund"}
    bad_csat = {
        **good[0],
        "event_id": "x2",
        "type": "feedback",
        "payload": {"chat_id": "c", "csat": 7},
    }
    r = client.post(
        "/api/events", json={"events": [good[0], bad_type, good[1], bad_csat]}, headers=writer
    )
    assert r.status_code == 202, r.text
    body = r.json()
    assert (body["accepted"], body["rejected"]) == (2, 2)
    assert [x["status"] for x in body["results"]] == [
        "accepted",
        "rejected",
        "accepted",
        "rejected",
    ]
    assert body["results"][1]["reason"] == "unknown_type"
    assert body["results"][3]["reason"] == "invalid_field"
    got = transport.receive(10, 0)
    assert sorted(json.loads(d.raw)["event_id"] for d in got) == sorted(e["event_id"] for e in good)
    assert {json.loads(d.raw)["tenant"] for d in got} == {"acme"}  # stamped from the key
    # the published events run through a pipeline into the key's tenant
    store = open_store("memory://")
    Pipeline(store=store).process([d.raw for d in got])
    assert store.get("acme", good[0]["user_id"]) is not None


def test_tenant_in_body_cannot_escape_the_key(env: tuple) -> None:
    client, writer, _reader, transport = env
    ev = {**make_events(2, users=1, chats=1)[0], "tenant": "other"}
    assert client.post("/api/events", json={"events": [ev]}, headers=writer).status_code == 202
    [d] = transport.receive(10, 0)
    assert json.loads(d.raw)["tenant"] == "acme"


def test_scope_auth_and_batch_limit(env: tuple) -> None:
    client, writer, reader, _transport = env
    ev = make_events(3, users=1, chats=1)[0]
    assert client.post("/api/events", json={"events": [ev]}).status_code == 401
    r = client.post("/api/events", json={"events": [ev]}, headers=reader)
    assert r.status_code == 403 and r.json()["code"] == "missing_scope"
    many = [{**ev, "event_id": f"e{i}"} for i in range(501)]
    assert client.post("/api/events", json={"events": many}, headers=writer).status_code in (
        413,
        422,
    )
    assert (
        client.post("/api/events", json={"events": many[:500]}, headers=writer).status_code == 202
    )


def test_in_process_pipeline_answers_with_its_outcome() -> None:
    from chatpersona.stream import WindowConfig

    store = open_store("memory://")
    writer = store.create_key("acme", frozenset({"events:write"}))[1]  # type: ignore[attr-defined]
    pipeline = Pipeline(store=store, windows=WindowConfig(allowed_lateness_s=60))
    app = create_app(Settings(store_url="memory://"), store=store, services={"pipeline": pipeline})
    evs = make_events(4, users=1, chats=2, span_h=48)
    with TestClient(app) as client:
        r = client.post(
            "/api/events",
            json={"events": [evs[-1], evs[-1], evs[0]]},
            headers={"Authorization": f"Bearer {writer}"},
        )
    body = r.json()
    assert r.status_code == 202 and (body["accepted"], body["rejected"]) == (2, 1)
    assert [x["outcome"] for x in body["results"][:2]] == ["processed", "duplicate"]
    assert body["results"][2]["reason"] == "too_late"
    assert "transport" not in app.state.services
    prof = store.get("acme", evs[0]["user_id"])
    assert prof is not None and prof.interaction_count == 1

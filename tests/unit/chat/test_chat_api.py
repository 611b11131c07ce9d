"""The chat over HTTP: the three moments, the UI files, the dashboard data, auth."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from chatpersona.api import create_app
from chatpersona.chat import Bot, IntentModel
from chatpersona.config import Settings
from chatpersona.profiles import MemoryStore, ProfilePatch, SegmentRef
from chatpersona.stream.events import Event, parse_event

NOW = datetime(2026, 5, 3, 14, 0, tzinfo=UTC)


class RecordingPipeline:
    """A stand-in for chatpersona.pipeline: records what it is given and applies feedback."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.events: list[Event] = []

    def run_one(self, event: Event) -> None:
        self.events.append(event)
        if event.type == "feedback":
            self.store.merge(
                event.tenant,
                event.user_id,
                ProfilePatch(
                    csat=event.payload["csat"],
                    segment=SegmentRef(id="s2", name="happy", model_version="v1", assigned_at=NOW),
                ),
            )


@dataclass
class FakeDecision:
    decision_id: str
    decision_point: str
    action: str
    policy: str
    exploration: bool = False


class FakeEngine:
    """A decision engine that always picks the same actions and records rewards."""

    decision_points = ("tone", "routing", "greeting")

    def __init__(self, tone: str = "concise", route: str = "bot") -> None:
        self.actions = {"tone": tone, "routing": route}
        self.rewarded: list[tuple[str, dict[str, Any]]] = []
        self.n = 0

    def decide(
        self, user_id: str, point: str, context: Any, profile: Any, *, tenant: str | None = None
    ) -> FakeDecision:
        self.n += 1
        return FakeDecision(f"{point}-{self.n}", point, self.actions[point], f"fixed-{point}")

    def reward(self, decision_id: str, reward: Any = None, outcomes: Any = None) -> Any:
        self.rewarded.append((decision_id, dict(outcomes or {})))
        return SimpleNamespace(reward=0.9)


@pytest.fixture
def store() -> MemoryStore:
    s = MemoryStore()
    seg = SegmentRef(id="s1", name="billing_focused", model_version="v1", assigned_at=NOW)
    s.merge(
        "default",
        "u1",
        ProfilePatch(
            preferences={
                "name": "Ana",
                "open_issue_category": "INVOICE",
                "open_issue_intent": "check_invoice",
                "open_issue_at": "2026-03-12T10:00:00Z",
                "open_issue_chat": "c0",
            },
            interaction_history=["c0"],
            segment=seg,
            features={"chats_30d": 3.0, "csat_mean": 2.0},
        ),
    )
    s.merge("default", "u2", ProfilePatch(features={"chats_30d": 1.0, "csat_mean": 4.5}))
    s.merge("other", "u9", ProfilePatch(features={"chats_30d": 1.0}))
    return s


def _client(store: MemoryStore, bot: Bot, **services: Any) -> tuple[TestClient, dict[str, str]]:
    _, secret = store.create_key("default", {"events:write", "profile:read"})
    services.setdefault("decisions", FakeEngine())
    # No bus: without a pipeline the chat applies feedback itself (tested below).
    app = create_app(Settings(bus_url=""), store=store, services={"bot": bot, **services})
    return TestClient(app), {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def chat_bot(intent_model: IntentModel) -> Bot:
    counter = itertools.count(1)
    return Bot(intent_model, clock=lambda: NOW, id_factory=lambda: f"id-{next(counter)}")


@pytest.fixture
def client(store: MemoryStore, chat_bot: Bot) -> Iterator[tuple[TestClient, dict[str, str]]]:
    c, h = _client(store, chat_bot)
    with c:
        yield c, h


def test_ui_is_served_without_external_resources(client: tuple[TestClient, dict[str, str]]) -> None:
    c, _ = client
    page = c.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for path in ("/ui/app.js", "/ui/style.css"):
        assert c.get(path).status_code == 200
    bundle = page.text + c.get("/ui/app.js").text + c.get("/ui/style.css").text
    assert "http://" not in bundle.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in bundle


def test_three_moments_over_http(
    client: tuple[TestClient, dict[str, str]], store: MemoryStore
) -> None:
    c, h = client
    start = c.post("/api/chat/u1/start", json={"channel": "web"}, headers=h)
    assert start.status_code == 200, start.text
    body = start.json()
    assert (
        body["text"] == "Welcome back, Ana! Is this about the invoice you asked about on 12 March?"
    )
    assert body["quick_replies"] == ["Yes", "No, something else"]
    assert body["profile"]["user_id"] == "u1"
    chat_id = body["chat_id"]

    msg = c.post("/api/chat/u1/message", json={"chat_id": chat_id, "text": "Yes"}, headers=h)
    assert msg.json()["text"] == (
        "Your invoices are in Account > Billing; you can download any of them as PDF. I can see "
        "you contacted us about your invoice on 12 March, so I've linked this chat to it."
    )
    assert msg.json()["html"].startswith("Your invoices are in Account > Billing")

    end = c.post("/api/chat/u1/end", json={"chat_id": chat_id}, headers=h)
    assert end.json()["kind"] == "csat"
    assert end.json()["prompts"]["nps"] == "And from 0 to 10, how likely are you to recommend us?"

    fb = c.post("/api/chat/u1/feedback", json={"chat_id": chat_id, "csat": 5, "nps": 10}, headers=h)
    assert fb.status_code == 200, fb.text
    out = fb.json()
    assert out["text"] == "Thanks, Ana. Bye!"
    assert out["reward"] == 1.0
    changed = {ch["field"]: (ch["before"], ch["after"]) for ch in out["changes"]}
    assert changed["feedback.csat_last"] == (None, 5)
    assert changed["feedback.nps_last"] == (None, 10)
    assert changed["preferences.open_issue_category"] == ("INVOICE", None)
    assert changed["interaction_count"] == (1, 2)
    stored = store.get("default", "u1")
    assert stored is not None and stored.feedback.csat_last == 5
    assert "open_issue_category" not in stored.preferences

    feed = c.get("/api/chat/feed", headers=h).json()
    types = [i["event"]["type"] for i in feed["items"] if i["kind"] == "event"]
    assert types == ["chat_started", "message", "chat_ended", "feedback"]
    assert feed["items"][-1]["kind"] == "profile_updated"
    assert c.get(f"/api/chat/feed?after={feed['last']}", headers=h).json()["items"] == []

    perf = c.get("/api/chat/performance", headers=h).json()
    assert perf["series"]["tone:fixed-tone"][0]["reward"] == 0.9  # the engine's own reward
    assert set(perf["series"]) == {"tone:fixed-tone", "routing:fixed-routing"}
    assert body["decisions"]["tone"]["action"] == "concise"


def test_ratings_reward_each_decision(store: MemoryStore, chat_bot: Bot) -> None:
    engine = FakeEngine(tone="formal", route="human_normal")
    c, h = _client(store, chat_bot, decisions=engine)
    with c:
        start = c.post("/api/chat/u2/start", json={}, headers=h).json()
        assert start["text"] == "Good day. Thank you for contacting us. How may I assist you today?"
        chat_id = start["chat_id"]
        reply = c.post(
            "/api/chat/u2/message",
            json={"chat_id": chat_id, "text": "where is my refund"},
            headers=h,
        ).json()
        assert reply["kind"] == "escalate" and reply["escalated"]
        c.post("/api/chat/u2/end", json={"chat_id": chat_id}, headers=h)
        c.post("/api/chat/u2/feedback", json={"chat_id": chat_id, "csat": 2, "nps": 3}, headers=h)
    assert engine.rewarded == [
        ("tone-1", {"csat": 2, "resolved": False, "nps": 3}),
        ("routing-2", {"csat": 2, "resolved": False, "nps": 3}),
    ]


def test_pipeline_receives_every_turn_event(store: MemoryStore, chat_bot: Bot) -> None:
    pipeline = RecordingPipeline(store)
    c, h = _client(store, chat_bot, pipeline=pipeline)
    with c:
        chat_id = c.post("/api/chat/u2/start", json={}, headers=h).json()["chat_id"]
        c.post(
            "/api/chat/u2/message", json={"chat_id": chat_id, "text": "track my order"}, headers=h
        )
        c.post("/api/chat/u2/end", json={"chat_id": chat_id}, headers=h)
        fb = c.post("/api/chat/u2/feedback", json={"chat_id": chat_id, "csat": 3}, headers=h).json()
        feed = c.get("/api/chat/feed", headers=h).json()["items"]
    assert [e.type for e in pipeline.events] == [
        "chat_started",
        "message",
        "chat_ended",
        "feedback",
    ]
    # With a pipeline, the chat does not apply feedback twice.
    stored = store.get("default", "u2")
    assert stored is not None and stored.feedback.csat_count == 1
    assert {"field": "segment", "before": None, "after": "happy"} in fb["changes"]
    assert any(i["kind"] == "segment_changed" and i["after"] == "happy" for i in feed)


def test_dashboard_map_and_demo_users(client: tuple[TestClient, dict[str, str]]) -> None:
    c, h = client
    data = c.get("/api/chat/map", headers=h).json()
    assert data["users"] == 2  # the other tenant's user is not there
    assert {p["user_id"] for p in data["points"]} == {"u1", "u2"}
    assert {s["id"] for s in data["segments"]} == {"s1", "none"}
    users = c.get("/api/chat/demo-users", headers=h).json()["users"]
    assert users[0]["user_id"] == "u1" and users[0]["open_issue"] == "INVOICE"


def test_errors(client: tuple[TestClient, dict[str, str]], store: MemoryStore) -> None:
    c, h = client
    assert c.post("/api/chat/u1/start", json={}).status_code == 401
    _, reader = store.create_key("default", {"profile:read"})
    denied = c.post("/api/chat/u1/start", json={}, headers={"Authorization": f"Bearer {reader}"})
    assert denied.status_code == 403
    missing = c.post("/api/chat/u1/message", json={"chat_id": "nope", "text": "hi"}, headers=h)
    assert (missing.status_code, missing.json()["code"]) == (404, "chat_not_found")
    chat_id = c.post("/api/chat/u1/start", json={}, headers=h).json()["chat_id"]
    # Another user cannot post into this chat.
    other = c.post("/api/chat/u2/message", json={"chat_id": chat_id, "text": "hi"}, headers=h)
    assert other.status_code == 404
    early = c.post("/api/chat/u1/feedback", json={"chat_id": chat_id, "csat": 4}, headers=h)
    assert early.status_code == 409
    bad = c.post("/api/chat/u1/feedback", json={"chat_id": chat_id, "csat": 9}, headers=h)
    assert bad.status_code == 422


def test_with_the_packaged_decision_engine(store: MemoryStore, chat_bot: Bot) -> None:
    """No engine given: the decisions router builds the packaged one; the chat uses it."""
    _, secret = store.create_key("default", {"events:write", "profile:read"})
    h = {"Authorization": f"Bearer {secret}"}
    app = create_app(Settings(bus_url=""), store=store, services={"bot": chat_bot})
    with TestClient(app) as c:
        start = c.post("/api/chat/u1/start", json={}, headers=h)
        assert start.status_code == 200, start.text
        assert set(start.json()["decisions"]) == {"tone", "routing"}
        # u1's csat_mean feature is 2.0: the packaged routing rules send it to a person.
        assert start.json()["decisions"]["routing"]["action"] == "human_normal"
        chat_id = start.json()["chat_id"]
        msg = c.post(
            "/api/chat/u1/message",
            json={"chat_id": chat_id, "text": "my invoice is wrong"},
            headers=h,
        )
        assert msg.json()["kind"] == "escalate"
        c.post("/api/chat/u1/end", json={"chat_id": chat_id}, headers=h)
        fb = c.post("/api/chat/u1/feedback", json={"chat_id": chat_id, "csat": 4}, headers=h)
        assert fb.status_code == 200, fb.text
        series = c.get("/api/chat/performance", headers=h).json()["series"]
    assert {k.split(":")[0] for k in series} == {"tone", "routing"}
    assert all(0.0 <= p["reward"] <= 1.0 for pts in series.values() for p in pts)


def test_events_go_to_the_transport_like_any_other_source(
    store: MemoryStore, chat_bot: Bot
) -> None:
    """With the default bus (memory://) and no pipeline, turns are published there for the
    worker; the chat does not update csat itself (the worker will)."""
    _, secret = store.create_key("default", {"events:write", "profile:read"})
    h = {"Authorization": f"Bearer {secret}"}
    app = create_app(Settings(), store=store, services={"bot": chat_bot, "decisions": FakeEngine()})
    transport = app.state.services["transport"]
    with TestClient(app) as c:
        chat_id = c.post("/api/chat/u2/start", json={}, headers=h).json()["chat_id"]
        c.post("/api/chat/u2/end", json={"chat_id": chat_id}, headers=h)
        c.post("/api/chat/u2/feedback", json={"chat_id": chat_id, "csat": 5}, headers=h)
    got = transport.receive(max_messages=10, timeout=0.1)
    assert [parse_event(d.raw).type for d in got] == ["chat_started", "chat_ended", "feedback"]
    stored = store.get("default", "u2")
    assert stored is not None and stored.feedback.csat_count == 0
    assert stored.preferences["language"] == "en"  # chat-only preferences still land


def test_with_the_real_stream_pipeline(store: MemoryStore, chat_bot: Bot) -> None:
    """services["pipeline"] = chatpersona.pipeline.worker.Pipeline: the chat's events update
    the profile (history, CSAT, features) through the same steps as any other source."""
    from chatpersona.pipeline.worker import Pipeline

    c, h = _client(store, chat_bot, pipeline=Pipeline(store=store))
    with c:
        chat_id = c.post("/api/chat/u2/start", json={}, headers=h).json()["chat_id"]
        c.post("/api/chat/u2/message", json={"chat_id": chat_id, "text": "thanks"}, headers=h)
        c.post(
            "/api/chat/u2/message",
            json={"chat_id": chat_id, "text": "where is my refund"},
            headers=h,
        )
        c.post("/api/chat/u2/end", json={"chat_id": chat_id}, headers=h)
        fb = c.post("/api/chat/u2/feedback", json={"chat_id": chat_id, "csat": 2}, headers=h)
    assert fb.status_code == 200, fb.text
    after = store.get("default", "u2")
    assert after is not None
    assert after.feedback.csat_count == 1 and after.feedback.csat_last == 2
    assert chat_id in after.interaction_history
    assert after.features["csat_mean"] == 2.0
    changed = {ch["field"] for ch in fb.json()["changes"]}
    assert {"feedback.csat_last", "interaction_count", "preferences.language"} <= changed

"""examples/rasa: the custom action's logic and the actions themselves, run against a live
chatpersona API. ``rasa-sdk`` is not installed in the development venv (it would downgrade
pydantic and websockets), so the actions run on a minimal stand-in of its API surface
(``Action``, ``Tracker``, ``SlotSet`` ...); the logic module has no Rasa import at all."""

from __future__ import annotations

import asyncio
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from chatpersona.client import Client
from chatpersona.profiles import ProfilePatch

from .conftest import LiveApi

RASA_DIR = Path(__file__).resolve().parents[3] / "examples" / "rasa"


def _seed(live_api: LiveApi) -> None:
    live_api.store.merge(
        "default",
        "rasa-user",
        ProfilePatch(
            preferences={
                "name": "Lu",
                "language": " Spanish",
                "open_issue_category": "INVOICE",
                "open_issue_at": "2026-03-12T10:00:00Z",
            },
            interaction_history=["c1"],
        ),
    )


@pytest.fixture
def rasa_actions(monkeypatch: pytest.MonkeyPatch) -> Any:
    sdk = types.ModuleType("rasa_sdk")
    events = types.ModuleType("rasa_sdk.events")
    executor = types.ModuleType("rasa_sdk.executor")

    class Action:  # the real base class only declares name() and run()
        pass

    class Tracker:
        def __init__(self, sender_id: str, slots: dict[str, Any] | None = None) -> None:
            self.sender_id = sender_id
            self.slots = slots or {}

        def get_slot(self, key: str) -> Any:
            return self.slots.get(key)

    sdk.Action = Action  # type: ignore[attr-defined]
    sdk.Tracker = Tracker  # type: ignore[attr-defined]
    events.SlotSet = lambda key, value=None: {"event": "slot", "name": key, "value": value}  # type: ignore[attr-defined]
    events.SessionStarted = lambda: {"event": "session_started"}  # type: ignore[attr-defined]
    events.ActionExecuted = lambda name: {"event": "action", "name": name}  # type: ignore[attr-defined]
    executor.CollectingDispatcher = object  # type: ignore[attr-defined]
    for name, mod in (
        ("rasa_sdk", sdk),
        ("rasa_sdk.events", events),
        ("rasa_sdk.executor", executor),
    ):
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.syspath_prepend(str(RASA_DIR))
    for name in ("actions", "actions.actions", "actions.personalization"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    import actions.actions as module  # type: ignore[import-not-found]

    yield module, Tracker
    for name in ("actions", "actions.actions", "actions.personalization"):
        sys.modules.pop(name, None)


def test_profile_slots_against_live_api(live_api: LiveApi, rasa_actions: Any) -> None:
    _seed(live_api)
    from actions.personalization import profile_slots  # type: ignore[import-not-found]

    with Client(live_api.url, live_api.key) as client:
        slots = profile_slots(client, "rasa-user")
        unknown = profile_slots(client, "nobody")
    assert slots["cp_user_name"] == "Lu"
    assert slots["cp_language"] == "es"
    assert slots["cp_returning"] is True
    assert (slots["cp_open_issue"], slots["cp_open_issue_date"]) == ("INVOICE", "2026-03-12")
    assert slots["cp_tone"] in ("concise", "empathetic", "formal")
    assert set(slots["cp_decision_ids"]) == {"tone", "routing"}
    assert (unknown["cp_user_name"], unknown["cp_language"], unknown["cp_returning"]) == (
        None,
        "en",
        False,
    )


def test_session_start_and_reward_actions(
    live_api: LiveApi, rasa_actions: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _seed(live_api)
    module, tracker_cls = rasa_actions
    monkeypatch.setenv("CHATPERSONA_URL", live_api.url)
    monkeypatch.setenv("CHATPERSONA_API_KEY", live_api.key)
    start = module.ActionSessionStart()
    assert start.name() == "action_session_start"
    events = asyncio.run(start.run(None, tracker_cls("rasa-user"), {}))
    assert events[0] == {"event": "session_started"}
    assert events[-1] == {"event": "action", "name": "action_listen"}
    slots = {e["name"]: e["value"] for e in events if e["event"] == "slot"}
    assert slots["cp_user_name"] == "Lu" and slots["cp_open_issue"] == "INVOICE"

    reward = module.ActionChatpersonaReward()
    tracker = tracker_cls("rasa-user", {"csat": 5, "cp_decision_ids": slots["cp_decision_ids"]})
    assert asyncio.run(reward.run(None, tracker, {})) == []
    # The decisions are rewarded now: a second reward is refused by the API (409).
    with Client(live_api.url, live_api.key) as client:
        from chatpersona.client import ApiClientError

        with pytest.raises(ApiClientError) as err:
            client.reward(slots["cp_decision_ids"]["tone"], 1.0)
        assert err.value.status == 409


def test_unreachable_api_starts_the_session_anyway(
    rasa_actions: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    module, tracker_cls = rasa_actions
    monkeypatch.setenv("CHATPERSONA_URL", "http://127.0.0.1:9")
    events = asyncio.run(module.ActionSessionStart().run(None, tracker_cls("u"), {}))
    assert events == [{"event": "session_started"}, {"event": "action", "name": "action_listen"}]

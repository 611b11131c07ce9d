"""Reading the decision engine's answers into the chat's decision."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from chatpersona.chat import ChatDecision, default_decision
from chatpersona.profiles.schema import Profile


@dataclass
class FakeDecision:  # the shape of chatpersona.decide.Decision
    decision_id: str
    decision_point: str
    action: str
    policy: str
    params: dict[str, Any] = field(default_factory=dict)


def test_from_engine_objects() -> None:
    d = ChatDecision.from_any(
        {
            "tone": FakeDecision("d1", "tone", "empathetic", "thompson"),
            "routing": FakeDecision("d2", "routing", "human_normal", "rules", {"queue": "agents"}),
        }
    )
    assert d == ChatDecision(
        tone="empathetic",
        route="human",
        decision_ids={"tone": "d1", "routing": "d2"},
        policies={"tone": "thompson", "routing": "rules"},
    )


@pytest.mark.parametrize(
    ("obj", "tone", "route"),
    [
        ({"action": "formal"}, "formal", "bot"),
        ({"action": "tone:empathetic"}, "empathetic", "bot"),
        ({"action": "self_service", "params": {"queue": None}}, "concise", "bot"),
        ({"action": "human_priority"}, "concise", "human"),
        ({"tone": "shouty"}, "concise", "bot"),  # unknown tone keeps the fallback
        (None, "concise", "bot"),
    ],
)
def test_from_single_decision(obj: Any, tone: str, route: str) -> None:
    d = ChatDecision.from_any(obj)
    assert (d.tone, d.route) == (tone, route)


@pytest.mark.parametrize(
    ("prefs", "attrs", "csat_last", "tone"),
    [
        ({}, {}, None, "concise"),
        ({}, {"is_vip": True}, None, "formal"),
        ({}, {"is_vip": True}, 2, "empathetic"),
        ({"tone": "formal"}, {}, 1, "formal"),
    ],
)
def test_default_decision(
    prefs: dict[str, Any], attrs: dict[str, Any], csat_last: int | None, tone: str
) -> None:
    p = Profile(user_id="u", preferences=prefs, attributes=attrs)
    p.feedback.csat_last = csat_last
    assert default_decision(p).tone == tone

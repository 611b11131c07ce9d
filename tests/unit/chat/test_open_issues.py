"""Deriving each user's open issue from an event history (for loading demo profiles)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chatpersona.chat import (
    apply_open_issues,
    open_issues_from_events,
    pick_demo_users,
    read_events_jsonl,
)
from chatpersona.exceptions import InputError
from chatpersona.profiles import MemoryStore, ProfilePatch, SegmentRef


def ev(user: str, type_: str, ts: str, chat: str, **payload: Any) -> dict[str, Any]:
    return {"user_id": user, "type": type_, "ts": ts, "payload": {"chat_id": chat, **payload}}


def test_latest_unresolved_chat_is_the_open_issue() -> None:
    events = [
        ev("u1", "chat_started", "2026-03-12T09:00:00Z", "c1"),
        ev("u1", "message", "2026-03-12T09:01:00Z", "c1", intent="get_refund", category="REFUND"),
        ev("u1", "message", "2026-03-12T09:02:00Z", "c1", intent="track_refund", category="REFUND"),
        ev(
            "u1",
            "message",
            "2026-03-12T09:03:00Z",
            "c1",
            intent="check_invoice",
            category="INVOICE",
        ),
        ev("u1", "chat_ended", "2026-03-12T09:05:00Z", "c1", resolved=False),
        # u2: an unresolved chat later closed by a resolved one
        ev(
            "u2",
            "message",
            "2026-03-01T10:00:00Z",
            "c2",
            intent="payment_issue",
            category="PAYMENT",
        ),
        ev("u2", "chat_ended", "2026-03-01T10:05:00Z", "c2", resolved=False),
        ev("u2", "message", "2026-03-02T10:00:00Z", "c3", intent="track_order", category="ORDER"),
        ev("u2", "chat_ended", "2026-03-02T10:05:00Z", "c3", resolved=True),
    ]
    # Order of the input must not matter.
    assert open_issues_from_events(reversed(events)) == {
        "u1": {
            "open_issue_category": "REFUND",
            "open_issue_intent": "get_refund",
            "open_issue_at": "2026-03-12T09:00:00Z",
            "open_issue_chat": "c1",
        }
    }


def test_apply_open_issues_and_pick_demo_users(tmp_path: Path) -> None:
    store = MemoryStore()
    now = datetime(2026, 5, 3, tzinfo=UTC)
    for i, seg in enumerate(["a", "a", "b", "b", "c"]):
        store.merge(
            "t",
            f"u{i}",
            ProfilePatch(
                attributes={"email": f"name{chr(97 + i)}.x{i}@example.com"},
                segment=SegmentRef(id=seg, name=f"seg-{seg}", model_version="v", assigned_at=now),
            ),
        )
    lines = [
        ev("u3", "message", "2026-03-12T09:01:00Z", "c1", intent="get_invoice", category="INVOICE"),
        ev("u3", "chat_ended", "2026-03-12T09:05:00Z", "c1", resolved=False),
        ev(
            "ghost", "message", "2026-03-12T09:01:00Z", "c2", intent="get_refund", category="REFUND"
        ),
        ev("ghost", "chat_ended", "2026-03-12T09:05:00Z", "c2", resolved=False),
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n", encoding="utf-8")
    assert apply_open_issues(store, "t", read_events_jsonl(path)) == 1  # ghost has no profile
    assert store.get("t", "ghost") is None
    users = pick_demo_users(store, "t", n=4)
    assert [u["user_id"] for u in users] == ["u3", "u0", "u4", "u1"]
    assert users[0]["open_issue"] == "INVOICE" and users[0]["segment"] == "seg-b"
    assert users[1]["name"] == "Namea"


def test_bad_jsonl_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"a": 1}\nnot json\n', encoding="utf-8")
    with pytest.raises(InputError, match="Line 2 of"):
        list(read_events_jsonl(path))


def test_contact_and_feedback_are_not_issues() -> None:
    events = [
        ev("u1", "message", "2026-03-12T09:01:00Z", "c1", intent="complaint", category="FEEDBACK"),
        ev("u1", "message", "2026-03-12T09:02:00Z", "c1", intent="complaint", category="FEEDBACK"),
        ev(
            "u1",
            "message",
            "2026-03-12T09:03:00Z",
            "c1",
            intent="payment_issue",
            category="PAYMENT",
        ),
        ev("u1", "chat_ended", "2026-03-12T09:05:00Z", "c1", resolved=False),
        ev(
            "u2",
            "message",
            "2026-03-12T09:01:00Z",
            "c2",
            intent="contact_human_agent",
            category="CONTACT",
        ),
        ev("u2", "chat_ended", "2026-03-12T09:05:00Z", "c2", resolved=False),
    ]
    issues = open_issues_from_events(events)
    assert set(issues) == {"u1"}
    assert issues["u1"]["open_issue_category"] == "PAYMENT"

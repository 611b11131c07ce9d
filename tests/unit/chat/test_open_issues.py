"""Deriving each user's open issue from an event history (for loading demo profiles)."""

from __future__ import annotations

from typing import Any

from chatpersona.chat import open_issues_from_events


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

"""Pre-chat: the greeting from the profile and the decision (exact texts)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from chatpersona.chat import Bot
from chatpersona.profiles.schema import Profile

REFUND_12_MARCH = ("REFUND", "get_refund", "2026-03-12T09:30:00Z")


@pytest.mark.parametrize(
    ("kwargs", "decision", "expected"),
    [
        pytest.param({}, None, "Hi, Ana! How can I help?", id="new-user-en-concise"),
        pytest.param({"name": None}, None, "Hi! How can I help?", id="no-name"),
        pytest.param({"chats": 2}, None, "Welcome back, Ana! How can I help?", id="welcome-back"),
        pytest.param(
            {"chats": 2, "open_issue": REFUND_12_MARCH},
            None,
            "Welcome back, Ana! Is this about the refund you asked about on 12 March?",
            id="offer-open-refund",
        ),
        pytest.param(
            {"chats": 1, "open_issue": ("INVOICE", "check_invoice", "2026-01-05")},
            {"action": "empathetic"},
            "Welcome back, Ana, it's good to see you. Is this about the invoice you asked "
            "about on 5 January? We can pick up right where we left off.",
            id="offer-invoice-empathetic",
        ),
        pytest.param(
            {"chats": 1},
            {"action": "formal"},
            "Good day, Ana. Thank you for contacting us again. How may I assist you today?",
            id="formal",
        ),
        pytest.param(
            {"language": "es", "chats": 1, "open_issue": REFUND_12_MARCH},
            None,
            "¡Hola de nuevo, Ana! ¿Es sobre tu consulta de reembolso del 12 de marzo?",
            id="es-offer",
        ),
        pytest.param(
            {"language": " Spanish"},
            {"action": "formal"},
            "Buenos días, Ana. Gracias por contactar con nosotros. ¿En qué puedo ayudarle?",
            id="es-formal-messy-language",
        ),
        pytest.param(
            {"chats": 1, "open_issue": REFUND_12_MARCH},
            {"tone": "concise", "offer_continue": False},
            "Welcome back, Ana! How can I help?",
            id="decision-disables-offer",
        ),
    ],
)
def test_greeting_text(
    bot: Bot,
    make_profile: Callable[..., Profile],
    kwargs: dict[str, object],
    decision: object,
    expected: str,
) -> None:
    turn = bot.greet(make_profile(**kwargs), decision)
    assert turn.kind == "greeting"
    assert turn.text == expected


def test_greeting_emits_chat_started_event(bot: Bot, make_profile: Callable[..., Profile]) -> None:
    turn = bot.greet(make_profile(), None, chat_id="chat-9", channel="mobile_app", device="mobile")
    assert turn.events == [
        {
            "event_id": "id-1",
            "tenant": "default",
            "user_id": "u-1",
            "type": "chat_started",
            "ts": "2026-05-03T14:00:00Z",
            "channel": "mobile_app",
            "device": "mobile",
            "payload": {"chat_id": "chat-9"},
        }
    ]


def test_offer_adds_yes_no_quick_replies(bot: Bot, make_profile: Callable[..., Profile]) -> None:
    turn = bot.greet(make_profile(chats=1, open_issue=REFUND_12_MARCH))
    assert turn.quick_replies == ["Yes", "No, something else"]
    assert turn.conversation.awaiting == "continue"
    assert bot.greet(make_profile()).quick_replies == []


def test_default_decision_empathetic_after_bad_csat(
    bot: Bot, make_profile: Callable[..., Profile]
) -> None:
    profile = make_profile()
    profile.feedback.csat_last = 1
    turn = bot.greet(profile)
    assert turn.conversation.tone == "empathetic"
    assert turn.text == (
        "Hello, Ana, it's good to see you. Tell me what's going on and I'll do my best to help."
    )


def test_name_is_html_escaped_but_text_is_plain(
    bot: Bot, make_profile: Callable[..., Profile]
) -> None:
    turn = bot.greet(make_profile(name="<b>Bo</b> & Co"))
    assert turn.text == "Hi, <b>Bo</b> & Co! How can I help?"
    assert turn.html == "Hi, &lt;b&gt;Bo&lt;/b&gt; &amp; Co! How can I help?"


def test_engine_decisions_by_point(bot: Bot, make_profile: Callable[..., Profile]) -> None:
    decisions = {
        "tone": {"decision_id": "d-tone", "action": "formal", "policy": "thompson"},
        "routing": {"decision_id": "d-route", "action": "bot", "policy": "rules"},
    }
    conv = bot.greet(make_profile(), decisions).conversation
    assert conv.tone == "formal"
    assert conv.decision["decision_ids"] == {"tone": "d-tone", "routing": "d-route"}
    assert conv.decision["route"] == "bot"


@pytest.mark.parametrize(
    ("email", "expected"),
    [
        ("maria.garcia42@example.com", "Hi, Maria! How can I help?"),
        ("  JOHN.SMITH7@EXAMPLE.COM ", "Hi, John! How can I help?"),
        ("x1@example.com", "Hi! How can I help?"),
        ("not-an-email", "Hi! How can I help?"),
    ],
)
def test_name_falls_back_to_the_email(bot: Bot, email: str, expected: str) -> None:
    profile = Profile(user_id="u-5", attributes={"email": email})
    assert bot.greet(profile).text == expected

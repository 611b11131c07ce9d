"""During the chat: intent -> template answer in the decided tone and language, clarifying
questions when unsure, escalation per routing (exact texts)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatpersona.chat import Bot, IntentModel
from chatpersona.exceptions import ConflictError, InputError
from chatpersona.profiles.schema import Profile

REFUND_12_MARCH = ("REFUND", "get_refund", "2026-03-12T09:30:00Z")


@pytest.mark.parametrize(
    ("message", "tone", "language", "intent", "expected"),
    [
        pytest.param(
            "where is my refund? it has been days",
            "concise",
            "en",
            "track_refund",
            "Refunds reach your account 5-7 working days after approval.",
            id="track-refund-concise",
        ),
        pytest.param(
            "I can't log in, I forgot my password",
            "empathetic",
            "en",
            "recover_password",
            'Being locked out is annoying, I know. Use "Forgot password" on the sign-in page '
            "and a reset link will reach your inbox within minutes. Is there anything else I "
            "can do for you?",
            id="password-empathetic",
        ),
        pytest.param(
            "how can I download my invoice",
            "formal",
            "en",
            "get_invoice",
            "Thank you for your message, Ana. Your invoices are available under Account > "
            "Billing, where each may be downloaded in PDF format. Is there anything further I "
            "can help you with?",
            id="invoice-formal",
        ),
        pytest.param(
            "I want to track my order",
            "concise",
            "es",
            "track_order",
            "Puedes seguir tu pedido en Pedidos > Seguimiento.",
            id="order-es",
        ),
    ],
)
def test_answer_per_intent_and_tone(
    bot: Bot,
    make_profile: Callable[..., Profile],
    message: str,
    tone: str,
    language: str,
    intent: str,
    expected: str,
) -> None:
    profile = make_profile(language=language)
    conv = bot.greet(profile, {"action": tone}).conversation
    turn = bot.reply(profile, message, conversation=conv)
    assert turn.kind == "answer"
    assert turn.prediction is not None and turn.prediction.intent == intent
    assert turn.text == expected


def test_yes_continues_the_offered_issue(bot: Bot, make_profile: Callable[..., Profile]) -> None:
    profile = make_profile(chats=1, open_issue=REFUND_12_MARCH)
    conv = bot.greet(profile).conversation
    turn = bot.reply(profile, "Yes", conversation=conv)
    assert turn.text == (
        "I can start your refund; it reaches your account within 5-7 working days. I can see "
        "you contacted us about your refund on 12 March, so I've linked this chat to it."
    )
    assert turn.prediction is None  # no guess needed: the customer confirmed
    assert turn.events[0]["payload"] == {
        "chat_id": conv.chat_id,
        "text": "Yes",
        "intent": "get_refund",
        "category": "REFUND",
    }
    # The continued issue keeps its original date and chat.
    assert conv.issue == {
        "category": "REFUND",
        "intent": "get_refund",
        "at": "2026-03-12T09:30:00Z",
        "chat_id": "chat-old",
    }


def test_no_asks_what_else(bot: Bot, make_profile: Callable[..., Profile]) -> None:
    profile = make_profile(chats=1, open_issue=REFUND_12_MARCH, language="es")
    conv = bot.greet(profile).conversation
    turn = bot.reply(profile, "No, otra cosa", conversation=conv)
    assert (turn.kind, turn.text) == ("ask", "Claro. ¿En qué te puedo ayudar?")


def test_same_category_message_refers_to_past_issue(
    bot: Bot, make_profile: Callable[..., Profile]
) -> None:
    profile = make_profile(chats=1, open_issue=REFUND_12_MARCH)
    conv = bot.greet(profile, {"action": "concise", "offer_continue": False}).conversation
    turn = bot.reply(profile, "what is your refund policy?", conversation=conv)
    assert turn.text == (
        "You can get a refund within 30 days of purchase. I can see you contacted us about "
        "your refund on 12 March, so I've linked this chat to it."
    )


def test_low_confidence_asks_to_clarify_not_guess(
    bot: Bot, make_profile: Callable[..., Profile]
) -> None:
    profile = make_profile()
    conv = bot.greet(profile).conversation
    turn = bot.reply(profile, "hmm blah", conversation=conv)
    assert turn.kind == "clarify"
    assert turn.prediction is not None
    assert turn.prediction.confidence < bot.intents.threshold  # type: ignore[attr-defined]
    labels = turn.quick_replies
    assert len(labels) == 3
    assert (
        turn.text
        == f"Sorry, I didn't get that. Is it about {labels[0]}, {labels[1]} or {labels[2]}?"
    )
    # Picking an offered option answers that category without another guess.
    picked = bot.reply(profile, labels[0], conversation=conv)
    assert picked.kind == "answer"
    assert picked.prediction is None


def test_repeated_confusion_escalates(bot: Bot, make_profile: Callable[..., Profile]) -> None:
    profile = make_profile()
    conv = bot.greet(profile).conversation
    kinds = [bot.reply(profile, "zzz qqq", conversation=conv).kind for _ in range(3)]
    assert kinds == ["clarify", "clarify", "escalate"]
    assert conv.escalated


def test_asking_for_a_human_escalates(bot: Bot, make_profile: Callable[..., Profile]) -> None:
    profile = make_profile()
    conv = bot.greet(profile).conversation
    turn = bot.reply(profile, "I want to speak with a human agent", conversation=conv)
    assert (turn.kind, turn.text) == (
        "escalate",
        "I'm passing you to a colleague now. They will see this chat.",
    )


def test_routing_decision_hands_over_after_answering(
    bot: Bot, make_profile: Callable[..., Profile]
) -> None:
    profile = make_profile()
    decisions = {
        "tone": {"decision_id": "d1", "action": "formal"},
        "routing": {"decision_id": "d2", "action": "human_priority", "params": {"queue": "agents"}},
    }
    conv = bot.greet(profile, decisions).conversation
    turn = bot.reply(profile, "I have a problem with my payment", conversation=conv)
    assert turn.kind == "escalate"
    assert turn.text == (
        "Thank you for your message, Ana. We apologise for the inconvenience. Please verify "
        "your card details under Account > Billing and retry the payment. Is there anything "
        "further I can help you with? I am transferring you to a member of our team regarding "
        "your payment issue. They will have the full record of this conversation."
    )


def test_thanks_is_small_talk(bot: Bot, make_profile: Callable[..., Profile]) -> None:
    profile = make_profile()
    conv = bot.greet(profile).conversation
    turn = bot.reply(profile, "thank you!", conversation=conv)
    assert (turn.kind, turn.text) == ("thanks", "You're welcome. Anything else?")


def test_every_message_is_an_event(bot: Bot, make_profile: Callable[..., Profile]) -> None:
    profile = make_profile()
    conv = bot.greet(profile, chat_id="chat-1").conversation
    turn = bot.reply(profile, "I need a refund for my order", conversation=conv)
    (event,) = turn.events
    assert event["type"] == "message"
    assert event["payload"]["chat_id"] == "chat-1"
    assert event["payload"]["intent"] == "get_refund"
    assert event["payload"]["category"] == "REFUND"
    assert event["payload"]["text"] == "I need a refund for my order"


def test_bad_messages_are_rejected(bot: Bot, make_profile: Callable[..., Profile]) -> None:
    profile = make_profile()
    conv = bot.greet(profile).conversation
    with pytest.raises(InputError, match="non-empty text"):
        bot.reply(profile, "   ", conversation=conv)
    with pytest.raises(InputError, match="at most 2000"):
        bot.reply(profile, "a" * 2001, conversation=conv)
    bot.end_chat(profile, conv)
    with pytest.raises(ConflictError, match="has ended"):
        bot.reply(profile, "hello?", conversation=conv)


@pytest.mark.parametrize(
    ("message", "intent"),
    [
        ("quiero un reembolso", "get_refund"),
        ("dónde está mi pedido?", "track_order"),
        ("olvidé mi contraseña", "recover_password"),
        ("tengo un problema con mi factura", "check_invoice"),
    ],
)
def test_spanish_messages_are_understood(
    bot: Bot, make_profile: Callable[..., Profile], message: str, intent: str
) -> None:
    profile = make_profile(language="es")
    conv = bot.greet(profile).conversation
    turn = bot.reply(profile, message, conversation=conv)
    assert turn.kind == "answer"
    assert turn.prediction is not None and turn.prediction.intent == intent


def test_events_use_the_contract_category_names(
    bot: Bot, make_profile: Callable[..., Profile]
) -> None:
    """Bitext's SHIPPING_ADDRESS / CANCELLATION_FEE / NEWSLETTER are the contract's
    SHIPPING / CANCEL / SUBSCRIPTION in events, issues and past-issue matching."""
    profile = make_profile(
        chats=1, open_issue=("SHIPPING", "change_shipping_address", "2026-04-02")
    )
    conv = bot.greet(profile, {"action": "concise", "offer_continue": False}).conversation
    turn = bot.reply(profile, "I need to change my shipping address", conversation=conv)
    assert turn.events[0]["payload"]["category"] == "SHIPPING"
    assert turn.text == (
        "You can change your shipping address in Account > Addresses. I can see you contacted "
        "us about your shipping address on 2 April, so I've linked this chat to it."
    )
    fee = bot.reply(profile, "is there a fee if I cancel early?", conversation=conv)
    assert fee.events[0]["payload"]["category"] == "CANCEL"
    assert (
        fee.text == "Cancelling early costs one month of your plan; cancelling at renewal is free."
    )


@settings(max_examples=60, deadline=None)
@given(text=st.text(min_size=1, max_size=300).filter(lambda t: t.strip()))
def test_any_message_gets_an_answer_and_one_event(intent_model: IntentModel, text: str) -> None:
    """Whatever the customer types, the bot answers with a known kind and logs exactly one
    message event carrying the text."""
    bot = Bot(intent_model)
    profile = Profile(user_id="u-h", preferences={"language": "es"})
    conv = bot.greet(profile).conversation
    turn = bot.reply(profile, text, conversation=conv)
    assert turn.kind in ("answer", "clarify", "escalate", "ask", "thanks")
    assert turn.text
    (event,) = turn.events
    assert event["type"] == "message" and event["payload"]["text"] == text
    if turn.kind == "clarify":
        assert turn.prediction is not None
        assert turn.prediction.confidence < intent_model.threshold

"""Post-chat: CSAT (1-5) and optional NPS become events, a profile patch and a reward."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatpersona.chat import OPEN_ISSUE_KEYS, Bot, IntentModel
from chatpersona.exceptions import ConflictError, InputError
from chatpersona.profiles.schema import Profile, apply_patch


def _chat(bot: Bot, profile: Profile, message: str, decision: object = None):  # type: ignore[no-untyped-def]
    conv = bot.greet(profile, decision, chat_id="chat-7").conversation
    bot.reply(profile, message, conversation=conv)
    return conv


def test_end_asks_for_csat_and_offers_nps(bot: Bot, make_profile: Callable[..., Profile]) -> None:
    profile = make_profile()
    conv = _chat(bot, profile, "how do I change my shipping address")
    turn = bot.end_chat(profile, conv)
    assert turn.kind == "csat"
    assert turn.text == "Before you go: how would you rate this chat, from 1 to 5?"
    assert turn.prompts == {
        "csat": "Before you go: how would you rate this chat, from 1 to 5?",
        "nps": "And from 0 to 10, how likely are you to recommend us?",
    }
    assert turn.quick_replies == ["1", "2", "3", "4", "5"]
    (event,) = turn.events
    assert event["type"] == "chat_ended"
    assert event["payload"] == {"chat_id": "chat-7", "resolved": True, "handle_time_s": 0.0}


def test_end_in_spanish_formal(bot: Bot, make_profile: Callable[..., Profile]) -> None:
    profile = make_profile(language="es")
    conv = _chat(bot, profile, "I want to cancel my order", {"action": "formal"})
    turn = bot.end_chat(profile, conv)
    assert turn.text == "Antes de finalizar, ¿podría valorar esta conversación del 1 al 5?"
    assert turn.prompts["nps"] == (
        "Por último, en una escala del 0 al 10, ¿con qué probabilidad recomendaría nuestro servicio?"
    )


def test_feedback_event_patch_and_reward(bot: Bot, make_profile: Callable[..., Profile]) -> None:
    profile = make_profile()
    conv = _chat(bot, profile, "I was charged twice, I want a refund")
    bot.end_chat(profile, conv, resolved=False)
    turn = bot.post_chat(profile, conv, csat=4, nps=9)
    assert (turn.kind, turn.text) == ("goodbye", "Thanks, Ana. Bye!")
    (event,) = turn.events
    assert event["type"] == "feedback"
    assert event["payload"] == {"chat_id": "chat-7", "csat": 4, "nps": 9}
    assert turn.reward == 0.75
    assert turn.patch is not None and turn.patch.preferences == {
        "language": "en",
        "last_chat_at": "2026-05-03T14:00:00Z",
        "open_issue_category": "REFUND",
        "open_issue_intent": "get_refund",
        "open_issue_at": "2026-05-03T14:00:00Z",
        "open_issue_chat": "chat-7",
    }
    assert turn.fallback_patch is not None
    assert (turn.fallback_patch.csat, turn.fallback_patch.nps) == (4, 9)
    assert turn.fallback_patch.interaction_history == ["chat-7"]


def test_next_chat_offers_the_unresolved_issue(
    bot: Bot, make_profile: Callable[..., Profile]
) -> None:
    """The post-chat patch makes the next pre-chat greeting offer to continue."""
    profile = make_profile()
    conv = _chat(bot, profile, "I was charged twice, I want a refund")
    bot.end_chat(profile, conv, resolved=False)
    turn = bot.post_chat(profile, conv, csat=2)
    assert turn.patch is not None and turn.fallback_patch is not None
    after = apply_patch(profile, turn.patch, tenant="default", user_id="u-1")
    after = apply_patch(after, turn.fallback_patch, tenant="default", user_id="u-1")
    assert after.feedback.csat_last == 2
    greeting = bot.greet(after)
    assert greeting.text == (
        "Welcome back, Ana, it's good to see you. Is this about the refund you asked about on "
        "3 May? We can pick up right where we left off."
    )


def test_resolved_chat_closes_the_open_issue(
    bot: Bot, make_profile: Callable[..., Profile]
) -> None:
    profile = make_profile(chats=1, open_issue=("REFUND", "get_refund", "2026-03-12T09:30:00Z"))
    conv = bot.greet(profile).conversation
    bot.reply(profile, "yes", conversation=conv)
    bot.end_chat(profile, conv, resolved=True)
    turn = bot.post_chat(profile, conv, csat=5)
    assert turn.patch is not None and turn.patch.preferences is not None
    assert all(turn.patch.preferences[k] is None for k in OPEN_ISSUE_KEYS)
    after = apply_patch(profile, turn.patch, tenant="default", user_id="u-1")
    assert "open_issue_category" not in after.preferences
    assert bot.greet(after).text == "Welcome back, Ana! How can I help?"


def test_rating_rules(bot: Bot, make_profile: Callable[..., Profile]) -> None:
    profile = make_profile()
    conv = _chat(bot, profile, "where is my order")
    with pytest.raises(ConflictError, match="still open"):
        bot.post_chat(profile, conv, csat=5)
    bot.end_chat(profile, conv)
    with pytest.raises(InputError, match=r"CSAT must be an integer 1-5\. Got 6 instead\."):
        bot.post_chat(profile, conv, csat=6)
    with pytest.raises(InputError, match=r"NPS must be an integer 0-10\. Got 11 instead\."):
        bot.post_chat(profile, conv, csat=5, nps=11)
    bot.post_chat(profile, conv, csat=5)
    with pytest.raises(ConflictError, match="already rated"):
        bot.post_chat(profile, conv, csat=5)


@given(csat=st.integers(1, 5))
def test_reward_is_monotone_in_csat_and_in_unit_interval(
    intent_model: IntentModel, csat: int
) -> None:
    bot = Bot(intent_model)
    profile = Profile(user_id="u-2")
    conv = bot.greet(profile).conversation
    bot.end_chat(profile, conv)
    reward = bot.post_chat(profile, conv, csat=csat).reward
    assert reward == (csat - 1) / 4
    assert 0.0 <= reward <= 1.0

"""Fixtures of the chat tests: one intent model trained once per session (a few seconds)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from chatpersona.chat import Bot, IntentModel, load_dataset
from chatpersona.profiles.schema import Profile

NOW = datetime(2026, 5, 3, 14, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def intent_model() -> IntentModel:
    ds = load_dataset("bitext")
    return IntentModel(seed=0).fit(ds.texts, ds.labels, ds.categories)


@pytest.fixture
def bot(intent_model: IntentModel) -> Bot:
    counter = itertools.count(1)
    return Bot(intent_model, clock=lambda: NOW, id_factory=lambda: f"id-{next(counter)}")


@pytest.fixture
def make_profile() -> Callable[..., Profile]:
    def make(
        *,
        name: str | None = "Ana",
        language: str = "en",
        chats: int = 0,
        open_issue: tuple[str, str, str] | None = None,
        **prefs: object,
    ) -> Profile:
        preferences: dict[str, object] = {"language": language, **prefs}
        if name is not None:
            preferences["name"] = name
        if open_issue is not None:
            category, intent, at = open_issue
            preferences.update(
                open_issue_category=category,
                open_issue_intent=intent,
                open_issue_at=at,
                open_issue_chat="chat-old",
            )
        return Profile(
            user_id="u-1",
            preferences=preferences,
            interaction_history=[f"c{i}" for i in range(chats)],
            interaction_count=chats,
        )

    return make

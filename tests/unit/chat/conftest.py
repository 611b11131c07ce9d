"""Fixtures of the chat tests: one intent model trained once per session (a few seconds)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chatpersona.chat import Bot, IntentModel, load_dataset
from chatpersona.profiles.schema import Profile

NOW = datetime(2026, 5, 3, 14, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def intent_model() -> IntentModel:
    ds = load_dataset("support")  # what the bot trains on: Bitext + Spanish utterances
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


@dataclass
class LiveApi:
    url: str
    key: str
    store: Any


@pytest.fixture
def live_api(intent_model: IntentModel) -> Iterator[LiveApi]:
    """A real HTTP server (uvicorn in a thread) on a free port, memory store, no bus."""
    import socket
    import threading
    import time

    import uvicorn

    from chatpersona.api import create_app
    from chatpersona.config import Settings
    from chatpersona.profiles import MemoryStore

    store = MemoryStore()
    _, secret = store.create_key("default", {"profile:read", "profile:write", "events:write"})
    app = create_app(Settings(bus_url=""), store=store, services={"bot": Bot(intent_model)})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the test API server did not start")
        time.sleep(0.05)
    try:
        yield LiveApi(f"http://127.0.0.1:{port}", secret, store)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def model_cache(intent_model: IntentModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache directory that already holds the bot's model (as ``load_or_train`` names it),
    so CLI tests load it instead of training again."""
    from chatpersona.chat.intents import cache_key

    root = tmp_path_factory.mktemp("intent-cache")
    fresh = IntentModel(threshold=intent_model.threshold, seed=0)
    intent_model.save(root / f"intents-support-{cache_key(load_dataset('support'), fresh)}")
    return root

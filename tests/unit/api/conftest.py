"""Fixtures for the API tests: the app over the memory store and over SQLite on a temp file."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from chatpersona.api import create_app
from chatpersona.config import Settings
from chatpersona.profiles import ProfileStore, open_store
from chatpersona.profiles.keys import KeyStore

TENANTS = ("acme", "globex")


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ProfileStore]:
    """The memory store and a SQLite file store (the embedded default)."""
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'profiles.db'}"
    opened = open_store(url)
    yield opened
    opened.close()


@pytest.fixture
def settings() -> Settings:
    return Settings(store_url="memory://", rate_limit_per_minute=0)


@pytest.fixture
def make_client(store: ProfileStore, settings: Settings) -> Iterator[Callable[..., TestClient]]:
    """Build a client for ``create_app(settings, store=store, services=...)``."""
    clients: list[TestClient] = []

    def build(
        services: dict[str, Any] | None = None, settings_: Settings | None = None
    ) -> TestClient:
        app: FastAPI = create_app(settings_ or settings, store=store, services=services)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


@pytest.fixture
def new_key(store: ProfileStore) -> Callable[..., dict[str, str]]:
    """``new_key(tenant, *scopes)`` -> request headers carrying a fresh key."""

    def make(tenant: str, *scopes: str) -> dict[str, str]:
        assert isinstance(store, KeyStore)
        _, secret = store.create_key(tenant, scopes)
        return bearer(secret)

    return make


@pytest.fixture
def rw(new_key: Callable[..., dict[str, str]]) -> dict[str, str]:
    """Headers of a read+write key of tenant ``acme``."""
    return new_key("acme", "profile:read", "profile:write")

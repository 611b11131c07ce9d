"""The API over the production pair: PostgreSQL (system of record) + Redis read-through
cache, on the real servers (127.0.0.1:5432 / :6379); fails, never skips, if they are down."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from chatpersona.api import create_app
from chatpersona.config import Settings
from chatpersona.profiles import ProfileStore, open_store
from chatpersona.profiles.keys import KeyStore

pytestmark = pytest.mark.integration


@pytest.fixture
def cached_store(postgres_url: str, redis_url: str, redis_prefix: str) -> Iterator[ProfileStore]:
    store = open_store(
        postgres_url, cache_url=redis_url, cache_ttl_seconds=60, cache_prefix=redis_prefix
    )
    yield store
    store.close()


@pytest.fixture
def client(cached_store: ProfileStore) -> Iterator[TestClient]:
    app = create_app(Settings(rate_limit_per_minute=0), store=cached_store)
    with TestClient(app) as c:
        yield c


def _headers(store: ProfileStore, tenant: str, *scopes: str) -> dict[str, str]:
    assert isinstance(store, KeyStore)  # the cache forwards the key capability
    _, secret = store.create_key(tenant, scopes)
    return {"Authorization": f"Bearer {secret}"}


def _cached_keys(redis_url: str, prefix: str) -> list[bytes]:
    client = redis.Redis.from_url(redis_url)
    try:
        return sorted(client.scan_iter(match=prefix + "profile:*"))
    finally:
        client.close()


def test_read_through_cache_and_erasure(
    client: TestClient, cached_store: ProfileStore, redis_url: str, redis_prefix: str
) -> None:
    h = _headers(cached_store, "acme", "profile:read", "profile:write")
    body = {"preferences": {"language": "en"}, "interaction_history": ["chat_id_1234"]}
    assert client.post("/api/user/u1/profile", json=body, headers=h).status_code == 200
    first = client.get("/api/user/u1/profile", headers=h).json()
    assert _cached_keys(redis_url, redis_prefix) == [f"{redis_prefix}profile:acme:u1".encode()]
    # A write invalidates: the next read sees it, not the cached copy.
    client.post("/api/user/u1/profile", json={"preferences": {"language": "es"}}, headers=h)
    second = client.get("/api/user/u1/profile", headers=h).json()
    assert second["preferences"] == {"language": "es"} and second["version"] == first["version"] + 1

    assert client.delete("/api/user/u1/profile", headers=h).json()["erased"] == {
        "profile": 1,
        "chat": 0,
        "event_log": 0,
    }
    assert _cached_keys(redis_url, redis_prefix) == []
    assert client.get("/api/user/u1/profile", headers=h).status_code == 404
    assert client.get("/readyz").json() == {"status": "ok", "store": "ok"}


def test_tenant_isolation_through_the_cache(client: TestClient, cached_store: ProfileStore) -> None:
    a = _headers(cached_store, "acme", "profile:read", "profile:write")
    b = _headers(cached_store, "globex", "profile:read", "profile:write")
    client.post("/api/user/shared-id/profile", json={"preferences": {"t": "a"}}, headers=a)
    # Warm the cache for tenant A, then ask as tenant B (same user id, other tenant).
    assert client.get("/api/user/shared-id/profile", headers=a).status_code == 200
    foreign = client.get("/api/user/shared-id/profile", headers=b)
    unknown = client.get("/api/user/never-seen/profile", headers=b)
    assert foreign.status_code == unknown.status_code == 404
    assert foreign.content == unknown.content
    assert client.get("/api/user/shared-id/export", headers=b).content == unknown.content
    assert client.delete("/api/user/shared-id/profile", headers=b).status_code == 404
    kept = client.get("/api/user/shared-id/profile", headers=a).json()
    assert kept["preferences"] == {"t": "a"}


def test_fifty_concurrent_posts_to_one_user_all_land(
    cached_store: ProfileStore,
) -> None:
    app = create_app(Settings(rate_limit_per_minute=0), store=cached_store)
    h = _headers(cached_store, "acme", "profile:read", "profile:write")
    errors: list[int] = []

    def post(i: int) -> None:
        with TestClient(app) as c:
            r = c.post(
                "/api/user/hot/profile",
                json={"interaction_history": [f"chat-{i}"], "preferences": {f"k{i}": i}},
                headers=h,
            )
            if r.status_code != 200:
                errors.append(r.status_code)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with TestClient(app) as c:
        final = c.get("/api/user/hot/profile", headers=h).json()
    assert final["version"] == 50
    assert final["interaction_count"] == 50
    assert sorted(final["interaction_history"]) == sorted(f"chat-{i}" for i in range(50))
    assert len(final["preferences"]) == 50
    page = cached_store.scan("acme")
    assert [p.user_id for p in page.items] == ["hot"]
    assert cached_store.get("acme", "hot") == cached_store.get("acme", "hot")


def test_profile_reads_and_writes_run_on_the_event_loop(
    client: TestClient, cached_store: ProfileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the app's lifespan running, GET and POST /profile use the store's async access
    (no worker thread): the sync get/merge are never called."""
    h = _headers(cached_store, "acme", "profile:read", "profile:write")

    def sync_call(*args: object, **kwargs: object) -> None:
        raise AssertionError("the sync store call was used")

    monkeypatch.setattr(cached_store, "get", sync_call)
    monkeypatch.setattr(cached_store, "merge", sync_call)
    body = {"preferences": {"language": "en"}, "interaction_history": ["chat_1"]}
    written = client.post("/api/user/u1/profile", json=body, headers=h)
    assert written.status_code == 200 and written.json()["version"] == 1
    assert client.get("/api/user/u1/profile", headers=h).json() == written.json()  # miss
    assert client.get("/api/user/u1/profile", headers=h).json() == written.json()  # hit
    again = client.post("/api/user/u1/profile", json={"preferences": {"x": 1}}, headers=h)
    assert again.json()["version"] == 2
    assert client.get("/api/user/u1/profile", headers=h).json() == again.json()  # invalidated
    assert client.get("/api/user/nobody/profile", headers=h).status_code == 404


def test_without_the_lifespan_the_api_uses_threads(cached_store: ProfileStore) -> None:
    app = create_app(Settings(rate_limit_per_minute=0), store=cached_store)
    h = _headers(cached_store, "acme", "profile:read", "profile:write")
    c = TestClient(app)  # no `with`: no lifespan, so no async clients are opened
    assert (
        c.post("/api/user/u1/profile", json={"preferences": {"a": 1}}, headers=h).status_code == 200
    )
    assert c.get("/api/user/u1/profile", headers=h).json()["preferences"] == {"a": 1}

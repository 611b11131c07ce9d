"""Redis read-through cache: TTLs, namespacing, invalidation, the fill lease, Redis down."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis

from chatpersona.exceptions import BackendError, ParameterError
from chatpersona.profiles import Profile, ProfilePatch, open_store
from chatpersona.profiles.cache import CachedStore
from chatpersona.profiles.memory import MemoryStore

pytestmark = pytest.mark.integration


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url)
    yield c
    c.close()


@pytest.fixture
def cached(redis_url: str, redis_prefix: str) -> Iterator[CachedStore]:
    s = CachedStore(MemoryStore(), redis_url, ttl_seconds=30, prefix=redis_prefix)
    yield s
    s.close()


def test_read_through_fills_with_ttl_under_prefix(
    cached: CachedStore, client: redis.Redis, redis_prefix: str
) -> None:
    cached.merge("t", "u1", ProfilePatch(preferences={"a": 1}))
    assert client.exists(cached.key("t", "u1")) == 0  # writes do not fill
    first = cached.get("t", "u1")
    assert (cached.hits, cached.misses) == (0, 1)
    assert cached.get("t", "u1") == first
    assert (cached.hits, cached.misses) == (1, 1)
    assert cached.key("t", "u1").startswith(redis_prefix)
    keys = [k.decode() for k in client.scan_iter(match=redis_prefix + "*")]
    assert keys == [cached.key("t", "u1")]  # the lease is gone once the fill is done
    for k in client.scan_iter(match=redis_prefix + "*"):
        assert 0 < client.ttl(k) <= 30  # every key expires


def test_get_many_reads_hits_from_the_cache_and_the_rest_from_the_store(
    cached: CachedStore, client: redis.Redis
) -> None:
    for uid in ("u1", "u2", "u3"):
        cached.merge("t", uid, ProfilePatch(preferences={"who": uid}))
    cached.get("t", "u1")  # cached now
    cached.hits = cached.misses = 0
    # The inner store's copy of u1 changes behind the cache's back: get_many must show
    # the cached copy (it read the cache), and the rest from the store.
    cached.inner.merge("t", "u1", ProfilePatch(preferences={"who": "changed"}))
    got = cached.get_many("t", ["u1", "u2", "u3", "nobody"])
    assert {uid: p.preferences["who"] for uid, p in got.items()} == {
        "u1": "u1",
        "u2": "u2",
        "u3": "u3",
    }
    assert (cached.hits, cached.misses) == (1, 3)
    assert client.exists(cached.key("t", "u2")) == 0  # bulk reads do not fill


def test_get_many_with_redis_down_reads_the_store() -> None:
    s = CachedStore(MemoryStore(), "redis://127.0.0.1:1/0", ttl_seconds=30, prefix="x:")
    s.inner.merge("t", "u1", ProfilePatch(preferences={"a": 1}))
    assert list(s.get_many("t", ["u1", "u2"])) == ["u1"]
    s.close()


def test_unknown_user_is_not_cached(cached: CachedStore, client: redis.Redis) -> None:
    assert cached.get("t", "ghost") is None
    assert client.exists(cached.key("t", "ghost")) == 0


def test_write_and_delete_invalidate(cached: CachedStore, client: redis.Redis) -> None:
    cached.merge("t", "u1", ProfilePatch(preferences={"a": 1}))
    cached.get("t", "u1")
    assert client.exists(cached.key("t", "u1")) == 1
    cached.merge("t", "u1", ProfilePatch(preferences={"a": 2}))
    assert client.exists(cached.key("t", "u1")) == 0
    got = cached.get("t", "u1")
    assert got is not None and got.preferences == {"a": 2}
    assert cached.delete("t", "u1") is True
    assert client.exists(cached.key("t", "u1")) == 0
    assert cached.get("t", "u1") is None


def test_tenant_quoting_prevents_key_collisions(cached: CachedStore) -> None:
    assert cached.key("a:b", "c") != cached.key("a", "b:c")
    cached.merge("a:b", "c", ProfilePatch(preferences={"who": "ab/c"}))
    cached.merge("a", "b:c", ProfilePatch(preferences={"who": "a/bc"}))
    x, y = cached.get("a:b", "c"), cached.get("a", "b:c")
    assert x is not None and y is not None
    assert (x.preferences["who"], y.preferences["who"]) == ("ab/c", "a/bc")


class _WriteDuringRead(MemoryStore):
    """An inner store where a write commits right after a reader fetched the old copy."""

    def __init__(self) -> None:
        super().__init__()
        self.outer: CachedStore | None = None
        self.armed = False

    def get(self, tenant: str, user_id: str) -> Profile | None:
        stale = super().get(tenant, user_id)
        if self.armed and self.outer is not None:
            self.armed = False
            self.outer.merge(tenant, user_id, ProfilePatch(preferences={"v": "new"}))
        return stale


@pytest.mark.parametrize("write", ["merge", "delete"])
def test_a_read_racing_a_write_cannot_cache_the_stale_copy(
    redis_url: str, redis_prefix: str, write: str
) -> None:
    inner = _WriteDuringRead()
    cached = CachedStore(inner, redis_url, ttl_seconds=30, prefix=redis_prefix)
    inner.outer = cached
    cached.merge("t", "u", ProfilePatch(preferences={"v": "old"}))
    inner.armed = True
    if write == "delete":
        # the racing write is an erasure: swap the inner hook's merge for a delete
        def erase(tenant: str, user_id: str, patch: ProfilePatch) -> Profile:
            cached.delete(tenant, user_id)
            return Profile(user_id=user_id)

        cached_merge = cached.merge
        cached.merge = erase  # type: ignore[method-assign]
    stale = cached.get("t", "u")
    assert stale is not None and stale.preferences == {"v": "old"}  # that reader saw old
    if write == "delete":
        cached.merge = cached_merge  # type: ignore[method-assign]
        assert cached.get("t", "u") is None  # erased stays erased
    else:
        fresh = cached.get("t", "u")
        assert fresh is not None and fresh.preferences == {"v": "new"}
    cached.close()


def test_redis_down_reads_fall_back_and_writes_say_so() -> None:
    inner = MemoryStore()
    inner.merge("t", "u", ProfilePatch(preferences={"a": 1}))
    cached = CachedStore(inner, "redis://127.0.0.1:1/0", ttl_seconds=5, prefix="x:")
    got = cached.get("t", "u")
    assert got is not None and got.preferences == {"a": 1}
    calls = []
    cached._get_or_lease = lambda *a, **k: calls.append(a)  # type: ignore[method-assign]
    assert cached.get("t", "u") == got and calls == []  # Redis skipped for a while
    assert cached.ping() is False
    with pytest.raises(BackendError) as err:
        cached.merge("t", "u", ProfilePatch(preferences={"a": 2}))
    assert err.value.code == "cache_invalidation_failed"
    assert inner.get("t", "u").preferences == {"a": 2}  # type: ignore[union-attr]


def test_open_store_wraps_and_checks_ttl(redis_url: str, redis_prefix: str) -> None:
    s = open_store("memory://", cache_url=redis_url, cache_prefix=redis_prefix)
    assert isinstance(s, CachedStore) and isinstance(s.inner, MemoryStore)
    assert s.ping() is True
    key, secret = s.create_key("acme", ["profile:read"])  # KeyStore passes through
    assert s.find_key(secret) == key and s.inner.find_key(secret) == key  # type: ignore[attr-defined]
    s.close()
    with pytest.raises(ParameterError):
        CachedStore(MemoryStore(), redis_url, ttl_seconds=0, prefix=redis_prefix)


def test_async_read_takes_one_round_trip_on_a_hit_and_fills_on_a_miss(
    cached: CachedStore, client: redis.Redis, redis_prefix: str
) -> None:
    cached.merge("t", "u1", ProfilePatch(preferences={"a": 1}))

    async def main() -> tuple[Profile | None, Profile | None]:
        await cached.open_async()
        try:
            first = await cached.aget("t", "u1")  # miss: lease, inner read, fill
            assert client.exists(cached.key("t", "u1")) == 1
            assert client.exists(cached.lease_key("t", "u1")) == 0
            return first, await cached.aget("t", "u1")  # hit
        finally:
            await cached.close_async()

    first, second = asyncio.run(main())
    assert first is not None and first == second == cached.get("t", "u1")
    assert (cached.hits, cached.misses) == (2, 1)
    assert 0 < client.ttl(cached.key("t", "u1")) <= 30


@pytest.mark.parametrize("write", ["merge", "delete"])
def test_an_async_read_racing_a_write_cannot_cache_the_stale_copy(
    redis_url: str, redis_prefix: str, write: str
) -> None:
    inner = _WriteDuringRead()
    cached = CachedStore(inner, redis_url, ttl_seconds=30, prefix=redis_prefix)
    inner.outer = cached
    cached.merge("t", "u", ProfilePatch(preferences={"v": "old"}))
    inner.armed = True
    if write == "delete":
        cached.merge = lambda t, u, p: (cached.delete(t, u), Profile(user_id=u))[1]  # type: ignore[method-assign]

    async def main() -> tuple[Profile | None, Profile | None]:
        await cached.open_async()
        try:
            stale = await cached.aget("t", "u")  # the inner read triggers the write
            return stale, await cached.aget("t", "u")
        finally:
            await cached.close_async()

    stale, after = asyncio.run(main())
    assert stale is not None and stale.preferences == {"v": "old"}
    if write == "delete":
        assert after is None
    else:
        assert after is not None and after.preferences == {"v": "new"}
    cached.close()


def test_async_write_invalidates(cached: CachedStore, client: redis.Redis) -> None:
    cached.merge("t", "u1", ProfilePatch(preferences={"a": 1}))
    cached.get("t", "u1")
    assert client.exists(cached.key("t", "u1")) == 1

    async def main() -> Profile:
        await cached.open_async()
        try:
            return await cached.amerge("t", "u1", ProfilePatch(preferences={"a": 2}))
        finally:
            await cached.close_async()

    merged = asyncio.run(main())
    assert client.exists(cached.key("t", "u1")) == 0
    assert cached.get("t", "u1") == merged and merged.preferences == {"a": 2}


def test_redis_down_async_reads_fall_back_and_async_writes_say_so() -> None:
    inner = MemoryStore()
    inner.merge("t", "u", ProfilePatch(preferences={"a": 1}))
    cached = CachedStore(inner, "redis://127.0.0.1:1/0", ttl_seconds=5, prefix="x:")

    async def main() -> Profile | None:
        await cached.open_async()
        try:
            got = await cached.aget("t", "u")
            assert cached._skip_until > 0  # later reads skip Redis for a while
            assert await cached.aget("t", "u") == got
            with pytest.raises(BackendError) as err:
                await cached.amerge("t", "u", ProfilePatch(preferences={"a": 2}))
            assert err.value.code == "cache_invalidation_failed"
            return got
        finally:
            await cached.close_async()

    got = asyncio.run(main())
    assert got is not None and got.preferences == {"a": 1}
    assert inner.get("t", "u").preferences == {"a": 2}  # type: ignore[union-attr]
    cached.close()

"""Concurrent merges to one user all land, on SQLite and on real PostgreSQL (and cached).

Each of 50 threads adds its own chat id and its own preference key to the same profile at
the same moment (a barrier releases them together); afterwards nothing may be lost.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from chatpersona.profiles import Profile, ProfilePatch, ProfileStore, open_store
from chatpersona.profiles.base import AsyncStore
from chatpersona.profiles.cache import CachedStore

N = 50

pytestmark = pytest.mark.integration


def _url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'c.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(params=["sqlite", "postgresql", "sqlite+redis", "postgresql+redis"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], ProfileStore]]:
    base, _, cache = str(request.param).partition("+")
    url = _url(base, request, tmp_path)
    options: dict[str, object] = {}
    if cache:
        options = {
            "cache_url": request.getfixturevalue("redis_url"),
            "cache_prefix": request.getfixturevalue("redis_prefix"),
        }
    opened: list[ProfileStore] = []

    def open_one() -> ProfileStore:
        s = open_store(url, **options)
        opened.append(s)
        return s

    yield open_one
    for s in opened:
        s.close()


def _hammer(stores: list[ProfileStore], n: int) -> list[Profile]:
    barrier = threading.Barrier(n)

    def one(i: int) -> Profile:
        barrier.wait(timeout=30)
        patch = ProfilePatch(interaction_history=[f"chat_{i}"], preferences={f"pref_{i}": i})
        return stores[i % len(stores)].merge("acme", "user-1", patch)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(one, range(n)))


def _check(final: Profile | None, results: list[Profile]) -> None:
    assert final is not None
    assert final.interaction_count == N
    assert final.version == N
    assert sorted(final.interaction_history) == sorted(f"chat_{i}" for i in range(N))
    assert final.preferences == {f"pref_{i}": i for i in range(N)}
    # Every merge saw a distinct version: they were serialized, none overwrote another.
    assert sorted(r.version for r in results) == list(range(1, N + 1))


def test_50_concurrent_merges_to_one_user_all_land(opener: Callable[[], ProfileStore]) -> None:
    store = opener()
    results = _hammer([store], N)
    _check(store.get("acme", "user-1"), results)


def test_50_concurrent_merges_through_two_store_objects(
    opener: Callable[[], ProfileStore],
) -> None:
    # Two independently opened stores = two processes' worth of connections.
    a, b = opener(), opener()
    results = _hammer([a, b], N)
    _check(a.get("acme", "user-1"), results)
    _check(b.get("acme", "user-1"), results)


def test_cache_never_serves_a_stale_profile_after_concurrent_reads_and_writes(
    opener: Callable[[], ProfileStore],
) -> None:
    store = opener()
    stop = threading.Event()
    errors: list[BaseException] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                store.get("acme", "user-1")
            except BaseException as exc:  # pragma: no cover - surfaced below
                errors.append(exc)

    readers = [threading.Thread(target=reader) for _ in range(4)]
    for t in readers:
        t.start()
    try:
        _hammer([store], 30)
    finally:
        stop.set()
        for t in readers:
            t.join(timeout=30)
    assert errors == []
    got = store.get("acme", "user-1")
    inner = store.inner if isinstance(store, CachedStore) else store
    truth = inner.get("acme", "user-1")
    assert got == truth
    assert truth is not None and truth.version == 30


def test_concurrent_bulk_merges_and_single_merges_all_land(
    opener: Callable[[], ProfileStore],
) -> None:
    # Four bulk writers and four single-merge writers race on the same 30 new users, so
    # row creation collides (the insert-conflict path) as well as updates.
    store = opener()
    users = [f"bulk-{i:02d}" for i in range(30)]
    barrier = threading.Barrier(8)

    def bulk(w: int) -> None:
        barrier.wait(timeout=30)
        items = [(u, ProfilePatch(interaction_history=[f"b{w}-{u}"])) for u in users]
        assert store.merge_many("acme", items, chunk_size=7) == len(users)

    def single(w: int) -> None:
        barrier.wait(timeout=30)
        for u in reversed(users):
            store.merge("acme", u, ProfilePatch(interaction_history=[f"s{w}-{u}"]))

    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(bulk, w) for w in range(4)]
        futures += [pool.submit(single, w) for w in range(4)]
        for f in futures:
            f.result(timeout=120)
    for u in users:
        p = store.get("acme", u)
        assert p is not None
        assert p.interaction_count == 8 and p.version == 8, (u, p.interaction_history)


@pytest.mark.parametrize("kind", ["postgresql", "postgresql+redis"])
def test_concurrent_async_and_thread_merges_to_one_user_all_land(
    kind: str, request: pytest.FixtureRequest
) -> None:
    # 40 merges on the event loop (the API's path: optimistic, falling back to the
    # locking merge when they collide) race 10 thread merges on the same new user.
    options: dict[str, object] = {}
    if kind.endswith("+redis"):
        options = {
            "cache_url": request.getfixturevalue("redis_url"),
            "cache_prefix": request.getfixturevalue("redis_prefix"),
        }
    store = open_store(str(request.getfixturevalue("postgres_url")), **options)
    assert isinstance(store, AsyncStore)

    def patch(i: int) -> ProfilePatch:
        return ProfilePatch(interaction_history=[f"chat_{i}"], preferences={f"pref_{i}": i})

    async def main() -> list[Profile]:
        await store.open_async()
        try:
            threads = [
                asyncio.to_thread(store.merge, "acme", "user-1", patch(i)) for i in range(40, N)
            ]
            loop_merges = [store.amerge("acme", "user-1", patch(i)) for i in range(40)]
            return list(await asyncio.gather(*loop_merges, *threads))
        finally:
            await store.close_async()

    try:
        results = asyncio.run(main())
        _check(store.get("acme", "user-1"), results)
    finally:
        store.close()

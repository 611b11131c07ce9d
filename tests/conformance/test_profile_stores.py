"""One conformance suite for every profile store, run against real servers where they are.

Parametrized over: memory, SQLite (a temp file), PostgreSQL (a fresh database), and the
Redis-cached variants of SQLite and PostgreSQL. A new backend proves itself by passing it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from chatpersona.exceptions import ValidationError
from chatpersona.profiles import (
    HISTORY_LIMIT,
    KeyStore,
    MemoryStore,
    ProfilePatch,
    ProfileStore,
    SegmentRef,
    open_store,
)
from chatpersona.profiles.base import AsyncStore

TIMES = {"created_at", "updated_at"}
KINDS = ["memory", "sqlite", "postgresql", "sqlite+redis", "postgresql+redis"]


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ProfileStore]:
    kind: str = request.param
    base, _, cache = kind.partition("+")
    if base == "memory":
        url = "memory://"
    elif base == "sqlite":
        url = f"sqlite:///{tmp_path / 'profiles.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    options = {}
    if cache:
        options = {
            "cache_url": request.getfixturevalue("redis_url"),
            "cache_prefix": request.getfixturevalue("redis_prefix"),
            "cache_ttl_seconds": 30,
        }
    s = open_store(url, **options)
    yield s
    s.close()


def seg(sid: str) -> SegmentRef:
    return SegmentRef(id=sid, name=f"name-{sid}", model_version="v1", assigned_at=datetime.now(UTC))


def test_get_unknown_is_none(store: ProfileStore) -> None:
    assert store.get("t1", "nobody") is None
    assert store.ping() is True


def test_merge_creates_then_merges(store: ProfileStore) -> None:
    first = store.merge(
        "t1",
        "u1",
        ProfilePatch(
            preferences={"language": "en", "product_interest": "laptops"},
            interaction_history=["chat_id_1234", "chat_id_5678"],
        ),
    )
    assert first.version == 1 and first.tenant == "t1" and first.user_id == "u1"
    assert first.interaction_history == ["chat_id_5678", "chat_id_1234"]
    second = store.merge(
        "t1",
        "u1",
        ProfilePatch(
            preferences={"language": "es", "product_interest": None},
            interaction_history=["chat_id_5678", "chat_id_9"],
        ),
    )
    assert second.version == 2
    assert second.preferences == {"language": "es"}
    assert second.interaction_history == ["chat_id_9", "chat_id_5678", "chat_id_1234"]
    assert second.interaction_count == 3
    assert second.created_at == first.created_at
    got = store.get("t1", "u1")
    assert got == second


def test_round_trip_keeps_every_field(store: ProfileStore) -> None:
    patch = ProfilePatch(
        attributes={"age": 41, "region": "North", "is_vip": True},
        consent={"marketing": False},
        segment=seg("s2"),
        features={"chats_30d": 3.0, "csat_mean": 4.5},
        csat=4,
        nps=9,
    )
    written = store.merge("t1", "u1", patch)
    assert store.get("t1", "u1") == written
    assert written.feedback.csat_last == 4 and written.feedback.nps_last == 9
    assert written.segment is not None and written.segment.id == "s2"


def test_tenants_are_isolated(store: ProfileStore) -> None:
    store.merge("A", "u1", ProfilePatch(preferences={"who": "a"}))
    store.merge("B", "u1", ProfilePatch(preferences={"who": "b"}))
    a, b = store.get("A", "u1"), store.get("B", "u1")
    assert a is not None and b is not None
    assert (a.preferences, b.preferences) == ({"who": "a"}, {"who": "b"})
    assert store.delete("A", "u1") is True
    assert store.get("A", "u1") is None
    assert store.get("B", "u1") is not None
    assert [p.user_id for p in store.scan("B").items] == ["u1"]
    assert store.scan("A").items == []


def test_merge_many_equals_merging_one_by_one(store: ProfileStore) -> None:
    store.merge("t1", "u03", ProfilePatch(preferences={"old": True}, interaction_history=["x"]))
    store.get("t1", "u03")  # warms a cache, if any: the bulk write must invalidate it
    items = [
        (f"u{i % 7:02d}", ProfilePatch(interaction_history=[f"c{i}"], preferences={"n": i}))
        for i in range(40)
    ] + [("u03", ProfilePatch(segment=seg("s9"), preferences={"old": None}))]
    reference = MemoryStore()
    reference.merge("t1", "u03", ProfilePatch(preferences={"old": True}, interaction_history=["x"]))
    for uid, patch in items:
        reference.merge("t1", uid, patch)
    assert store.merge_many("t1", iter(items), chunk_size=6) == len(items)
    for i in range(7):
        got, want = store.get("t1", f"u{i:02d}"), reference.get("t1", f"u{i:02d}")
        assert got is not None and want is not None
        assert got.model_dump(exclude=TIMES) == want.model_dump(exclude=TIMES)
    assert [p.user_id for p in store.scan("t1", segment="s9").items] == ["u03"]
    assert store.merge_many("t1", []) == 0


def test_get_many_equals_get_one_by_one(store: ProfileStore) -> None:
    for i in range(0, 12, 2):  # u00, u02 ... u10 exist in t1; u01 exists only in t2
        store.merge("t1", f"u{i:02d}", ProfilePatch(preferences={"n": i}, segment=seg("s1")))
    store.merge("t2", "u01", ProfilePatch(preferences={"other": True}))
    store.get("t1", "u04")  # warms a cache, if any: the next write must not be hidden
    store.merge("t1", "u04", ProfilePatch(interaction_history=["c9"]))
    # Present, absent, other tenant's, repeated, and more ids than one SQL chunk holds.
    wanted = [f"u{i:02d}" for i in range(12)] + ["u04", "u02"] + [f"x{i}" for i in range(950)]
    got = store.get_many("t1", wanted)
    one_by_one = {uid: store.get("t1", uid) for uid in wanted}
    assert got == {uid: p for uid, p in one_by_one.items() if p is not None}
    assert sorted(got) == [f"u{i:02d}" for i in range(0, 12, 2)]
    assert got["u04"].interaction_history == ["c9"] and got["u04"].version == 2
    assert store.get_many("t1", iter(["u02"])) == {"u02": store.get("t1", "u02")}
    assert store.get_many("t1", []) == {}
    assert store.get_many("t3", ["u00"]) == {}
    with pytest.raises(ValidationError):
        store.get_many("t1", ["u00", ""])


def test_delete(store: ProfileStore) -> None:
    store.merge("t1", "u1", ProfilePatch(preferences={"x": 1}))
    assert store.get("t1", "u1") is not None  # warms a cache, if any
    assert store.delete("t1", "u1") is True
    assert store.get("t1", "u1") is None
    assert store.delete("t1", "u1") is False
    again = store.merge("t1", "u1", ProfilePatch(preferences={"y": 2}))
    assert again.version == 1 and again.preferences == {"y": 2}


def test_read_after_write_sees_the_write(store: ProfileStore) -> None:
    for i in range(5):
        store.merge("t1", "u1", ProfilePatch(preferences={"n": i}))
        got = store.get("t1", "u1")
        assert got is not None and got.preferences == {"n": i} and got.version == i + 1


def test_history_is_bounded_count_is_not(store: ProfileStore) -> None:
    ids = [f"c{i}" for i in range(HISTORY_LIMIT + 25)]
    p = store.merge("t1", "u1", ProfilePatch(interaction_history=ids))
    assert len(p.interaction_history) == HISTORY_LIMIT
    assert p.interaction_history[0] == ids[-1]
    assert p.interaction_count == len(ids)
    assert store.get("t1", "u1") == p


def test_scan_pages_in_user_id_order(store: ProfileStore) -> None:
    users = [f"u{i:03d}" for i in range(23)] + ["U-upper", "a.b@c", "z:9"]
    for i, uid in enumerate(reversed(users)):
        store.merge("t1", uid, ProfilePatch(segment=seg("even" if i % 2 == 0 else "odd")))
    store.merge("t2", "u000", ProfilePatch(preferences={"x": 1}))
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = store.scan("t1", cursor=cursor, limit=5)
        pages += 1
        assert len(page.items) <= 5
        seen += [p.user_id for p in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == sorted(users)  # code-point order on every backend
    assert pages == 6
    evens = [p.user_id for p in store.scan("t1", segment="even", limit=1000).items]
    odds = [p.user_id for p in store.scan("t1", segment="odd", limit=1000).items]
    assert sorted(evens + odds) == sorted(users) and not set(evens) & set(odds)
    assert evens == sorted(evens)
    assert store.scan("t1", segment="none").items == []


def test_scan_segment_follows_reassignment(store: ProfileStore) -> None:
    store.merge("t1", "u1", ProfilePatch(segment=seg("s1")))
    store.merge("t1", "u1", ProfilePatch(segment=seg("s2")))
    assert store.scan("t1", segment="s1").items == []
    assert [p.user_id for p in store.scan("t1", segment="s2").items] == ["u1"]


def test_scan_rejects_bad_arguments(store: ProfileStore) -> None:
    with pytest.raises(ValidationError) as err:
        store.scan("t1", cursor="%%%not-a-cursor")
    assert err.value.code == "invalid_cursor"
    with pytest.raises(ValidationError) as err:
        store.scan("t1", limit=0)
    assert err.value.code == "invalid_limit"


def test_bad_ids_are_rejected(store: ProfileStore) -> None:
    with pytest.raises(ValidationError):
        store.get("t1", "")
    with pytest.raises(ValidationError):
        store.merge("t1", "x" * 129, ProfilePatch())


def test_api_keys(store: ProfileStore) -> None:
    assert isinstance(store, KeyStore)
    key, secret = store.create_key("acme", ["profile:read", "profile:write"], name="bot")
    other, other_secret = store.create_key("globex", "admin")
    assert secret.startswith(f"cp_{key.key_id}_") and len(secret) == 3 + 17 + 43
    assert store.find_key(secret) == key
    assert key.scopes == frozenset({"profile:read", "profile:write"}) and key.name == "bot"
    assert store.find_key(other_secret) == other and other.tenant == "globex"
    # A right key id with a wrong secret, a malformed secret, an unknown key: all None.
    assert store.find_key(secret[:-1] + ("A" if secret[-1] != "A" else "B")) is None
    assert store.find_key("Bearer " + secret) is None
    assert store.find_key("") is None
    assert [k.key_id for k in store.list_keys("acme")] == [key.key_id]
    assert {k.key_id for k in store.list_keys()} == {key.key_id, other.key_id}
    assert store.revoke_key(key.key_id) is True
    assert store.revoke_key(key.key_id) is False
    assert store.revoke_key("0" * 16) is False
    assert store.find_key(secret) is None
    listed = store.list_keys("acme")
    assert len(listed) == 1 and listed[0].revoked is True
    assert store.find_key(other_secret) == other


def test_api_keys_validate_input(store: ProfileStore) -> None:
    assert isinstance(store, KeyStore)
    with pytest.raises(ValidationError):
        store.create_key("bad tenant!", ["profile:read"])
    with pytest.raises(ValidationError):
        store.create_key("acme", [])
    with pytest.raises(ValidationError):
        store.create_key("acme", ["Profile Read"])


def test_async_access_answers_like_the_sync_calls(store: ProfileStore) -> None:
    """Stores with the AsyncStore capability (PostgreSQL, the Redis cache) read and merge
    on an event loop with the same results, and a sync read sees an async write."""
    if not isinstance(store, AsyncStore):
        assert store.scheme in ("memory", "sqlite")  # the local stores stay sync
        return

    async def main() -> None:
        assert not store.async_ready()
        await store.open_async()
        try:
            assert store.async_ready()
            assert await store.aget("t1", "u1") is None
            first = await store.amerge("t1", "u1", ProfilePatch(preferences={"a": 1}))
            assert first.version == 1 and await store.aget("t1", "u1") == first
            assert store.get("t1", "u1") == first  # warms a cache, if any
            second = await store.amerge(
                "t1", "u1", ProfilePatch(preferences={"a": 2}, interaction_history=["c1"])
            )
            assert second.version == 2 and second.created_at == first.created_at
            assert await store.aget("t1", "u1") == second == store.get("t1", "u1")
            store.merge("t1", "u1", ProfilePatch(preferences={"a": 3}))  # a sync write
            got = await store.aget("t1", "u1")
            assert got is not None and (got.version, got.preferences) == (3, {"a": 3})
            assert await store.aget("t2", "u1") is None  # tenants stay apart
            with pytest.raises(ValidationError):
                await store.aget("t1", "")
        finally:
            await store.close_async()
        assert not store.async_ready()

    asyncio.run(main())


def test_async_calls_on_a_loop_not_opened_use_threads(store: ProfileStore) -> None:
    if not isinstance(store, AsyncStore):
        return

    async def main() -> None:
        merged = await store.amerge("t1", "u1", ProfilePatch(interaction_history=["x"]))
        assert await store.aget("t1", "u1") == merged

    asyncio.run(main())
    assert store.get("t1", "u1") is not None

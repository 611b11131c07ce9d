"""One suite over every real-time state store: memory://, redis:// (real server) and
redis+cluster:// (a real three-primary Redis Cluster)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from chatpersona.exceptions import UnknownBackendError
from chatpersona.stream import StateStore, open_state, state_schemes


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis", "cluster"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make(
    kind: str, request: pytest.FixtureRequest
) -> Iterator[Callable[..., tuple[StateStore, Callable[[float], None]]]]:
    """``make(ttl=, dedupe_ttl=)`` -> (store, advance(seconds))."""
    opened: list[StateStore] = []

    def factory(
        ttl: int = 3600, dedupe_ttl: int = 3600
    ) -> tuple[StateStore, Callable[[float], None]]:
        if kind == "memory":
            clock = Clock()
            store = open_state(f"memory://?ttl={ttl}&dedupe_ttl={dedupe_ttl}", clock=clock)

            def advance(s: float) -> None:
                clock.now += s

        else:
            if kind == "cluster":
                nodes = request.getfixturevalue("redis_cluster_nodes")
                url = f"redis+cluster://{nodes}"
                prefix = request.getfixturevalue("redis_cluster_prefix")
            else:
                url = request.getfixturevalue("redis_url")
                prefix = request.getfixturevalue("redis_prefix")
            store = open_state(f"{url}?prefix={prefix}&ttl={ttl}&dedupe_ttl={dedupe_ttl}")

            def advance(s: float) -> None:
                time.sleep(s)

        opened.append(store)
        return store, advance

    yield factory
    for s in opened:
        s.close()


def test_both_schemes_are_registered() -> None:
    assert {"memory", "redis", "redis+cluster"} <= set(state_schemes())
    with pytest.raises(UnknownBackendError, match="state store"):
        open_state("etcd://x")


def test_roundtrip_and_missing_keys(make: Any) -> None:
    store, _ = make()
    assert store.load(["t:u1"]) == {} and store.seen(["t:e1"]) == set()
    doc = {"w": {"hours": {"10": 2}, "max_ts": 36000.5}, "agg": None, "segment": "3"}
    store.commit({"t:u1": doc}, ["t:e1", "t:e2"])
    assert store.load(["t:u1", "t:u2"]) == {"t:u1": doc}
    assert store.seen(["t:e1", "t:e2", "t:e3"]) == {"t:e1", "t:e2"}
    doc2 = {**doc, "segment": "4"}
    store.commit({"t:u1": doc2}, [])
    assert store.load(["t:u1"])["t:u1"]["segment"] == "4"
    store.delete(["t:u1"])
    assert store.load(["t:u1"]) == {}


def test_loaded_documents_are_copies(make: Any) -> None:
    store, _ = make()
    store.commit({"k": {"n": 1}}, [])
    got = store.load(["k"])["k"]
    got["n"] = 99
    assert store.load(["k"])["k"] == {"n": 1}


def test_entries_expire(make: Any) -> None:
    store, advance = make(ttl=1, dedupe_ttl=1)
    store.commit({"k": {"n": 1}}, ["e"])
    assert store.load(["k"]) and store.seen(["e"])
    advance(1.3)
    assert store.load(["k"]) == {} and store.seen(["e"]) == set()


def test_commit_refreshes_the_ttl(make: Any) -> None:
    store, advance = make(ttl=2, dedupe_ttl=2)
    store.commit({"k": {"n": 1}}, [])
    advance(1.2)
    store.commit({"k": {"n": 2}}, [])
    advance(1.2)
    assert store.load(["k"]) == {"k": {"n": 2}}


@pytest.mark.integration
def test_every_redis_key_has_a_ttl(redis_url: str, redis_prefix: str) -> None:
    import redis

    store = open_state(f"{redis_url}?prefix={redis_prefix}")
    store.commit({f"t:u{i}": {"i": i} for i in range(50)}, [f"t:e{i}" for i in range(200)])
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=redis_prefix + "*", count=1000))
    assert len(keys) == 250
    pipe = client.pipeline()
    for k in keys:
        pipe.ttl(k)
    ttls = pipe.execute()
    assert all(t > 0 for t in ttls), [k for k, t in zip(keys, ttls, strict=True) if t <= 0]
    store.close()


@pytest.mark.integration
def test_cluster_keys_share_their_users_slot_and_have_a_ttl(
    redis_cluster_nodes: str, redis_cluster_prefix: str
) -> None:
    """On Redis Cluster a user's state, its fence and its events' markers hash to one slot
    (so the per-user commit is one atomic script), the users spread over the nodes, and
    every key has a TTL."""
    import redis
    from redis.cluster import RedisCluster

    from chatpersona.stream.state_cluster import RedisClusterStateStore

    store = open_state(f"redis+cluster://{redis_cluster_nodes}?prefix={redis_cluster_prefix}")
    assert isinstance(store, RedisClusterStateStore)
    users = [f"t:u{i}" for i in range(40)]
    docs = {u: {"n": i} for i, u in enumerate(users)} | {f"fb!{u}": {} for u in users[:5]}
    ids = [f"t:e{i}" for i in range(120)]
    owners = [users[i % 40] for i in range(120)]
    store.commit_owned(docs, ids, owners)
    assert store.seen_owned([*ids, "t:nope"], [*owners, "t:u0"]) == set(ids)
    assert store.load(users[:3]) == {u: {"n": i} for i, u in enumerate(users[:3])}
    cluster = RedisCluster.from_url("redis://" + redis_cluster_nodes.split(",")[0])
    by_node: dict[int, int] = {}
    slots: dict[str, set[int]] = {}
    for port in (7301, 7302, 7303):
        client = redis.Redis(host="127.0.0.1", port=port)
        keys = list(client.scan_iter(match=redis_cluster_prefix + "*", count=1000))
        by_node[port] = len(keys)
        for k in keys:
            assert client.ttl(k) > 0, k
            tag = k.decode().split("{", 1)[1].split("}", 1)[0]
            slots.setdefault(tag, set()).add(cluster.keyslot(k))
        client.close()
    assert sum(by_node.values()) == 40 + 5 + 120
    assert all(n > 0 for n in by_node.values())  # the users spread over the primaries
    assert all(len(s) == 1 for s in slots.values())  # one slot per user
    cluster.close()


def test_values_round_trip_exactly(make: Any) -> None:
    store, _ = make()
    doc = {
        "w": {"max_ts": 1789520358.123456, "sessions": [[0.1 + 0.2, 1e300]], "events": 2**40},
        "last": {"channel": [1.5, "e-ü", "web"], "csat": [2.0, "e2", 5]},
        "user": {"age": 41, "vip": True, "note": None, "name": "Zoë \u2028"},
        "neg": -0.0,
    }
    store.commit({"t:u1": doc}, [])
    got = store.load(["t:u1"])["t:u1"]
    assert got == doc
    assert type(got["w"]["events"]) is int and type(got["last"]["csat"][0]) is float


@pytest.mark.integration
def test_redis_reads_documents_the_stdlib_encoder_wrote(redis_url: str, redis_prefix: str) -> None:
    # State written by earlier releases (json.dumps) stays readable.
    import json

    import redis

    store = open_state(f"{redis_url}?prefix={redis_prefix}")
    doc = {"w": {"max_ts": 36000.5, "hours": {"10": 2}}, "agg": None, "segment": "3"}
    client = redis.Redis.from_url(redis_url)
    client.set(f"{redis_prefix}s:t:u1", json.dumps(doc), ex=60)
    assert store.load(["t:u1"]) == {"t:u1": doc}
    client.close()
    store.close()

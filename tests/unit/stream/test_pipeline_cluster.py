"""The pipeline on a real Redis Cluster state store: replays with duplicates and shuffles give
the same states and profiles as the in-memory run, and a crash between the profile write and
the state commit doubles nothing (per-user atomic commits)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from chatpersona.pipeline import Pipeline
from chatpersona.profiles import open_store
from chatpersona.stream import MemoryStateStore, WindowConfig, open_state
from chatpersona.stream.state_cluster import RedisClusterStateStore

from .helpers import ThresholdModel, make_events
from .test_pipeline import final

WIDE = WindowConfig(allowed_lateness_s=30 * 86400)
pytestmark = pytest.mark.integration


@pytest.fixture
def cluster_state(redis_cluster_nodes: str, redis_cluster_prefix: str) -> Any:
    store = open_state(f"redis+cluster://{redis_cluster_nodes}?prefix={redis_cluster_prefix}")
    assert isinstance(store, RedisClusterStateStore)
    yield store
    store.close()


def test_replay_on_the_cluster_equals_the_memory_run(cluster_state: Any) -> None:
    events = make_events(7, users=12, chats=30, span_h=96)
    users = sorted({e["user_id"] for e in events})
    rng = random.Random(3)
    messy = events + [e for e in events if rng.random() < 0.3]
    rng.shuffle(messy)

    ref = Pipeline(state=MemoryStateStore(), store=open_store("memory://"), windows=WIDE,
                   models=ThresholdModel(k=6))  # fmt: skip
    ref.process(events)
    run = Pipeline(state=cluster_state, store=open_store("memory://"), windows=WIDE,
                   models=ThresholdModel(k=6))  # fmt: skip
    for i in range(0, len(messy), 25):
        run.process(messy[i : i + 25])
    results = run.process(events)  # a second full replay: every event is a duplicate
    assert {r.status for r in results} == {"duplicate"}
    assert final(ref, users) == final(run, users)


class CrashingCluster(RedisClusterStateStore):
    """Dies on its first state commit (after the profile write)."""

    armed = True

    def commit_owned(self, states: Any, event_ids: Any, owners: Any) -> None:
        if event_ids and self.armed:
            self.armed = False
            raise ConnectionError("cluster went away")
        super().commit_owned(states, event_ids, owners)


def test_a_crash_before_the_commit_doubles_nothing(
    redis_cluster_nodes: str, redis_cluster_prefix: str
) -> None:
    events = [
        e for e in make_events(5, users=3, chats=8) if e["type"] in ("feedback", "chat_started")
    ]
    users = sorted({e["user_id"] for e in events})
    state = CrashingCluster.from_url(
        f"redis+cluster://{redis_cluster_nodes}?prefix={redis_cluster_prefix}"
    )
    store = open_store("memory://")
    run = Pipeline(state=state, store=store, windows=WIDE)
    with pytest.raises(Exception, match="cluster went away"):
        run.process(events)
    run.process(events)  # the redelivery
    ref = Pipeline(state=MemoryStateStore(), store=open_store("memory://"), windows=WIDE)
    ref.process(events)
    assert final(ref, users) == final(run, users)
    state.close()

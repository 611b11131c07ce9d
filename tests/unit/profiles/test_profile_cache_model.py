"""Hypothesis (stateful): behind the Redis cache, any sequence of merges, deletes and reads
answers exactly like the uncached store — the cache is invisible."""

from __future__ import annotations

import uuid

import pytest
import redis
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from chatpersona.profiles import ProfilePatch
from chatpersona.profiles.cache import CachedStore
from chatpersona.profiles.memory import MemoryStore

pytestmark = pytest.mark.integration

USERS = st.sampled_from(["u1", "u2", "u:3"])
TENANTS = st.sampled_from(["t1", "t:1"])
REDIS_URL = "redis://127.0.0.1:6379/0"


class CacheIsInvisible(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.prefix = f"cptest:{uuid.uuid4().hex[:12]}:"
        self.reference = MemoryStore()
        self.cached = CachedStore(MemoryStore(), REDIS_URL, ttl_seconds=30, prefix=self.prefix)

    @rule(tenant=TENANTS, user=USERS, chat=st.integers(0, 5), value=st.integers(0, 3))
    def merge(self, tenant: str, user: str, chat: int, value: int) -> None:
        patch = ProfilePatch(interaction_history=[f"c{chat}"], preferences={"v": value or None})
        a = self.reference.merge(tenant, user, patch)
        b = self.cached.merge(tenant, user, patch)
        assert (a.version, a.interaction_history, a.preferences) == (
            b.version,
            b.interaction_history,
            b.preferences,
        )

    @rule(tenant=TENANTS, user=USERS)
    def delete(self, tenant: str, user: str) -> None:
        assert self.reference.delete(tenant, user) == self.cached.delete(tenant, user)

    @rule(tenant=TENANTS, user=USERS)
    def read(self, tenant: str, user: str) -> None:
        a, b = self.reference.get(tenant, user), self.cached.get(tenant, user)
        assert (a is None) == (b is None)
        if a is not None and b is not None:
            assert a.model_dump(exclude={"created_at", "updated_at"}) == b.model_dump(
                exclude={"created_at", "updated_at"}
            )

    @invariant()
    def cached_reads_agree(self) -> None:
        for t in ("t1", "t:1"):
            for u in ("u1", "u2", "u:3"):
                a, b = self.reference.get(t, u), self.cached.get(t, u)
                assert (a and a.version) == (b and b.version)

    def teardown(self) -> None:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=self.prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()
        self.cached.close()


CacheIsInvisible.TestCase.settings = settings(
    max_examples=25, stateful_step_count=20, deadline=None
)


def test_cache_is_invisible(redis_url: str) -> None:
    assert redis_url == REDIS_URL  # the conftest server (fails, never skips, if down)
    CacheIsInvisible.TestCase().runTest()

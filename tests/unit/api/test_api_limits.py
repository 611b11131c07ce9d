"""Invariants of the request limits, checked with Hypothesis."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from chatpersona.api.limits import TokenBucketLimiter, json_depth_exceeds

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ab, :'),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(alphabet='[]{}"\\ab', max_size=3), inner, max_size=3)
    ),
    max_leaves=40,
)


def depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


@settings(max_examples=300, derandomize=True)
@given(value=json_values, limit=st.integers(min_value=0, max_value=8))
def test_depth_check_agrees_with_the_parsed_document(value: Any, limit: int) -> None:
    """Brackets inside strings (escaped quotes included) never count; real nesting does."""
    raw = json.dumps(value).encode()
    assert json_depth_exceeds(raw, limit) == (depth(value) > limit)


@settings(max_examples=200, derandomize=True)
@given(
    per_minute=st.integers(min_value=1, max_value=600),
    gaps=st.lists(st.floats(min_value=0, max_value=5), min_size=1, max_size=200),
)
def test_token_bucket_never_grants_more_than_burst_plus_refill(
    per_minute: int, gaps: list[float]
) -> None:
    now = 0.0
    times = []
    for gap in gaps:
        now += gap
        times.append(now)
    clock = iter(times).__next__
    limiter = TokenBucketLimiter(per_minute, clock=clock)
    granted = 0
    for _ in times:
        wait = limiter.take("k")
        if wait == 0.0:
            granted += 1
        else:
            assert 0 < wait <= 60.0 / per_minute + 1e-9
    assert granted <= per_minute + times[-1] * per_minute / 60.0 + 1e-6

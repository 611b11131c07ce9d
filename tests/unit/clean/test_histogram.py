"""The report's histogram from value counts equals the histogram of the values repeated
(the streamed path counts a repeating column's accepted values per batch instead of keeping
them)."""

from __future__ import annotations

import numpy as np
import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from chatpersona.clean.report import _histogram

values = st.one_of(
    st.integers(-1000, 1000).map(float),
    st.floats(-1e6, 1e6, allow_nan=False),
    st.sampled_from([0.1, 0.2, 0.30000000000000004, -0.0, 1e-300]),
    st.sampled_from([float("nan"), float("inf"), float("-inf"), 1e308, -6e16]),
    st.none(),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(values, st.integers(1, 50)), min_size=0, max_size=40))
def test_histogram_of_counts_equals_histogram_of_the_values(
    pairs: list[tuple[float | None, int]],
) -> None:
    expanded = pl.Series([v for v, n in pairs for _ in range(n)], dtype=pl.Float64)
    counted = (
        pl.DataFrame({"value": [v for v, _ in pairs], "n": [n for _, n in pairs]})
        .cast({"value": pl.Float64})
        .group_by("value")
        .agg(pl.col("n").sum())
    )
    assert _histogram(counted["value"], counted["n"]) == _histogram(expanded)


def test_counts_weigh_each_value() -> None:
    hist = _histogram(pl.Series([1.0, 2.0, None, float("nan")]), pl.Series([3, 5, 7, 11]))
    assert hist is not None
    assert sum(hist["counts"]) == 8
    assert hist["counts"][0] == 3 and hist["counts"][-1] == 5
    assert hist["edges"][0] == 1.0 and hist["edges"][-1] == 2.0
    assert np.allclose(np.diff(hist["edges"]), 0.05)


finite = st.one_of(
    st.integers(-50, 50).map(float),
    st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.1, 0.2, 0.30000000000000004, 1e-300, 2.5, -2.5, 1e308, -1e308]),
)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(finite, st.integers(1, 40), min_size=1, max_size=30))
def test_order_statistics_from_counts_are_numpys(tally: dict[float, int]) -> None:
    """The fit's order statistics from value counts are the very floats numpy's partitions
    give on the values themselves (the streamed fit counts a repeating column's values)."""
    from chatpersona.clean.fitted import order_stats

    values = np.array(list(tally), dtype=np.float64)
    counts = np.array(list(tally.values()), dtype=np.int64)
    arr = np.repeat(values, counts)
    np.random.default_rng(0).shuffle(arr)
    with np.errstate(over="ignore", invalid="ignore"):  # sums of values near 1e308
        median = np.median(arr)
        q1, q3 = np.quantile(arr, [0.25, 0.75])
        mad = np.median(np.abs(arr - median))
        got = order_stats(values, counts)
    want = (float(median), float(q1), float(q3), float(mad))
    assert [x.hex() for x in got] == [x.hex() for x in want]

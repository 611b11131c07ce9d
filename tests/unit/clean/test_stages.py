"""Skipping a date column's format patterns when no row needs them changes nothing: the
frame (values, columns, types) equals the one of the full stages."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from chatpersona.clean.plan import ColumnRule
from chatpersona.clean.polars_engine import (
    WhenAny,
    apply_stages,
    apply_stages_skipping,
    parse_stage,
)

FAST = ["2025-06-17T08:09:50Z", "2024-01-05", "2024-01-05 10:11:12", "2024-01-05T10:11:12"]
SLOW = ["05/01/2024", "Jan 5 2024", "5 Jan 2024", "2024-01-05T10:11:12+02:00", "2024-02-30"]
OTHER = ["1700000000", "", "  ", "n/a", "nonsense", None]


@settings(max_examples=150, deadline=None)
@given(
    kind=st.sampled_from(["date", "datetime"]),
    values=st.lists(st.sampled_from(FAST + SLOW + OTHER), max_size=30),
)
def test_skipping_equals_the_full_stages(kind: str, values: list[str | None]) -> None:
    rule = ColumnRule(name="d", kind=kind, dayfirst=True)
    stages = parse_stage(rule, 0, ("", "n/a"))
    frame = pl.DataFrame({"d": pl.Series(values, dtype=pl.String)}).lazy()
    full = apply_stages(frame, stages).collect()
    skipped = apply_stages_skipping(frame, stages).collect()
    assert skipped.schema == full.schema
    assert skipped.equals(full)


def test_the_patterns_are_skipped_only_when_no_row_needs_them() -> None:
    rule = ColumnRule(name="d", kind="datetime")
    stages = parse_stage(rule, 0, ())
    nested = [item for stage in stages for item in stage if isinstance(item, WhenAny)]
    assert len(nested) == 1
    calls: list[str] = []
    real = nested[0].stages

    class Spy(list):  # type: ignore[type-arg]
        def __iter__(self):  # type: ignore[no-untyped-def]
            calls.append("patterns")
            return super().__iter__()

    object.__setattr__(nested[0], "stages", Spy(real))
    fast = pl.DataFrame({"d": FAST[:1] * 3}).lazy()
    apply_stages_skipping(fast, stages).collect()
    assert calls == []
    apply_stages_skipping(pl.DataFrame({"d": [FAST[0], SLOW[0]]}).lazy(), stages).collect()
    assert calls == ["patterns"]

"""The batch engine's fast paths give exactly the results of the plain paths: parsing only
the distinct values of a column and joining them back, and the strptime fast path for
fixed-width ISO dates (both checked against the one-record path too)."""

from __future__ import annotations

import re
from datetime import UTC

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.clean.conftest import MESSY_PLAN
from tests.unit.clean.test_parity import COLUMNS, FITTED, _row, assert_parity

from chatpersona.clean import CleaningPlan, formats
from chatpersona.clean import polars_engine as pe
from chatpersona.clean.formats import parse_datetime

PLAN = CleaningPlan.from_dict(MESSY_PLAN)


def _parse(table: pl.DataFrame, dedup: bool) -> pl.DataFrame:
    with pytest.MonkeyPatch.context() as m:
        m.setattr(pe, "DEDUP_MIN_ROWS", 0)
        m.setattr(pe, "_few_distinct", lambda s, kind: dedup)
        return pe.parse_frame(table, PLAN, keep_raw=("id", "categorical", "text"))


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(_row, min_size=1, max_size=25), st.lists(st.integers(0, 24), max_size=40))
def test_parsing_distinct_values_equals_parsing_every_row(
    rows: list[dict], repeats: list[int]
) -> None:
    rows = rows + [rows[i % len(rows)] for i in repeats]
    table = pl.DataFrame(rows, schema={c: pl.Utf8 for c in COLUMNS})
    direct = _parse(table, False)
    deduped = _parse(table, True)
    assert direct.columns == deduped.columns
    assert direct.equals(deduped)


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(_row, min_size=1, max_size=20))
def test_batch_with_distinct_value_parsing_equals_one_record(rows: list[dict]) -> None:
    with pytest.MonkeyPatch.context() as m:
        m.setattr(pe, "DEDUP_MIN_ROWS", 0)
        m.setattr(pe, "_few_distinct", lambda s, kind: True)
        assert_parity(FITTED, rows * 3)


def test_a_large_repetitive_table_takes_the_distinct_value_path() -> None:
    rows = [
        {c: v for c, v in zip(COLUMNS, vals, strict=True)}
        for vals in [
            (
                "u1",
                "30",
                "1.7",
                "0.5",
                "Y",
                " Female ",
                "north ",
                "2024-03-05",
                "2024-03-05T10:00:00Z",
                "$1,234.50",
                "hi",
            ),
            (
                "u2",
                "",
                "1.8",
                "x",
                "no",
                "m",
                "NORTH",
                "05/03/2024",
                "2024-13-05T10:00:00Z",
                "1.234,50 €",
                None,
            ),
            (
                "u3",
                "41",
                None,
                "0.4",
                "maybe",
                "F",
                "",
                "soon",
                "2024-02-30 10:00:00",
                "USD 12",
                "  Hi  ",
            ),
        ]
    ]
    table = pl.DataFrame(rows * (pe.DEDUP_MIN_ROWS // 3 + 1), schema={c: pl.Utf8 for c in COLUMNS})
    assert pe._few_distinct(table["signup"], "date") and pe._few_distinct(table["age"], "integer")
    assert_parity(FITTED, table.to_dicts())


_digits = st.text(alphabet="0123456789", min_size=2, max_size=2)


@st.composite
def _iso(draw: st.DrawFn) -> str:
    year = draw(st.sampled_from(["1999", "2024", "2000", "0999", "9999", "1970"]))
    month, day = draw(_digits), draw(_digits)
    hour, minute, sec = draw(_digits), draw(_digits), draw(_digits)
    tail = draw(
        st.sampled_from(
            [
                "",
                f"T{hour}:{minute}:{sec}Z",
                f"T{hour}:{minute}:{sec}",
                f" {hour}:{minute}:{sec}",
                f"T{hour}:{minute}:{sec}+01:00",
            ]
        )
    )
    return f"{year}-{month}-{day}{tail}"


@settings(max_examples=60, deadline=None)
@given(st.lists(_iso(), min_size=1, max_size=30), st.booleans())
def test_fast_iso_dates_equal_the_general_grammar(values: list[str], dayfirst: bool) -> None:
    plan = CleaningPlan.from_dict(
        {
            "columns": {
                "d": {"kind": "date", "dayfirst": dayfirst, "on_invalid": "null"},
                "t": {"kind": "datetime", "on_invalid": "null"},
            }
        }
    )
    table = pl.DataFrame({"d": values, "t": values})
    parsed = pe.parse_frame(table, plan)
    for v, d, t in zip(values, parsed["__p0"], parsed["__p1"], strict=True):
        with pytest.MonkeyPatch.context() as m:  # the general grammar alone
            m.setattr(formats, "_FAST_ISO", re.compile(r"(?!)"))
            want = parse_datetime(v, dayfirst, "s")
        assert parse_datetime(v, dayfirst, "s") == want, v  # the one-record fast path
        assert t == (None if want is None else want.replace(tzinfo=UTC)), v
        assert d == (None if want is None else want.date()), v


@settings(max_examples=60, deadline=None)
@given(_row)
def test_compiled_record_cleaners_equal_the_general_rules(row: dict) -> None:
    for name, cleaner in FITTED._cleaners.items():
        raw = row[name]
        if raw is None:
            continue
        assert cleaner._fast(raw) == cleaner._clean(raw), (name, raw)


_money_text = st.one_of(
    st.text(alphabet="0123456789.,-$€£ USDeurgbp", max_size=14),
    st.builds(
        lambda pre, neg, num, post: f"{neg}{pre}{num}{post}",
        st.sampled_from(["", "$", "€ ", "USD ", "usd", "£"]),
        st.sampled_from(["", "-", "- "]),
        st.from_regex(r"[0-9][0-9.,]{0,9}[0-9]|[0-9]", fullmatch=True),
        st.sampled_from(["", " €", "€", " EUR", "gbp", " $"]),
    ),
)


@settings(max_examples=80, deadline=None)
@given(st.lists(_money_text, min_size=1, max_size=30))
def test_vectorized_currency_equals_the_one_record_grammar(values: list[str]) -> None:
    plan = CleaningPlan.from_dict(
        {"columns": {"m": {"kind": "currency", "on_invalid": "null", "default_currency": "USD"}}}
    )
    parsed = pe.parse_frame(pl.DataFrame({"m": values}), plan)
    for v, amount, code, missing in zip(
        values, parsed["__p0"], parsed["__k0"], parsed["__m0"], strict=True
    ):
        if missing:
            continue
        want = formats.parse_currency(v, "USD")
        assert (amount, code) == ((None, None) if want is None else want), v


@settings(max_examples=30, deadline=None)
@given(st.lists(_row, min_size=1, max_size=25))
def test_merged_stages_as_the_spark_engine_applies_them_equal_parse_frame(
    rows: list[dict],
) -> None:
    table = pl.DataFrame(rows, schema={c: pl.Utf8 for c in COLUMNS})
    mv = PLAN.missing_values
    stages = pe.merge_stages(
        [pe.parse_stage(rule, i, mv) for i, rule in enumerate(PLAN.columns.values())]
    )
    expected = pe.parse_frame(table, PLAN)
    merged = pe.apply_stages(table.lazy(), stages).select(expected.columns).collect()
    assert merged.equals(expected)

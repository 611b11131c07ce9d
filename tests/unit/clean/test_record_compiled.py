"""The compiled one-record path (a function per key order) gives exactly the results of the
generic loop."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.clean.conftest import MESSY_PLAN, messy_base
from tests.unit.clean.test_parity import COLUMNS, FITTED, _row

from chatpersona.clean import CleaningPlan, FittedPlan
from chatpersona.clean import fitted as fitted_module
from chatpersona.exceptions import InputError

# The same plan with every other branch the compiled code specializes on: unplanned keys
# dropped, a quarantine on missing values, an error on invalid ones, currency with a flag.
STRICT_PLAN = {
    "unplanned": "drop",
    "columns": {
        **MESSY_PLAN["columns"],
        "age": {**MESSY_PLAN["columns"]["age"], "on_invalid": "error"},
        "region": {"kind": "categorical", "missing": "quarantine"},
        "seen_at": {"kind": "datetime", "missing": "quarantine"},
        "spend": {
            "kind": "currency",
            "missing": "median",
            "outliers": {"method": "iqr", "action": "flag"},
        },
    },
}
STRICT = CleaningPlan.from_dict(STRICT_PLAN).fit(messy_base())
PLANS = {"messy": FITTED, "strict": STRICT}
# Two copies of each plan, so the compiled and the generic path never share a memo.
COMPILED = {name: FittedPlan.from_json(f.to_json()) for name, f in PLANS.items()}
GENERIC = {name: FittedPlan.from_json(f.to_json()) for name, f in PLANS.items()}

_non_text = st.one_of(
    st.integers(-(2**60), 2**60),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.dates(),
    st.datetimes(timezones=st.just(UTC)),
    st.none(),
)
_extra_keys = st.sampled_from(["extra", "zz", "spend_currency", "score_outlier", "age_outlier"])


@st.composite
def _records(draw: st.DrawFn) -> dict[str, Any]:
    """A messy record: some planned keys missing, unplanned keys added (some named like an
    extra column), some values not text, the keys in any order."""
    row: dict[str, Any] = draw(_row)
    for key in draw(st.sets(st.sampled_from(COLUMNS), max_size=4)):
        del row[key]
    for key in draw(st.sets(st.sampled_from(list(row)), max_size=3)):
        row[key] = draw(_non_text)
    row.update(draw(st.dictionaries(_extra_keys, st.text(max_size=3) | _non_text, max_size=2)))
    return {k: row[k] for k in draw(st.permutations(list(row)))}


def _outcome(transform: Callable[[dict[str, Any]], Any], row: dict[str, Any]) -> Any:
    """What a path does with ``row``, comparable with == (reprs: NaN equals itself, and the
    key order of the record counts)."""
    try:
        rec = transform(row)
    except InputError as exc:
        return ("error", str(exc), exc.to_dict())
    items = None if rec.record is None else repr(list(rec.record.items()))
    return (rec.ok, rec.reason, rec.column, items)


def _assert_same(name: str, rows: list[dict[str, Any]]) -> None:
    compiled, generic = COMPILED[name], GENERIC[name]
    for row in rows:
        assert _outcome(compiled.transform_record, row) == _outcome(
            generic._transform_record_generic, row
        ), row


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(PLANS)), st.lists(_records(), min_size=1, max_size=6))
def test_compiled_record_path_equals_the_generic_loop(name: str, rows: list[dict]) -> None:
    _assert_same(name, rows)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(PLANS)), st.lists(_row, min_size=1, max_size=10))
def test_compiled_path_on_rows_in_the_table_order(name: str, rows: list[dict]) -> None:
    _assert_same(name, rows)
    fresh = FittedPlan.from_json(PLANS[name].to_json())
    fn = fresh._record_function(tuple(rows[0]))
    assert fn != fresh._transform_record_generic  # compiled
    assert fresh._by_order == {tuple(rows[0]): fn}


def test_one_function_per_key_order_and_the_generic_loop_for_unusual_keys() -> None:
    fitted = FittedPlan.from_json(FITTED.to_json())
    base = messy_base().to_dicts()[0]
    fitted.transform_record(base)
    fitted.transform_record(dict(reversed(base.items())))
    assert len(fitted._by_order) == 2
    # A key that is not a str, or an unplanned key named like an extra column (kept): the
    # generic loop, with the same results.
    for row in ({**base, 7: "x"}, {"spend_currency": "EUR", **base}):
        assert _outcome(fitted.transform_record, row) == _outcome(
            fitted._transform_record_generic, row
        )
        assert fitted._by_order[tuple(row)] == fitted._transform_record_generic


def test_beyond_the_cached_key_orders_records_still_clean_alike(monkeypatch) -> None:
    monkeypatch.setattr(fitted_module, "MAX_KEY_ORDERS", 2)
    fitted = FittedPlan.from_json(FITTED.to_json())
    rows = [dict(zip(COLUMNS, v, strict=True)) for v in messy_base().rows()][:12]
    shuffled = [
        dict(sorted(r.items(), key=lambda kv, i=i: hash((kv[0], i)))) for i, r in enumerate(rows)
    ]
    for row in shuffled:
        assert _outcome(fitted.transform_record, row) == _outcome(
            GENERIC["messy"]._transform_record_generic, row
        )
    assert len(fitted._by_order) == 2


def test_the_compiled_path_raises_for_on_invalid_error() -> None:
    row = {c: None for c in COLUMNS} | {"age": "abc", "region": "north"}
    with pytest.raises(InputError, match="Cannot parse a integer value") as info:
        COMPILED["strict"].transform_record(row)
    assert info.value.to_dict()["column"] == "age"

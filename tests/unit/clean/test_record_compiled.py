"""The compiled one-record path (a function per key order) gives exactly the results of the
generic loop, and the miss-path parsers' shortcuts accept and reject exactly what the general
grammar does."""

from __future__ import annotations

import itertools
import math
import re
import traceback
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.clean.conftest import MESSY_PLAN, messy_base
from tests.unit.clean.test_parity import COLUMNS, FITTED, _moments, _money, _row

from chatpersona.clean import CleaningPlan, FittedPlan, formats
from chatpersona.clean import fitted as fitted_module
from chatpersona.clean.formats import UTC_ZONE, WS, parse_datetime
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
    # The traceback shows the generated line that called the column's parser.
    shown = "".join(traceback.format_exception(info.value))
    assert "<chatpersona record function" in shown
    assert re.search(r"h\d+ = f\d+\(v\d+\)", shown)


def test_a_column_whose_values_do_not_repeat_stops_memoizing(monkeypatch) -> None:
    monkeypatch.setattr(fitted_module, "MEMO_PROBE", 10)
    fitted = FittedPlan.from_json(FITTED.to_json())
    base = messy_base().to_dicts()
    rows = [{**base[i % 7], "height": f"{150 + i}.5"} for i in range(19)]
    for row in rows:
        fitted.transform_record(row)
    assert fitted._probing  # 10 records marked the sizes, 9 more are not enough
    fitted.transform_record(rows[0])
    assert not fitted._probing
    off = {name for name, c in fitted._cleaners.items() if not c.memoize}
    assert off == {"user_id", "height"}  # ids never memoize; the 7 repeated rows do
    assert fitted._entries["height"][0] is None
    assert fitted._by_order == {}  # compiled again, without the probe and that memo
    for row in rows + [dict(reversed(r.items())) for r in rows]:
        assert _outcome(fitted.transform_record, row) == _outcome(
            GENERIC["messy"]._transform_record_generic, row
        )
    assert fitted._cleaners["height"]._memo == {}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(PLANS)), st.lists(_records(), min_size=1, max_size=12))
def test_results_do_not_change_when_the_memos_are_reviewed(name: str, rows: list[dict]) -> None:
    with pytest.MonkeyPatch.context() as m:
        m.setattr(fitted_module, "MEMO_PROBE", 2)
        fitted = FittedPlan.from_json(PLANS[name].to_json())
        for row in rows:
            assert _outcome(fitted.transform_record, row) == _outcome(
                GENERIC[name]._transform_record_generic, row
            ), row


# ---------------------------------------------------------------- miss-path parsers
def _reference_number(text: str) -> float | None:
    s = text.strip(WS)
    if not re.match(formats.NUMBER_RE, s):
        return None
    x = float(s)
    return x if math.isfinite(x) else None


def _reference_currency(text: str, default: str | None) -> Any:
    """parse_currency without its fast path: the general regex and separator rules."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(formats, "_FAST_CURRENCY", re.compile(r"(?!)"))
        return formats.parse_currency.__wrapped__(text, default)


def _reference_datetime(text: str) -> datetime | None:
    rule = STRICT.plan.columns["seen_at"]
    dt = parse_datetime(text, rule.dayfirst, rule.epoch_unit)
    return None if dt is None else dt.replace(tzinfo=UTC_ZONE)


_CURRENCY_PRE = ["", "$", "$ ", "$  ", "USD ", "usd", "Us1 ", "€", "-$", "$-", " ", "abcd "]
_CURRENCY_POST = ["", " €", "€", " eur", "  €", " ", "-", " usd ", "x"]


# Missing tokens that parse (a number, a date, an epoch): the fast paths test tokens first.
TOKENS = CleaningPlan.from_dict(
    {**MESSY_PLAN, "missing_values": ["", "na", "-999", "1.5", "2024-03-05", "1709596800"]}
).fit(messy_base())
_cleaner_text = st.one_of(
    _row.flatmap(lambda r: st.sampled_from([v for v in r.values() if v is not None] or [""])),
    st.text(alphabet="0123456789.-/T:Z ", max_size=22),
    st.from_regex(r"[0-9]{1,2}[-/.][0-9]{1,2}[-/.][0-9]{4}", fullmatch=True),
    st.from_regex(r"[0-9]{8,14}", fullmatch=True),
    st.sampled_from(["-999", "1.5", "2024-03-05", "1709596800", "1e999", "9" * 400, "31/02/2024"]),
)


def _same_result(a: tuple, b: tuple) -> bool:
    return (
        a == b
        and [type(x) for x in a] == [type(x) for x in b]
        and (not isinstance(a[0], datetime) or a[0].tzinfo is b[0].tzinfo)
    )


@settings(max_examples=300, deadline=None)
@given(_cleaner_text)
def test_every_fast_path_equals_the_general_clean(text: str) -> None:
    for fitted in (FITTED, STRICT, TOKENS):
        for name, cleaner in fitted._cleaners.items():
            try:
                want = cleaner._clean(text)
            except InputError:
                with pytest.raises(InputError):
                    cleaner._fast(text)
                continue
            assert _same_result(cleaner._fast(text), want), (name, text)


def test_currency_shortcut_equals_the_general_rules_on_every_short_amount() -> None:
    parse = formats.parse_currency.__wrapped__
    for n in range(1, 5):
        for chars in itertools.product("019.,", repeat=n):
            for pre, post in itertools.product(_CURRENCY_PRE, _CURRENCY_POST):
                s = pre + "".join(chars) + post
                assert parse(s, "USD") == _reference_currency(s, "USD"), s


@settings(max_examples=300, deadline=None)
@given(
    _money
    | st.text(alphabet="0123456789.,$€ USDeur-", max_size=30)
    | st.builds(lambda d: f"{d:,.2f}", st.floats(0, 1e20)),
    st.sampled_from(["USD", None]),
)
def test_currency_shortcut_equals_the_general_rules(text: str, default: str | None) -> None:
    assert formats.parse_currency.__wrapped__(text, default) == _reference_currency(text, default)


def test_number_shortcut_equals_the_grammar_on_every_short_string() -> None:
    for n in range(5):
        for chars in itertools.product("09.e+- _\x1c²\xa0", repeat=n):
            s = "".join(chars)
            assert formats.parse_number(s) == _reference_number(s), repr(s)
    for s in ["9" * 400, "9" * 400 + ".5", "." + "9" * 400, "1" * 309 + "."]:
        assert formats.parse_number(s) == _reference_number(s)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789.eE+- \t_", max_size=20) | st.floats().map(repr))
def test_number_shortcut_equals_the_grammar(text: str) -> None:
    assert formats.parse_number(text) == _reference_number(text)


def _iso_variants() -> list[str]:
    base = "2024-02-29T08:09:50Z"
    out = [base, base[:19], base[:10], base.replace("T", " "), base.lower(), " " + base]
    out += [base + " ", base[:19] + "z", "0999" + base[4:], base.replace("29", "30", 1)]
    for i, c in itertools.product(range(len(base)), "0159:-TZ .a"):
        out.append(base[:i] + c + base[i + 1 :])
    for hh, mm in itertools.product(["00", "23", "24", "29", "99"], ["00", "59", "60", "99"]):
        out.append(f"2025-12-31T{hh}:{mm}:{mm}Z")
    return out


def _same_datetime(a: datetime | None, b: datetime | None) -> bool:
    if a is None or b is None:
        return a is b
    return (a, a.tzinfo, a.fold, a.utcoffset()) == (b, b.tzinfo, b.fold, b.utcoffset()) and (
        a.tzinfo is b.tzinfo
    )


def test_datetime_shortcut_equals_the_general_parse_on_iso_variants() -> None:
    to_datetime = STRICT._cleaners["seen_at"]._parse
    for s in _iso_variants():
        assert _same_datetime(to_datetime(s), _reference_datetime(s)), s


@settings(max_examples=300, deadline=None)
@given(_moments.filter(lambda m: m is not None) | st.datetimes().map(str))
def test_datetime_shortcut_equals_the_general_parse(text: str) -> None:
    to_datetime = STRICT._cleaners["seen_at"]._parse
    assert _same_datetime(to_datetime(text), _reference_datetime(text)), text


def test_a_parsed_datetime_is_in_the_utc_zone() -> None:
    value = STRICT._cleaners["seen_at"]._parse("2024-03-05T10:00:00Z")
    assert value == datetime(2024, 3, 5, 10, tzinfo=UTC_ZONE)
    assert value.tzinfo is UTC_ZONE
    assert STRICT._cleaners["signup"]._parse("2024-03-05") == date(2024, 3, 5)

"""Batch (Polars) and one-record (plain Python) cleaning agree exactly; cleaning a clean table
changes nothing; every input row is accounted for exactly once."""

from __future__ import annotations

from datetime import UTC, date, datetime
from io import BytesIO

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.unit.clean.conftest import MESSY_PLAN, messy_base

from chatpersona.clean import CleaningPlan, FittedPlan

FITTED = CleaningPlan.from_dict(MESSY_PLAN).fit(messy_base())
COLUMNS = list(MESSY_PLAN["columns"])

_junk = st.text(alphabet="0123456789aeMrT/-:., €$Zx ", max_size=12)
_numbers = st.one_of(
    st.integers(-100, 2000).map(str),
    st.floats(-1e4, 1e4, allow_nan=False).map(lambda x: f"{x:.3f}"),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(["", " ", "NA", "null", "abc", "1e3", "4.0", " 42 ", "+7", ".5", "1e999"]),
    _junk,
    st.none(),
)
_labels = st.one_of(
    st.sampled_from(["F", "female", " Female ", "M", "male", "MALE", "Non-binary", "", "femal"]),
    st.sampled_from(["Y", "Yes", "true", "1", "N", "No", "false", "0", " yes", "n/a", "off"]),
    st.text(
        alphabet=st.characters(min_codepoint=32, max_codepoint=0x24F)
        | st.sampled_from(["\t", "\n", "\u00a0", "\u3000", "ﬁ", "Ⅻ", "²"]),
        max_size=10,
    ),
    st.none(),
)
_day = st.dates(min_value=date(1990, 1, 1), max_value=date(2035, 12, 31))
_moment = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2035, 12, 31))


def _fmt_date(d: date, style: int) -> str:
    return [
        d.isoformat(),
        d.strftime("%d/%m/%Y"),
        d.strftime("%m/%d/%Y"),
        d.strftime("%b %d %Y"),
        d.strftime("%d %B %Y"),
        str(int(datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp())),
        d.strftime("%-d.%-m.%Y"),
        d.strftime("%B %dth, %Y").upper(),
    ][style]


def _fmt_moment(m: datetime, style: int, offset: int) -> str:
    sign = "+" if offset >= 0 else "-"
    tz = f"{sign}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}"
    return [
        m.isoformat(),
        m.strftime("%Y-%m-%dT%H:%M:%SZ"),
        m.strftime("%Y-%m-%d %H:%M:%S") + tz,
        m.strftime("%m/%d/%Y %H:%M"),
        m.isoformat(timespec="microseconds") + "Z",
        m.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + tz.replace(":", ""),
    ][style]


_dates = st.one_of(
    st.builds(_fmt_date, _day, st.integers(0, 7)), _junk, st.sampled_from(["", "2024-02-30"])
)
_moments = st.one_of(
    st.builds(_fmt_moment, _moment, st.integers(0, 5), st.integers(-720, 840)),
    _dates,
    st.none(),
)


def _fmt_money(amount: float, style: int) -> str:
    whole, cents = divmod(round(abs(amount) * 100), 100)
    sign = "-" if amount < 0 else ""
    return [
        f"{sign}${whole:,}.{cents:02d}",
        f"{sign}{whole:,}.{cents:02d}".replace(",", "_").replace(".", ",").replace("_", ".") + " €",
        f"USD {sign}{whole}",
        f"€ {whole},{cents:02d}",
        f"{whole}.{cents:02d} gbp",
        f"{whole}",
        f"£{whole:,}",
    ][style]


_money = st.one_of(
    st.builds(_fmt_money, st.floats(-1e7, 1e7, allow_nan=False), st.integers(0, 6)),
    _junk,
    st.sampled_from(["", "1,2,3", "1.2.3", "$", "12 EUR USD", "1,234.56.7"]),
)
_row = st.fixed_dictionaries(
    {
        "user_id": st.one_of(st.text(alphabet="ab12 ", max_size=4), st.none()),
        "age": _numbers,
        "height": _numbers,
        "score": _numbers,
        "is_vip": _labels,
        "gender": _labels,
        "region": _labels,
        "signup": _dates,
        "seen_at": _moments,
        "spend": _money,
        "notes": _labels,
    }
)


def assert_parity(fitted: FittedPlan, rows: list[dict]) -> None:
    table = pl.DataFrame(rows, schema={c: pl.Utf8 for c in COLUMNS})
    result = fitted.transform(table)
    report = result.report
    assert report["rows_in"] == len(rows)
    assert report["rows_accepted"] + report["rows_duplicate"] + report["rows_quarantined"] == len(
        rows
    )
    assert sum(report["reasons"].values()) == report["rows_duplicate"] + report["rows_quarantined"]
    quarantined = {r["_row"]: r for r in result.quarantine.iter_rows(named=True)}
    accepted = iter(result.accepted.iter_rows(named=True))
    for i, row in enumerate(rows, start=1):
        rec = fitted.transform_record(row)
        if i in quarantined:
            q = quarantined[i]
            assert (rec.ok, rec.reason, rec.column) == (False, q["_reason"], q["_column"]), row
            assert {c: q[c] for c in COLUMNS} == row  # the original row is kept
        else:
            assert rec.ok, (row, rec)
            assert rec.record == next(accepted), row
    assert next(accepted, None) is None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_row, min_size=1, max_size=25))
def test_batch_equals_one_record_at_a_time(rows: list[dict]) -> None:
    assert_parity(FITTED, rows)


def test_parity_on_the_fitting_table() -> None:
    assert_parity(FITTED, messy_base().to_dicts())


def test_fitted_plan_json_round_trip_gives_the_same_results(tmp_path) -> None:
    path = tmp_path / "fitted.json"
    FITTED.to_json(path)
    again = FittedPlan.from_json(path)
    assert again == FITTED
    assert FittedPlan.from_json(FITTED.to_json()).stats_ == FITTED.stats_
    table = messy_base()
    assert again.transform(table).accepted.equals(FITTED.transform(table).accepted)
    assert again.stats_["age"]["fill"] == FITTED.stats_["age"]["fill"]
    assert isinstance(again.stats_["height"]["hi"], float)


def _clean_plan() -> FittedPlan:
    spec = {k: v for k, v in MESSY_PLAN["columns"].items() if k not in ("spend", "score")}
    return CleaningPlan.from_dict({"columns": spec}).fit(messy_base())


CLEAN_FITTED = _clean_plan()
CLEAN_ROWS = CLEAN_FITTED.transform(messy_base()).accepted


def test_cleaning_a_clean_table_changes_nothing() -> None:
    buf = BytesIO()
    CLEAN_ROWS.write_csv(buf)
    as_text = pl.read_csv(buf.getvalue(), infer_schema=False)
    again = CLEAN_FITTED.transform(as_text)
    assert again.report["rows_quarantined"] == 0
    assert again.report["rows_duplicate"] == 0
    assert again.accepted.equals(CLEAN_ROWS)
    typed = CLEAN_FITTED.transform(CLEAN_ROWS)  # typed (non-text) columns are accepted too
    assert typed.accepted.equals(CLEAN_ROWS)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, CLEAN_ROWS.height - 1), min_size=1, max_size=30, unique=True))
def test_any_subset_of_clean_rows_is_unchanged(indices: list[int]) -> None:
    subset = CLEAN_ROWS[indices]
    again = CLEAN_FITTED.transform(subset)
    assert again.accepted.equals(subset)
    for row in subset.iter_rows(named=True):
        assert CLEAN_FITTED.transform_record(row).record == row


DEDUP_FITTED = CleaningPlan.from_dict(
    dict(
        MESSY_PLAN, duplicates={"exact_rows": True, "id_column": "user_id", "latest_by": "seen_at"}
    )
).fit(messy_base())


@settings(max_examples=40, deadline=None)
@given(st.lists(_row, min_size=1, max_size=30), st.lists(st.integers(0, 29), max_size=15))
def test_accounting_adds_up_with_duplicates(rows: list[dict], copies: list[int]) -> None:
    rows = rows + [dict(rows[i % len(rows)]) for i in copies]
    fitted = DEDUP_FITTED
    table = pl.DataFrame(rows, schema={c: pl.Utf8 for c in COLUMNS})
    res = fitted.transform(table)
    r = res.report
    assert r["rows_accepted"] + r["rows_duplicate"] + r["rows_quarantined"] == len(rows)
    assert (res.accepted.height, res.duplicates.height, res.quarantine.height) == (
        r["rows_accepted"],
        r["rows_duplicate"],
        r["rows_quarantined"],
    )
    rows_seen = sorted(res.duplicates["_row"].to_list() + res.quarantine["_row"].to_list())
    assert len(set(rows_seen)) == len(rows_seen)
    assert res.accepted["user_id"].n_unique() == res.accepted.height  # one row per id


def test_fit_transform_parses_once_and_equals_fit_then_transform() -> None:
    plan = CleaningPlan.from_dict(MESSY_PLAN)
    table = messy_base()
    once = FittedPlan(plan).fit_transform(table)
    twice = plan.fit(table).transform(table)
    assert once.accepted.equals(twice.accepted)
    assert once.quarantine.equals(twice.quarantine)
    assert once.report == twice.report

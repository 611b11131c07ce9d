"""Each cleaning rule does what the plan says, in the batch and the one-record path."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import pytest

from chatpersona.clean import CleaningPlan
from chatpersona.exceptions import InputError


def clean_one(rule: dict, values: list, name: str = "c", **plan: object) -> pl.DataFrame:
    """Fit and transform a one-column table; also checks that the record path agrees."""
    plan.setdefault("duplicates", {"exact_rows": False})
    p = CleaningPlan.from_dict({"columns": {name: rule}, **plan})
    table = pl.DataFrame({name: values}, schema={name: pl.Utf8})
    fitted = p.fit(table)
    result = fitted.transform(table)
    accepted = iter(result.accepted.iter_rows(named=True))
    quarantined = {r["_row"]: r for r in result.quarantine.iter_rows(named=True)}
    for i, row in enumerate(table.iter_rows(named=True), start=1):
        rec = fitted.transform_record(row)
        if i in quarantined:
            assert not rec.ok and rec.reason == quarantined[i]["_reason"]
        else:
            assert rec.ok and rec.record == next(accepted)
    return result.accepted


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        pytest.param("mean", 20.0, id="mean"),
        pytest.param("median", 15.0, id="median"),
        pytest.param("mode", 10.0, id="mode"),
        pytest.param("none", None, id="none"),
    ],
)
def test_numeric_missing_strategies(strategy: str, expected: float | None) -> None:
    out = clean_one({"kind": "numeric", "missing": strategy}, ["10", "10", "20", "40", "", "NA"])
    assert out["c"].to_list()[4:] == [expected, expected]
    assert out["c"].to_list()[:4] == [10.0, 10.0, 20.0, 40.0]


def test_integer_median_is_rounded_and_typed() -> None:
    out = clean_one({"kind": "integer", "missing": "median"}, ["1", "2", "3", "4", " "])
    assert out.schema["c"] == pl.Int64
    assert out["c"].to_list() == [1, 2, 3, 4, 2]  # median 2.5 rounds half to even


def test_constant_unknown_and_quarantine() -> None:
    assert clean_one({"kind": "numeric", "missing": "constant", "fill_value": -1}, ["", "2"])[
        "c"
    ].to_list() == [-1.0, 2.0]
    assert clean_one({"kind": "categorical", "missing": "unknown"}, ["", "A"])["c"].to_list() == [
        "unknown",  # the label is normalized like the data (lowercase here)
        "a",
    ]
    p = CleaningPlan.from_dict({"columns": {"c": {"kind": "numeric", "missing": "quarantine"}}})
    t = pl.DataFrame({"c": ["1", None, "3"]})
    res = p.fit(t).transform(t)
    assert res.quarantine.select("_row", "_reason", "_column").rows() == [
        (2, "missing_required", "c")
    ]


def test_text_normalization_steps() -> None:
    rule = {
        "kind": "text",
        "normalize": {
            "nfkc": True,
            "trim": True,
            "lower": True,
            "collapse": True,
            "strip_special": True,
        },
    }
    out = clean_one(rule, ["  Ｈｅｌｌｏ,   WORLD!! ", "ﬁne\tday"])
    assert out["c"].to_list() == ["hello world", "fine day"]
    out = clean_one({"kind": "text"}, ["  Keep   Case "])
    assert out["c"].to_list() == ["Keep Case"]


def test_boolean_vocabulary_and_invalid_labels() -> None:
    values = ["Y", "Yes", "true", "1", "N", "No", "false", "0", " yes ", "maybe"]
    p = CleaningPlan.from_dict(
        {"columns": {"c": {"kind": "boolean"}}, "duplicates": {"exact_rows": False}}
    )
    t = pl.DataFrame({"c": values})
    res = p.fit(t).transform(t)
    assert res.accepted["c"].to_list() == [True] * 4 + [False] * 4 + [True]
    assert res.quarantine.select("c", "_reason").rows() == [("maybe", "unparseable_boolean")]


def test_synonyms_unify_labels_and_fuzzy_is_only_reported() -> None:
    p = CleaningPlan.from_dict(
        {
            "columns": {
                "g": {"kind": "categorical", "synonyms": {"F": "Female"}, "fuzzy_threshold": 0.8}
            },
            "duplicates": {"exact_rows": False},
        }
    )
    t = pl.DataFrame({"g": ["F", " female", "FEMALE", "femal", "male"]})
    fitted = p.fit(t)
    res = fitted.transform(t)
    assert res.accepted["g"].to_list() == ["female", "female", "female", "femal", "male"]
    sugg = fitted.stats_["g"]["fuzzy_suggestions"]
    pairs = {(s["label"], s["suggest"]) for s in sugg}
    # Suggestions are for review: 'male' ~ 'female' scores 0.8 too, which is why nothing is
    # merged automatically.
    assert ("femal", "female") in pairs
    assert "femal" in res.accepted["g"].to_list()
    assert {"from": "F", "to": "female", "count": 1} in res.report["columns"]["g"]["label_map"]


@pytest.mark.parametrize(
    ("raw", "dayfirst", "expected"),
    [
        pytest.param("2024-03-05", True, date(2024, 3, 5), id="iso"),
        pytest.param("05/03/2024", True, date(2024, 3, 5), id="dayfirst"),
        pytest.param("05/03/2024", False, date(2024, 5, 3), id="monthfirst"),
        pytest.param("Mar 5 2024", True, date(2024, 3, 5), id="mon-d-y"),
        pytest.param("March 5th, 2024", True, date(2024, 3, 5), id="month-ordinal"),
        pytest.param("5 mar 2024", True, date(2024, 3, 5), id="d-mon-y"),
        pytest.param("1709596800", True, date(2024, 3, 5), id="epoch"),
        pytest.param("2024-03-05T01:00:00+02:00", True, date(2024, 3, 4), id="offset-to-utc"),
    ],
)
def test_dates_in_mixed_formats(raw: str, dayfirst: bool, expected: date) -> None:
    out = clean_one({"kind": "date", "dayfirst": dayfirst}, [raw])
    assert out["c"].to_list() == [expected]


def test_datetimes_are_utc() -> None:
    out = clean_one(
        {"kind": "datetime"},
        ["2024-03-05T10:00:00Z", "2024-03-05 12:00:00+02:00", "2024-03-05T10:00:00.5"],
    )
    assert out.schema["c"] == pl.Datetime("us", "UTC")
    assert out["c"].to_list() == [
        datetime(2024, 3, 5, 10, tzinfo=UTC),
        datetime(2024, 3, 5, 10, tzinfo=UTC),
        datetime(2024, 3, 5, 10, 0, 0, 500000, tzinfo=UTC),
    ]


def test_unparseable_dates_are_quarantined() -> None:
    p = CleaningPlan.from_dict({"columns": {"d": "date"}})
    t = pl.DataFrame({"d": ["2024-02-30", "yesterday", "2024-01-01"]})
    res = p.fit(t).transform(t)
    assert res.quarantine["_reason"].to_list() == ["unparseable_date"] * 2
    assert res.accepted["d"].to_list() == [date(2024, 1, 1)]


@pytest.mark.parametrize(
    ("raw", "amount", "code"),
    [
        pytest.param("$1,234.50", 1234.5, "USD", id="dollar"),
        pytest.param("1.234,50 €", 1234.5, "EUR", id="euro-comma"),
        pytest.param("USD 12", 12.0, "USD", id="code-first"),
        pytest.param("€ 45,00", 45.0, "EUR", id="euro-space"),
        pytest.param("12.5 gbp", 12.5, "GBP", id="code-last"),
        pytest.param("-$3", -3.0, "USD", id="negative"),
        pytest.param("7", 7.0, "MXN", id="default-code"),
        pytest.param("1,234", 1234.0, "MXN", id="thousands"),
    ],
)
def test_currency_amount_and_code(raw: str, amount: float, code: str) -> None:
    out = clean_one({"kind": "currency", "default_currency": "MXN"}, [raw], name="spend")
    assert out.row(0) == (amount, code)
    assert out.columns == ["spend", "spend_currency"]


def _numbers() -> list[str]:
    return [str(v) for v in [10, 11, 12, 11, 10, 12, 11, 10, 11, 12, 11, 10, 500]]


@pytest.mark.parametrize("method", ["zscore", "iqr", "mad"])
def test_outlier_methods_quarantine(method: str) -> None:
    threshold = {"zscore": 3.0}.get(method)
    rule = {"kind": "numeric", "outliers": {"method": method, "action": "quarantine"}}
    if threshold:
        rule["outliers"]["threshold"] = 2.5
    p = CleaningPlan.from_dict({"columns": {"x": rule}, "duplicates": {"exact_rows": False}})
    t = pl.DataFrame({"x": _numbers()})
    res = p.fit(t).transform(t)
    assert res.quarantine.select("x", "_reason").rows() == [("500", f"outlier_{method}")]
    assert res.report["rows_accepted"] == 12


def test_outlier_clip_and_flag() -> None:
    t = pl.DataFrame({"x": _numbers()})
    clip = {"kind": "numeric", "outliers": {"method": "iqr", "action": "clip"}}
    p = CleaningPlan.from_dict({"columns": {"x": clip}, "duplicates": {"exact_rows": False}})
    fitted = p.fit(t)
    hi = fitted.stats_["x"]["hi"]
    assert fitted.transform(t).accepted["x"].to_list()[-1] == hi
    flag = {"kind": "integer", "outliers": {"method": "iqr", "action": "flag"}}
    p = CleaningPlan.from_dict({"columns": {"x": flag}, "duplicates": {"exact_rows": False}})
    out = p.fit(t).transform(t).accepted
    assert out.columns == ["x", "x_outlier"]
    assert out["x_outlier"].to_list() == [False] * 12 + [True]
    assert out["x"].to_list()[-1] == 500


def test_duplicates_exact_rows_and_latest_id() -> None:
    plan = CleaningPlan.from_dict(
        {
            "columns": {"id": "id", "v": "categorical", "ts": "datetime"},
            "duplicates": {"exact_rows": True, "id_column": "id", "latest_by": "ts"},
        }
    )
    t = pl.DataFrame(
        {
            "id": ["a", "a", "b", "a", "b", "c"],
            "v": ["x", "X ", "y", "z", "w", "q"],
            "ts": ["2024-01-01", "2024-01-01", "2024-01-01", "2024-03-01", "2023-01-01", ""],
        }
    )
    res = plan.fit(t).transform(t)
    assert res.duplicates.select("_row", "_reason").rows() == [
        (1, "duplicate_id"),
        (2, "duplicate_row"),
        (5, "duplicate_id"),
    ]
    assert res.accepted["v"].to_list() == ["y", "z", "q"]


def test_duplicate_ids_keep_first_without_timestamp() -> None:
    plan = CleaningPlan.from_dict(
        {"columns": {"id": "id", "v": "text"}, "duplicates": {"id_column": "id"}}
    )
    t = pl.DataFrame({"id": ["a", "b", "a"], "v": ["1", "2", "3"]})
    res = plan.fit(t).transform(t)
    assert res.accepted["v"].to_list() == ["1", "2"]
    assert res.duplicates["_row"].to_list() == [3]


def test_strict_rule_raises_naming_column_row_value() -> None:
    plan = CleaningPlan.from_dict({"columns": {"age": {"kind": "integer", "on_invalid": "error"}}})
    t = pl.DataFrame({"age": ["1", "2", "two"]})
    fitted = plan.fit(pl.DataFrame({"age": ["1"]}))
    with pytest.raises(InputError) as info:
        fitted.transform(t, source="users.csv")
    err = info.value
    assert (err.file, err.column, err.row, err.value) == ("users.csv", "age", 3, "two")
    assert "file users.csv, column 'age', row 3, value 'two'" in str(err)
    with pytest.raises(InputError, match="value 'two'"):
        fitted.transform_record({"age": "two"})


def test_report_survives_extreme_numeric_ranges() -> None:
    # 20 bins cannot be told apart between two neighbouring floats near 1e16.
    p = CleaningPlan.from_dict({"columns": {"c": "numeric"}})
    t = pl.DataFrame({"c": ["1e16", "1.0000000000000002e16"]})
    res = p.fit(t).transform(t)
    assert res.report["columns"]["c"]["histogram"]["counts"] == [2]

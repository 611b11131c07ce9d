"""infer_plan proposes the kinds and defaults the issue lists, and says why."""

from __future__ import annotations

import polars as pl

from chatpersona.clean import CleaningPlan, infer_plan


def _messy(n: int = 200) -> pl.DataFrame:
    dates = ["2024-03-05", "25/03/2024", "Mar 5 2024", "1709596800"]
    return pl.DataFrame(
        {
            "user_id": [f"u{i:04d}" for i in range(n)],
            "signup_date": [dates[i % 4] for i in range(n)],
            "age": [str(18 + (i * 7) % 60) if i % 20 else "" for i in range(n)],
            "income": [f"{1000 + i * 13.37:.2f}" for i in range(n)],
            "is_vip": [
                ["Y", "Yes", "true", "1", "N", "No", "false", "0", ""][i % 9] for i in range(n)
            ],
            "spend": [["$1,234.50", "1.234,50 €", "USD 12", "€ 45,00"][i % 4] for i in range(n)],
            "gender": [
                ["F", "female", " Female ", "M", "male", "MALE", ""][i % 7] for i in range(n)
            ],
            "notes": [f"customer wrote message number {i} about order {i * 31}" for i in range(n)],
            "updated_at": [f"2024-01-{1 + i % 28:02d}T10:00:00Z" for i in range(n)],
        }
    )


def test_inferred_kinds_and_defaults() -> None:
    plan = infer_plan(_messy())
    c = plan.columns
    assert {n: r.kind for n, r in c.items()} == {
        "user_id": "id",
        "signup_date": "date",
        "age": "integer",
        "income": "numeric",
        "is_vip": "boolean",
        "spend": "currency",
        "gender": "categorical",
        "notes": "text",
        "updated_at": "datetime",
    }
    assert c["age"].missing == "median" and c["age"].outliers.method == "zscore"
    assert c["income"].outliers.method == "zscore" and c["income"].outliers.action == "quarantine"
    assert c["signup_date"].dayfirst is True  # "25/03/2024" proves it
    assert c["gender"].synonyms == {"f": "female", "m": "male"}
    assert c["gender"].missing == "unknown"
    assert all(r.inferred and r.note for r in c.values())
    assert plan.duplicates.id_column == "user_id"
    assert plan.duplicates.latest_by == "updated_at"


def test_month_first_is_detected() -> None:
    df = pl.DataFrame({"d": ["03/25/2024", "04/01/2024", "12/31/2023"] * 10})
    rule = infer_plan(df).columns["d"]
    assert rule.kind == "date" and rule.dayfirst is False


def test_inferred_plan_round_trips_and_cleans() -> None:
    df = _messy()
    plan = infer_plan(df)
    assert CleaningPlan.from_yaml(plan.to_yaml()) == plan
    result = plan.fit(df).transform(df)
    r = result.report
    assert r["rows_accepted"] + r["rows_duplicate"] + r["rows_quarantined"] == df.height
    acc = result.accepted
    assert set(acc["gender"].unique().to_list()) == {"female", "male", "unknown"}
    assert acc.schema["is_vip"] == pl.Boolean
    assert acc["spend_currency"].unique().sort().to_list() == ["EUR", "USD"]
    assert acc.schema["signup_date"] == pl.Date
    assert all(col["inferred"] for col in r["columns"].values())


def test_pandas_input_is_accepted() -> None:
    pdf = _messy(50).to_pandas()
    plan = infer_plan(pdf)
    result = plan.fit(pdf).transform(pdf)
    assert result.report["rows_in"] == 50


def test_nested_columns_are_left_unplanned_and_pass_through() -> None:
    df = pl.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(30)],
            "type": ["message", "chat_started", "chat_ended"] * 10,
            "payload": [{"chat_id": f"c{i}", "csat": i % 5 + 1} for i in range(30)],
        }
    )
    plan = infer_plan(df)
    assert "payload" not in plan.columns
    result = plan.fit(df).transform(df)
    assert result.accepted["payload"].to_list() == df["payload"].to_list()
    assert result.report["rows_accepted"] == 30

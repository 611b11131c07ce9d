"""Cleaning the real IBM Telco churn file with an inferred plan: every row accounted for."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from chatpersona.clean import CleaningPlan, infer_plan, read_table
from chatpersona.cli.main import main

TELCO = Path("telco") / "WA_Fn-UseC_-Telco-Customer-Churn.csv"
INTERNET_ADDONS = [
    "OnlineSecurity",
    "OnlineBackup",
    "DeviceProtection",
    "TechSupport",
    "StreamingTV",
    "StreamingMovies",
]


@pytest.fixture
def telco(shared_data: Path) -> tuple[Path, pl.DataFrame]:
    path = shared_data / TELCO
    return path, read_table(path)


def _blank(df: pl.DataFrame, col: str) -> int:
    return df.select(pl.col(col).fill_null("").str.strip_chars().eq("").sum()).item()


def test_inferred_plan_cleans_telco_and_accounts_for_every_row(telco) -> None:
    path, raw = telco
    assert raw.height == 7043
    plan = infer_plan(raw)
    kinds = {name: rule.kind for name, rule in plan.columns.items()}
    assert kinds["customerID"] == "id"
    assert kinds["TotalCharges"] == "numeric"
    assert kinds["SeniorCitizen"] == "boolean"
    assert kinds["tenure"] == "integer"
    for col in INTERNET_ADDONS:
        assert kinds[col] == "boolean"
        assert "no internet service" in plan.columns[col].false_values
    assert "no phone service" in plan.columns["MultipleLines"].false_values

    result = plan.fit(raw).transform(raw, source=str(path))
    report = result.report
    assert report["rows_in"] == 7043
    assert report["rows_accepted"] + report["rows_duplicate"] + report["rows_quarantined"] == 7043
    assert result.accepted.height + result.duplicates.height + result.quarantine.height == 7043

    acc = result.accepted
    assert acc.schema["TotalCharges"] == pl.Float64
    assert acc["TotalCharges"].null_count() == 0
    blanks = _blank(raw, "TotalCharges")
    assert blanks > 0  # the file really has blank TotalCharges
    assert report["columns"]["TotalCharges"]["missing_before"] == blanks
    assert report["columns"]["TotalCharges"]["imputed"] == blanks - _quarantined_blank(result)
    median = report["columns"]["TotalCharges"]["stats"]["median"]
    assert report["columns"]["TotalCharges"]["fill_value"] == median
    for col in [*INTERNET_ADDONS, "MultipleLines", "SeniorCitizen"]:
        assert acc.schema[col] == pl.Boolean
        assert set(acc[col].unique().to_list()) <= {True, False}
    # 'No internet service' became False, exactly as many times as it occurs.
    joined = raw.select("customerID", "OnlineSecurity").join(
        acc.select("customerID", pl.col("OnlineSecurity").alias("clean")), on="customerID"
    )
    no_internet = joined.filter(pl.col("OnlineSecurity") == "No internet service")
    assert no_internet.height > 1000
    assert not no_internet["clean"].any()
    senior = raw.select("customerID", "SeniorCitizen").join(
        acc.select("customerID", pl.col("SeniorCitizen").alias("clean")), on="customerID"
    )
    ones = senior.filter(pl.col("SeniorCitizen") == "1")
    assert ones.height > 0 and ones["clean"].all()
    assert not senior.filter(pl.col("SeniorCitizen") == "0")["clean"].any()


def _quarantined_blank(result) -> int:
    q = result.quarantine
    return q.filter(pl.col("TotalCharges").fill_null("").str.strip_chars() == "").height


def test_quarantine_plan_for_blank_totalcharges(telco) -> None:
    _, raw = telco
    spec = infer_plan(raw).to_dict()
    spec["columns"]["TotalCharges"]["missing"] = "quarantine"
    plan = CleaningPlan.from_dict(spec)
    result = plan.fit(raw).transform(raw)
    r = result.report
    assert r["rows_accepted"] + r["rows_duplicate"] + r["rows_quarantined"] == 7043
    blank_rows = _blank(raw, "TotalCharges")
    assert r["reasons"].get("missing_required", 0) >= blank_rows
    q = result.quarantine.filter(pl.col("_column") == "TotalCharges")
    assert q.height == blank_rows
    assert set(q["_reason"].to_list()) == {"missing_required"}


def test_cli_clean_telco_writes_outputs_that_add_up(telco, tmp_path: Path) -> None:
    path, _ = telco
    out = tmp_path / "telco.parquet"
    main(
        [
            "clean",
            str(path),
            "-o",
            str(out),
            "--infer",
            "--report-html",
            str(tmp_path / "r.html"),
            "-q",
        ]
    )
    report = json.loads((tmp_path / "telco.report.json").read_text())
    accepted = pl.read_parquet(out)
    quarantine = pl.read_parquet(tmp_path / "telco.quarantine.parquet")
    duplicates = pl.read_parquet(tmp_path / "telco.duplicates.parquet")
    assert accepted.height + quarantine.height + duplicates.height == 7043 == report["rows_in"]
    assert report["rows_accepted"] == accepted.height
    html = (tmp_path / "r.html").read_text()
    assert "<svg" in html and "TotalCharges" in html

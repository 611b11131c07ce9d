"""The Spark cleaning engine against the Polars engine on a small table that exercises every
column kind, every missing strategy used by inferred plans, outliers, synonyms and both
duplicate rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from chatpersona.clean import CleaningPlan, FittedPlan
from chatpersona.clean.runner import clean_file, default_paths
from chatpersona.exceptions import InputError, PlanError
from chatpersona.scale import clean_file_spark, fit_plan_spark
from chatpersona.scale.spark import spark_read

PLAN = {
    "duplicates": {"exact_rows": True, "id_column": "user_id", "latest_by": "updated_at"},
    "columns": {
        "user_id": {"kind": "id"},
        "age": {"kind": "integer", "missing": "median", "outliers": {"method": "iqr"}},
        "score": {
            "kind": "numeric",
            "missing": "mean",
            "outliers": {"method": "mad", "action": "clip"},
        },
        "spend": {
            "kind": "currency",
            "missing": "median",
            "outliers": {"method": "zscore", "action": "flag"},
        },
        "vip": {"kind": "boolean", "missing": "mode"},
        "plan": {
            "kind": "categorical",
            "missing": "unknown",
            "synonyms": {"pro plan": "pro"},
            "fuzzy_threshold": 0.8,
        },
        "signup": {"kind": "date"},
        "updated_at": {"kind": "datetime"},
        "notes": {"kind": "text"},
    },
}


def _rows(n: int) -> dict[str, list[Any]]:
    plans = ["Basic", " basic ", "PREMIUM", "premium", "Pro plan", "pro", "", "Premum"]
    spends = ["$1,234.50", "1.234,50 €", "USD 12", "€ 45,00", "", "12", "abc"]
    dates = ["2024-03-05", "05/03/2024", "Mar 5 2024", "1709596800", "", "not a date"]
    vips = ["Y", "yes", "true", "1", "N", "no", "", "maybe"]
    ages = [str(20 + (i * 7) % 50) for i in range(n)]
    ages[3], ages[11], ages[17] = "420", "", "-3"
    return {
        "user_id": [f"U{i % (n - 4):04d}" for i in range(n)],
        "age": ages,
        "score": [str((i * 13) % 97 / 3) if i % 9 else "" for i in range(n)],
        "spend": [spends[i % len(spends)] for i in range(n)],
        "vip": [vips[i % len(vips)] for i in range(n)],
        "plan": [plans[i % len(plans)] for i in range(n)],
        "signup": [dates[i % len(dates)] for i in range(n)],
        "updated_at": [f"2025-01-{1 + i % 28:02d}T10:00:00Z" for i in range(n)],
        "notes": [f"  Note   {i % 5} " for i in range(n)],
    }


@pytest.fixture
def table(tmp_path: Path) -> Path:
    df = pl.DataFrame(_rows(120))
    df = pl.concat([df, df.slice(5, 2)])  # exact duplicate rows
    path = tmp_path / "in.csv"
    df.write_csv(path)
    return path


def _frames(stem: Path) -> dict[str, pl.DataFrame]:
    return {
        k: pl.read_parquet(f"{stem}{suffix}.parquet")
        for k, suffix in (
            ("accepted", ""),
            ("quarantine", ".quarantine"),
            ("duplicates", ".duplicates"),
        )
    }


def test_spark_and_polars_clean_identically(spark: Any, table: Path, tmp_path: Path) -> None:
    plan = CleaningPlan.from_dict(PLAN)
    ref = clean_file(
        table, default_paths(tmp_path / "pl.parquet", fitted_json=tmp_path / "pl.json"), plan=plan
    )
    got = clean_file_spark(
        table,
        default_paths(tmp_path / "sp.parquet", fitted_json=tmp_path / "sp.json"),
        plan=plan,
        spark=spark,
    )
    a, b = _frames(tmp_path / "pl"), _frames(tmp_path / "sp")
    for key in a:
        assert a[key].schema == b[key].schema, key
        assert a[key].equals(b[key]), key
    assert a["quarantine"].height > 0 and a["duplicates"].height > 0
    for key in ("rows_in", "rows_accepted", "rows_duplicate", "rows_quarantined", "reasons"):
        assert got[key] == ref[key], key
    assert got["rows_in"] == got["rows_accepted"] + got["rows_duplicate"] + got["rows_quarantined"]
    for name, col in ref["columns"].items():
        other = got["columns"][name]
        for key in (
            "missing_before",
            "invalid",
            "missing_after",
            "imputed",
            "standardized",
            "outliers",
        ):
            assert other[key] == col[key], (name, key)
        assert other.get("label_map") == col.get("label_map"), name
        assert other.get("histogram") == col.get("histogram"), name
    # the fitted plan JSON: same keys; medians, quartiles, MAD, modes exactly; means/stds to 1e-12
    fa = json.loads((tmp_path / "pl.json").read_text())["stats"]
    fb = json.loads((tmp_path / "sp.json").read_text())["stats"]
    assert fa.keys() == fb.keys()
    for name in fa:
        assert fa[name].keys() == fb[name].keys(), name
        for key, va in fa[name].items():
            vb = fb[name][key]
            if isinstance(va, float) and key in ("mean", "std", "lo", "hi", "fill"):
                assert vb == pytest.approx(va, rel=1e-12), (name, key)
            else:
                assert vb == va, (name, key)


def test_fitted_plan_from_spark_drives_the_record_path(spark: Any, table: Path) -> None:
    plan = CleaningPlan.from_dict(PLAN)
    fitted = fit_plan_spark(plan, spark_read(spark, table))
    again = FittedPlan.from_json(fitted.to_json())
    rows = pl.read_csv(table, infer_schema=False)
    result = again.transform(rows)
    first = rows.row(0, named=True)
    rec = again.transform_record(first)
    assert rec.ok and rec.record is not None
    assert (
        rec.record["user_id"]
        == result.accepted.filter(pl.col("user_id") == first["user_id"])["user_id"][0]
    )


def test_errors_name_the_column_and_row(spark: Any, table: Path, tmp_path: Path) -> None:
    bad = CleaningPlan.from_dict({"columns": {"nope": {"kind": "integer"}}})
    with pytest.raises(PlanError, match="nope"):
        clean_file_spark(table, default_paths(tmp_path / "x.parquet"), plan=bad, spark=spark)
    strict = CleaningPlan.from_dict(
        {"columns": {"spend": {"kind": "currency", "on_invalid": "error"}}}
    )
    with pytest.raises(InputError) as info:
        clean_file_spark(table, default_paths(tmp_path / "y.parquet"), plan=strict, spark=spark)
    assert info.value.fields.get("column") == "spend"
    assert info.value.fields.get("row") == 7  # the first "abc"
    assert info.value.fields.get("value") == "abc"


def test_clean_engine_spark_option_matches_polars(spark: Any, table: Path, tmp_path: Path) -> None:
    """`chatpersona clean --engine spark` (the root CLI) gives the polars engine's report."""
    from chatpersona.cli.main import app

    plan_path = tmp_path / "plan.yaml"
    CleaningPlan.from_dict(PLAN).to_yaml(plan_path)
    reports = {}
    for engine in ("polars", "spark"):
        out = tmp_path / f"{engine}.csv"
        res = CliRunner().invoke(
            app,
            ["clean", str(table), "-o", str(out), "--plan", str(plan_path), "--engine", engine,
             "--spark-master", "local[2]", "-q"],
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        reports[engine] = json.loads((tmp_path / f"{engine}.report.json").read_text())
        assert pl.read_csv(out).height == reports[engine]["rows_accepted"]
    for key in ("rows_in", "rows_accepted", "rows_duplicate", "rows_quarantined", "reasons"):
        assert reports["spark"][key] == reports["polars"][key], key
    bad = CliRunner().invoke(
        app, ["clean", str(table), "-o", str(tmp_path / "x.csv"), "--engine", "dask"]
    )
    assert bad.exit_code != 0

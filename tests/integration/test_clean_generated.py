"""Cleaning the project's own messy users table (the demo path): inferred plan, one row per
user (the latest update wins), every row accounted for, batch == one record at a time."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from chatpersona.clean import infer_plan, read_table
from chatpersona.datagen import generate


def test_generated_users_clean_with_an_inferred_plan(tmp_path: Path) -> None:
    generate(600, 3, tmp_path / "gen", events_per_user=5)
    raw = read_table(tmp_path / "gen" / "users.csv")
    plan = infer_plan(raw)
    assert plan.duplicates.id_column == "user_id"
    assert plan.duplicates.latest_by == "updated_at"
    kinds = {n: r.kind for n, r in plan.columns.items()}
    assert kinds["signup_date"] == "date" and kinds["monthly_spend"] == "currency"
    assert kinds["is_vip"] == "boolean" and kinds["age"] == "integer"

    fitted = plan.fit(raw)
    result = fitted.transform(raw)
    r = result.report
    assert r["rows_in"] == raw.height
    assert r["rows_accepted"] + r["rows_duplicate"] + r["rows_quarantined"] == raw.height
    acc = result.accepted
    assert acc["user_id"].n_unique() == acc.height  # one row per user
    # Where a user id repeats, the accepted row is the one with the latest updated_at.
    repeated = raw.group_by("user_id").len().filter(pl.col("len") > 1)["user_id"]
    assert repeated.len() > 0
    for uid in repeated.head(10).to_list():
        if uid not in acc["user_id"].to_list():
            continue  # its rows were quarantined (e.g. an outlier)
        kept = acc.filter(pl.col("user_id") == uid)["updated_at"].item()
        candidates = result.duplicates.filter(pl.col("user_id") == uid)["updated_at"]
        assert all(kept >= c for c in candidates.drop_nulls().to_list())
    assert set(acc["gender"].unique().to_list()) >= {"female", "male"}
    assert acc["monthly_spend"].null_count() == 0

    # Batch and one-record paths agree on every non-quarantined row.
    cleaned = {
        row["_row"]: {k: v for k, v in row.items() if k not in ("_row", "_reason")}
        for row in result.duplicates.iter_rows(named=True)
    }
    accepted_rows = iter(acc.iter_rows(named=True))
    quarantined = set(result.quarantine["_row"].to_list())
    for i, row in enumerate(raw.iter_rows(named=True), start=1):
        rec = fitted.transform_record(row)
        if i in quarantined:
            assert not rec.ok
        elif i in cleaned:
            assert rec.record == cleaned[i]
        else:
            assert rec.record == next(accepted_rows)

"""File-to-file cleaning behind ``chatpersona clean``: CSV and Parquet inputs by two streamed
passes (:mod:`chatpersona.clean.streamed`, never holding the raw table), JSON Lines in memory
(in batches when larger than 512 MiB or with ``batch_rows``). Every output is written
atomically."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from chatpersona.clean.fitted import FittedPlan
from chatpersona.clean.infer import infer_plan
from chatpersona.clean.io import (
    BatchWriter,
    atomic_write_text,
    iter_batches,
    read_table,
    table_format,
    write_table,
)
from chatpersona.clean.plan import CleaningPlan, DuplicateRule
from chatpersona.clean.polars_engine import duplicate_reason
from chatpersona.clean.report import merge_reports, render_html
from chatpersona.exceptions import InputError

__all__ = ["AUTO_BATCH_BYTES", "CleanPaths", "clean_file", "default_paths"]

AUTO_BATCH_BYTES = 512 * 1024**2  # JSON Lines inputs over this size are cleaned in batches
STREAMED_FORMATS = ("csv", "parquet")  # cleaned by two streamed passes (clean.streamed)
DEFAULT_BATCH_ROWS = 500_000
Progress = Callable[[str, int], None]


@dataclass(frozen=True)
class CleanPaths:
    """Where each output of one run goes."""

    output: Path
    quarantine: Path
    duplicates: Path
    report_json: Path
    report_html: Path | None = None
    fitted_json: Path | None = None
    plan_yaml: Path | None = None


def default_paths(output: Path, **given: Path | None) -> CleanPaths:
    """Defaults beside OUTPUT: ``<stem>.quarantine<ext>``, ``<stem>.duplicates<ext>``,
    ``<stem>.report.json``."""
    stem, ext = output.with_suffix(""), output.suffix
    return CleanPaths(
        output=output,
        quarantine=given.get("quarantine") or Path(f"{stem}.quarantine{ext}"),
        duplicates=given.get("duplicates") or Path(f"{stem}.duplicates{ext}"),
        report_json=given.get("report_json") or Path(f"{stem}.report.json"),
        report_html=given.get("report_html"),
        fitted_json=given.get("fitted_json"),
        plan_yaml=given.get("plan_yaml"),
    )


def _noop(stage: str, n: int) -> None:
    return None


def clean_file(
    source: Path,
    paths: CleanPaths,
    *,
    plan: CleaningPlan | None = None,
    fitted: FittedPlan | None = None,
    batch_rows: int | None = None,
    progress: Progress = _noop,
) -> dict[str, Any]:
    """Clean ``source`` into ``paths``; returns the report dict.

    With neither ``plan`` nor ``fitted`` a plan is inferred. ``batch_rows`` forces batch
    mode (``None``: batch mode only for files over 512 MiB).
    """
    for p in (paths.output, paths.quarantine, paths.duplicates):
        table_format(p)
    if not source.is_file():
        raise InputError("Input file not found", code="file_not_found", file=str(source))
    streamable = table_format(source) in STREAMED_FORMATS
    if batch_rows is None and not streamable and source.stat().st_size > AUTO_BATCH_BYTES:
        batch_rows = DEFAULT_BATCH_ROWS
    if batch_rows:
        report = _clean_batched(source, paths, plan, fitted, batch_rows, progress)
    elif streamable:
        report = _clean_streamed(source, paths, plan, fitted, progress)
    else:
        report = _clean_in_memory(source, paths, plan, fitted, progress)
    report["input"] = str(source)
    report["outputs"] = {
        "accepted": str(paths.output),
        "quarantine": str(paths.quarantine),
        "duplicates": str(paths.duplicates),
    }
    atomic_write_text(paths.report_json, json.dumps(report, indent=2, ensure_ascii=False))
    if paths.report_html is not None:
        atomic_write_text(
            paths.report_html, render_html(report, f"Cleaning report — {source.name}")
        )
    return report


def _prepare(
    sample: pl.DataFrame, plan: CleaningPlan | None, fitted: FittedPlan | None, paths: CleanPaths
) -> tuple[CleaningPlan, bool]:
    inferred = plan is None and fitted is None
    if fitted is not None:
        plan = fitted.plan
    if plan is None:
        plan = infer_plan(sample)
    if paths.plan_yaml is not None:
        plan.to_yaml(paths.plan_yaml)
    return plan, inferred


def _clean_streamed(
    source: Path,
    paths: CleanPaths,
    plan: CleaningPlan | None,
    fitted: FittedPlan | None,
    progress: Progress,
) -> dict[str, Any]:
    from chatpersona.clean.polars_engine import DEDUP_SAMPLE
    from chatpersona.clean.streamed import SAMPLE_ROWS, clean_streamed, read_sample

    scan, sample = read_sample(
        source, SAMPLE_ROWS if plan is None and fitted is None else DEDUP_SAMPLE
    )
    progress("read", sample.height)
    plan, inferred = _prepare(sample, plan, fitted, paths)
    report, fitted = clean_streamed(source, scan, sample, plan, fitted, paths, progress)
    if paths.fitted_json is not None:
        fitted.to_json(paths.fitted_json)
    report["plan_inferred"] = inferred
    report["mode"] = "streamed"
    return report


def _clean_in_memory(
    source: Path,
    paths: CleanPaths,
    plan: CleaningPlan | None,
    fitted: FittedPlan | None,
    progress: Progress,
) -> dict[str, Any]:
    df = read_table(source)
    progress("read", df.height)
    plan, inferred = _prepare(df, plan, fitted, paths)
    if fitted is None:
        fitted = FittedPlan(plan)
        result = fitted.fit_transform(df, source=str(source))
    else:
        result = fitted.transform(df, source=str(source))
    progress("fit", df.height)
    progress("transform", df.height)
    write_table(result.accepted, paths.output)
    write_table(result.quarantine, paths.quarantine)
    write_table(result.duplicates, paths.duplicates)
    if paths.fitted_json is not None:
        fitted.to_json(paths.fitted_json)
    progress("write", df.height)
    report = result.report
    report["plan_inferred"] = inferred
    report["mode"] = "in_memory"
    return report


def _clean_batched(
    source: Path,
    paths: CleanPaths,
    plan: CleaningPlan | None,
    fitted: FittedPlan | None,
    batch_rows: int,
    progress: Progress,
) -> dict[str, Any]:
    """Three streamed passes, never holding the raw table: (1) fit on every batch (keeping
    only parsed numbers and label counts), (2) transform each batch, writing quarantined rows
    out and spooling candidate rows to a temporary Parquet file while keeping only a row hash,
    the id and the timestamp per row, (3) decide duplicates on those small columns and copy
    the spool to the accepted and duplicate outputs."""
    first = next(iter_batches(source, min(batch_rows, 200_000)))
    plan, inferred = _prepare(first, plan, fitted, paths)
    if fitted is None:

        def counted() -> Any:
            for b in iter_batches(source, batch_rows):
                yield b
                progress("fit", b.height)

        fitted = FittedPlan(plan).fit_batches(counted(), source=str(source))
    dup_rule = plan.duplicates
    no_dups = CleaningPlan(
        plan.columns,
        duplicates=DuplicateRule(exact_rows=False),
        missing_values=plan.missing_values,
        unplanned=plan.unplanned,
    )
    local = FittedPlan(no_dups)
    local.stats_, local.columns_in_ = fitted.stats_, fitted.columns_in_
    local._compile()

    parts: list[dict[str, Any]] = []
    keys: list[pl.DataFrame] = []
    qwriter = BatchWriter(paths.quarantine)
    spool_dir = tempfile.TemporaryDirectory(prefix=".clean-spool-", dir=paths.output.parent)
    spool = BatchWriter(Path(spool_dir.name) / "candidates.parquet")
    writers = [qwriter, spool]
    try:
        offset = 0
        for batch in iter_batches(source, batch_rows):
            res = local.transform(batch, source=str(source))
            q = res.quarantine.with_columns(pl.col("_row") + offset)
            if q.height or offset == 0:
                qwriter.write(q)
            # Candidate rows keep their input row number so dedup can order them.
            row_numbers = (
                pl.DataFrame({"_in": pl.int_range(1, batch.height + 1, eager=True)})
                .filter(~pl.col("_in").is_in(res.quarantine["_row"].implode()))
                .select(pl.col("_in").cast(pl.UInt32) + offset)
                .to_series()
            )
            cand = res.accepted.with_columns(row_numbers.alias("_row"))
            spool.write(cand)
            key_cols = [pl.col("_row")]
            if dup_rule.exact_rows:
                key_cols.append(pl.struct(res.accepted.columns).hash(seed=0).alias("_hash"))
            if dup_rule.id_column:
                key_cols.append(pl.col(dup_rule.id_column).alias("_id"))
            if dup_rule.latest_by:
                key_cols.append(pl.col(dup_rule.latest_by).alias("_ts"))
            keys.append(cand.select(key_cols))
            parts.append(res.report)
            offset += batch.height
            progress("transform", batch.height)
        spool.commit()
        qwriter.commit()
        writers = []
        key = pl.concat(keys) if keys else pl.DataFrame({"_row": []}, schema={"_row": pl.UInt32})
        key = key.with_columns(
            (~pl.col("_hash").is_first_distinct() if "_hash" in key.columns else pl.lit(False))
            .fill_null(False)
            .alias("_exact")
        )
        reason = duplicate_reason(
            key,
            "_id" if "_id" in key.columns else None,
            "_ts" if "_ts" in key.columns else None,
        )
        decided = key.select("_row", reason)
        awriter, dwriter = BatchWriter(paths.output), BatchWriter(paths.duplicates)
        writers = [awriter, dwriter]
        lf = pl.scan_parquet(spool.path)
        n_dup = 0
        reasons: dict[str, int] = {}
        done = 0
        total = decided.height
        while done < total or done == 0:
            chunk = lf.slice(done, batch_rows).collect()
            tags = decided.slice(done, chunk.height)
            chunk = chunk.with_columns(tags["_dup"])
            acc = chunk.filter(pl.col("_dup").is_null()).drop("_row", "_dup")
            dup = chunk.filter(pl.col("_dup").is_not_null())
            cols = [c for c in dup.columns if c not in ("_row", "_dup")]
            dup = dup.select("_row", *cols, pl.col("_dup").alias("_reason"))
            if acc.height or done == 0:
                awriter.write(acc)
            if dup.height or done == 0:
                dwriter.write(dup)
            n_dup += dup.height
            for code in dup["_reason"].to_list():
                reasons[code] = reasons.get(code, 0) + 1
            done += chunk.height
            progress("write", chunk.height)
            if chunk.height == 0:
                break
        awriter.commit()
        dwriter.commit()
        writers = []
    finally:
        for w in writers:
            w.abort()
        spool_dir.cleanup()
    if paths.fitted_json is not None:
        fitted.to_json(paths.fitted_json)
    report = merge_reports(parts)
    report["rows_duplicate"] = n_dup
    report["rows_accepted"] -= n_dup
    for code, n in reasons.items():
        report["reasons"][code] = report["reasons"].get(code, 0) + n
    report["duplicates"] = dup_rule.to_dict()
    report["plan_inferred"] = inferred
    report["mode"] = "batched"
    report["batch_rows"] = batch_rows
    report["note"] = (
        "batch mode: per-column after-counts include rows later found to be duplicates; "
        "exact duplicate rows are matched by a 64-bit hash of the cleaned row"
    )
    return report

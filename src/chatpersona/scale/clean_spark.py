"""The cleaning stage on Apache Spark: the same :class:`CleaningPlan`, the same
:class:`FittedPlan` JSON, the same accepted rows, quarantine reasons, duplicates and
accounting as the Polars engine.

How the work is split (see ``docs/OPERATIONS.md``):

* **Parsing** (text -> typed value, missing / invalid flags, reason codes) runs inside
  ``mapInArrow`` on every partition, calling the Polars expressions of
  :mod:`chatpersona.clean.polars_engine` — the very code of the one-machine engine. The value
  grammars (four date shapes, epoch seconds, currency strings in two decimal conventions,
  NFKC text) would otherwise have to be re-written as Spark SQL and kept in step by hand; a
  drift would silently change what "the same plan" means. Cost: one Arrow hand-over per
  partition (no per-row Python call, no pickling); measured in ``bench/bench_scale.py``.
* **Fitting** is Spark aggregations over the parsed columns: counts, exact medians and
  quartiles (``percentile``, exact), MAD (a second exact ``percentile`` over
  ``|x - median|``), mean and sample standard deviation (``avg``, ``stddev_samp``), min/max,
  modes (``groupBy`` + count, ties to the smallest value, as on Polars) and label counts.
* **Duplicates** are two window functions (``row_number`` over the cleaned row ordered by the
  input row number; then over the id ordered by ``latest_by`` descending, nulls last, then row
  number) — the same rules as ``polars_engine.transform_frame``.
* **The report** (accounting, per-column counts, label maps, histograms) is Spark
  aggregations, shaped exactly like :func:`chatpersona.clean.report.build_report`.

Exactness: medians, min/max, modes, counts and every cleaned value are identical. Means and
standard deviations are summed in a different order than numpy (distributed partial sums), so
they — and the Z-score bounds built from them — can differ in the last bits (relative
difference ~1e-15); quartiles are interpolated with Spark's formula, which can differ from
numpy's by one ulp. A value would have to sit within that distance of a bound to be judged
differently.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from chatpersona.clean.fitted import FittedPlan, _decode, _json_value
from chatpersona.clean.infer import infer_plan
from chatpersona.clean.io import atomic_write_text, table_format
from chatpersona.clean.plan import NUMERIC_KINDS, CleaningPlan
from chatpersona.clean.polars_engine import (
    REASON_BY_KIND,
    apply_stages,
    as_text_frame,
    column_exprs,
    merge_stages,
    parse_stage,
    parsed_refs,
)
from chatpersona.clean.report import HIST_BINS, MAX_LABELS, render_html
from chatpersona.clean.runner import CleanPaths
from chatpersona.exceptions import DataError, InputError, PlanError
from chatpersona.scale.spark import (
    DEFAULT_MASTER,
    get_spark,
    is_local_master,
    spark_read,
    spark_write,
)

__all__ = ["clean_file_spark", "clean_frame_spark", "fit_plan_spark"]

Progress = Callable[[str, int], None]
TEXT_KINDS = ("id", "categorical", "text")
INFER_SAMPLE_ROWS = 200_000


def _noop(stage: str, n: int) -> None:
    return None


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _col(name: str) -> Any:
    from pyspark.sql import functions as F

    return F.col(_q(name))


# ---------------------------------------------------------------------- types
def _arrow_type(kind: str) -> Any:
    import pyarrow as pa

    return {
        "id": pa.string(),
        "categorical": pa.string(),
        "text": pa.string(),
        "boolean": pa.bool_(),
        "numeric": pa.float64(),
        "currency": pa.float64(),
        "integer": pa.int64(),
        "date": pa.date32(),
        "datetime": pa.timestamp("us", tz="UTC"),
    }[kind]


def _spark_type(kind: str) -> Any:
    from pyspark.sql import types as T

    return {
        "id": T.StringType(),
        "categorical": T.StringType(),
        "text": T.StringType(),
        "boolean": T.BooleanType(),
        "numeric": T.DoubleType(),
        "currency": T.DoubleType(),
        "integer": T.LongType(),
        "date": T.DateType(),
        "datetime": T.TimestampType(),
    }[kind]


def _to_batches(frame: pl.DataFrame, schema: Any) -> Iterator[Any]:
    import pyarrow as pa

    table = frame.to_arrow()
    arrays = []
    for f in schema:
        arr = table.column(f.name)
        if arr.type != f.type:
            arr = arr.cast(f.type)
        arrays.append(arr)
    yield from pa.Table.from_arrays(arrays, schema=schema).to_batches()


# ---------------------------------------------------------------- worker side
_PLANS: dict[str, CleaningPlan] = {}
_FITTED: dict[str, FittedPlan] = {}


def _plan_of(text: str) -> CleaningPlan:
    plan = _PLANS.get(text)
    if plan is None:
        plan = _PLANS[text] = CleaningPlan.from_dict(json.loads(text))
    return plan


def _fitted_of(text: str) -> FittedPlan:
    fitted = _FITTED.get(text)
    if fitted is None:
        fitted = _FITTED[text] = FittedPlan.from_json(text)
    return fitted


def _parse_fn(plan_text: str) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """``mapInArrow`` function: the Polars parse stage of every planned column."""

    def run(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        plan = _plan_of(plan_text)
        names = list(plan.columns)
        mv = plan.missing_values
        stages = merge_stages([parse_stage(r, i, mv) for i, r in enumerate(plan.columns.values())])
        invalid = [
            parsed_refs(r, i).invalid.alias(f"__x{i}") for i, r in enumerate(plan.columns.values())
        ]
        schema = pa.schema(_parse_fields(plan))
        keep = [f.name for f in schema]
        for b in batches:
            df = pl.from_arrow(pa.Table.from_batches([b]))
            assert isinstance(df, pl.DataFrame)
            text = as_text_frame(df.select(names), names)
            parsed = apply_stages(text.lazy(), stages).with_columns(invalid).select(keep).collect()
            yield from _to_batches(parsed, schema)

    return run


def _parse_fields(plan: CleaningPlan) -> list[Any]:
    import pyarrow as pa

    fields = []
    for i, rule in enumerate(plan.columns.values()):
        fields += [
            pa.field(f"__p{i}", _arrow_type(rule.kind)),
            pa.field(f"__m{i}", pa.bool_()),
            pa.field(f"__x{i}", pa.bool_()),
        ]
        if rule.kind == "currency":
            fields.append(pa.field(f"__k{i}", pa.string()))
    return fields


def _helper_fields(plan: CleaningPlan) -> list[tuple[str, str]]:
    """(name, kind-or-type) of the helper columns the transform pass returns per column."""
    out: list[tuple[str, str]] = []
    for i, rule in enumerate(plan.columns.values()):
        out.append((f"__v{i}", rule.kind))
        if rule.kind == "currency":
            out.append((f"__c{i}", "text"))
        if rule.outliers.action == "flag" and rule.outliers.method != "none":
            out.append((f"__o{i}", "boolean"))
        for h in ("m", "x", "n", "u", "s"):
            out.append((f"__{h}{i}", "boolean"))
        if rule.kind in ("categorical", "boolean"):
            out.append((f"__t{i}", "text"))
    out += [("_reason", "text"), ("_column", "text")]
    return out


def _transform_fn(
    fitted_text: str, in_schema_json: str
) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """``mapInArrow`` function: the Polars transform expressions of every column (values,
    reasons, bookkeeping flags); the input columns and ``_row`` are passed through."""

    def run(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        fitted = _fitted_of(fitted_text)
        plan = fitted.plan
        names = list(plan.columns)
        exprs: list[pl.Expr] = []
        stage1 = []
        for i, (name, rule) in enumerate(plan.columns.items()):
            st = fitted.stats_[name]
            s1, e, _outs = column_exprs(
                rule, i, st, plan.missing_values, _decode(rule.kind, st.get("fill"))
            )
            stage1.append(s1)
            exprs += e
        idx = range(len(names))
        reason = pl.coalesce([pl.col(f"__r{i}") for i in idx]).alias("_reason")
        reason_col = pl.coalesce(
            [pl.when(pl.col(f"__r{i}").is_not_null()).then(pl.lit(names[i])) for i in idx]
        ).alias("_column")
        texts = [
            pl.col(name).alias(f"__t{i}")
            for i, (name, rule) in enumerate(plan.columns.items())
            if rule.kind in ("categorical", "boolean")
        ]
        stages = merge_stages(stage1)
        hfields = [pa.field(h, _arrow_type(k)) for h, k in _helper_fields(plan)]
        hschema = pa.schema(hfields)
        in_names = json.loads(in_schema_json)
        for b in batches:
            table = pa.Table.from_batches([b])
            df = pl.from_arrow(table)
            assert isinstance(df, pl.DataFrame)
            text = as_text_frame(df.select(names), names)
            helpers = (
                apply_stages(text.lazy(), stages)
                .with_columns(exprs)
                .with_columns(reason, reason_col, *texts)
                .select([f.name for f in hfields])
                .collect()
            )
            if helpers["_reason"].dtype.is_integer():
                # newer polars_engine: integer reason codes until output
                from chatpersona.clean import polars_engine as pe

                codes = dict(enumerate(getattr(pe, "REASON_CODES", ())))
                helpers = helpers.with_columns(
                    pl.col("_reason").replace_strict(codes, return_dtype=pl.Utf8)
                )
            htable = pa.Table.from_batches(list(_to_batches(helpers, hschema)), schema=hschema)
            cols = [table.column(n) for n in in_names] + list(htable.columns)
            out_schema = pa.schema([*(table.schema.field(n) for n in in_names), *hfields])
            yield from pa.Table.from_arrays(cols, schema=out_schema).to_batches()

    return run


# ------------------------------------------------------------------ row numbers
def _with_row_numbers(df: Any) -> Any:
    """Add ``_row`` = 1-based input row number (file order), without a single-partition
    window: per-partition counts are collected, then offset."""
    from pyspark.sql import functions as F

    mask = (1 << 33) - 1
    tagged = df.withColumn("__mid", F.monotonically_increasing_id())
    counts = tagged.groupBy(F.shiftright("__mid", 33).alias("pid")).count().orderBy("pid").collect()
    offsets: dict[int, int] = {}
    total = 0
    for r in counts:
        offsets[int(r["pid"])] = total
        total += int(r["count"])
    if not offsets:
        return tagged.withColumn("_row", F.lit(0).cast("long")).drop("__mid"), 0
    size = max(offsets) + 1
    arr = F.array(*[F.lit(offsets.get(p, 0)).cast("long") for p in range(size)])
    pid = F.shiftright("__mid", 33).cast("int")
    row = F.element_at(arr, pid + 1) + F.col("__mid").bitwiseAND(F.lit(mask)) + F.lit(1)
    return tagged.withColumn("_row", row.cast("long")).drop("__mid"), total


# ------------------------------------------------------------------------ fit
def _mode_rows(df: Any, col: Any, limit: int) -> list[tuple[Any, int]]:
    from pyspark.sql import functions as F

    vc = df.where(col.isNotNull()).groupBy(col.alias("value")).agg(F.count("*").alias("n"))
    rows = vc.orderBy(F.col("n").desc(), F.col("value").asc()).limit(limit).collect()
    return [(r["value"], int(r["n"])) for r in rows]


def fit_plan_spark(
    plan: CleaningPlan, df: Any, *, source: str | None = None, parsed: Any = None
) -> FittedPlan:
    """Fit ``plan`` on a Spark DataFrame with Spark aggregations; returns a
    :class:`FittedPlan` equal (up to the last bits of means/deviations) to
    ``plan.fit(<the same table in Polars>)``.

    Raises
    ------
    PlanError
        If a planned column is not in the table.
    DataError
        If the table is empty or a mean/median/mode has no valid value to learn from.
    """

    absent = [c for c in plan.columns if c not in df.columns]
    if absent:
        raise PlanError(
            f"The plan names column(s) {absent} that the table does not have"
            + (f" ({source})" if source else "")
            + f". Table columns: {df.columns}.",
            code="unknown_column",
            column=absent[0],
            columns=absent,
            file=source,
        )
    own = parsed is None
    if parsed is None:
        parsed = _parse_frame(plan, df).persist()
    try:
        return _fit_parsed(plan, df, parsed, source)
    finally:
        if own:
            parsed.unpersist()


def _label_counts(parsed: Any, idx: list[int]) -> dict[int, list[tuple[Any, int]]]:
    """Value counts of several parsed label columns in one Spark job (values as text, mapped
    back to booleans for boolean columns), sorted by count desc then value."""
    from pyspark.sql import functions as F

    if not idx:
        return {}
    parts = [
        parsed.where(F.col(f"__p{i}").isNotNull())
        .groupBy(F.col(f"__p{i}").cast("string").alias("value"))
        .agg(F.count("*").alias("n"))
        .withColumn("i", F.lit(i))
        for i in idx
    ]
    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part)
    out: dict[int, list[tuple[Any, int]]] = {i: [] for i in idx}
    for r in union.collect():
        out[int(r["i"])].append((r["value"], int(r["n"])))
    for i in out:
        out[i].sort(key=lambda vn: (-vn[1], vn[0]))
    return out


def _fit_parsed(plan: CleaningPlan, df: Any, parsed: Any, source: str | None) -> FittedPlan:
    from pyspark.sql import functions as F

    names = list(plan.columns)
    aggs = [F.count("*").alias("__n")]
    for i, rule in enumerate(plan.columns.values()):
        p = F.col(f"__p{i}")
        aggs += [
            F.sum(F.col(f"__m{i}").cast("long")).alias(f"m{i}"),
            F.sum(F.col(f"__x{i}").cast("long")).alias(f"x{i}"),
            F.count(p).alias(f"v{i}"),
        ]
        if rule.kind in NUMERIC_KINDS:
            d = p.cast("double")
            aggs += [
                F.avg(d).alias(f"mean{i}"),
                F.stddev_samp(d).alias(f"std{i}"),
                F.expr(f"percentile(cast(__p{i} as double), array(0.5, 0.25, 0.75))").alias(
                    f"pct{i}"
                ),
                F.min(d).alias(f"min{i}"),
                F.max(d).alias(f"max{i}"),
            ]
    names = list(plan.columns)
    del names
    row = parsed.agg(*aggs).collect()[0]
    n_rows = int(row["__n"])
    if n_rows == 0:
        raise DataError("Cannot fit a cleaning plan on no data.", file=source)
    mad_aggs = []
    for i, rule in enumerate(plan.columns.values()):
        if rule.kind in NUMERIC_KINDS and row[f"v{i}"]:
            med = float(row[f"pct{i}"][0])
            mad_aggs.append(
                F.expr(f"percentile(abs(cast(__p{i} as double) - {med!r}), 0.5)").alias(f"mad{i}")
            )
    mads = parsed.agg(*mad_aggs).collect()[0] if mad_aggs else {}
    helper = FittedPlan(plan)
    label_idx = [
        i for i, r in enumerate(plan.columns.values()) if r.kind in ("categorical", "boolean")
    ]
    label_counts = _label_counts(parsed, label_idx)
    stats: dict[str, dict[str, Any]] = {}
    for i, (name, rule) in enumerate(plan.columns.items()):
        p = F.col(f"__p{i}")
        st: dict[str, Any] = {
            "n": n_rows,
            "n_missing": int(row[f"m{i}"] or 0),
            "n_invalid": int(row[f"x{i}"] or 0),
        }
        n_valid = int(row[f"v{i}"])
        if rule.kind in NUMERIC_KINDS:
            st["n_valid"] = n_valid
            st.update(_numeric_stats(rule, row, mads, i, n_valid))
            if rule.missing == "mode":
                col = p.cast("long") if rule.kind == "integer" else p.cast("double")
                top = _mode_rows(parsed, col, 1)
                st["mode"] = top[0][0] if top else None
        elif rule.kind in ("categorical", "boolean"):
            st["n_valid"] = n_valid
            counts = label_counts[i]
            if rule.kind == "boolean":
                counts = [(v == "true", n) for v, n in counts]
            top = counts[:200]
            st["mode"] = top[0][0] if top else None
            st["n_labels"] = len(counts)
            if rule.kind == "categorical" and rule.fuzzy_threshold is not None:
                vc = pl.DataFrame(
                    {"value": [v for v, _ in top], "n": [n for _, n in top]},
                    schema={"value": pl.Utf8, "n": pl.UInt32},
                )
                st["fuzzy_suggestions"] = helper._fuzzy(vc, rule.fuzzy_threshold)
        else:
            st["n_valid"] = n_valid
        if rule.kind == "currency":
            top = _mode_rows(parsed, F.col(f"__k{i}"), 1)
            st["currency_mode"] = (top[0][0] if top else None) or rule.default_currency
        st["fill"] = helper._fill(rule, st)
        stats[name] = {k: _json_value(v) for k, v in st.items()}
    fitted = FittedPlan(plan)
    fitted.stats_ = stats
    fitted.columns_in_ = list(df.columns)
    fitted._compile()
    return fitted


def _numeric_stats(rule: Any, row: Any, mads: Any, i: int, n: int) -> dict[str, Any]:
    if n == 0:
        return {"lo": None, "hi": None}
    st: dict[str, Any] = {}
    st["mean"] = float(row[f"mean{i}"])
    st["std"] = float(row[f"std{i}"]) if n > 1 and row[f"std{i}"] is not None else 0.0
    med, q1, q3 = (float(v) for v in row[f"pct{i}"])
    st["median"] = med
    st["q1"], st["q3"] = q1, q3
    st["mad"] = float(mads[f"mad{i}"])
    st["min"], st["max"] = float(row[f"min{i}"]), float(row[f"max{i}"])
    method, t = rule.outliers.method, rule.outliers.effective_threshold
    lo = hi = None
    if method == "zscore" and st["std"] > 0:
        lo, hi = st["mean"] - t * st["std"], st["mean"] + t * st["std"]
    elif method == "iqr":
        iqr = st["q3"] - st["q1"]
        lo, hi = st["q1"] - t * iqr, st["q3"] + t * iqr
    elif method == "mad" and st["mad"] > 0:
        half = t * st["mad"] / 0.6745
        lo, hi = st["median"] - half, st["median"] + half
    st["lo"], st["hi"] = lo, hi
    return st


def _parse_frame(plan: CleaningPlan, df: Any) -> Any:
    from pyspark.sql import types as T

    names = list(plan.columns)
    fields: list[Any] = []
    for i, rule in enumerate(plan.columns.values()):
        fields += [
            T.StructField(f"__p{i}", _spark_type(rule.kind)),
            T.StructField(f"__m{i}", T.BooleanType()),
            T.StructField(f"__x{i}", T.BooleanType()),
        ]
        if rule.kind == "currency":
            fields.append(T.StructField(f"__k{i}", T.StringType()))
    plan_text = json.dumps(plan.to_dict())
    return df.select([_col(n) for n in names]).mapInArrow(
        _parse_fn(plan_text), T.StructType(fields)
    )


# ------------------------------------------------------------------ transform
class SparkCleanResult:
    """The Spark DataFrames of one transform (lazy) plus the report dict."""

    def __init__(
        self, accepted: Any, quarantine: Any, duplicates: Any, report: dict[str, Any]
    ) -> None:
        self.accepted = accepted
        self.quarantine = quarantine
        self.duplicates = duplicates
        self.report = report


def clean_frame_spark(
    fitted: FittedPlan,
    df: Any,
    *,
    source: str | None = None,
    frame_out: list[Any] | None = None,
    sort: bool = True,
) -> SparkCleanResult:
    """Apply a fitted plan to a Spark DataFrame (with a ``_row`` column of 1-based input row
    numbers, see :func:`_with_row_numbers`); returns Spark DataFrames ordered by ``_row`` and
    the report dict (same shape and counts as the Polars engine's)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    fitted._check_fitted()
    plan = fitted.plan
    in_names = [c for c in df.columns]
    src_names = [c for c in in_names if c != "_row"]
    absent = [c for c in plan.columns if c not in src_names]
    if absent:
        raise PlanError(
            f"The plan names column(s) {absent} that the table does not have"
            + (f" ({source})" if source else "")
            + f". Table columns: {src_names}.",
            code="unknown_column",
            column=absent[0],
            columns=absent,
            file=source,
        )
    hfields = [T.StructField(h, _spark_type(k)) for h, k in _helper_fields(plan)]
    schema = T.StructType([*df.schema.fields, *hfields])
    frame = df.mapInArrow(_transform_fn(fitted.to_json(), json.dumps(in_names)), schema)
    if any(r.on_invalid == "error" for r in plan.columns.values()):
        frame = frame.persist()
        if frame_out is not None:
            frame_out.append(frame)

    names = list(plan.columns)
    for i, (name, rule) in enumerate(plan.columns.items()):
        if rule.on_invalid != "error":
            continue
        bad = (
            frame.where(F.col(f"__x{i}"))
            .orderBy("_row")
            .select("_row", _col(name).alias("v"))
            .limit(1)
            .collect()
        )
        if bad:
            raise InputError(
                f"Cannot parse a {rule.kind} value",
                code=REASON_BY_KIND.get(rule.kind),
                file=source,
                column=name,
                row=int(bad[0]["_row"]),
                value=bad[0]["v"],
            )

    out_pairs: list[tuple[str, str]] = []
    for c in src_names:
        if c in plan.columns:
            i = names.index(c)
            rule = plan.columns[c]
            out_pairs.append((f"__v{i}", c))
            if rule.kind == "currency":
                out_pairs.append((f"__c{i}", f"{c}_currency"))
            if rule.outliers.action == "flag" and rule.outliers.method != "none":
                out_pairs.append((f"__o{i}", f"{c}_outlier"))
        elif plan.unplanned == "keep":
            out_pairs.append((c, c))
    helper_cols = [h for h, _ in out_pairs]
    q = F.col("_reason").isNotNull()
    dups = plan.duplicates
    marked = frame.withColumn("__q", q)
    if dups.exact_rows and helper_cols:
        w = Window.partitionBy("__q", *[_col(h) for h in helper_cols]).orderBy("_row")
        marked = marked.withColumn("__exact", ~F.col("__q") & (F.row_number().over(w) > 1))
    else:
        marked = marked.withColumn("__exact", F.lit(False))
    dup_id = F.lit(False)
    if dups.id_column is not None:
        id_h = f"__v{names.index(dups.id_column)}"
        order = [F.col("_row").asc()]
        if dups.latest_by is not None:
            ts_h = f"__v{names.index(dups.latest_by)}"
            order = [F.col(ts_h).desc_nulls_last(), F.col("_row").asc()]
        w2 = Window.partitionBy("__q", "__exact", id_h).orderBy(*order)
        marked = marked.withColumn("__rank", F.row_number().over(w2))
        dup_id = ~F.col("__q") & ~F.col("__exact") & (F.col("__rank") > 1)
    marked = marked.withColumn(
        "_dup",
        F.when(F.col("__exact"), F.lit("duplicate_row")).when(dup_id, F.lit("duplicate_id")),
    ).persist()
    acc = ~F.col("__q") & F.col("_dup").isNull()
    # Each output keeps ``_row``; ``sort=True`` orders globally (a range shuffle), otherwise
    # the single-file writer sorts on the driver while merging the parts.
    accepted = marked.where(acc).select("_row", *[_col(h).alias(o) for h, o in out_pairs])
    duplicates = marked.where(F.col("_dup").isNotNull()).select(
        "_row", *[_col(h).alias(o) for h, o in out_pairs], F.col("_dup").alias("_reason")
    )
    quarantine = marked.where(F.col("__q")).select(
        "_row", *[_col(c) for c in src_names], "_reason", "_column"
    )
    if sort:
        accepted, duplicates, quarantine = (
            d.orderBy("_row") for d in (accepted, duplicates, quarantine)
        )
    report = _report(fitted, marked, acc, out_pairs)
    if frame_out is not None:
        frame_out.append(marked)
    return SparkCleanResult(accepted, quarantine, duplicates, report)


def _report(
    fitted: FittedPlan, marked: Any, acc: Any, out_pairs: list[tuple[str, str]]
) -> dict[str, Any]:
    from pyspark.sql import functions as F

    plan = fitted.plan
    value_of = {o: h for h, o in out_pairs}
    aggs = [
        F.count("*").alias("rows_in"),
        F.sum(acc.cast("long")).alias("rows_accepted"),
        F.sum(F.col("_dup").isNotNull().cast("long")).alias("rows_duplicate"),
        F.sum(F.col("__q").cast("long")).alias("rows_quarantined"),
    ]
    numeric: list[int] = []
    for i, (name, rule) in enumerate(plan.columns.items()):
        has_fill = fitted.stats_[name].get("fill") is not None
        v = F.col(f"__v{i}")
        aggs += [
            F.sum(F.col(f"__m{i}").cast("long")).alias(f"missing_before{i}"),
            F.sum(F.col(f"__x{i}").cast("long")).alias(f"invalid{i}"),
            F.sum(F.col(f"__u{i}").cast("long")).alias(f"outliers{i}"),
            F.sum((F.col(f"__n{i}") & acc & F.lit(has_fill)).cast("long")).alias(f"imputed{i}"),
            F.sum((F.col(f"__s{i}") & acc).cast("long")).alias(f"standardized{i}"),
            F.sum((acc & v.isNull()).cast("long")).alias(f"missing_after{i}"),
        ]
        if rule.kind in NUMERIC_KINDS and name in value_of:
            numeric.append(i)
            d = F.when(acc, v.cast("double"))
            aggs += [F.min(d).alias(f"hmin{i}"), F.max(d).alias(f"hmax{i}")]
    sums = marked.agg(*aggs).collect()[0].asDict()
    reasons: dict[str, int] = {}
    code = F.coalesce(F.col("_reason"), F.col("_dup"))
    for r in marked.where(code.isNotNull()).groupBy(code.alias("code")).count().collect():
        reasons[str(r["code"])] = reasons.get(str(r["code"]), 0) + int(r["count"])
    label_idx = [
        i for i, r in enumerate(plan.columns.values()) if r.kind in ("categorical", "boolean")
    ]
    label_maps = _label_maps(marked, label_idx)
    hists = _histograms(marked, acc, numeric, sums)
    columns: dict[str, Any] = {}
    for i, (name, rule) in enumerate(plan.columns.items()):
        entry: dict[str, Any] = {
            "kind": rule.kind,
            "inferred": rule.inferred,
            "rule": rule.to_dict(),
            "missing_before": int(sums[f"missing_before{i}"] or 0),
            "invalid": int(sums[f"invalid{i}"] or 0),
            "missing_after": int(sums[f"missing_after{i}"] or 0),
            "imputed": int(sums[f"imputed{i}"] or 0),
            "fill_value": fitted.stats_[name].get("fill"),
            "standardized": int(sums[f"standardized{i}"] or 0),
            "outliers": int(sums[f"outliers{i}"] or 0),
            "stats": fitted.stats_[name],
        }
        if rule.note:
            entry["note"] = rule.note
        if rule.kind in ("categorical", "boolean"):
            entry["label_map"] = label_maps[i]
        if rule.kind in NUMERIC_KINDS:
            entry["bounds"] = [fitted.stats_[name].get("lo"), fitted.stats_[name].get("hi")]
            entry["histogram"] = hists.get(i)
        columns[name] = entry
    return {
        "rows_in": int(sums["rows_in"]),
        "rows_accepted": int(sums["rows_accepted"] or 0),
        "rows_duplicate": int(sums["rows_duplicate"] or 0),
        "rows_quarantined": int(sums["rows_quarantined"] or 0),
        "reasons": reasons,
        "columns": columns,
        "duplicates": plan.duplicates.to_dict(),
    }


def _label_maps(marked: Any, idx: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Raw label -> cleaned label counts (all rows, not missing, changed or unparseable) of
    several columns in one Spark job; top 30 per column by count, then raw label."""
    from pyspark.sql import functions as F

    if not idx:
        return {}
    parts = []
    for i in idx:
        raw, value = F.col(f"__t{i}"), F.col(f"__v{i}").cast("string")
        keep = ~F.col(f"__m{i}") & F.coalesce(raw != value, F.lit(True))
        parts.append(
            marked.where(keep)
            .groupBy(raw.alias("raw"), value.alias("value"))
            .agg(F.count("*").alias("count"))
            .withColumn("i", F.lit(i))
        )
    union = parts[0]
    for part in parts[1:]:
        union = union.unionByName(part)
    rows: dict[int, list[tuple[str, Any, int]]] = {i: [] for i in idx}
    for r in union.collect():
        rows[int(r["i"])].append((r["raw"], r["value"], int(r["count"])))
    out: dict[int, list[dict[str, Any]]] = {}
    for i, entries in rows.items():
        entries.sort(key=lambda e: (-e[2], e[0]))
        out[i] = [{"from": f, "to": t, "count": n} for f, t, n in entries[:MAX_LABELS]]
    return out


def _histograms(
    marked: Any, acc: Any, numeric: list[int], sums: dict[str, Any]
) -> dict[int, dict[str, Any]]:
    """``np.histogram(values, bins=20)`` of the accepted values, counted by Spark: the edges
    depend only on min and max; a value falls in bin ``j`` when ``edges[j] <= x <
    edges[j+1]`` (the last bin closed), which is what numpy's corrected index computes."""
    from pyspark.sql import functions as F

    edges_of: dict[int, np.ndarray] = {}
    aggs = []
    for i in numeric:
        mn, mx = sums[f"hmin{i}"], sums[f"hmax{i}"]
        if mn is None or mx is None or not (math.isfinite(mn) and math.isfinite(mx)):
            continue
        edges = np.histogram_bin_edges(np.array([mn, mx], dtype=np.float64), bins=HIST_BINS)
        edges_of[i] = edges
        x = F.col(f"__v{i}").cast("double")
        b = sum(
            (F.when(x >= F.lit(float(e)), 1).otherwise(0) for e in edges[1:-1]),
            F.lit(0),
        )
        binned = F.when(acc & x.isNotNull(), b)
        aggs += [
            F.sum(F.when(binned == j, 1).otherwise(0)).alias(f"h{i}_{j}") for j in range(HIST_BINS)
        ]
    if not aggs:
        return {}
    row = marked.agg(*aggs).collect()[0]
    return {
        i: {
            "edges": [float(e) for e in edges],
            "counts": [int(row[f"h{i}_{j}"] or 0) for j in range(HIST_BINS)],
        }
        for i, edges in edges_of.items()
    }


# ------------------------------------------------------------------- file level
def clean_file_spark(
    source: str | Path,
    paths: CleanPaths,
    *,
    plan: CleaningPlan | None = None,
    fitted: FittedPlan | None = None,
    master: str = DEFAULT_MASTER,
    spark: Any = None,
    single_file: bool | None = None,
    progress: Progress = _noop,
) -> dict[str, Any]:
    """Clean ``source`` into ``paths`` on Spark; returns the same report dict as
    :func:`chatpersona.clean.runner.clean_file` (``mode`` is ``"spark"``).

    Parameters
    ----------
    source : input CSV, Parquet or JSON Lines file (or Spark output directory; ``hdfs://``,
        ``s3a://`` ... paths work on a cluster).
    paths : where the outputs go (:func:`chatpersona.clean.runner.default_paths`).
    plan, fitted : a plan to fit, or an already fitted plan to apply (neither: a plan is
        inferred from the first 200,000 rows, as the Polars engine's batch mode does).
    master : the Spark master (``local[*]``, ``local[2]``, ``spark://host:7077``, ``yarn`` ...).
    spark : an existing SparkSession (overrides ``master``).
    single_file : write each output as one file (default for local masters) instead of a
        Spark directory of part files.
    """
    for p in (paths.output, paths.quarantine, paths.duplicates):
        table_format(p)
    src = str(source)
    session = spark if spark is not None else get_spark(master)
    local = is_local_master(session.sparkContext.master)
    if single_file is None:
        single_file = local
    raw = spark_read(session, src)
    df, n_rows = _with_row_numbers(raw)
    df = df.persist()
    progress("read", n_rows)
    inferred = plan is None and fitted is None
    if fitted is not None:
        plan = fitted.plan
    if plan is None:
        sample = raw.limit(INFER_SAMPLE_ROWS).toArrow()
        plan = infer_plan(pl.from_arrow(sample))
    if paths.plan_yaml is not None:
        plan.to_yaml(paths.plan_yaml)
    frames: list[Any] = []
    try:
        if fitted is None:
            fitted = fit_plan_spark(plan, df.drop("_row"), source=src)
        progress("fit", n_rows)
        result = clean_frame_spark(fitted, df, source=src, frame_out=frames, sort=not single_file)
        progress("transform", n_rows)
        rows: dict[str, pl.DataType] = {"_row": pl.UInt32()}
        spark_write(
            result.accepted if single_file else result.accepted.drop("_row"),
            paths.output,
            single_file=single_file,
            sort_by="_row",
            drop=["_row"],
        )
        for frame, path in (
            (result.quarantine, paths.quarantine),
            (result.duplicates, paths.duplicates),
        ):
            spark_write(frame, path, single_file=single_file, casts=rows, sort_by="_row")
        progress("write", n_rows)
    finally:
        for f in frames:
            f.unpersist()
        df.unpersist()
    if paths.fitted_json is not None:
        fitted.to_json(paths.fitted_json)
    report = result.report
    report["plan_inferred"] = inferred
    report["mode"] = "spark"
    report["spark"] = {"master": session.sparkContext.master, "single_file": single_file}
    report["input"] = src
    report["outputs"] = {
        "accepted": str(paths.output),
        "quarantine": str(paths.quarantine),
        "duplicates": str(paths.duplicates),
    }
    atomic_write_text(paths.report_json, json.dumps(report, indent=2, ensure_ascii=False))
    if paths.report_html is not None:
        atomic_write_text(
            paths.report_html, render_html(report, f"Cleaning report — {Path(src).name}")
        )
    return report

"""Features and segmentation on Apache Spark, exported into the same
:class:`~chatpersona.segment.SegmentModel` artifact as the one-machine run.

What runs where (see ``docs/OPERATIONS.md``):

* **Feature spec fit** (one-hot categories, imputation medians) on a seeded driver sample of
  at most ``sample_rows`` users (all users when there are fewer: then identical to the
  one-machine fit).
* **Feature rows** for every user inside ``mapInArrow``, calling
  :meth:`FittedFeatureSpec.transform` — the spec's own Polars code, so a feature means the
  same thing on both engines (a Spark SQL re-write would have to be kept in step by hand).
* **Scaling + PCA**: moments on Spark — per-partition sums and cross-products of the feature
  rows (shifted by the sample mean for numerical stability), reduced on the driver, exactly
  what Spark MLlib's ``RowMatrix.computeCovariance`` does; exact medians/quartiles
  (``percentile``) for robust scaling. The F x F eigen-decomposition then runs on the driver
  with the one-machine :class:`~chatpersona.features.batch.Preprocessor` rules (component
  count, deterministic signs), so the artifact is the same.
* **K-Means**: Spark MLlib (``pyspark.mllib.clustering.KMeans``, Lloyd iterations) over the
  projected rows of *all* users, seeded with the one-machine k-means++ (``n_init`` restarts)
  on the driver sample — MLlib's own ``k-means||`` seeding fell into poor local optima on the
  generated customers (ARI 0.36 against the one-machine run), the seeded run agrees (ARI 1.0).
  k is chosen, when not given, by the one-machine silhouette sweep on the driver sample. The
  centres become the model's ``centroid`` rule. ``bisecting``: MLlib's bisecting K-Means over
  all users (rows shifted away from the origin for the fit: MLlib's split start is
  proportional to the parent centre's norm, ~0 for PCA output, and the root never split);
  its leaf centres become the ``centroid`` rule.
* **Hierarchical, HDBSCAN, DBSCAN** (and ``auto``'s comparison): fitted on the driver sample
  with the one-machine segmenters; every user is then assigned at scale with the model's own
  rule (nearest centroid / nearest core within its radius) inside ``mapInArrow``.
* **Segment descriptions** come from the driver sample, with sizes and shares replaced by the
  exact counts of the full assignment.

* **Event features** (``events=``): the event log is parsed per partition by the one-machine
  :func:`~chatpersona.features.batch.flatten_events`, repartitioned by ``user_id`` (every
  event of a user in one partition), and aggregated per partition by
  :func:`~chatpersona.features.batch.event_features_frame` — the same Polars code, and
  exact, since every event feature is a per-user aggregate. ``as_of`` defaults to the last
  event time, as on one machine. The per-user rows are left-joined to the users on Spark and
  handed to the spec as ``event_features``.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from chatpersona.exceptions import DataError, InputError, ParameterError
from chatpersona.features.batch import (
    EVENT_COLUMNS,
    Preprocessor,
    event_features_frame,
    flatten_events,
)
from chatpersona.features.online import EVENT_FEATURES
from chatpersona.features.spec import FeatureSpec, FittedFeatureSpec
from chatpersona.scale.spark import DEFAULT_MASTER, get_spark, spark_read
from chatpersona.segment.base import NOISE, BaseSegmenter, seeded_sample, small_threads
from chatpersona.segment.describe import describe_segments
from chatpersona.segment.kmeans import BisectingKMeansSegmenter, KMeansSegmenter, sweep_k
from chatpersona.segment.model import SegmentModel
from chatpersona.segment.run import (
    ALGORITHMS,
    AUTO_CANDIDATES,
    CHOICE_RULE,
    SegmentationResult,
    _outcome_arrays,
    make_segmenter,
)
from chatpersona.segment.select import (
    __doc__ as SELECT_DOC,
)
from chatpersona.segment.select import (
    choose_algorithm,
    choose_k,
    compare_segmenters,
    internal_scores,
)

__all__ = ["SPARK_ALGORITHMS", "build_features_spark", "run_segmentation_spark"]

SPARK_ALGORITHMS = ALGORITHMS
DEFAULT_SAMPLE_ROWS = 200_000


# ------------------------------------------------------------------ workers
_SPECS: dict[str, FittedFeatureSpec] = {}
_MODELS: dict[str, SegmentModel] = {}


def _spec_of(text: str) -> FittedFeatureSpec:
    spec = _SPECS.get(text)
    if spec is None:
        spec = _SPECS[text] = FittedFeatureSpec.from_json(text)
    return spec


EV_PREFIX = "__ev_"
_TS_US = "__ts_us"


def _split_events(df: pl.DataFrame, id_col: str) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """A joined users + ``__ev_*`` frame as (users, event features or ``None``)."""
    ev_cols = [c for c in df.columns if c.startswith(EV_PREFIX)]
    if not ev_cols:
        return df, None
    ev = df.select(
        pl.col(id_col).cast(pl.String).alias("user_id"),
        *(pl.col(c).alias(c[len(EV_PREFIX) :]) for c in ev_cols),
    )
    return df.drop(ev_cols), ev


def _features_fn(
    spec_text: str, as_of: str, casts: str
) -> Callable[[Iterator[Any]], Iterator[Any]]:
    def run(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        fitted = _spec_of(spec_text)
        when = datetime.fromisoformat(as_of)
        id_col = fitted.spec.id_column
        names = fitted.feature_names_
        schema = pa.schema(
            [pa.field(id_col, pa.string()), *(pa.field(n, pa.float64()) for n in names)]
        )
        dtypes = json.loads(casts)
        for b in batches:
            df = pl.from_arrow(pa.Table.from_batches([b]))
            assert isinstance(df, pl.DataFrame)
            users, ev = _split_events(_apply_casts(df, dtypes), id_col)
            feats = fitted.transform(users, None, when, event_features=ev).select(
                pl.col(id_col).cast(pl.String), *(pl.col(n).cast(pl.Float64) for n in names)
            )
            yield from feats.to_arrow().cast(schema).to_batches()

    return run


def _flatten_fn(kind: str) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """Raw events (JSON lines, or table rows) -> the flat event columns, ``ts`` as epoch µs."""

    def run(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        schema = _flat_arrow_schema()
        for b in batches:
            if b.num_rows == 0:
                continue
            if kind == "json":
                text = "\n".join(v for v in b.column(0).to_pylist() if v and v.strip())
                if not text:
                    continue
                raw = pl.read_ndjson(io.StringIO(text), infer_schema_length=None)
            else:
                table = pl.from_arrow(pa.Table.from_batches([b]))
                assert isinstance(table, pl.DataFrame)
                raw = table
            flat = (
                flatten_events(raw)
                .with_columns(pl.col("ts").dt.epoch("us").alias(_TS_US))
                .drop("ts")
            )
            yield from flat.to_arrow().cast(schema).to_batches()

    return run


def _flat_arrow_schema() -> Any:
    import pyarrow as pa

    fields = []
    for name, dtype in EVENT_COLUMNS.items():
        if name == "ts":
            continue
        t = pa.bool_() if dtype == pl.Boolean else pa.float64() if dtype == pl.Float64 else None
        fields.append(pa.field(name, t or pa.string()))
    fields.append(pa.field(_TS_US, pa.int64()))
    return pa.schema(fields)


def _event_features_fn(as_of: str) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """Every event of a user is in this partition: the one-machine per-user aggregation."""

    def run(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        when = datetime.fromisoformat(as_of)
        parts = [b for b in batches if b.num_rows]
        if not parts:
            return
        flat = pl.from_arrow(pa.Table.from_batches(parts))
        assert isinstance(flat, pl.DataFrame)
        flat = flat.with_columns(
            pl.from_epoch(pl.col(_TS_US), time_unit="us").dt.replace_time_zone("UTC").alias("ts")
        ).select(list(EVENT_COLUMNS))
        feats = event_features_frame(flat, when).select(
            pl.col("user_id").alias(f"{EV_PREFIX}user_id"),
            *(pl.col(n).alias(EV_PREFIX + n) for n in EVENT_FEATURES),
        )
        yield from feats.to_arrow().to_batches()

    return run


def _apply_casts(df: pl.DataFrame, dtypes: dict[str, str]) -> pl.DataFrame:
    """Give text columns (CSV read by Spark) the dtype Polars infers for the same file."""
    exprs = []
    for name, kind in dtypes.items():
        if name not in df.columns or df.schema[name] != pl.String:
            continue
        c = pl.col(name)
        if kind == "int":
            exprs.append(c.cast(pl.Int64, strict=False))
        elif kind == "float":
            exprs.append(c.cast(pl.Float64, strict=False))
        elif kind == "bool":
            exprs.append(
                c.str.to_lowercase().replace_strict({"true": True, "false": False}, default=None)
            )
    return df.with_columns(exprs) if exprs else df


def _labels_fn(model_dir: str, names: list[str]) -> Callable[[Iterator[Any]], Iterator[Any]]:
    def run(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        model = _MODELS.get(model_dir)
        if model is None:
            model = _MODELS[model_dir] = SegmentModel.load(model_dir)
        for b in batches:
            X = np.column_stack([b.column(n).to_numpy(zero_copy_only=False) for n in names])
            labels = model.predict_labels(X) if len(X) else np.zeros(0, dtype=np.int64)
            yield pa.RecordBatch.from_arrays(
                [b.column(0), pa.array(labels.astype(np.int64))], names=["id", "label"]
            )

    return run


def _project_fn(
    names: list[str], W: list[list[float]], b: list[float]
) -> Callable[[Iterator[Any]], Iterator[Any]]:
    def run(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        w, bias = np.asarray(W), np.asarray(b)
        for batch in batches:
            X = np.column_stack([batch.column(c).to_numpy(zero_copy_only=False) for c in names])
            Z = np.ascontiguousarray(X @ w + bias, dtype=np.float64)
            offsets = pa.array(np.arange(0, Z.size + 1, Z.shape[1], dtype=np.int32))
            z = pa.ListArray.from_arrays(offsets, pa.array(Z.ravel()))
            yield pa.RecordBatch.from_arrays([z], names=["z"])

    return run


def _moments_fn(names: list[str], shift: list[float]) -> Callable[[Iterator[Any]], Iterator[Any]]:
    def run(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        k = np.asarray(shift)
        n = 0
        s = np.zeros(len(names))
        xx = np.zeros((len(names), len(names)))
        for b in batches:
            X = np.column_stack([b.column(c).to_numpy(zero_copy_only=False) for c in names]) - k
            n += len(X)
            s += X.sum(axis=0)
            xx += X.T @ X
        yield pa.RecordBatch.from_arrays(
            [pa.array([n], pa.int64()), pa.array([s.tolist()]), pa.array([xx.ravel().tolist()])],
            names=["n", "s", "xx"],
        )

    return run


# ------------------------------------------------------------------ helpers
def _to_spark(spark: Any, users: Any) -> Any:
    if isinstance(users, str | Path):
        return spark_read(spark, users)
    if isinstance(users, pl.DataFrame):
        return spark.createDataFrame(users.to_pandas())
    return users


def _csv_casts(sample: pl.DataFrame, path: Any) -> dict[str, str]:
    """For a CSV path, the dtypes Polars' reader would infer (as the one-machine CLI does)."""
    if not isinstance(path, str | Path) or Path(str(path)).suffix.lower() != ".csv":
        return {}
    head = pl.read_csv(path, infer_schema_length=10_000, n_rows=10_000)
    out: dict[str, str] = {}
    for name, dtype in head.schema.items():
        if dtype.is_integer():
            out[name] = "int"
        elif dtype.is_float():
            out[name] = "float"
        elif dtype == pl.Boolean:
            out[name] = "bool"
    return out


def _preprocessor_from_moments(
    scaling: str,
    pca: float | int | None,
    names: list[str],
    n: int,
    x_mean: np.ndarray,
    cross: np.ndarray,
    robust: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
) -> Preprocessor:
    """A fitted :class:`Preprocessor` from the moments of X (rows ``n``, column means, the
    centred cross-product matrix), following :meth:`Preprocessor.fit` step by step."""
    pre = Preprocessor(scaling, pca)
    pre._validate(len(names))
    std = np.sqrt(np.clip(np.diag(cross) / n, 0.0, None))
    if scaling == "standard":
        center, scale = x_mean, std
    else:
        assert robust is not None
        center, q75, q25 = robust
        scale = q75 - q25
        scale = np.where(scale > 0, scale, std)
    const = ~(scale > 1e-12)
    if const.any():
        raise DataError(
            "feature column is constant (one value for every row); drop it from the spec",
            code="constant_column",
            column=names[int(np.argmax(const))],
        )
    pre.feature_names_in_ = names
    pre.center_ = center
    pre.scale_ = scale
    pre.mean_ = (x_mean - center) / scale
    cov = cross / np.outer(scale, scale) / max(n - 1, 1)
    evals, evecs = np.linalg.eigh(cov)
    order = np.argsort(evals)[::-1]
    evals = np.clip(evals[order], 0.0, None)
    evecs = evecs[:, order]
    signs = np.sign(evecs[np.argmax(np.abs(evecs), axis=0), np.arange(evecs.shape[1])])
    evecs = evecs * np.where(signs == 0, 1.0, signs)
    ratio = evals / evals.sum() if evals.sum() > 0 else np.zeros_like(evals)
    if pca is None:
        k = len(names)
        components = np.eye(len(names))
        pre.mean_ = np.zeros(len(names))
    else:
        if isinstance(pca, int):
            k = pca
        else:
            k = int(np.searchsorted(np.cumsum(ratio), pca - 1e-12) + 1)
            k = min(max(k, 1), len(names))
        components = evecs[:, :k].T
    pre.components_ = np.ascontiguousarray(components)
    pre.n_components_ = k
    pre.explained_variance_ratio_ = ratio[:k] if pca is not None else ratio
    pre.all_explained_variance_ratio_ = ratio
    return pre


def _events_spark(session: Any, events: Any) -> Any:
    """The event log as a Spark DataFrame of flat event columns (``ts`` as epoch µs)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if isinstance(events, pl.DataFrame):
        flat = flatten_events(events)
        sdf, kind = (
            session.createDataFrame(flat.with_columns(pl.col("ts").cast(pl.String)).to_pandas()),
            "table",
        )
    elif isinstance(events, str | Path):
        path = str(events)
        if "://" not in path and not Path(path).exists():
            raise InputError("event file does not exist", file=path)
        if Path(path).suffix.lower() in (".parquet", ".pq", ".csv"):
            sdf, kind = spark_read(session, path), "table"
        else:
            sdf, kind = session.read.text(path), "json"
    else:  # a Spark DataFrame in the contract shape
        sdf, kind = events, "table"
    fields = []
    for f in _flat_arrow_schema():
        t = (
            T.BooleanType()
            if str(f.type) == "bool"
            else T.DoubleType()
            if str(f.type) == "double"
            else T.LongType()
            if str(f.type) == "int64"
            else T.StringType()
        )
        fields.append(T.StructField(f.name, t))
    del F
    return sdf.mapInArrow(_flatten_fn(kind), T.StructType(fields))


def _join_event_features(
    session: Any, sdf: Any, id_col: str, events: Any, as_of: datetime | None
) -> tuple[Any, datetime]:
    """Users left-joined with their event features (``__ev_*`` columns), and the ``as_of``."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from chatpersona.features.online import parse_ts

    flat = _events_spark(session, events).persist()
    if as_of is None:
        last = flat.agg(F.max(_TS_US).alias("m")).collect()[0]["m"]
        as_of = (
            datetime.fromtimestamp(last / 1e6, tz=UTC).replace(microsecond=last % 1_000_000)
            if last is not None
            else datetime(2000, 1, 1, tzinfo=UTC)
        )
    as_of = parse_ts(as_of)
    parts = max(session.sparkContext.defaultParallelism, flat.rdd.getNumPartitions())
    schema = T.StructType(
        [
            T.StructField(f"{EV_PREFIX}user_id", T.StringType()),
            *(T.StructField(EV_PREFIX + n, T.DoubleType()) for n in EVENT_FEATURES),
        ]
    )
    per_user = flat.repartition(parts, "user_id").mapInArrow(
        _event_features_fn(as_of.isoformat()), schema
    )
    key = F.col(f"`{id_col}`").cast("string")
    joined = sdf.join(per_user, key == F.col(f"{EV_PREFIX}user_id"), "left").drop(
        f"{EV_PREFIX}user_id"
    )
    flat.unpersist()
    return joined, as_of


def build_features_spark(
    users: Any,
    *,
    events: Any = None,
    spec: FeatureSpec | None = None,
    id_column: str = "user_id",
    as_of: datetime | None = None,
    outcomes: Sequence[str] | None = None,
    seed: int = 0,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    master: str = DEFAULT_MASTER,
    spark: Any = None,
) -> tuple[Any, FittedFeatureSpec, pl.DataFrame, dict[str, str]]:
    """Feature rows of every user as a Spark DataFrame (id + ``feature_names_``, doubles).

    Returns ``(features, fitted spec, driver sample of the users, excluded columns)``; the
    spec is inferred (when not given) and fitted on the driver sample.
    """
    session = spark if spark is not None else get_spark(master)
    sdf = _to_spark(session, users)
    id_col = spec.id_column if spec is not None else id_column
    if spec is not None and spec.events and events is None:
        raise DataError(
            "the feature spec builds event features but no event log was given",
            code="missing_events",
        )
    use_events = events is not None and (spec is None or bool(spec.events))
    if use_events:
        from pyspark.sql import functions as F

        sdf = sdf.withColumn("__order", F.monotonically_increasing_id())
        sdf, as_of = _join_event_features(session, sdf, id_col, events, as_of)
        sdf = sdf.persist()
    n = sdf.count()
    if n == 0:
        raise DataError("no users to segment", code="empty_input")
    if n <= sample_rows:
        part = sdf
    else:
        part = sdf.sample(fraction=min(1.0, 1.2 * sample_rows / n), seed=seed).limit(sample_rows)
    sample = pl.from_arrow(part.toArrow())
    assert isinstance(sample, pl.DataFrame)
    if use_events:  # back to the input order (the join shuffles), as on one machine
        sample = sample.sort("__order").drop("__order")
    casts = _csv_casts(sample, users)
    sample = _apply_casts(sample, casts)
    sample_users, sample_ev = _split_events(sample, id_col)
    excluded: dict[str, str] = {}
    if spec is None:
        spec, excluded = FeatureSpec.infer(
            sample_users, id_column=id_column, events=use_events, outcomes=outcomes
        )
    elif outcomes is not None:
        spec = FeatureSpec(**{**spec.__dict__, "outcomes": tuple(outcomes)})
    fitted = spec.fit(sample_users, None, as_of, event_features=sample_ev)
    from pyspark.sql import types as T

    names = fitted.feature_names_
    schema = T.StructType(
        [
            T.StructField(spec.id_column, T.StringType()),
            *(T.StructField(c, T.DoubleType()) for c in names),
        ]
    )
    needed = [spec.id_column, *spec.columns]
    if use_events:
        needed += [EV_PREFIX + n for n in EVENT_FEATURES]
    feats = sdf.select(*[f"`{c}`" for c in needed]).mapInArrow(
        _features_fn(fitted.to_json(), fitted.as_of_.isoformat(), json.dumps(casts)), schema
    )
    return feats, fitted, sample, excluded


# ------------------------------------------------------------------ the run
def run_segmentation_spark(
    users: Any,
    *,
    events: Any = None,
    spec: FeatureSpec | None = None,
    id_column: str = "user_id",
    algo: str = "auto",
    k: int | tuple[int, int] | None = None,
    pca: float | int | str | None = "spec",
    seed: int = 0,
    as_of: datetime | None = None,
    outcomes: Sequence[str] | None = None,
    master: str = DEFAULT_MASTER,
    spark: Any = None,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    work_dir: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> SegmentationResult:
    """Segment a clean user table on Spark; returns the same
    :class:`~chatpersona.segment.run.SegmentationResult` as
    :func:`~chatpersona.segment.run.run_segmentation` (``features`` is ``None``: the feature
    rows stay on the cluster).

    Parameters
    ----------
    users : a path (CSV, Parquet, JSON Lines; cluster paths work), a Spark DataFrame or a
        Polars DataFrame.
    events : the event log (a JSON Lines, Parquet or CSV path, a Spark DataFrame or a Polars
        DataFrame in the contract shape) for behavioral, contextual and feedback features.
    algo : ``auto``, ``kmeans`` (Spark MLlib K-Means), ``bisecting`` (MLlib bisecting
        K-Means), ``hierarchical``, ``hdbscan`` or ``dbscan`` (driver sample, assigned at scale).
    sample_rows : size of the driver sample (spec fit, k sweep, sample-fitted algorithms,
        descriptions).
    work_dir : where the model is staged for the executors (default: a temporary directory;
        on a cluster, a path every executor can read).
    Other parameters as :func:`~chatpersona.segment.run.run_segmentation`.
    """
    import shutil
    import tempfile

    from pyspark.sql import functions as F

    say = progress or (lambda _msg: None)
    if algo not in SPARK_ALGORITHMS:
        raise ParameterError("segment", "algo", f"one of {list(SPARK_ALGORITHMS)}", algo)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ParameterError("segment", "seed", "an int >= 0", seed)
    session = spark if spark is not None else get_spark(master)
    say("features")
    feats, fitted, sample_users, excluded = build_features_spark(
        users,
        events=events,
        spec=spec,
        id_column=id_column,
        as_of=as_of,
        outcomes=outcomes,
        seed=seed,
        sample_rows=sample_rows,
        spark=session,
    )
    spec_used = fitted.spec
    id_col = spec_used.id_column
    names = list(fitted.feature_names_)
    feats = feats.persist()
    try:
        return _run(
            session,
            feats,
            fitted,
            sample_users,
            excluded,
            names,
            id_col,
            algo,
            k,
            pca,
            seed,
            sample_rows,
            work_dir,
            say,
            F,
            shutil,
            tempfile,
        )
    finally:
        feats.unpersist()


def _run(
    session: Any,
    feats: Any,
    fitted: FittedFeatureSpec,
    sample_users: pl.DataFrame,
    excluded: dict[str, str],
    names: list[str],
    id_col: str,
    algo: str,
    k: int | tuple[int, int] | None,
    pca: float | int | str | None,
    seed: int,
    sample_rows: int,
    work_dir: str | Path | None,
    say: Callable[[str], None],
    F: Any,
    shutil: Any,
    tempfile: Any,
) -> SegmentationResult:
    spec_used = fitted.spec
    pca_value = spec_used.pca if pca == "spec" else (None if pca in (None, 0) else pca)
    # driver sample of feature rows (the same users as the spec sample)
    users_s, ev_s = _split_events(sample_users, spec_used.id_column)
    Xs = (
        fitted.transform(users_s, None, fitted.as_of_, event_features=ev_s).select(names).to_numpy()
    )
    Xs = np.ascontiguousarray(Xs, dtype=np.float64)
    say("moments")
    shift = Xs.mean(axis=0).tolist()
    from pyspark.sql import types as T

    mschema = T.StructType(
        [
            T.StructField("n", T.LongType()),
            T.StructField("s", T.ArrayType(T.DoubleType())),
            T.StructField("xx", T.ArrayType(T.DoubleType())),
        ]
    )
    parts = (
        feats.select(*[f"`{c}`" for c in names])
        .mapInArrow(_moments_fn(names, shift), mschema)
        .collect()
    )
    n = int(sum(r["n"] for r in parts))
    s = np.sum([np.asarray(r["s"]) for r in parts], axis=0)
    xx = np.sum([np.asarray(r["xx"]) for r in parts], axis=0).reshape(len(names), len(names))
    d = s / n
    x_mean = np.asarray(shift) + d
    cross = xx - n * np.outer(d, d)
    robust = None
    if spec_used.scaling == "robust":
        pct = feats.agg(
            *[
                F.expr(f"percentile(`{c}`, array(0.5, 0.75, 0.25))").alias(f"p{j}")
                for j, c in enumerate(names)
            ]
        ).collect()[0]
        arr = np.array([pct[f"p{j}"] for j in range(len(names))], dtype=np.float64)
        robust = (arr[:, 0], arr[:, 1], arr[:, 2])
    pre = _preprocessor_from_moments(
        spec_used.scaling,
        pca_value,  # type: ignore[arg-type]
        names,
        n,
        x_mean,
        cross,
        robust,
    )
    Zs = pre.transform(Xs)
    say("segmenters")
    rows: list[dict[str, Any]] = []
    fitted_segs: dict[str, BaseSegmenter] = {}
    chosen = algo
    if algo == "auto":
        candidates = {name: make_segmenter(name, k=k, seed=seed) for name in AUTO_CANDIDATES}
        rows, fitted_segs = compare_segmenters(Zs, candidates, seed=seed, progress=say)
        chosen = choose_algorithm(rows)
        seg = fitted_segs[chosen]
        metrics = next(r for r in rows if r["algorithm"] == chosen)
    t0 = time.perf_counter()
    if chosen in ("kmeans", "bisecting"):
        seg = _mllib_kmeans(
            session, feats, names, pre, Zs, k, seed, bisecting=chosen == "bisecting"
        )
    elif algo != "auto":
        seg = make_segmenter(algo, k=k, seed=seed)
        seg.fit(Zs)
    fit_time = time.perf_counter() - t0
    if algo != "auto" or chosen in ("kmeans", "bisecting"):
        idx = seeded_sample(len(Zs), 3000, np.random.default_rng(seed))
        labels_s = seg.predict(Zs[idx])
        with small_threads(len(idx)):
            metrics = {
                **(metrics if algo == "auto" else {}),
                "algorithm": chosen,
                "n_segments": seg.n_segments_,
                **internal_scores(Zs[idx], labels_s),
                "noise_share": float(np.mean(labels_s == NOISE)),
                "fit_time_s": fit_time,
            }
        fitted_segs[chosen] = seg
    say("assign")
    provisional = SegmentModel.from_fitted(
        seg, pre, names, feature_spec=fitted, label_order=list(range(_n_labels(seg)))
    )
    tmp = Path(tempfile.mkdtemp(prefix="chatpersona-spark-model-", dir=work_dir))
    try:
        provisional.save(tmp)
        lschema = T.StructType(
            [T.StructField("id", T.StringType()), T.StructField("label", T.LongType())]
        )
        labelled = (
            feats.select(f"`{id_col}`", *[f"`{c}`" for c in names])
            .mapInArrow(_labels_fn(str(tmp), names), lschema)
            .persist()
        )
        counts = {
            int(r["label"]): int(r["count"]) for r in labelled.groupBy("label").count().collect()
        }
        n_lab = _n_labels(seg)
        label_order = sorted(range(n_lab), key=lambda lab: (-counts.get(lab, 0), lab))
        model = SegmentModel.from_fitted(
            seg, pre, names, feature_spec=fitted, label_order=label_order
        )
        ids = model._ids
        id_arr = F.array(*[F.lit(i) for i in ids])
        seg_col = F.element_at(
            id_arr,
            F.when(F.col("label") < 0, F.lit(len(ids))).otherwise(F.col("label") + 1).cast("int"),
        )
        # Through Parquet files, not a collect: every user's assignment would otherwise be
        # gathered in the driver's JVM heap first (10M users failed there).
        assign_dir = tmp / "assignments"
        labelled.select(F.col("id").alias(id_col), seg_col.alias("segment")).write.parquet(
            str(assign_dir)
        )
        assign_tbl = pl.read_parquet(assign_dir / "*.parquet")
        labelled.unpersist()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    say("describe")
    labels_sample = model.predict_labels(Xs)
    outcome_arrays = _outcome_arrays(sample_users, pl.DataFrame(), spec_used.outcomes)
    segments = describe_segments(Xs, names, labels_sample, model.label_ids, outcomes=outcome_arrays)
    total = sum(counts.values())
    for s_ in segments:
        lab = ids.index(s_["id"]) if s_["id"] in ids else None
        if lab is not None:
            full = counts.get(-1 if s_["id"] == ids[-1] else lab, 0)
            if full and len(Xs) < total:
                s_["description"] = s_["description"].replace(
                    f"{s_['size']} users ({s_['share']:.1%})", f"{full} users ({full / total:.1%})"
                )
            s_["size"] = full
            s_["share"] = full / max(total, 1)
    model.segment_names.update({s_["id"]: s_["name"] for s_ in segments})
    assignments = assign_tbl.with_columns(
        pl.col(id_col).cast(pl.String), pl.col("segment").cast(pl.String)
    )
    pre2 = Preprocessor(spec_used.scaling, min(2, len(names))).fit(Xs, names)
    pidx = seeded_sample(len(Xs), 3000, np.random.default_rng(seed))
    points = pre2.transform(Xs[pidx])
    seg_of_sample = [ids[lab] for lab in labels_sample.tolist()]
    report: dict[str, Any] = {
        "model": {"id": model.model_id, "version": model.version, "created_at": model.created_at},
        "algorithm": chosen,
        "k": int(seg.n_segments_),
        "n_segments": int(seg.n_segments_),
        "n_users": total,
        "as_of": fitted.as_of_.isoformat(),
        "seed": seed,
        "features": names,
        "excluded_columns": excluded,
        "dropped_features": fitted.dropped_,
        "outcomes": list(spec_used.outcomes),
        "pca": {
            "target": pca_value,
            "n_components": int(pre.n_components_),
            "explained_variance_ratio": [float(v) for v in pre.explained_variance_ratio_],
        },
        "metrics": metrics,
        "segmenter": seg.summary(),
        "comparison": rows,
        "choice_rule": CHOICE_RULE if algo == "auto" else f"algorithm fixed by the caller: {algo}",
        "k_rule": (SELECT_DOC or "").split("**algorithm rule**")[0].strip(),
        "segments": segments,
        "engine": {
            "name": "spark",
            "master": session.sparkContext.master,
            "sample_rows": len(Xs),
            "fit_on": "all rows (Spark MLlib)"
            if chosen in ("kmeans", "bisecting")
            else f"driver sample of {len(Xs)} rows",
        },
    }
    model.info.update(
        {"algorithm": chosen, "n_users": total, "metrics": metrics, "engine": "spark"}
    )
    return SegmentationResult(
        model=model,
        assignments=assignments,
        report=report,
        points=points,
        point_segments=[seg_of_sample[i] for i in pidx.tolist()],
        fitted_segmenters=fitted_segs,
        features=None,
    )


def _sample_kmeans_centers(Z: np.ndarray, k: int, seed: int, n_init: int) -> np.ndarray:
    """The one-machine K-Means (k-means++, ``n_init`` restarts) on the driver sample."""
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, random_state=seed, n_init=n_init).fit(Z)
    return np.asarray(km.cluster_centers_, dtype=np.float64)


def _n_labels(seg: BaseSegmenter) -> int:
    return int(seg.n_segments_) if seg.rule_ == "core" else len(seg.centers_)


def _mllib_kmeans(
    session: Any,
    feats: Any,
    names: list[str],
    pre: Preprocessor,
    Zs: np.ndarray,
    k: int | tuple[int, int] | None,
    seed: int,
    *,
    bisecting: bool = False,
) -> KMeansSegmenter:
    """K-Means (or bisecting K-Means) from Spark MLlib on the projected rows of all users,
    wrapped as a fitted :class:`KMeansSegmenter` (``centroid`` rule: the leaf centres)."""
    from pyspark.sql import functions as F

    cls = BisectingKMeansSegmenter if bisecting else KMeansSegmenter
    seg = cls(k=k if isinstance(k, int) else None, seed=seed)
    if isinstance(k, tuple):
        seg.k_min, seg.k_max = k
    seg._validate_params(len(Zs))
    if isinstance(k, int):
        seg.scores_ = []
        seg.k_ = int(k)
    else:
        idx = seeded_sample(len(Zs), seg.sweep_rows, np.random.default_rng(seed))
        sub = Zs[idx]
        seg.scores_ = sweep_k(
            sub,
            range(seg.k_min, min(seg.k_max, len(sub) - 1) + 1),
            seed=seed,
            n_init=seg.n_init,
            silhouette_rows=seg.silhouette_rows,
            minibatch_rows=seg.minibatch_rows,
        )
        seg.k_ = choose_k(seg.scores_)
    # The projection runs in Python per partition (one BLAS call per Arrow batch): as a
    # Spark SQL expression it is features x components terms and overflows the 64 KB
    # generated-code limit for wide inputs.
    from pyspark.sql import types as T

    W = (pre.components_ / pre.scale_).T
    b = -((pre.center_ / pre.scale_ + pre.mean_) @ pre.components_.T)
    zschema = T.StructType([T.StructField("z", T.ArrayType(T.DoubleType()))])
    data = feats.select(*[F.col(f"`{c}`") for c in names]).mapInArrow(
        _project_fn(names, W.tolist(), b.tolist()), zschema
    )
    from pyspark.mllib.clustering import KMeans as MLlibKMeans
    from pyspark.mllib.clustering import KMeansModel

    if bisecting:
        return _fit_bisecting(seg, data, Zs, seed)

    # Seeding: the one-machine k-means++ (n_init restarts) on the driver sample; Lloyd
    # iterations over every user: Spark MLlib.
    with small_threads(len(Zs)):
        init = _sample_kmeans_centers(Zs, seg.k_, seed, seg.n_init)
    rdd = data.rdd.map(lambda r: np.asarray(r[0], dtype=np.float64))
    km = MLlibKMeans.train(
        rdd,
        seg.k_,
        maxIterations=100,
        initialModel=KMeansModel([c for c in init]),
        epsilon=1e-6,
        seed=seed,
    )
    centers = np.array([np.asarray(c) for c in km.clusterCenters])
    inertia = float(km.computeCost(rdd)) if len(centers) else float("nan")
    return _fitted_centroids(seg, centers, inertia, Zs)


def _fit_bisecting(seg: KMeansSegmenter, data: Any, Zs: np.ndarray, seed: int) -> KMeansSegmenter:
    """MLlib's bisecting K-Means over every user's projected row.

    MLlib starts each split at the parent centre ± 1e-4 x its norm: for PCA output, centred
    at the origin, that is ~1e-20 and the root never splits (one segment for everything;
    seen on Spark 4.x). The rows are therefore shifted by a constant vector for the fit and the
    centres shifted back — K-Means is translation invariant, only that start is not.
    """
    from pyspark.mllib.clustering import BisectingKMeans as MLlibBisecting

    shift = float(np.abs(Zs).max()) + 1.0 if Zs.size else 1.0
    rdd = data.rdd.map(lambda r: np.asarray(r[0], dtype=np.float64) + shift)
    model = MLlibBisecting.train(rdd, seg.k_, maxIterations=50, seed=seed)
    centers = np.array([np.asarray(c) - shift for c in model.clusterCenters])
    return _fitted_centroids(seg, centers, float(model.computeCost(rdd)), Zs)


def _fitted_centroids(
    seg: KMeansSegmenter, centers: np.ndarray, inertia: float, Zs: np.ndarray
) -> KMeansSegmenter:
    """``seg`` as a fitted centroid-rule segmenter with MLlib's centres (on the PCA axes)."""
    seg.inertia_ = inertia
    seg.centers_ = np.ascontiguousarray(centers, dtype=np.float64)
    seg.minibatch_ = False
    seg.rule_ = "centroid"
    seg.feature_names_in_ = [f"pc{j}" for j in range(Zs.shape[1])]
    seg.n_features_in_ = Zs.shape[1]
    seg.labels_ = seg._predict_array(Zs)
    seg.n_segments_ = len(centers)
    return seg

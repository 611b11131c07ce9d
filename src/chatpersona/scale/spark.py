"""The Spark session and Spark-side file I/O shared by the Spark engines.

PySpark is an optional dependency (the ``dev``/``spark`` extra): every function imports it
lazily and turns its absence into a :class:`SparkUnavailableError` with a clear message.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

from chatpersona.clean.io import FORMATS, table_format
from chatpersona.exceptions import BackendError, InputError

__all__ = [
    "DEFAULT_MASTER",
    "SparkUnavailableError",
    "get_spark",
    "is_local_master",
    "read_spark_table",
    "spark_read",
    "spark_session",
    "spark_write",
    "stop_spark",
]

DEFAULT_MASTER = "local[*]"
_SESSION: Any = None
NULL_SENTINEL = "\u0000chatpersona-null\u0000"


class SparkUnavailableError(BackendError):
    """PySpark or Java is missing, or the Spark master cannot be reached."""


def is_local_master(master: str) -> bool:
    """True for ``local``, ``local[N]`` and ``local[*]`` masters (driver-local files)."""
    return master == "local" or master.startswith("local[")


def get_spark(
    master: str = DEFAULT_MASTER,
    *,
    app_name: str = "chatpersona",
    shuffle_partitions: int | None = None,
    conf: dict[str, str] | None = None,
) -> Any:
    """A SparkSession for ``master`` (reused while the same one is active).

    Settings chosen for parity with the Polars engine and a small footprint: session time
    zone UTC, Parquet timestamps as INT64 microseconds, Arrow batches of 100,000 rows, UI
    off, ``spark.sql.shuffle.partitions`` = ``shuffle_partitions`` (default: 2 x cores for
    local masters, Spark's default otherwise), and for local masters a 4 GB driver heap
    (``CHATPERSONA_SPARK_DRIVER_MEMORY``). ``conf`` adds or overrides settings.
    """
    global _SESSION
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise SparkUnavailableError(
            "the Spark engine needs PySpark: pip install 'chatpersona[spark]' (and Java 17)",
            code="spark_unavailable",
        ) from exc
    if _SESSION is not None:
        active = SparkSession.getActiveSession()
        if active is not None and active.sparkContext.master == master:
            return active
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if shuffle_partitions is None and is_local_master(master):
        n = os.cpu_count() or 2
        inner = master[6:-1] if master.startswith("local[") else "1"
        if inner.isdigit():
            n = int(inner)
        shuffle_partitions = max(2, 2 * n)
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", "100000")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.adaptive.enabled", "true")
        .config("spark.driver.extraJavaOptions", "-Duser.timezone=UTC")
        .config("spark.executor.extraJavaOptions", "-Duser.timezone=UTC")
    )
    if shuffle_partitions is not None:
        builder = builder.config("spark.sql.shuffle.partitions", str(shuffle_partitions))
    if is_local_master(master):
        # local mode runs every task in the driver's JVM: Spark's 1 GB default heap is too
        # small beyond a few million rows (CHATPERSONA_SPARK_DRIVER_MEMORY overrides)
        memory = os.environ.get("CHATPERSONA_SPARK_DRIVER_MEMORY", "4g")
        builder = builder.config("spark.driver.memory", memory)
    for k, v in (conf or {}).items():
        builder = builder.config(k, v)
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # pragma: no cover - Java missing or master unreachable
        raise SparkUnavailableError(
            f"cannot start Spark with master {master!r}: {exc}", code="spark_unavailable"
        ) from exc
    spark.sparkContext.setLogLevel("ERROR")
    _SESSION = spark
    return spark


def stop_spark() -> None:
    """Stop the session started by :func:`get_spark` (if any)."""
    global _SESSION
    if _SESSION is not None:
        _SESSION.stop()
        _SESSION = None


@contextmanager
def spark_session(master: str = DEFAULT_MASTER, **kwargs: Any) -> Iterator[Any]:
    """``with spark_session("local[2]") as spark: ...`` — stopped at the end of the block."""
    spark = get_spark(master, **kwargs)
    try:
        yield spark
    finally:
        stop_spark()


def _fmt_of(path: str) -> str:
    suffix = Path(path.rstrip("/")).suffix.lower()
    fmt = FORMATS.get(suffix)
    if fmt is None:
        raise InputError(
            f"Unsupported file extension {suffix!r}; use one of {sorted(FORMATS)}",
            code="unsupported_format",
            file=path,
        )
    return fmt


def spark_read(spark: Any, path: str | Path) -> Any:
    """Read CSV (every column as text, RFC 4180 quoting, quoted newlines allowed), Parquet or
    JSON Lines into a Spark DataFrame; ``path`` may be a file or a Spark output directory."""
    p = str(path)
    fmt = _fmt_of(p)
    local = Path(p)
    if "://" not in p and not local.exists():
        raise InputError("Input file not found", code="file_not_found", file=p)
    try:
        if fmt == "csv":
            return (
                spark.read.option("header", True)
                .option("inferSchema", False)
                .option("escape", '"')
                .option("multiLine", True)
                # As Polars: an unquoted empty field is null, a quoted "" is an empty string.
                .option("nullValue", NULL_SENTINEL)
                .option("emptyValue", "")
                .option("mode", "FAILFAST")
                .csv(p)
            )
        if fmt == "parquet":
            return spark.read.parquet(p)
        return spark.read.json(p)
    except Exception as exc:
        raise InputError(
            f"Cannot read {fmt} input with Spark: {exc}", code="unreadable_input", file=p
        ) from exc


def _part_files(directory: Path, ext: str) -> list[Path]:
    return sorted(f for f in directory.iterdir() if f.name.startswith("part-") and ext in f.name)


def read_spark_table(path: str | Path) -> pl.DataFrame:
    """Read a table written by :func:`spark_write`: a single file, or a Spark output
    directory of ``part-*`` files (concatenated in part order)."""
    p = Path(path)
    if p.is_file():
        from chatpersona.clean.io import read_table

        return read_table(p)
    fmt = table_format(p)
    ext = {"csv": ".csv", "parquet": ".parquet", "jsonl": ".json"}[fmt]
    parts = _part_files(p, ext)
    if not parts:
        raise InputError("no part files in the Spark output directory", file=str(p))
    if fmt == "csv":
        return pl.concat([pl.read_csv(f, infer_schema=False) for f in parts], how="vertical")
    if fmt == "parquet":
        return pl.read_parquet(parts)
    return pl.concat([pl.read_ndjson(f) for f in parts], how="vertical_relaxed")


def _empty_frame(df: Any) -> pl.DataFrame:
    frame = pl.from_arrow(df.limit(0).toArrow())
    assert isinstance(frame, pl.DataFrame)
    return frame


def spark_write(
    df: Any,
    path: str | Path,
    *,
    single_file: bool,
    casts: dict[str, pl.DataType] | None = None,
    sort_by: str | None = None,
    drop: list[str] | None = None,
) -> None:
    """Write a Spark DataFrame to ``path`` by its extension.

    ``single_file=True`` (driver-local paths): Spark writes Parquet parts into a temporary
    directory beside ``path``, then Polars reads them back (sorted by ``sort_by``, ``casts``
    applied, ``drop`` columns removed) and writes one file of the requested format atomically —
    the same writer as the Polars engine's.
    ``single_file=False`` (cluster paths such as ``hdfs://`` or ``s3a://``): Spark writes a
    directory of part files named ``path`` in the requested format.
    """
    p = str(path)
    fmt = _fmt_of(p)
    if not single_file:
        w = df.write.mode("overwrite")
        if fmt == "csv":
            w.option("header", True).option("escape", '"').csv(p)
        elif fmt == "parquet":
            w.parquet(p)
        else:
            w.json(p)
        return
    target = Path(p)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.spark-", dir=target.parent))
    try:
        out_dir = tmp / "parts.parquet"
        df.write.mode("overwrite").parquet(str(out_dir))
        parts = _part_files(out_dir, ".parquet")
        # an empty result: Spark may write no part file at all
        lf = pl.scan_parquet(parts) if parts else _empty_frame(df).lazy()
        names = lf.collect_schema().names()
        if sort_by is not None and sort_by in names:
            lf = lf.sort(sort_by)
        if casts:
            lf = lf.with_columns(pl.col(c).cast(t) for c, t in casts.items() if c in names)
        if drop:
            lf = lf.drop([c for c in drop if c in names])
        frame = lf.collect()
        from chatpersona.clean.io import write_table

        write_table(frame, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

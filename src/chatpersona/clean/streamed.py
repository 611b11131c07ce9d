"""Streamed file cleaning behind ``chatpersona clean`` for CSV and Parquet inputs.

The raw table is never held in memory. The file is read in batches — a CSV in chunks of
``CSV_CHUNK_BYTES`` cut at record boundaries (newlines outside quotes), a Parquet file in
slices of ``PARQUET_BATCH_ROWS`` rows — twice:

1. **fit** — per batch, the distinct raw values with their counts of the columns looked up
   by value (labels, booleans and every column whose leading rows repeat their values), and
   the parsed values of the numeric columns, spooled in row order to Arrow IPC files beside
   the output (medians and quartiles need them all; memory holds one batch of them). The
   distinct values are parsed once each; the statistics are computed from these exactly as
   :meth:`FittedPlan.fit` computes them (same numpy calls on the same values in the same
   order, one column loaded at a time), so the fitted plan is identical.
2. **transform** — per batch (the byte ranges the fit pass cut, so no boundary is looked for
   twice), the same expressions as :func:`polars_engine.transform_frame`: row by row for some
   columns, by a lookup in the cleaned distinct values for the repetitive ones, the spooled
   numbers for the numeric ones. Quarantined rows are appended to their file and the
   report's counts are kept per batch; the accepted rows are appended to the output. With
   duplicate rules the candidate rows go to a temporary Parquet spool instead; duplicates
   are decided on its key columns (row number, a 64-bit hash of the cleaned row, the id, the
   timestamp; rows sharing a hash are compared exactly) and a third pass splits the spool
   into the accepted and duplicates outputs.

Both passes overlap their steps on threads (:mod:`clean._pipeline`): a read-ahead parses the
next batch, two batches are cleaned at a time (results kept in input order), and a writer
hands the finished ones to Polars' Parquet sink; Polars releases the GIL, so the steps share
the cores.
Peak memory is a few batches plus one numeric column while fitting.

Outputs, quarantine reasons, accounting and report equal the in-memory path's (tested, with
one batch and with many).
"""

from __future__ import annotations

import bisect
import contextlib
import re
import tempfile
import threading
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import polars as pl

from chatpersona.clean._pipeline import BackgroundWriter, ReadAhead, ordered_map, read_ahead
from chatpersona.clean.fitted import FittedPlan, _decode, _merge_counts
from chatpersona.clean.io import BatchWriter, table_format
from chatpersona.clean.plan import NUMERIC_KINDS, CleaningPlan
from chatpersona.clean.polars_engine import (
    DEDUP_SAMPLE,
    REASON_BY_KIND,
    REASON_CODES,
    _few_distinct,
    apply_stages,
    apply_stages_skipping,
    column_exprs,
    duplicate_reason,
    merge_stages,
    parse_stage,
    text_casts,
)
from chatpersona.clean.report import MAX_LABELS, _histogram
from chatpersona.exceptions import InputError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ENGINE", "SAMPLE_ROWS", "clean_streamed", "read_sample", "scan_table"]

ENGINE: Final = "streaming"
# CSV bytes per batch. Pass 1 reads FIT_CHUNK_BYTES at a time (it keeps little of a
# batch) and records them as ranges of about CSV_CHUNK_BYTES; pass 2 replays the ranges one
# by one (it holds ~20x its batch while cleaning it, two at a time). Larger batches cost
# less per row (~5 ms a batch); at 1M rows, 8 MB ranges are ~5% faster than 6 MB ones for
# the same peak, now that labels are held as one-byte codes (docs/BENCHMARKS.md).
FIT_CHUNK_BYTES = 16 << 20
CSV_CHUNK_BYTES = 8 << 20
PARQUET_BATCH_ROWS = 131_072
PASS1_WORKERS = 2
PASS2_WORKERS = 2
BATCH_ENGINE: Final = "in-memory"  # one batch at a time: measured faster than "streaming"
SAMPLE_ROWS = 200_000  # rows looked at for plan inference (infer_plan's own limit)
LABEL_KINDS = ("categorical", "boolean")
# A looked-up output of text with at most this many distinct values is held as Enum codes
# (one byte each); every Parquet row group then carries all of them as its dictionary.
TEXT_CODES_MAX = 256
Progress = Callable[[str, int], None]


def scan_table(path: Path) -> pl.LazyFrame:
    """A lazy scan of a CSV (every column as text) or Parquet file."""
    fmt = table_format(path)
    if fmt == "csv":
        return pl.scan_csv(path, infer_schema=False)
    if fmt == "parquet":
        return pl.scan_parquet(path)
    raise ValueError(f"no streamed scan for {fmt}")


def _unreadable(path: Path, exc: Exception) -> InputError:
    fmt = table_format(path)
    return InputError(f"Cannot read {fmt} input: {exc}", code="unreadable_input", file=str(path))


def read_sample(path: Path, rows: int = SAMPLE_ROWS) -> tuple[pl.LazyFrame, pl.DataFrame]:
    """The scan of ``path`` and its first ``rows`` rows."""
    try:
        scan = scan_table(path)
        head = _csv_head(path, rows) if table_format(path) == "csv" else None
        return scan, head if head is not None else scan.head(rows).collect()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise _unreadable(path, exc) from exc


def _csv_head(path: Path, rows: int) -> pl.DataFrame | None:
    """The first ``rows`` rows of a CSV file from its leading bytes only (Polars' reader
    loads the whole file for a head). The last record of a cut is dropped, being possibly
    incomplete; None (read normally) when the leading bytes do not parse or hold too few
    rows."""
    size = path.stat().st_size
    n_bytes = 1 << 20
    with path.open("rb") as fh:
        while n_bytes < size:
            fh.seek(0)
            chunk = fh.read(n_bytes)
            cut = chunk.rfind(b"\n")
            if cut > 0:
                try:
                    df = pl.read_csv(chunk[: cut + 1], infer_schema=False)
                except pl.exceptions.PolarsError:
                    return None
                if df.height > rows:
                    return df.head(rows)
            n_bytes *= 4
    return None


_BLANK = re.compile(rb"\s*")


# numpy once the background import has loaded it (see _import_later_needs): it counts the
# quotes of a read ~7x faster than bytes.count (0.36 vs 2.6 ms for 8 MB), without the GIL.
_numpy: Any = None


def _count_quotes(buf: bytes, lo: int, hi: int) -> int:
    """The number of double quotes in ``buf[lo:hi]``."""
    np = _numpy
    if np is None or hi - lo < 1 << 16:
        return buf.count(b'"', lo, hi)
    return int(np.count_nonzero(np.frombuffer(buf, np.uint8, hi - lo, lo) == ord('"')))


def _record_end(buf: bytes, lo: int = 0, hi: int | None = None) -> int:
    """The end of the last complete CSV record in ``buf[lo:hi]`` (which starts at a record
    boundary), as an offset into ``buf``: just past the last newline outside quotes; ``lo``
    when there is none. Ranges are searched in place (no slice is copied)."""
    hi = len(buf) if hi is None else hi
    if buf.find(b'"', lo, hi) < 0:  # no quotes (the common case): the last newline
        return max(buf.rfind(b"\n", lo, hi) + 1, lo)
    quotes = _count_quotes(buf, lo, hi)
    pos = hi
    while True:
        nl = buf.rfind(b"\n", lo, pos)
        if nl < 0:
            return lo
        quotes -= buf.count(b'"', nl, pos)
        if quotes % 2 == 0:  # an even number of quotes before it: not inside a field
            return nl + 1
        pos = nl


def _csv_batches(
    path: Path,
    chunk_bytes: int,
    columns: list[str] | None = None,
    cuts: list[tuple[int, int]] | None = None,
    group: float = 1,
) -> Iterator[pl.DataFrame]:
    """Consecutive batches of a CSV file (every column as text), each parsed from about
    ``group * chunk_bytes`` bytes cut at a record boundary; the header is read once and its
    names given to each batch (as Polars names them: a repeated name gets a suffix). The
    byte ranges of about ``chunk_bytes`` that make up each batch are appended to ``cuts``
    when it is empty; a later pass gives the filled list back to read the same ranges, one
    batch each, without looking for boundaries again.

    Each batch is read once from its first byte (the part of a record left over at the end
    of a read is read again with the next batch rather than joined to it): a batch's bytes
    are copied at most twice (the read, and the cut when the read ends inside a record)."""
    with path.open("rb") as fh:
        header = b""
        while True:  # the header record (a quoted name may hold a newline)
            line = fh.readline()
            header += line
            if not line or header.count(b'"') % 2 == 0:
                break
        names = pl.read_csv(header, infer_schema=False).columns
        schema = dict.fromkeys(names, pl.String())
        wanted = None if columns is None else sorted(names.index(c) for c in columns)

        def parse(body: bytes) -> pl.DataFrame:
            df = pl.read_csv(body, has_header=False, schema=schema, columns=wanted)
            return df if columns is None else df.select(columns)

        if cuts:  # the ranges a previous pass found
            for start, end in cuts:
                fh.seek(start)
                yield parse(fh.read(end - start))
            return
        start = fh.tell()
        size = max(1, int(chunk_bytes * group))
        while True:
            fh.seek(start)
            buf = fh.read(size)
            n = len(buf)
            at_eof = n < size
            # The ranges of about chunk_bytes for a later pass, found in order so that each
            # byte is looked at (its quotes counted) once; the last read in quarter ranges:
            # the later pass ends on small batches, which drain its pipeline sooner.
            piece = n if cuts is None else max(1, chunk_bytes // 4) if at_eof else chunk_bytes
            ranges: list[tuple[int, int]] = []
            lo = 0
            while n - lo > piece + piece // 2:  # no sliver of a range at the end
                sub = _record_end(buf, lo, lo + piece)
                if sub == lo:
                    break
                ranges.append((lo, sub))
                lo = sub
            end = n if at_eof else _record_end(buf, lo, n)
            if end > lo:
                ranges.append((lo, end))
            elif ranges:
                end = lo
            elif not at_eof:
                size *= 2  # one record longer than a read: read more
                continue
            if _BLANK.fullmatch(buf, 0, end):  # only blank lines: no rows
                if at_eof:
                    return
                start += end
                continue
            if cuts is not None:
                cuts.extend((start + a, start + b) for a, b in ranges)
            yield parse(buf if end == n else buf[:end])
            if at_eof:
                return
            start += end
            size = max(1, int(chunk_bytes * group))


def _parquet_batches(
    path: Path, rows: int, columns: list[str] | None = None
) -> Iterator[pl.DataFrame]:
    """Consecutive batches of ``rows`` rows of a Parquet file (slices of a lazy scan read
    only the row groups they need)."""
    scan = pl.scan_parquet(path)
    scan = scan.select(columns) if columns is not None else scan
    offset = 0
    while True:
        batch = scan.slice(offset, rows).collect()
        if batch.height or offset == 0:
            yield batch
        if batch.height < rows:
            return
        offset += batch.height


def raw_batches(
    path: Path,
    empty: pl.DataFrame,
    columns: list[str] | None = None,
    scale: float = 1,
    cuts: list[tuple[int, int]] | None = None,
) -> Iterator[tuple[int, pl.DataFrame]]:
    """``(offset, batch)`` over ``path`` in input order, only ``columns`` if given;
    ``empty`` (its schema) when the file holds no rows; batches ``scale`` times the usual
    size (a CSV: reads of ``scale`` ranges, recorded in ``cuts`` as ranges of the usual
    size, which a later pass replays one by one; see :func:`_csv_batches`). Read errors are
    an :class:`InputError` naming the file."""
    fmt = table_format(path)
    batches = (
        _csv_batches(path, CSV_CHUNK_BYTES, columns, cuts, scale)
        if fmt == "csv"
        else _parquet_batches(path, max(1, int(PARQUET_BATCH_ROWS * scale)), columns)
    )
    offset, seen = 0, False
    try:
        for batch in batches:
            yield offset, batch
            offset += batch.height
            seen = True
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise _unreadable(path, exc) from exc
    if not seen:
        yield 0, empty


def _combine(parts: list[pl.DataFrame]) -> dict[str, Any]:
    """One dict from the one-row aggregate frames of each batch: counts summed, ``bad*``
    (first bad row) the least, ``hist*`` (value lists) concatenated."""
    out: dict[str, Any] = {}
    for c in parts[0].columns:
        if c.startswith("hist"):
            out[c] = pl.concat([p[c][0] for p in parts])
        elif c.startswith("bad"):
            found = [p[c][0] for p in parts if p[c][0] is not None]
            out[c] = min(found) if found else None
        else:
            out[c] = sum(int(p[c][0] or 0) for p in parts)
    return out


class _NumberSpool:
    """The parsed numeric columns of pass 1 in row order, on disk as Arrow IPC files (one per
    batch), so memory holds a batch of them rather than the table: the fit reads one column
    at a time, the transform the rows of its batch."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.files: list[Path] = []
        self.starts: list[int] = []
        self.rows = 0
        self.schema = pl.Schema()
        self._cached: tuple[int, pl.DataFrame] | None = None

    def append(self, part: pl.DataFrame) -> None:
        path = self.dir / f"numbers-{len(self.files):06d}.arrow"
        try:
            part.write_ipc(path, compression="uncompressed")
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise InputError(
                f"Cannot write the temporary spool beside the output: {exc}",
                code="unwritable_output",
                file=str(path),
            ) from exc
        self.files.append(path)
        self.starts.append(self.rows)
        self.rows += part.height
        self.schema = part.schema

    def scan(self) -> pl.LazyFrame:
        if not self.files:
            return pl.LazyFrame(schema=self.schema)
        return pl.scan_ipc(self.files)

    def values(self, column: str) -> Callable[[], pl.Series]:
        """A loader of a column's non-null values as floats (for the fit)."""

        def load() -> pl.Series:
            frame = self.scan().select(pl.col(column).drop_nulls().cast(pl.Float64).alias("value"))
            return frame.collect(engine=BATCH_ENGINE).to_series()

        return load

    def _file(self, k: int) -> pl.DataFrame:
        if self._cached is None or self._cached[0] != k:
            self._cached = (k, pl.read_ipc(self.files[k]))
        return self._cached[1]

    def slice(self, offset: int, n: int) -> pl.DataFrame:
        """Rows ``offset`` to ``offset + n`` (reading only the files that hold them)."""
        parts: list[pl.DataFrame] = []
        k = max(bisect.bisect_right(self.starts, offset) - 1, 0)
        end = offset + n
        while k < len(self.files) and self.starts[k] < end:
            lo = max(offset - self.starts[k], 0)
            part = self._file(k)
            parts.append(part.slice(lo, end - self.starts[k] - lo))
            k += 1
        if not parts:
            return pl.DataFrame(schema=self.schema)
        return parts[0] if len(parts) == 1 else pl.concat(parts)


class _Outputs:
    """Batch writers of one run, written on a background thread in submission order and
    moved into place together only when every step succeeded."""

    def __init__(self) -> None:
        self.writers: list[BatchWriter] = []
        self.queue: BackgroundWriter[pl.DataFrame] = BackgroundWriter(BatchWriter.write, depth=1)

    def new(self, path: Path, text_columns: Collection[str] = ()) -> BatchWriter:
        w = BatchWriter(path, text_columns)
        self.writers.append(w)
        return w

    def write(self, w: BatchWriter, df: pl.DataFrame, first: bool = False) -> None:
        """Append ``df`` to ``w``; an empty frame only as the ``first`` write (the header or
        schema of an output that may get no rows)."""
        if df.height or first:
            self.queue.submit(w, df)

    def sink(
        self,
        frames: Iterator[pl.DataFrame],
        schema: pl.Schema,
        path: Path,
        text_columns: Collection[str] = (),
    ) -> BatchWriter:
        """Write every frame of ``frames`` to ``path`` (at least its schema)."""
        w = self.new(path, text_columns)
        self.write(w, pl.DataFrame(schema=schema), True)
        for df in frames:
            self.write(w, df)
        return w

    def finish(self) -> None:
        """Write out everything submitted and close the files (not yet moved into place)."""
        self.queue.finish()
        for w in self.writers:
            w.close()

    def commit(self) -> None:
        self.finish()
        for w in self.writers:
            w.commit()
        self.writers = []

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # the run is failing already
            self.queue.finish()
        for w in self.writers:
            w.abort()
        self.writers = []


def clean_streamed(
    source: Path,
    scan: pl.LazyFrame,
    sample: pl.DataFrame,
    plan: CleaningPlan,
    fitted: FittedPlan | None,
    paths: Any,
    progress: Progress,
) -> tuple[dict[str, Any], FittedPlan]:
    """Clean ``source`` (scanned as ``scan``; ``sample`` = its first rows) into ``paths``;
    fits ``plan`` unless ``fitted`` is given. Returns the report and the fitted plan.
    Temporary files (the parsed numbers, the duplicate candidates) live beside the output
    until the run ends."""
    paths.output.parent.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix=".clean-spool-", dir=paths.output.parent) as tmp,
        contextlib.ExitStack() as stack,
    ):
        return _clean_streamed(
            source, scan, sample, plan, fitted, paths, progress, Path(tmp), stack
        )


def _clean_streamed(
    source: Path,
    scan: pl.LazyFrame,
    sample: pl.DataFrame,
    plan: CleaningPlan,
    fitted: FittedPlan | None,
    paths: Any,
    progress: Progress,
    spool_dir: Path,
    stack: contextlib.ExitStack,
) -> tuple[dict[str, Any], FittedPlan]:
    # numpy (the fit's statistics, the histograms) is first needed after pass 1; imported
    # now beside it, while the main thread waits on Polars, rather than on the way from one
    # pass to the other.
    threading.Thread(target=_import_later_needs, name="chatpersona-imports", daemon=True).start()
    src = str(source)
    checker = fitted if fitted is not None else FittedPlan(plan)
    checker._check_columns(sample, src)
    schema = sample.schema
    empty = sample.head(0)
    columns_in = list(schema.names())
    names = list(plan.columns)
    rules = list(plan.columns.values())
    mv = plan.missing_values
    casts = text_casts(schema, names)
    cast_names = {e.meta.output_name() for e in casts}
    originals = {c: f"__orig{j}" for j, c in enumerate(columns_in) if c in cast_names}
    prepare = [pl.col(c).alias(o) for c, o in originals.items()] + casts

    # Which columns are looked up by distinct value: labels and booleans always (their
    # counts are statistics), others when their leading rows repeat their values.
    head = sample.head(DEDUP_SAMPLE).select(names)
    head = head.with_columns(text_casts(head.schema, names)) if casts else head
    lookup = [
        i
        for i, r in enumerate(rules)
        if r.kind in LABEL_KINDS
        or (
            r.kind != "id"
            and r.kind not in NUMERIC_KINDS
            and head.height > 0
            and _few_distinct(head[r.name], r.kind)
        )
    ]
    numeric = [i for i, r in enumerate(rules) if r.kind in NUMERIC_KINDS]

    # ---------------------------------------------------------------- pass 1: fit
    fitting = fitted is None
    # Numeric columns whose leading rows repeat their values are parsed on each batch's
    # distinct values and joined back (the same values in row order, a fraction of the work).
    repeating = {
        i for i in numeric if head.height > 0 and _few_distinct(head[rules[i].name], rules[i].kind)
    }

    def outs_of(i: int) -> list[str]:
        return [f"__p{i}", f"__m{i}", *([f"__k{i}"] if rules[i].kind == "currency" else [])]

    per_row = [i for i in numeric if i not in repeating]
    stages = merge_stages([parse_stage(rules[i], i, mv) for i in per_row])
    outs = [o for i in numeric for o in outs_of(i)]
    codes = [pl.col(f"__k{i}").cast(pl.Categorical) for i in numeric if f"__k{i}" in outs]

    def numeric_parse(lf: pl.LazyFrame) -> tuple[list[pl.LazyFrame], list[pl.LazyFrame]]:
        """The parsed per-row numeric columns, and per repeating column its distinct non-null
        raw values parsed, with their counts (``name``, ``__len``, outputs)."""
        parts: list[pl.LazyFrame] = []
        if per_row:
            rowwise = [o for i in per_row for o in outs_of(i)]
            parts.append(
                apply_stages(lf.select([rules[i].name for i in per_row]), stages).select(rowwise)
            )
        tables = [
            apply_stages(
                lf.group_by(rules[i].name).agg(pl.len().alias("__len")).drop_nulls(rules[i].name),
                parse_stage(rules[i], i, mv),
            ).select(rules[i].name, "__len", *outs_of(i))
            for i in sorted(repeating)
        ]
        return parts, tables

    def by_value(batch: pl.DataFrame, tables: list[pl.DataFrame]) -> list[pl.Series]:
        """The repeating columns' parsed outputs in row order: each row takes its value's row
        of the column's table (a cast and a gather, cheaper than a join). The positions of
        all columns come from one query (Series.to_physical and fill_null would each run one
        of their own); a null raw value takes an added last row: missing, with a null value
        and code."""
        at = batch.select(
            pl.col(rules[i].name)
            .cast(pl.Enum(t.get_column(rules[i].name)))
            .to_physical()
            .cast(pl.UInt32)
            .fill_null(t.height)
            for i, t in zip(sorted(repeating), tables, strict=True)
        ).get_columns()
        found: list[pl.Series] = []
        for positions, i, t in zip(at, sorted(repeating), tables, strict=True):
            missing_row = pl.DataFrame({f"__m{i}": [True]}, schema={f"__m{i}": pl.Boolean})
            outs = pl.concat([t.select(outs_of(i)), missing_row], how="diagonal_relaxed")
            found += outs[positions].get_columns()
        return found

    def order_counts(i: int, table: pl.DataFrame) -> pl.DataFrame:
        """The counts of a repeating column's parsed values (its order statistics)."""
        return (
            table.select(pl.col(f"__p{i}").cast(pl.Float64).alias("value"), pl.col("__len"))
            .drop_nulls("value")
            .group_by("value")
            .agg(pl.col("__len").sum().cast(pl.Int64).alias("n"))
        )

    n_rows = 0
    value_counts: dict[int, list[pl.DataFrame]] = {i: [] for i in lookup}
    numbers = _NumberSpool(spool_dir) if fitting and numeric else None
    fit_columns = [rules[i].name for i in sorted({*lookup, *numeric})]
    fit_casts = [e for e in casts if e.meta.output_name() in fit_columns]
    fit_scale = max(1.0, FIT_CHUNK_BYTES / CSV_CHUNK_BYTES)
    cuts: list[tuple[int, int]] = []  # pass 2 reads the byte ranges pass 1 found
    fit_batches = raw_batches(source, empty.select(fit_columns), fit_columns, fit_scale, cuts)

    currency = [i for i in numeric if rules[i].kind == "currency"]
    # Per batch, the counts the fit needs of the parsed numbers (missing, unparseable, the
    # currency codes), so that no pass over the spool is needed for them.
    tally = [
        e
        for i in numeric
        for e in (
            pl.col(f"__m{i}").sum().alias(f"m{i}"),
            (pl.col(f"__p{i}").is_null() & ~pl.col(f"__m{i}")).sum().alias(f"x{i}"),
        )
    ]

    def fit_batch(
        item: tuple[int, pl.DataFrame],
    ) -> tuple[int, list[pl.DataFrame], pl.DataFrame | None, list[pl.DataFrame]]:
        batch = item[1]
        batch = batch.with_columns(fit_casts) if fit_casts else batch
        lf = batch.lazy()
        queries = [lf.group_by(rules[i].name).agg(pl.len().alias("__len")) for i in lookup]
        n_lookup = len(queries)
        n_tables = 0
        if fitting and numeric:
            parsing, distinct = numeric_parse(lf)
            queries += parsing + distinct
            n_tables = len(distinct)
        results = _collect(queries, source)
        part = None
        counts: list[pl.DataFrame] = []
        if fitting and numeric:
            tables = results[len(results) - n_tables :]
            columns = [c for r in results[n_lookup : len(results) - n_tables] for c in r]
            try:
                columns += by_value(batch, tables) if tables else []
            except pl.exceptions.PolarsError as exc:
                raise _unreadable(source, exc) from exc
            part = pl.DataFrame(columns).select(outs)
            counts.append(part.select(tally))
            counts += [
                part.get_column(f"__k{i}").drop_nulls().alias("value").value_counts(name="n")
                for i in currency
            ]
            counts += [order_counts(i, t) for i, t in zip(sorted(repeating), tables, strict=True)]
            part = part.with_columns(codes) if codes else part
        return batch.height, results[:n_lookup], part, counts

    tallies: list[pl.DataFrame] = []
    code_counts: dict[int, list[pl.DataFrame]] = {i: [] for i in currency}
    value_tallies: dict[int, list[pl.DataFrame]] = {i: [] for i in repeating}
    for height, counted, part, counts in ordered_map(
        fit_batch, read_ahead(fit_batches), workers=PASS1_WORKERS
    ):
        n_rows += height
        if part is not None and numbers is not None:
            numbers.append(part)
            tallies.append(counts[0])
            for i, vc in zip(currency, counts[1 : 1 + len(currency)], strict=True):
                code_counts[i].append(vc)
            for i, vc in zip(sorted(repeating), counts[1 + len(currency) :], strict=True):
                value_tallies[i].append(vc)
        for i, vc in zip(lookup, counted, strict=True):
            value_counts[i].append(vc)
        progress("fit", height)

    # The distinct values of the looked-up columns, parsed once each (all columns at once):
    # the labels' now (the fit needs their counts), the others' (dates, texts: only pass 2
    # needs them) on this thread while the fit's threads compute the numeric statistics.
    def tables_of(columns: list[int]) -> dict[int, pl.DataFrame]:
        queries = [
            apply_stages(
                pl.concat(value_counts.pop(i))
                .lazy()
                .group_by(rules[i].name, maintain_order=True)
                .agg(pl.col("__len").sum()),
                parse_stage(rules[i], i, mv),
            ).select(rules[i].name, "__len", *outs_of(i))
            for i in columns
        ]
        return dict(zip(columns, _collect(queries, source), strict=True)) if queries else {}

    labels_first = [i for i in lookup if rules[i].kind in LABEL_KINDS or not fitting]
    parsed = tables_of(labels_first)
    # Pass 2 starts reading while the statistics are computed.
    pass2_batches = raw_batches(source, empty, cuts=cuts)
    pass2 = stack.enter_context(ReadAhead(pass2_batches))
    later = [i for i in lookup if i not in parsed]
    if fitting:
        missing = (
            {c: int(v) for c, v in pl.concat(tallies).sum().row(0, named=True).items()}
            if tallies
            else {}
        )
        fitted = _fit(
            plan,
            rules,
            n_rows,
            columns_in,
            parsed,
            numbers,
            missing,
            code_counts,
            value_tallies,
            meanwhile=lambda: parsed.update(tables_of(later)),
        )
    assert fitted is not None
    parsed = {i: parsed[i] for i in lookup}  # in plan order

    # ---------------------------------------------------------------- pass 2: transform
    stats = fitted.stats_
    decoded = (
        [pl.col(c).cast(pl.Utf8) for c in numbers.schema.names() if c.startswith("__k")]
        if numbers is not None
        else []
    )
    row_stages: list[Any] = []
    # Date columns parsed row by row: each parsed on its own first, so that a batch whose
    # values all take the fast paths skips the format patterns (apply_stages_skipping).
    own_parse: list[tuple[str, Any, list[str]]] = []
    exprs: list[pl.Expr] = []
    # Per looked-up column: its name, the Enum of its non-null raw values, their number (the
    # null raw value's row) and the helper columns of its table a row takes by that position.
    lookups: list[tuple[str, pl.Enum, int, pl.DataFrame]] = []
    gathers: list[pl.Expr] = []
    out_map: dict[str, list[tuple[str, str]]] = {}
    text_codes: set[str] = set()  # outputs of text gathered as Enum codes
    tables: dict[int, pl.DataFrame] = {}
    # The cleaned values of numeric columns parsed in pass 1, for the histograms.
    value_exprs: dict[int, pl.Expr] = {}
    built = {
        i: column_exprs(
            rule, i, stats[rule.name], mv, _decode(rule.kind, stats[rule.name].get("fill"))
        )
        for i, rule in enumerate(rules)
    }
    # The cleaned distinct values of the looked-up columns, all computed at once. The null raw
    # value (if any) last, so that a value's position in a table is its code in an Enum of
    # the non-null values: the lookup is a cast.
    table_queries = {
        i: parsed[i]
        .lazy()
        .with_columns(built[i][1])
        .sort(pl.col(rules[i].name).is_null(), maintain_order=True)
        for i in parsed
    }
    tables.update(zip(table_queries, pl.collect_all(list(table_queries.values())), strict=True))
    for i, rule in enumerate(rules):
        s1, e, outs_c = built[i]
        out_map[rule.name] = outs_c
        if i not in parsed:
            if not (fitting and i in numeric):  # else parsed in pass 1
                if rule.kind in ("date", "datetime"):
                    own_parse.append((rule.name, s1, [f"__p{i}", f"__m{i}"]))
                else:
                    row_stages.append(s1)
            else:
                value_exprs[i] = next(x for x in e if x.meta.output_name() == f"__v{i}")
            exprs += e
            continue
        table = tables[i]
        present = table[rule.name].drop_nulls()
        # Per row only what the outputs and the accepted-row counts need; the other counts
        # come from the table and its value counts.
        wanted = {f"__v{i}", f"__c{i}", f"__o{i}", f"__n{i}", f"__s{i}"}
        if table[f"__r{i}"].null_count() < table.height:
            wanted.add(f"__r{i}")
        if rule.on_invalid == "error":
            wanted.add(f"__x{i}")
        helpers = [h for h in (x.meta.output_name() for x in e) if h in wanted]
        # The two flags packed in one byte: one integer gather (a boolean gather costs about
        # as much again per column), unpacked in the batch's query.
        n, s, b = f"__n{i}", f"__s{i}", f"__b{i}"
        packed = (
            pl.col(n).fill_null(False).cast(pl.UInt8)
            | (pl.col(s).fill_null(False).cast(pl.UInt8) * 2)
        ).alias(b)
        helpers = [h for h in helpers if h not in (n, s)]
        gathers += [((pl.col(b) & 1) > 0).alias(n), ((pl.col(b) & 2) > 0).alias(s)]
        found_of = table.select(*helpers, packed)
        # An output of text with a few distinct values is gathered as an Enum of them (codes
        # in sorted order): a gather of bytes, and the Parquet writer takes its dictionary
        # from the codes instead of hashing every string (see io._ParquetSink).
        for h, out_name in outs_c:
            if h in helpers and found_of.schema[h] == pl.String:
                values = found_of.get_column(h).drop_nulls().unique().sort()
                if values.len() <= TEXT_CODES_MAX:
                    found_of = found_of.with_columns(pl.col(h).cast(pl.Enum(values)))
                    text_codes.add(out_name)
        lookups.append((rule.name, pl.Enum(present), present.len(), found_of))
        if f"__r{i}" not in wanted:
            gathers.append(pl.lit(None, dtype=pl.Int8).alias(f"__r{i}"))
    row_stage = merge_stages(row_stages) if row_stages else []
    idx = range(len(rules))
    final = [
        pl.coalesce([pl.col(f"__r{i}") for i in idx]).alias("_reason"),
        pl.coalesce(
            [pl.when(pl.col(f"__r{i}").is_not_null()).then(pl.lit(i, dtype=pl.Int16)) for i in idx]
        ).alias("_column"),
    ]
    quarantined = pl.col("_reason").is_not_null()

    out_pairs: list[tuple[str, str]] = []
    for c in columns_in:
        if c in out_map:
            out_pairs += out_map[c]
        elif plan.unplanned == "keep":
            out_pairs.append((originals.get(c, c), c))
    out_names = [o for _, o in out_pairs]
    flag_cols = [pl.col(f"__{x}{i}") for i in idx for x in ("n", "s")]
    dup_rule = plan.duplicates
    dedup = dup_rule.exact_rows or dup_rule.id_column is not None
    cand_cols: list[pl.Expr] = [
        pl.col("_row"),
        *[pl.col(hh).alias(o) for hh, o in out_pairs],
        *flag_cols,
    ]
    if dup_rule.exact_rows:
        cand_cols.append(
            pl.struct([pl.col(hh) for hh, _ in out_pairs]).hash(seed=0).alias("__hash")
        )

    all_aggs: list[pl.Expr] = [pl.len().alias("rows_in")]
    for i, rule in enumerate(rules):
        if i not in tables:
            all_aggs += [
                pl.col(f"__m{i}").sum().alias(f"missing_before{i}"),
                pl.col(f"__x{i}").sum().alias(f"invalid{i}"),
                pl.col(f"__u{i}").sum().alias(f"outliers{i}"),
            ]
        if rule.on_invalid == "error":
            all_aggs.append(pl.col("_row").filter(pl.col(f"__x{i}")).min().alias(f"bad{i}"))
    for k, code in enumerate(REASON_CODES):
        all_aggs.append((pl.col("_reason") == k).sum().alias(f"reason:{code}"))
    if not dedup:
        all_aggs += _accepted_aggs(rules, stats, out_map, ~quarantined, 0, value_exprs)

    quarantine_cols: list[str | pl.Expr] = [
        "_row",
        *[pl.col(originals[c]).alias(c) if c in originals else pl.col(c) for c in columns_in],
        pl.col("_reason").replace_strict(dict(enumerate(REASON_CODES)), return_dtype=pl.Utf8),
        pl.col("_column").replace_strict(dict(enumerate(names)), return_dtype=pl.Utf8),
    ]

    # The columns the outputs and counts read; the other intermediate results of a batch are
    # dropped (or never computed) before it is split.
    used: set[str] = {"_row", "_reason", "_column"}
    reads: list[str | pl.Expr] = [*quarantine_cols, *cand_cols, *all_aggs, *value_exprs.values()]
    for read in reads:
        used.update([read] if isinstance(read, str) else read.meta.root_names())
    kept: list[str] = []

    # Built once: an expression holds its converted Enum type, which each batch's cast
    # then uses as it is (a type given anew is converted, its categories hashed, every time).
    position_exprs = [
        pl.col(name)
        .cast(values)
        .to_physical()
        .cast(pl.UInt32)
        .fill_null(n_present)
        .alias(f"__at{k}")
        for k, (name, values, n_present, _h) in enumerate(lookups)
    ]

    def transformed(offset: int, batch: pl.DataFrame) -> pl.DataFrame:
        if numbers is not None:
            part = numbers.slice(offset, batch.height)
            batch = batch.hstack(part.with_columns(decoded).get_columns())
        if prepare:
            batch = batch.with_columns(prepare)
        # A looked-up column's cleaned values by the position of its raw value in the table:
        # the positions of all columns in one query (Series.fill_null, to_physical and
        # gather each run a query of their own), then one direct gather per column by
        # indexing with them (0.07-0.11 ms, against 0.27 for gather(); as ~80 expressions
        # of the batch's lazy query they were planned again for every batch).
        found: list[pl.Series] = []
        if lookups:
            positions = batch.select(position_exprs).get_columns()
            for at, (_n, _v, _p, helpers) in zip(positions, lookups, strict=True):
                found += helpers[at].get_columns()
        for name, stages, outs in own_parse:
            column = batch.select(name).lazy()
            found += apply_stages_skipping(column, stages).select(outs).collect().get_columns()
        batch = batch.hstack(found)
        lf = batch.lazy().with_row_index("_row", offset=offset + 1)
        lf = apply_stages(lf, row_stage) if row_stage else lf
        lf = lf.with_columns(exprs + gathers).with_columns(final)
        return (lf.select(kept) if kept else lf).collect(engine=BATCH_ENGINE)

    def quarantine_part(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.lazy().filter(quarantined).select(quarantine_cols).collect(engine=BATCH_ENGINE)

    outputs = _Outputs()
    parts: list[pl.DataFrame] = []
    accepted_masks: list[pl.Series] = []
    try:
        shapes = transformed(0, empty)  # the schemas of the outputs
        kept += [c for c in shapes.columns if c in used]
        q_out = outputs.new(paths.quarantine)
        outputs.write(q_out, quarantine_part(shapes), True)
        cand_shape = shapes.select(cand_cols)
        cand_schema = cand_shape.schema
        out_schema = cand_shape.select(out_names).schema

        # The histograms of the accepted values: a repeating column's from the counts of its
        # accepted values per batch (a few distinct values each), the others' from the spool
        # at the end, by the accepted rows' mask (their values are not kept per batch).
        counted_hist = [i for i in value_exprs if i in repeating] if not dedup else []
        spool_hist = {i: e for i, e in value_exprs.items() if i not in counted_hist}
        hist_counts: dict[int, list[pl.DataFrame]] = {i: [] for i in counted_hist}

        def clean_batch(
            item: tuple[int, pl.DataFrame],
        ) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.Series | None, list[pl.DataFrame]]:
            offset, batch = item
            try:
                frame = transformed(offset, batch).lazy()
                queries = [
                    frame.filter(quarantined).select(quarantine_cols),
                    frame.filter(~quarantined).select(cand_cols),
                    frame.select(all_aggs),
                    *(
                        frame.filter(~quarantined)
                        .group_by(pl.col(f"__v{i}").alias("value"))
                        .agg(pl.len().alias("n"))
                        for i in counted_hist
                    ),
                ]
                if spool_hist and not dedup:
                    queries.append(frame.select((~quarantined).alias("accepted")))
                q_part, cand, agg, *rest = pl.collect_all(queries, engine=BATCH_ENGINE)
                counts, rest = rest[: len(counted_hist)], rest[len(counted_hist) :]
                return q_part, cand, agg, rest[0].to_series() if rest else None, counts
            except pl.exceptions.PolarsError as exc:
                raise _unreadable(source, exc) from exc

        def candidates() -> Iterator[pl.DataFrame]:
            """Pass 2 proper: batches transformed two at a time; in input order, quarantined
            rows written out and the per-batch counts kept, candidate rows handed on."""
            batches = iter(pass2)
            for q_part, cand, agg, mask, counts in ordered_map(
                clean_batch, batches, workers=PASS2_WORKERS
            ):
                outputs.write(q_out, q_part, False)
                parts.append(agg)
                if mask is not None:
                    accepted_masks.append(mask)
                for i, vc in zip(counted_hist, counts, strict=True):
                    hist_counts[i].append(vc)
                progress("transform", agg["rows_in"][0])
                yield cand if dedup else cand.select(out_names)

        if not dedup:
            outputs.sink(candidates(), out_schema, paths.output, text_codes)
            sums = _combine(parts) | _table_sums(tables)
            _check_errors(rules, sums, scan, source)
            d_schema = pl.Schema(
                [("_row", cand_schema["_row"]), *out_schema.items(), ("_reason", pl.Utf8())]
            )
            d_empty = pl.DataFrame(schema=d_schema)
            outputs.write(outputs.new(paths.duplicates, text_codes), d_empty, True)
            # The spooled columns' histograms are computed while the writers finish their
            # files (~0.07 s each at 1M rows; both release the GIL).
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="chatpersona") as pool:
                finished = pool.submit(outputs.finish)
                if spool_hist and numbers is not None:
                    mask = pl.concat(accepted_masks)
                    sums |= _histogram_values(numbers, decoded, spool_hist, mask)
                finished.result()
            for i, vcs in hist_counts.items():
                vc = _merge_counts(vcs)
                sums[f"hist{i}"] = _Histogram(_histogram(vc["value"], vc["n"]))
            acc = sums
            dup_reasons: dict[str, int] = {}
        else:
            spool_out = outputs.sink(candidates(), cand_schema, spool_dir / "candidates.parquet")
            outputs.queue.wait()
            outputs.writers.remove(spool_out)
            spool_out.commit()
            spool = spool_out.path
            sums = _combine(parts) | _table_sums(tables)
            _check_errors(rules, sums, scan, source)
            tags = _decide_duplicates(spool, plan, out_map, out_names)
            dup_reasons = {str(k): int(n) for k, n in tags.group_by("_dup").len().iter_rows()}
            d_out = outputs.new(paths.duplicates, text_codes)
            acc_parts: list[pl.DataFrame] = []
            kept_rows_seen: list[pl.Series] = []

            def kept_rows() -> Iterator[pl.DataFrame]:
                """Pass 3: the spool split into accepted and duplicate rows."""
                for chunk in read_ahead(_parquet_batches(spool, PARQUET_BATCH_ROWS)):
                    sp = chunk.with_columns(
                        pl.col("_row")
                        .replace_strict(
                            tags["_row"], tags["_dup"], default=None, return_dtype=pl.Utf8
                        )
                        .alias("__dup")
                    )
                    kept = pl.col("__dup").is_null()
                    dup = sp.filter(~kept).select(
                        "_row", *out_names, pl.col("__dup").alias("_reason")
                    )
                    outputs.write(d_out, dup, not acc_parts)
                    acc_parts.append(
                        sp.select(_accepted_aggs(rules, stats, out_map, kept, 1, value_exprs))
                    )
                    if value_exprs:
                        kept_rows_seen.append(sp.filter(kept)["_row"])
                    yield sp.filter(kept).select(out_names)

            outputs.sink(kept_rows(), out_schema, paths.output, text_codes)
            acc = _combine(acc_parts)
            if value_exprs and numbers is not None:
                import numpy as np

                kept_mask = np.zeros(n_rows, dtype=bool)
                for r in kept_rows_seen:
                    kept_mask[r.to_numpy().astype(np.int64) - 1] = True
                acc |= _histogram_values(numbers, decoded, value_exprs, pl.Series(kept_mask))
        outputs.commit()
    finally:
        outputs.abort()
    progress("write", n_rows)

    if fitting:
        _patch_counts(fitted, rules, sums)
    report = _report(fitted, rules, sums, acc, tables, dup_reasons)
    return report, fitted


def _import_later_needs() -> None:
    global _numpy
    with contextlib.suppress(ImportError):
        # numpy itself, and numpy.ma, which numpy.median imports on its first call (50-95 ms
        # measured, in the fit between the passes, where nothing else runs).
        import numpy.ma

        _numpy = numpy


def _collect(queries: list[pl.LazyFrame], source: Path) -> list[pl.DataFrame]:
    try:
        return pl.collect_all(queries, engine=BATCH_ENGINE)
    except pl.exceptions.PolarsError as exc:
        raise _unreadable(source, exc) from exc


def _row(df: pl.DataFrame) -> dict[str, Any]:
    """The one row of an aggregate frame; list columns (histogram values) as Series."""
    lists = [c for c, t in df.schema.items() if isinstance(t, pl.List)]
    row = df.drop(lists).row(0, named=True)
    row.update({c: df[c][0] for c in lists})
    return row


def _table_sums(tables: dict[int, pl.DataFrame]) -> dict[str, int]:
    """Per-row counts of looked-up columns, from their cleaned distinct values."""
    out: dict[str, int] = {}
    for i, t in tables.items():
        row = t.select(
            pl.col("__len").filter(pl.col(f"__{x}{i}")).sum().alias(x) for x in ("m", "x", "u")
        ).row(0, named=True)
        out[f"missing_before{i}"] = int(row["m"] or 0)
        out[f"invalid{i}"] = int(row["x"] or 0)
        out[f"outliers{i}"] = int(row["u"] or 0)
    return out


def _fit(
    plan: CleaningPlan,
    rules: list[Any],
    n_rows: int,
    columns_in: list[str],
    parsed: dict[int, pl.DataFrame],
    spool: _NumberSpool | None,
    missing: dict[str, int],
    code_counts: dict[int, list[pl.DataFrame]],
    value_tallies: dict[int, list[pl.DataFrame]],
    meanwhile: Callable[[], None] | None = None,
) -> FittedPlan:
    """Statistics from pass 1, through the same code as :meth:`FittedPlan.fit`; a numeric
    column's values are read from the spool when its statistics are computed; its counts
    (``missing``: ``m{i}`` missing, ``x{i}`` unparseable), currency codes
    (``code_counts``) and, for a repeating column, its parsed values (``value_tallies``: the
    order statistics come from these counts, the same floats) were summed per batch. The
    label counts, then ``meanwhile``, run on this thread while the numeric statistics are
    computed on two others."""
    counts: dict[str, dict[str, int]] = {}
    numbers: dict[str, list[pl.Series] | Callable[[], pl.Series]] = {r.name: [] for r in rules}
    labels: dict[str, list[pl.DataFrame]] = {r.name: [] for r in rules}
    codes: dict[str, list[pl.DataFrame]] = {r.name: [] for r in rules}
    for i, rule in enumerate(rules):
        name = rule.name
        counts[name] = {"n_missing": 0, "n_invalid": 0}
        if rule.kind in NUMERIC_KINDS:
            assert spool is not None
            counts[name]["n_missing"] = int(missing[f"m{i}"])
            counts[name]["n_invalid"] = int(missing[f"x{i}"])
            numbers[name] = spool.values(f"__p{i}")
            if rule.kind == "currency":
                codes[name] += code_counts[i]
        elif rule.kind not in LABEL_KINDS:
            # Counts of dates, ids and texts are facts only (their fills do not depend on
            # them): they are taken from the transform pass (see _patch_counts).
            numbers[name] = [pl.Series("value", [0], dtype=pl.Int64)]

    def label_counts() -> None:
        for i, rule in enumerate(rules):
            if rule.kind not in LABEL_KINDS:
                continue
            t, name = parsed[i], rule.name
            pe, me, w = pl.col(f"__p{i}"), pl.col(f"__m{i}"), pl.col("__len")
            sums = t.select(
                w.filter(me).sum().alias("m"), w.filter(pe.is_null() & ~me).sum().alias("x")
            ).row(0, named=True)
            counts[name]["n_missing"] = int(sums["m"] or 0)
            if rule.kind in REASON_BY_KIND:
                counts[name]["n_invalid"] = int(sums["x"] or 0)
            labels[name].append(
                t.filter(pe.is_not_null())
                .group_by(pe.alias("value"))
                .agg(w.sum().cast(pl.UInt32).alias("n"))
            )
        if meanwhile is not None:
            meanwhile()

    def tally_of(parts: list[pl.DataFrame]) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
        def load() -> tuple[np.ndarray, np.ndarray]:
            total = _merge_counts(parts)
            return total["value"].to_numpy(), total["n"].to_numpy()

        return load

    order_counts = {rules[i].name: tally_of(parts) for i, parts in value_tallies.items() if parts}
    return FittedPlan(plan)._finish_fit(
        n_rows, counts, numbers, labels, codes, columns_in, order_counts, label_counts
    )


def _patch_counts(fitted: FittedPlan, rules: list[Any], sums: dict[str, Any]) -> None:
    for i, rule in enumerate(rules):
        if rule.kind in NUMERIC_KINDS or rule.kind in LABEL_KINDS:
            continue
        st = fitted.stats_[rule.name]
        st["n_missing"] = int(sums[f"missing_before{i}"])
        st["n_invalid"] = int(sums[f"invalid{i}"])
        st["n_valid"] = int(st["n"]) - st["n_missing"] - st["n_invalid"]


def _histogram_values(
    numbers: _NumberSpool, decoded: list[pl.Expr], value_exprs: dict[int, pl.Expr], mask: pl.Series
) -> dict[str, Any]:
    """The histograms of the accepted cleaned values of the numeric columns parsed in pass
    1, recomputed from their parsed values (already held) instead of keeping the values per
    batch; two columns at a time (Polars and numpy release the GIL)."""
    base = numbers.scan().with_columns(decoded).with_columns(pl.lit(mask).alias("__accepted"))

    def one(i: int) -> _Histogram:
        expr = value_exprs[i]
        values = base.filter(pl.col("__accepted")).select(expr).collect(engine=BATCH_ENGINE)
        return _Histogram(_histogram(values.to_series()))

    with ThreadPoolExecutor(max_workers=2) as pool:
        return {f"hist{i}": h for i, h in zip(value_exprs, pool.map(one, value_exprs), strict=True)}


class _Histogram:
    """A histogram already computed (the report takes it as it is)."""

    def __init__(self, value: dict[str, Any] | None) -> None:
        self.value = value


def _accepted_aggs(
    rules: list[Any],
    stats: dict[str, Any],
    out_map: dict[str, list[tuple[str, str]]],
    accepted: pl.Expr,
    named: int,
    known: dict[int, pl.Expr] | None = None,
) -> list[pl.Expr]:
    """Counts over the accepted rows (``accepted``), and the accepted values of numeric
    columns for the histograms (except those in ``known``, computed at the end); values are
    read from the helper (``named=0``) or output
    (``named=1``) column."""
    aggs: list[pl.Expr] = [accepted.sum().alias("rows_accepted")]
    for i, rule in enumerate(rules):
        has_fill = stats[rule.name].get("fill") is not None
        value = pl.col(out_map[rule.name][0][named])
        aggs += [
            (pl.col(f"__n{i}") & accepted & pl.lit(has_fill)).sum().alias(f"imputed{i}"),
            (pl.col(f"__s{i}") & accepted).sum().alias(f"standardized{i}"),
            (value.is_null() & accepted).sum().alias(f"missing_after{i}"),
        ]
        if rule.kind in NUMERIC_KINDS and not (known and i in known):
            aggs.append(value.filter(accepted).implode().alias(f"hist{i}"))
    return aggs


def _check_errors(rules: list[Any], sums: dict[str, Any], scan: pl.LazyFrame, source: Path) -> None:
    for i, rule in enumerate(rules):
        bad = sums.get(f"bad{i}")
        if rule.on_invalid != "error" or bad is None:
            continue
        value = scan.slice(int(bad) - 1, 1).select(rule.name).collect().item()
        raise InputError(
            f"Cannot parse a {rule.kind} value",
            code=REASON_BY_KIND.get(rule.kind),
            file=str(source),
            column=rule.name,
            row=int(bad),
            value=value,
        )


def _decide_duplicates(
    spool: Path,
    plan: CleaningPlan,
    out_map: dict[str, list[tuple[str, str]]],
    out_names: list[str],
) -> pl.DataFrame:
    """``(_row, _dup)`` of the duplicate candidates, by the rules of ``transform_frame``:
    exact copies of an earlier cleaned row, then one row per id (the latest by ``latest_by``,
    else the first). Rows are matched by a 64-bit hash first, then compared exactly."""
    rule = plan.duplicates
    lf = pl.scan_parquet(spool)
    id_out = out_map[rule.id_column][0][1] if rule.id_column else None
    ts_out = out_map[rule.latest_by][0][1] if rule.latest_by else None
    key_cols = ["_row"]
    if rule.exact_rows:
        key_cols.append("__hash")
    if id_out is not None:
        key_cols.append(id_out)
    if ts_out is not None and ts_out not in key_cols:
        key_cols.append(ts_out)
    keys = lf.select(key_cols).collect(engine=ENGINE)
    if rule.exact_rows and keys.height:
        shared = keys.filter(pl.col("__hash").is_duplicated())["_row"]
        rows = (
            lf.filter(pl.col("_row").is_in(shared.implode()))
            .select("_row", *out_names)
            .collect(engine=ENGINE)
            .sort("_row")
        )
        exact_rows = rows.filter(~pl.struct(out_names).is_first_distinct())["_row"]
        keys = keys.with_columns(pl.col("_row").is_in(exact_rows.implode()).alias("_exact"))
    else:
        keys = keys.with_columns(pl.lit(False).alias("_exact"))
    reason = duplicate_reason(keys, id_out, ts_out)
    return keys.select("_row", reason).filter(pl.col("_dup").is_not_null())


def _label_map(table: pl.DataFrame, name: str, i: int) -> list[dict[str, Any]]:
    """``report._label_map`` from the cleaned distinct values and their counts."""
    df = table.select(
        pl.col(name).alias("raw"),
        pl.col(f"__v{i}").cast(pl.Utf8).alias("value"),
        pl.col(f"__m{i}").alias("m"),
        pl.col("__len").alias("count"),
    ).filter(~pl.col("m") & (pl.col("raw") != pl.col("value")).fill_null(True))
    if df.height == 0:
        return []
    df = df.sort(["count", "raw"], descending=[True, False]).head(MAX_LABELS)
    return [{"from": r, "to": v, "count": int(n)} for r, v, _m, n in df.iter_rows()]


def _report(
    fitted: FittedPlan,
    rules: list[Any],
    sums: dict[str, Any],
    acc: dict[str, Any],
    tables: dict[int, pl.DataFrame],
    dup_reasons: dict[str, int],
) -> dict[str, Any]:
    """The dict of :func:`report.build_report`, from the streamed aggregates."""
    plan = fitted.plan
    reasons: dict[str, int] = {}
    for code in REASON_CODES:
        n = int(sums[f"reason:{code}"])
        if n:
            reasons[code] = n
    reasons.update(dup_reasons)
    reasons = dict(sorted(reasons.items(), key=lambda kv: -kv[1]))
    columns: dict[str, Any] = {}
    for i, rule in enumerate(rules):
        name = rule.name
        st = fitted.stats_[name]
        entry: dict[str, Any] = {
            "kind": rule.kind,
            "inferred": rule.inferred,
            "rule": rule.to_dict(),
            "missing_before": int(sums[f"missing_before{i}"]),
            "invalid": int(sums[f"invalid{i}"]),
            "missing_after": int(acc[f"missing_after{i}"]),
            "imputed": int(acc[f"imputed{i}"]),
            "fill_value": st.get("fill"),
            "standardized": int(acc[f"standardized{i}"]),
            "outliers": int(sums[f"outliers{i}"]),
            "stats": st,
        }
        if rule.note:
            entry["note"] = rule.note
        if rule.kind in LABEL_KINDS:
            entry["label_map"] = _label_map(tables[i], name, i)
        if rule.kind in ("numeric", "integer", "currency"):
            entry["bounds"] = [st.get("lo"), st.get("hi")]
            h = acc[f"hist{i}"]
            entry["histogram"] = h.value if isinstance(h, _Histogram) else _histogram(h)
        columns[name] = entry
    n_q = sum(int(sums[f"reason:{c}"]) for c in REASON_CODES)
    return {
        "rows_in": int(sums["rows_in"]),
        "rows_accepted": int(acc["rows_accepted"]),
        "rows_duplicate": int(sum(dup_reasons.values())),
        "rows_quarantined": n_q,
        "reasons": reasons,
        "columns": columns,
        "duplicates": plan.duplicates.to_dict(),
    }

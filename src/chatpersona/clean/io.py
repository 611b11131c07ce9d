"""Reading and writing tables by file extension, atomically (temp file + rename)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import polars as pl

from chatpersona.exceptions import InputError

__all__ = [
    "FORMATS",
    "atomic_path",
    "atomic_write_text",
    "iter_batches",
    "read_table",
    "table_format",
    "write_table",
]

FORMATS = {
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}


def _new_temp(path: Path) -> Path:
    """A temp file beside ``path`` with the permissions a normal new file would get."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return Path(tmp)


def table_format(path: Path) -> str:
    """``csv``, ``parquet`` or ``jsonl`` from the file name; an :class:`InputError` otherwise."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(
            f"Unsupported file extension {path.suffix!r}; use one of {sorted(FORMATS)}",
            code="unsupported_format",
            file=str(path),
        )
    return fmt


def read_table(path: str | Path) -> pl.DataFrame:
    """Read a CSV (every column as text, so nothing is coerced before the plan sees it),
    Parquet or JSON Lines file."""
    path = Path(path)
    fmt = table_format(path)
    if not path.is_file():
        raise InputError("Input file not found", code="file_not_found", file=str(path))
    try:
        if fmt == "csv":
            return pl.read_csv(path, infer_schema=False)
        if fmt == "parquet":
            return pl.read_parquet(path)
        return pl.read_ndjson(path, infer_schema_length=None)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise InputError(
            f"Cannot read {fmt} input: {exc}", code="unreadable_input", file=str(path)
        ) from exc


TEXT_CHUNK_BYTES = 8 << 20


def iter_batches(path: str | Path, batch_rows: int) -> Iterator[pl.DataFrame]:
    """Read a file in consecutive batches of ``batch_rows`` rows without loading it whole:
    CSV and JSON Lines in one pass over byte ranges cut at record boundaries, regrouped into
    batches (a slice of a lazy scan of a text file scans it from its start again, which is
    quadratic; Polars' batch iterator reads ahead without bound), Parquet by slices of a
    lazy scan (which read only the row groups they need). Memory holds about a batch and a
    range. An empty file gives one empty batch."""
    path = Path(path)
    fmt = table_format(path)
    if not path.is_file():
        raise InputError("Input file not found", code="file_not_found", file=str(path))
    try:
        from chatpersona.clean.streamed import _csv_batches, _parquet_batches

        if fmt == "parquet":
            yield from _parquet_batches(path, batch_rows)
            return
        if fmt == "csv":
            ranges = _csv_batches(path, TEXT_CHUNK_BYTES)
            empty = pl.scan_csv(path, infer_schema=False)
        else:
            empty = pl.scan_ndjson(path, infer_schema_length=None)
            ranges = _ndjson_batches(path, TEXT_CHUNK_BYTES, empty.collect_schema())
        seen = False
        for batch in _exact(ranges, batch_rows):
            seen = True
            yield batch
        if not seen:
            yield empty.head(0).collect()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(
            f"Cannot read {fmt} input: {exc}", code="unreadable_input", file=str(path)
        ) from exc


def _ndjson_batches(path: Path, chunk_bytes: int, schema: pl.Schema) -> Iterator[pl.DataFrame]:
    """Consecutive batches of a JSON Lines file, each parsed (with the whole file's
    ``schema``) from about ``chunk_bytes`` cut after a newline (a JSON text holds none)."""
    with path.open("rb") as fh:
        carry = b""
        while True:
            data = fh.read(chunk_bytes)
            buf = carry + data if carry else data
            if not data:  # the end: what is left is the last record(s)
                if buf.strip():
                    yield pl.read_ndjson(buf, schema=schema)
                return
            cut = buf.rfind(b"\n") + 1
            if cut == 0:  # one record longer than a chunk: read on
                carry = buf
                continue
            body, carry = buf[:cut], buf[cut:]
            if body.strip():
                yield pl.read_ndjson(body, schema=schema)


def _exact(chunks: Iterable[pl.DataFrame], rows: int) -> Iterator[pl.DataFrame]:
    """``chunks`` regrouped into frames of exactly ``rows`` rows (the last one fewer)."""
    held: list[pl.DataFrame] = []
    n = 0
    for chunk in chunks:
        if chunk.height == 0:
            continue
        held.append(chunk)
        n += chunk.height
        while n >= rows:
            whole = pl.concat(held) if len(held) > 1 else held[0]
            yield whole.head(rows)
            rest = whole.slice(rows)
            held, n = ([rest] if rest.height else []), rest.height
    if n:
        yield pl.concat(held) if len(held) > 1 else held[0]


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path next to ``path``; renamed onto ``path`` only if the block succeeds."""
    tmp_path = _new_temp(path)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _write(df: pl.DataFrame, path: Path, fmt: str) -> None:
    if fmt == "csv":
        df.write_csv(path)
    elif fmt == "parquet":
        df.write_parquet(path)
    else:
        df.write_ndjson(path)


def write_table(df: pl.DataFrame, path: str | Path) -> None:
    """Write ``df`` by the extension of ``path``, atomically."""
    path = Path(path)
    fmt = table_format(path)
    try:
        with atomic_path(path) as tmp:
            _write(df, tmp, fmt)
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(
            f"Cannot write {fmt} output: {exc}", code="unwritable_output", file=str(path)
        ) from exc


def _is_text(t: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t))


def _distinct(df: pl.DataFrame, name: str) -> bool:
    """Whether most of the (at least 64) values of a column are distinct."""
    return df.height >= 64 and df.get_column(name).n_unique() * 2 > df.height


def _repeats(t: Any) -> bool:
    import pyarrow as pa

    return _is_text(t) or bool(pa.types.is_boolean(t) or pa.types.is_dictionary(t))


_PLAIN = (
    pl.String,
    pl.Boolean,
    pl.Int8,
    pl.Int16,
    pl.Int32,
    pl.Int64,
    pl.UInt8,
    pl.UInt16,
    pl.UInt32,
    pl.UInt64,
    pl.Float32,
    pl.Float64,
    pl.Date,
)


def _plain(dtype: Any) -> bool:
    """A type whose Parquet type alone reads back as the same Polars type (a time zone
    other than UTC is only in the Arrow schema)."""
    if isinstance(dtype, pl.Datetime):
        return dtype.time_zone in (None, "UTC")
    return isinstance(dtype, _PLAIN) or dtype in _PLAIN


class BatchWriter:
    """Append batches to one output file (CSV, Parquet or JSONL), renamed into place on
    :meth:`commit`; :meth:`abort` leaves nothing behind."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fmt = table_format(path)
        self.tmp = _new_temp(path)
        self._pq: Any = None
        self._plain: bool | None = None
        self._fh = None if self.fmt == "parquet" else self.tmp.open("wb")
        self._first = True
        self._empty: pl.DataFrame | None = None
        self._final = False

    def write(self, df: pl.DataFrame) -> None:
        """Append one batch (all batches must have the same schema)."""
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            # Tables of plain types are handed over in Polars' own string layout (views),
            # with no conversion to Arrow's classic strings (measured 0.13 s a million
            # rows), and written without the Arrow schema (which would name string_view,
            # unknown to older readers): their Parquet types map back to the same types.
            # Other types (durations, categoricals, nested) need that schema to come back.
            if self._pq is None and not df.height and not self._final:
                # The writer is made with the first rows, which tell which columns repeat
                # (an output that gets none is written from this frame when closed).
                self._empty = df
                return
            if self._plain is None:
                self._plain = all(_plain(t) for t in df.schema.dtypes())
            newest = pl.CompatLevel.newest() if self._plain else pl.CompatLevel.oldest()
            table = df.to_arrow(compat_level=newest)
            if self._pq is None:
                # Dictionary pages where values repeat (text, flags), min/max statistics
                # where they prune (not on free text): measured 30% less encoding time.
                # A text column mostly distinct in the first rows (an id) is written plain:
                # hashing its values into a dictionary of every value cost 4x the plain
                # encoding (0.17 vs 0.04 s a million ids).
                labels = [
                    f.name
                    for f in table.schema
                    if _repeats(f.type) and not (_is_text(f.type) and _distinct(df, f.name))
                ]
                self._pq = pq.ParquetWriter(
                    str(self.tmp),
                    table.schema,
                    use_dictionary=labels,
                    write_statistics=[f.name for f in table.schema if not _is_text(f.type)],
                    store_schema=not self._plain,
                )
            self._pq.write_table(table)
        elif self.fmt == "csv":
            assert self._fh is not None
            df.write_csv(self._fh, include_header=self._first)
        else:
            assert self._fh is not None
            df.write_ndjson(self._fh)
        self._first = False

    def commit(self) -> None:
        """Close and move the file into place."""
        self._close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        """Close and delete the temporary file."""
        self._empty = None
        self._close()
        if self.tmp.exists():
            self.tmp.unlink()

    def _close(self) -> None:
        if self._pq is None and self._empty is not None:
            self._final = True
            self.write(self._empty)  # no rows came: the schema alone
        self._empty = None
        if self._pq is not None:
            self._pq.close()
            self._pq = None
        if self._fh is not None:
            self._fh.close()
            self._fh = None

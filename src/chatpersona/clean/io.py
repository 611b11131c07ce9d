"""Reading and writing tables by file extension, atomically (temp file + rename)."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Collection, Iterable, Iterator
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


# Rows a Parquet sink holds before it writes them out: at 1M rows x 21 columns, 16k-row
# groups gave a peak ~40 MB under 64k-row ones (the last flush is shorter too).
PARQUET_ROW_GROUP = 16_384


ARROW_SCHEMA_KEY = "ARROW:schema"


def _arrow_schema_as_text(
    schema: pl.Schema, text_columns: Collection[str]
) -> dict[str, str] | None:
    """The Parquet key-value metadata whose Arrow schema is ``schema`` with
    ``text_columns`` as strings (None when there are none): given to the writer, it replaces
    the schema Polars would write (checked by the tests: the columns read back as strings,
    in Polars and in pyarrow)."""
    if not any(c in text_columns for c in schema):
        return None
    plain = pl.Schema({c: pl.String() if c in text_columns else t for c, t in schema.items()})
    buf = io.BytesIO()
    pl.DataFrame(schema=plain).write_parquet(buf)
    return {ARROW_SCHEMA_KEY: pl.read_parquet_metadata(buf.getvalue())[ARROW_SCHEMA_KEY]}


class _Abort(Exception):
    """Ends a Parquet sink's input without completing the file."""


_END = object()


class _ParquetSink:
    """Frames appended to one Parquet file by Polars' streaming sink, which runs on its own
    thread and pulls the frames from a queue (one held at a time) as they are put.

    Polars writes the file's Arrow schema (large strings, not the string views it holds),
    so every type reads back as written, and encodes the columns on its own threads.
    ``text_columns``: Enum columns that are text held as codes (a few distinct values) and
    are written as text: their dictionary pages come from the codes (about half the cost of
    hashing every string, measured) and the file's Arrow schema says string."""

    def __init__(self, path: Path, schema: pl.Schema, text_columns: Collection[str] = ()) -> None:
        import queue
        import threading

        self._q: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._failure: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run,
            args=(path, schema, _arrow_schema_as_text(schema, text_columns)),
            name="chatpersona-parquet",
            daemon=True,
        )
        self._thread.start()

    def _frames(self, *_: Any) -> Iterator[pl.DataFrame]:
        while True:
            item = self._q.get()
            if item is _END:
                return
            if isinstance(item, _Abort):
                raise item
            yield item

    def _run(self, path: Path, schema: pl.Schema, metadata: dict[str, str] | None) -> None:
        from polars.io.plugins import register_io_source

        try:
            register_io_source(self._frames, schema=schema).sink_parquet(
                path, compression="snappy", row_group_size=PARQUET_ROW_GROUP, metadata=metadata
            )
        except BaseException as exc:  # raised in the writing thread
            self._failure = exc

    def _put(self, item: Any) -> None:
        import queue

        while True:
            self._raise()
            if not self._thread.is_alive():
                raise InputError("The Parquet writer stopped", code="unwritable_output")
            try:
                self._q.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _raise(self) -> None:
        if self._failure is not None and not isinstance(self._failure, _Abort):
            raise self._failure

    def put(self, df: pl.DataFrame) -> None:
        if df.height:
            self._put(df)

    def close(self) -> None:
        self._put(_END)
        self._thread.join()
        self._raise()

    def abort(self) -> None:
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                self._put(_Abort())
        self._thread.join()


class BatchWriter:
    """Append batches to one output file (CSV, Parquet or JSONL), renamed into place on
    :meth:`commit`; :meth:`abort` leaves nothing behind. ``text_columns``: Enum columns
    holding text as codes, which a Parquet file stores as strings (CSV and JSON Lines write
    any Enum as its text)."""

    def __init__(self, path: Path, text_columns: Collection[str] = ()) -> None:
        self.path = path
        self.text_columns = frozenset(text_columns)
        self.fmt = table_format(path)
        self.tmp = _new_temp(path)
        self._sink: _ParquetSink | None = None
        self._fh = None if self.fmt == "parquet" else self.tmp.open("wb")
        self._first = True

    def write(self, df: pl.DataFrame) -> None:
        """Append one batch (all batches must have the same schema; the first one, even
        empty, gives a Parquet file its schema)."""
        if self.fmt == "parquet":
            if self._sink is None:
                self._sink = _ParquetSink(self.tmp, df.schema, self.text_columns)
            self._sink.put(df)
        elif self.fmt == "csv":
            assert self._fh is not None
            df.write_csv(self._fh, include_header=self._first)
        else:
            assert self._fh is not None
            df.write_ndjson(self._fh)
        self._first = False

    def close(self) -> None:
        """Finish writing the file (still at its temporary path; closing again does nothing)."""
        self._close()

    def commit(self) -> None:
        """Close and move the file into place."""
        self._close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        """Close and delete the temporary file."""
        if self._sink is not None:
            self._sink.abort()
            self._sink = None
        self._close()
        if self.tmp.exists():
            self.tmp.unlink()

    def _close(self) -> None:
        if self._sink is not None:
            sink, self._sink = self._sink, None
            sink.close()
        if self._fh is not None:
            self._fh.close()
            self._fh = None

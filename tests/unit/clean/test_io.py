"""BatchWriter: Parquet outputs (written by Polars' streaming sink on its own thread) read
back as the types written, in Polars and in pyarrow; aborted ones leave nothing."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from chatpersona.clean.io import BatchWriter, read_table


def _frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "s": ["a", None, "ünïcode long enough to be out of line in a view"],
            "b": [True, None, False],
            "i8": pl.Series([1, None, -3], dtype=pl.Int8),
            "u32": pl.Series([1, 2, None], dtype=pl.UInt32),
            "f": [0.5, None, 1e300],
            "d": [dt.date(2024, 1, 5), None, dt.date(1970, 1, 1)],
            "ts": [dt.datetime(2024, 1, 5, 1, 2, 3), None, dt.datetime(2000, 1, 1)],
            "utc": pl.Series([dt.datetime(2024, 1, 5), None, None]).dt.replace_time_zone("UTC"),
        }
    )


def _write(path: Path, df: pl.DataFrame, batches: int = 3) -> BatchWriter:
    w = BatchWriter(path)
    for _ in range(batches):
        w.write(df)
    w.commit()
    return w


def test_plain_types_read_back_the_same_and_as_standard_arrow_types(tmp_path: Path) -> None:
    df = _frame()
    _write(tmp_path / "p.parquet", df)
    back = pl.read_parquet(tmp_path / "p.parquet")
    assert back.schema == df.schema
    assert back.equals(pl.concat([df] * 3))
    # Polars holds strings as views; the file names them large strings, which older
    # readers know (string_view is recent in Arrow).
    arrow = pq.read_schema(tmp_path / "p.parquet")
    assert str(arrow.field("s").type) == "large_string"
    assert pq.read_table(tmp_path / "p.parquet").num_rows == 3 * df.height


def _dictionary_columns(path: Path) -> set[str]:
    meta = pq.read_metadata(path)
    cols = (meta.row_group(0).column(k) for k in range(meta.num_columns))
    return {c.path_in_schema for c in cols if "RLE_DICTIONARY" in c.encodings}


def test_mostly_distinct_text_is_written_plain_and_repeating_text_as_a_dictionary(
    tmp_path: Path,
) -> None:
    n = 1000
    df = pl.DataFrame(
        {
            "id": [f"user-{k:06d}" for k in range(n)],
            "label": [["north", "south", None][k % 3] for k in range(n)],
            "flag": [k % 2 == 0 for k in range(n)],
        }
    )
    path = tmp_path / "d.parquet"
    w = BatchWriter(path)
    w.write(df.head(0))  # the schema first, as the clean writes it: decided on real rows
    w.write(df)
    w.write(df.with_columns(pl.col("id") + "-b"))
    w.commit()
    assert _dictionary_columns(path) == {"label"}  # (Parquet booleans are bit-packed)
    assert pl.read_parquet(path).equals(pl.concat([df, df.with_columns(pl.col("id") + "-b")]))


def test_an_output_that_gets_no_rows_is_written_with_its_schema(tmp_path: Path) -> None:
    df = _frame()
    w = BatchWriter(tmp_path / "e.parquet")
    w.write(df.head(0))
    w.commit()
    back = pl.read_parquet(tmp_path / "e.parquet")
    assert back.height == 0 and back.schema == df.schema


def test_an_aborted_writer_leaves_nothing_even_before_its_first_rows(tmp_path: Path) -> None:
    w = BatchWriter(tmp_path / "a.parquet")
    w.write(_frame().head(0))
    w.abort()
    assert list(tmp_path.iterdir()) == []


def test_an_aborted_writer_leaves_nothing_after_rows_and_its_thread_ends(tmp_path: Path) -> None:
    import threading

    w = BatchWriter(tmp_path / "a.parquet")
    for _ in range(5):
        w.write(_frame())
    w.abort()
    assert list(tmp_path.iterdir()) == []
    assert not [t for t in threading.enumerate() if t.name == "chatpersona-parquet"]


def test_a_committed_writer_leaves_no_thread(tmp_path: Path) -> None:
    import threading

    _write(tmp_path / "c.parquet", _frame())
    assert not [t for t in threading.enumerate() if t.name == "chatpersona-parquet"]


def test_text_columns_held_as_enum_codes_are_written_as_strings(tmp_path: Path) -> None:
    """An Enum named as text is stored as strings (dictionary-encoded from its codes): Polars,
    pyarrow and pandas read it back as text; an Enum not named keeps its type."""
    labels = pl.Enum(["east", "north", "south"])
    df = _frame().with_columns(
        pl.Series("label", ["north", None, "east"], dtype=labels),
        pl.Series("kept", ["south", "south", None], dtype=labels),
    )
    path = tmp_path / "t.parquet"
    w = BatchWriter(path, text_columns={"label"})
    w.write(df.head(0))
    w.write(df)
    w.write(df.reverse())
    w.commit()
    back = pl.read_parquet(path)
    assert back.schema == df.schema | {"label": pl.String()}
    assert back.equals(pl.concat([df, df.reverse()]).with_columns(pl.col("label").cast(pl.Utf8)))
    assert str(pq.read_schema(path).field("label").type) == "large_string"
    expected = ["north", None, "east", "east", None, "north"]
    assert pq.read_table(path).column("label").to_pylist() == expected
    assert "label" in _dictionary_columns(path)
    meta = pq.read_metadata(path).row_group(0).column(df.columns.index("label")).statistics
    assert (meta.min, meta.max, meta.null_count) == ("east", "north", 2)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_text_columns_in_text_formats_are_their_labels(tmp_path: Path, fmt: str) -> None:
    df = pl.DataFrame({"label": pl.Series(["b", None, "a"], dtype=pl.Enum(["a", "b"]))})
    w = BatchWriter(tmp_path / f"t.{fmt}", text_columns={"label"})
    w.write(df)
    w.commit()
    back = read_table(tmp_path / f"t.{fmt}")
    assert back["label"].to_list() == ["b", None, "a"]


@pytest.mark.parametrize(
    "extra",
    [
        pl.Series("dur", [dt.timedelta(days=1), None, dt.timedelta(0)]),
        pl.Series("cat", ["x", "y", None]).cast(pl.Categorical),
        pl.Series("paris", [dt.datetime(2024, 1, 5), None, None]).dt.replace_time_zone(
            "Europe/Paris"
        ),
        pl.Series("lst", [[1], None, [2, 3]]),
    ],
)
def test_other_types_keep_the_arrow_schema_and_read_back_the_same(
    tmp_path: Path, extra: pl.Series
) -> None:
    df = _frame().with_columns(extra)
    _write(tmp_path / "o.parquet", df)
    back = pl.read_parquet(tmp_path / "o.parquet")
    assert back.schema == df.schema
    assert back.equals(pl.concat([df] * 3))


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
@pytest.mark.parametrize("rows", [1, 7, 1000])
@pytest.mark.parametrize("chunk", [64, 1 << 20])
def test_iter_batches_gives_exact_batches_that_make_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str, rows: int, chunk: int
) -> None:
    from chatpersona.clean import io
    from chatpersona.clean.io import iter_batches, read_table, write_table

    monkeypatch.setattr(io, "TEXT_CHUNK_BYTES", chunk)  # 64: records span ranges
    n = 1203
    df = pl.DataFrame(
        {
            "id": [f"u{i}" for i in range(n)],
            "x": [None if i % 11 == 0 else str(i % 17) for i in range(n)],
            # a quoted newline, and a value longer than a 64-byte range
            "t": ["a,\nb" if i % 5 == 0 else "z" * (100 if i == 7 else 3) for i in range(n)],
        }
    )
    path = tmp_path / f"t.{fmt}"
    write_table(df, path)
    whole = read_table(path)
    batches = list(iter_batches(path, rows))
    assert [b.height for b in batches[:-1]] == [rows] * (len(batches) - 1)
    assert 0 < batches[-1].height <= rows
    assert pl.concat(batches).equals(whole)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_iter_batches_of_an_empty_table_gives_its_schema(tmp_path: Path, fmt: str) -> None:
    from chatpersona.clean.io import iter_batches, write_table

    path = tmp_path / f"e.{fmt}"
    write_table(pl.DataFrame(schema={"a": pl.String, "b": pl.String}), path)
    batches = list(iter_batches(path, 10))
    assert len(batches) == 1 and batches[0].height == 0 and batches[0].columns == ["a", "b"]


def test_iter_batches_can_stop_after_the_first_batch(tmp_path: Path) -> None:
    """``plan infer`` takes the first batch only: the rest is not read."""
    from chatpersona.clean.io import iter_batches

    path = tmp_path / "t.csv"
    pl.DataFrame({"a": [str(i) for i in range(50_000)]}).write_csv(path)
    it = iter_batches(path, 100)
    assert next(it)["a"].to_list() == [str(i) for i in range(100)]
    it.close()  # the streaming query is dropped with the generator

"""The CSV batch reader of the streamed path: any chunk size gives the rows of one read."""

from __future__ import annotations

import itertools
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatpersona.clean import streamed
from chatpersona.clean.streamed import _csv_batches, _record_end

FIELD = st.one_of(
    st.none(),
    st.text(alphabet=st.sampled_from(list('ab ,"\n\r\t;é€')), max_size=8),
)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.tuples(FIELD, FIELD, FIELD), min_size=0, max_size=40),
    chunk=st.integers(min_value=1, max_value=200),
)
def test_batches_concatenate_to_one_read(
    tmp_path_factory: pytest.TempPathFactory, rows: list[tuple[str | None, ...]], chunk: int
) -> None:
    path = Path(tmp_path_factory.mktemp("csv")) / "t.csv"
    pl.DataFrame(rows, schema=["x", 'y "q"', "z\nw"], orient="row").write_csv(path)
    whole = pl.read_csv(path, infer_schema=False)
    parts = list(_csv_batches(path, chunk))
    got = pl.concat(parts) if parts else whole.head(0)
    assert got.equals(whole)
    assert all(p.height for p in parts)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.tuples(FIELD, FIELD, FIELD), min_size=0, max_size=40),
    chunk=st.integers(min_value=1, max_value=120),
    group=st.integers(min_value=1, max_value=4),
)
def test_grouped_batches_and_their_replayed_ranges_concatenate_to_one_read(
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[tuple[str | None, ...]],
    chunk: int,
    group: int,
) -> None:
    """Pass 1 reads ``group`` ranges a batch and records them; pass 2 replays the ranges:
    both give the rows of one read, and the ranges tile the body of the file."""
    path = Path(tmp_path_factory.mktemp("csv")) / "t.csv"
    pl.DataFrame(rows, schema=["x", 'y "q"', "z\nw"], orient="row").write_csv(path)
    whole = pl.read_csv(path, infer_schema=False)
    cuts: list[tuple[int, int]] = []
    first = list(_csv_batches(path, chunk, cuts=cuts, group=group))
    assert all(p.height for p in first)
    assert pl.concat(first).equals(whole) if first else whole.is_empty()
    if not cuts:
        assert whole.is_empty()
        return
    assert all(a < b for a, b in cuts) and all(
        b == c for (_, b), (c, _) in itertools.pairwise(cuts)
    )
    assert len(cuts) >= len(first)
    again = list(_csv_batches(path, chunk, cuts=list(cuts)))
    assert len(again) == len(cuts)
    assert pl.concat(again).equals(whole)


def test_record_end_skips_newlines_inside_quotes() -> None:
    assert _record_end(b'1,"a\nb"\n2,"c\n') == len(b'1,"a\nb"\n')
    assert _record_end(b'1,"a\nb') == 0
    assert _record_end(b"1,2\n3,4") == 4
    assert _record_end(b"") == 0


def test_record_end_in_a_range() -> None:
    buf = b'h\n1,"a\nb"\n2,3\n4,5'
    assert _record_end(buf, 2) == len(b'h\n1,"a\nb"\n2,3\n')
    assert _record_end(buf, 2, 9) == 2  # inside the quoted field: no record ends
    assert _record_end(buf, 2, 12) == len(b'h\n1,"a\nb"\n')
    assert _record_end(buf, 10, 13) == 10  # "2,3" without its newline


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(['"', "\n", "a", ",", '""']), max_size=400),
    st.integers(0, 5),
    st.data(),
)
def test_quotes_are_counted_the_same_with_numpy(
    pieces: list[str], pad: int, data: st.DataObject
) -> None:
    """Large reads count their quotes with numpy (once the background import has loaded it):
    the same count, so the same record ends, as bytes.count."""
    import numpy

    buf = ("x" * 70_000 * pad + "".join(pieces) * 200).encode()
    lo = data.draw(st.integers(0, len(buf)))
    hi = data.draw(st.integers(lo, len(buf)))
    saved = streamed._numpy
    try:
        streamed._numpy = None
        plain = (streamed._count_quotes(buf, lo, hi), _record_end(buf, lo, hi))
        streamed._numpy = numpy
        assert (streamed._count_quotes(buf, lo, hi), _record_end(buf, lo, hi)) == plain
    finally:
        streamed._numpy = saved
    assert plain[0] == buf.count(b'"', lo, hi)

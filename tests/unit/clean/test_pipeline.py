"""The threads of the streamed clean: order, back-pressure and failures."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from chatpersona.clean._pipeline import BackgroundWriter, ReadAhead, ordered_map, read_ahead


def test_read_ahead_keeps_order_and_raises_where_the_source_failed() -> None:
    def source() -> Iterator[int]:
        yield from range(5)
        raise ValueError("bad record")

    got: list[int] = []
    with pytest.raises(ValueError, match="bad record"):
        for x in read_ahead(source()):
            got.append(x)
    assert got == [0, 1, 2, 3, 4]


def test_read_ahead_stays_within_its_depth_and_stops_when_closed() -> None:
    produced: list[int] = []

    def source() -> Iterator[int]:
        for i in range(100):
            produced.append(i)
            yield i

    reader = ReadAhead(source(), depth=1)
    deadline = time.monotonic() + 5
    while not produced and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # the producer runs ahead as far as it may
    assert len(produced) == 1
    reader.close()
    assert len(produced) < 100


def test_ordered_map_returns_results_in_input_order() -> None:
    def slow_first(x: int) -> int:
        time.sleep(0.05 if x % 2 == 0 else 0.0)
        return x * x

    assert list(ordered_map(slow_first, iter(range(10)), workers=2)) == [x * x for x in range(10)]


def test_background_writer_writes_in_order_and_raises_the_first_failure() -> None:
    written: list[int] = []
    threads: set[str] = set()

    def write(target: list[int], item: int) -> None:
        threads.add(threading.current_thread().name)
        if item == 3:
            raise OSError("disk full")
        target.append(item)

    w: BackgroundWriter[int] = BackgroundWriter(write, depth=1)
    with pytest.raises(OSError, match="disk full"):
        for i in range(10):
            w.submit(written, i)
        w.finish()
    with pytest.raises(OSError, match="disk full"):
        w.finish()
    assert written == [0, 1, 2]  # nothing after the failure
    assert threads == {"chatpersona-writer"}

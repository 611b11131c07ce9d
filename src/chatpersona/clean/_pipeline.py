"""Two small threads that let the streamed clean overlap its steps: a read-ahead of the next
batch and a writer of the finished ones. Polars releases the GIL while it parses, computes
and encodes, so the three steps run on the cores together; the queues are
short, so at most a batch or two waits in each."""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

__all__ = ["BackgroundWriter", "ReadAhead", "ordered_map", "read_ahead"]

_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class ReadAhead(Generic[T]):
    """``items`` produced by a thread that starts at once, up to ``depth`` ahead of the
    consumer (so the first ones are read while the consumer is still busy elsewhere). An
    exception of ``items`` is raised in the consumer
    at the point it would have occurred. :meth:`close` (or leaving the ``with`` block, or
    the end of the iteration) stops the producer."""

    def __init__(self, items: Iterator[T], depth: int = 1) -> None:
        self._items = items
        self._limit = depth
        self._buf: deque[Any] = deque()
        self._cond = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._produce, name="chatpersona-read-ahead")
        self._thread.daemon = True
        self._thread.start()

    def _produce(self) -> None:
        items = iter(self._items)
        try:
            while True:
                # Room first, then the next item: at most ``limit`` items exist besides the
                # one the consumer holds.
                with self._cond:
                    self._cond.wait_for(lambda: self._stop or len(self._buf) < self._limit)
                    if self._stop:
                        return
                try:
                    item = next(items)
                except StopIteration:
                    break
                with self._cond:
                    self._buf.append(item)
                    self._cond.notify_all()
            end: Any = _DONE
        except BaseException as exc:  # handed to the consumer
            end = _Failure(exc)
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                close()
        with self._cond:
            self._buf.append(end)
            self._cond.notify_all()

    def __iter__(self) -> Iterator[T]:
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: bool(self._buf))
                    item = self._buf.popleft()
                    self._cond.notify_all()
                if item is _DONE:
                    return
                if isinstance(item, _Failure):
                    raise item.exc
                yield item
        finally:
            self.close()

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._buf.clear()
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def __enter__(self) -> ReadAhead[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_ahead(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """``items`` produced by a thread up to ``depth`` ahead of the consumer (see
    :class:`ReadAhead`)."""
    return iter(ReadAhead(items, depth))


class BackgroundWriter(Generic[T]):
    """Runs ``write(target, item)`` calls in order on one thread, at most ``depth`` items
    held (queued or being written: with 1, :meth:`submit` waits for the previous write to
    end). The first failure is raised by the next :meth:`submit` or by :meth:`finish`; the
    calls after a failure are skipped."""

    def __init__(self, write: Callable[[Any, T], None], depth: int = 2) -> None:
        self._write = write
        self._slots = threading.Semaphore(depth)
        self._q: queue.Queue[Any] = queue.Queue()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="chatpersona-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._q.get()
            try:
                if job is _DONE:
                    return
                if self._failure is None:
                    self._write(*job)
            except BaseException as exc:  # raised in the submitting thread
                self._failure = exc
            finally:
                if job is not _DONE:
                    del job  # the item is freed before the next one is accepted
                    self._slots.release()
                self._q.task_done()

    def submit(self, target: Any, item: T) -> None:
        """Queue one write (blocks while ``depth`` items are held)."""
        self._raise()
        self._slots.acquire()
        self._q.put((target, item))

    def wait(self) -> None:
        """Wait until every queued write is done; raise the first failure."""
        self._q.join()
        self._raise()

    def finish(self) -> None:
        """Wait for every queued write; raise the first failure."""
        if self._thread.is_alive():
            self._q.put(_DONE)
            self._thread.join()
        self._raise()

    def _raise(self) -> None:
        if self._failure is not None:
            raise self._failure


def ordered_map(fn: Callable[[T], R], items: Iterator[T], workers: int = 2) -> Iterator[R]:
    """``fn`` over ``items`` on ``workers`` threads, results in input order, at most
    ``workers`` items in flight (so memory stays a few batches)."""
    from collections import deque
    from concurrent.futures import Future, ThreadPoolExecutor

    pending: deque[Future[R]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="chatpersona-batch") as pool:
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()

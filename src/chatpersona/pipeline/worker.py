"""The stream worker: a declared :class:`Pipeline` of named steps, and the :class:`Worker`
loop that feeds it from a transport (receive → process → dead-letter → ack).

``Pipeline.run_one(event)`` runs one event synchronously with no server at all: the
memory state store and no profile store are the defaults.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from chatpersona.exceptions import BackendError, ParameterError
from chatpersona.pipeline.metrics import PipelineMetrics, serve_metrics
from chatpersona.pipeline.steps import (
    DEFAULT_STEPS,
    Assigner,
    Cleaner,
    EventResult,
    FeatureTransformer,
    ModelSource,
    ProfileSink,
    Step,
    StepContext,
    StepError,
    make_batch,
)
from chatpersona.stream.base import Transport
from chatpersona.stream.events import Event
from chatpersona.stream.state import MemoryStateStore, StateStore
from chatpersona.stream.windows import WindowConfig

__all__ = [
    "ModelDir",
    "Pipeline",
    "RegistryModels",
    "StaticModel",
    "Worker",
    "WorkerReport",
    "default_aggregates",
    "open_models",
]

log = logging.getLogger("chatpersona.worker")

GC_THRESHOLD = 20_000
"""Allocations between young-generation collections while a worker runs (Python's
default is 700)."""

_gc_lock = threading.Lock()
_gc_users = 0
_gc_saved: tuple[int, ...] = ()


def _gc_enter() -> None:
    """Freeze the heap and relax the young generation while any worker of this process
    runs (process-wide settings: the first worker in sets them, the last one out restores)."""
    global _gc_users, _gc_saved
    with _gc_lock:
        _gc_users += 1
        if _gc_users == 1:
            _gc_saved = gc.get_threshold()
            gc.collect()
            gc.freeze()
            gc.set_threshold(max(_gc_saved[0], GC_THRESHOLD), *_gc_saved[1:])


def _gc_exit() -> None:
    global _gc_users
    with _gc_lock:
        _gc_users -= 1
        if _gc_users == 0:
            gc.set_threshold(*_gc_saved)
            gc.unfreeze()


class StaticModel:
    """A fixed model; :meth:`set` switches it (the next batch uses the new one)."""

    def __init__(self, model: Assigner | None) -> None:
        self.model = model

    def set(self, model: Assigner | None) -> None:
        """Switch the active model."""
        self.model = model

    def current(self) -> Assigner | None:
        """The active model."""
        return self.model


class RegistryModels:
    """The active model of a ``ModelRegistry``, re-read at most every ``check_interval_s``
    (publishing + activating a version switches running workers without a restart)."""

    def __init__(self, registry: Any, check_interval_s: float = 1.0) -> None:
        self.registry = registry
        self.check_interval_s = check_interval_s
        self._model: Assigner | None = None
        self._version: str | None = None
        self._checked = float("-inf")

    def current(self) -> Assigner | None:
        """The active model (the version is re-checked every ``check_interval_s``; a model
        is loaded only when the active version changed)."""
        now = time.monotonic()
        if now - self._checked >= self.check_interval_s:
            self._checked = now
            version_of = getattr(self.registry, "active_version", None)
            if version_of is None:
                self._model = self.registry.active()
            else:
                version = version_of()
                if version != self._version:
                    self._model = None if version is None else self.registry.load(version)
                    self._version = version
        return self._model


class ModelDir:
    """A segment model directory, reloaded when its ``model.json`` changes."""

    def __init__(self, path: str | Path, loader: Callable[[Path], Assigner] | None = None) -> None:
        self.path = Path(path)
        self._loader = loader
        self._model: Assigner | None = None
        self._stamp: tuple[int, int] | None = None

    def _load(self, path: Path) -> Assigner:
        if self._loader is not None:
            return self._loader(path)
        from chatpersona.segment import SegmentModel

        model: Assigner = SegmentModel.load(path)
        return model

    def current(self) -> Assigner | None:
        """The model as of the directory's current ``model.json``."""
        try:
            st = (self.path / "model.json").stat()
        except OSError:
            return self._model
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._model = self._load(self.path)
            self._stamp = stamp
        return self._model


def open_models(path: str | Path, check_interval_s: float = 1.0) -> ModelSource:
    """A model source for ``--model-dir``: a ``ModelRegistry`` root (has ``ACTIVE`` or
    ``versions/``) or a single model directory (has ``model.json``); both hot-switch."""
    root = Path(path)
    if (root / "ACTIVE").exists() or (root / "versions").is_dir():
        from chatpersona.segment.registry import ModelRegistry

        return RegistryModels(ModelRegistry(root), check_interval_s)
    if (root / "model.json").is_file():
        return ModelDir(root)
    raise ParameterError(
        "worker", "model_dir", "a model registry root or a model directory", str(path)
    )


def default_aggregates() -> tuple[
    Callable[[], dict[str, Any]], Callable[[dict[str, Any], Any], None]
]:
    """``(new_aggregates, update_aggregates)`` of :mod:`chatpersona.features.online`."""
    from chatpersona.features.online import new_aggregates, update_aggregates

    return new_aggregates, update_aggregates


class Pipeline:
    """validate → dedupe → clean → window → features → assign → profile → commit → metrics.

    Parameters
    ----------
    state:
        Real-time state (default: a fresh memory store).
    store:
        Profile store (``None``: no profile effects, e.g. for debugging).
    cleaner:
        A fitted cleaning plan (``transform_record``) for ``profile_update`` payloads.
    features:
        A fitted feature spec (``transform_one``); without one, window features are used.
    aggregates:
        ``(new, update)`` functions of the per-user feature aggregates kept in state
        (``update(aggregates, event)`` gets each validated :class:`Event`); ``"auto"`` uses :mod:`chatpersona.features.online` when ``features`` or
        ``models`` is given (a model may carry its own fitted feature spec).
    models:
        A :class:`ModelSource` (or a bare model, wrapped in :class:`StaticModel`).
    windows:
        Event-time settings (lateness, session gap).
    emit:
        Called with each ``segment_changed`` event.
    steps:
        Step classes in order (default: :data:`~chatpersona.pipeline.steps.DEFAULT_STEPS`).

    Examples
    --------
    >>> p = Pipeline()
    >>> r = p.run_one({"event_id": "e1", "user_id": "u1", "type": "chat_started",
    ...                "ts": "2026-05-03T14:22:05Z", "payload": {"chat_id": "c1"}})
    >>> r.status, p.run_one({"event_id": "e1", "user_id": "u1", "type": "chat_started",
    ...                "ts": "2026-05-03T14:22:05Z", "payload": {"chat_id": "c1"}}).status
    ('processed', 'duplicate')
    >>> p.step_names[:3]
    ['validate', 'dedupe', 'clean']
    """

    def __init__(
        self,
        *,
        state: StateStore | None = None,
        store: ProfileSink | None = None,
        cleaner: Cleaner | None = None,
        features: FeatureTransformer | None = None,
        aggregates: Any = "auto",
        models: ModelSource | Assigner | None = None,
        windows: WindowConfig | None = None,
        emit: Callable[[dict[str, Any]], None] | None = None,
        metrics: PipelineMetrics | None = None,
        steps: Sequence[type[Step]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if aggregates == "auto":
            wanted = features is not None or models is not None
            aggregates = default_aggregates() if wanted else None
        if models is not None and not isinstance(models, ModelSource):
            models = StaticModel(models)
        self.metrics = metrics or PipelineMetrics()
        self.steps: list[Step] = [cls() for cls in (steps or DEFAULT_STEPS)]
        self.ctx = StepContext(
            state=state if state is not None else MemoryStateStore(),
            store=store,
            cleaner=cleaner,
            features=features,
            aggregates=aggregates,
            models=models,
            windows=windows or WindowConfig(),
            emit=emit,
            metrics=self.metrics,
            clock=clock,
        )
        self._lock = threading.Lock()

    @property
    def step_names(self) -> list[str]:
        """The declared steps, in order."""
        return [s.name for s in self.steps]

    def set_model(self, model: Assigner | None) -> None:
        """Switch the segment model now (the next event uses it)."""
        self.ctx.models = StaticModel(model)

    def process(
        self,
        raws: Sequence[Event | dict[str, Any] | bytes | str],
        published_at: Sequence[float | None] | None = None,
    ) -> list[EventResult]:
        """Run a batch through every step; one :class:`EventResult` per input, in order.

        Raises
        ------
        StepError
            When a step fails for a reason other than the event itself (its ``step``
            field names it); nothing of the batch is committed as processed.
        """
        batch = make_batch(raws, published_at)
        with self._lock:
            for step in self.steps:
                t0 = time.perf_counter()
                try:
                    step.run(batch, self.ctx)
                except StepError:
                    raise
                except Exception as exc:
                    raise StepError(
                        f"pipeline step {step.name!r} failed: {type(exc).__name__}: {exc}",
                        step=step.name,
                    ) from exc
                self.metrics.time_step(step.name, time.perf_counter() - t0, len(batch.items))
        out = []
        for item in batch.items:
            if item.result is None:  # pragma: no cover - every step path sets a result
                item.reject("unprocessed", "no step produced a result")
            assert item.result is not None
            out.append(item.result)
        return out

    def run_one(self, event: Event | dict[str, Any] | bytes | str) -> EventResult:
        """Run one event through every step, synchronously, and say what happened."""
        return self.process([event])[0]


@dataclass
class WorkerReport:
    """What a worker run did."""

    received: int = 0
    processed: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    retried: int = 0
    batches: int = 0
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)


class Worker:
    """Feeds a pipeline from a transport; acks only after the effects are stored.

    Parameters
    ----------
    transport, pipeline:
        Where events come from and what handles them.
    batch_size, poll_timeout_s:
        At most this many events per receive; how long a receive waits.
    metrics_port:
        Serve Prometheus ``/metrics`` on this port (``None``: don't).
    freeze_gc:
        During :meth:`run`, move every object that exists at start (modules, the model,
        the stores) out of the garbage collector's reach (``gc.freeze``; undone at exit):
        the per-batch containers otherwise trigger full collections that walk all of them
        again and again (measured: 4-10 % of the worker's CPU). The youngest generation
        is also collected less often (every :data:`GC_THRESHOLD` allocations instead of
        700): a batch's objects are freed by reference counting, not by the collector
        (measured: ~5 % of the worker's CPU went to young collections that found little).

    The default batch size (5,000) amortises the per-user work (features, assignment and the
    profile write run once per user per batch): on the benchmark's stream, 40-43k events/s
    in process against ~33-35k at 2,000 (quiet machine, same runs). It costs no latency at
    a low rate — a receive returns what is there, up to the batch size — and under a
    backlog a batch takes ~0.15-0.25 s (lower it when tail latency under backlog matters).
    """

    def __init__(
        self,
        transport: Transport,
        pipeline: Pipeline,
        *,
        batch_size: int = 5000,
        poll_timeout_s: float = 0.5,
        metrics_port: int | None = None,
        freeze_gc: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ParameterError("Worker", "batch_size", "an int >= 1", batch_size)
        self.transport = transport
        self.pipeline = pipeline
        self.batch_size = batch_size
        self.poll_timeout_s = poll_timeout_s
        self.metrics_port = metrics_port
        self.freeze_gc = freeze_gc
        self.report = WorkerReport()
        self._stop = threading.Event()
        self._backoff = 0.0

    def stop(self) -> None:
        """Ask the loop to finish the batch in flight, ack it and return."""
        self._stop.set()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("signal %s: finishing in-flight events", signum)
        self.stop()

    def step(self) -> int:
        """One receive → process → dead-letter/ack cycle; returns how many were received."""
        deliveries = self.transport.receive(self.batch_size, self.poll_timeout_s)
        if not deliveries:
            return 0
        rep = self.report
        rep.received += len(deliveries)
        rep.batches += 1
        try:
            results = self.pipeline.process(
                [d.raw for d in deliveries], [d.published_at for d in deliveries]
            )
            pairs = list(zip(deliveries, results, strict=True))
        except StepError as exc:
            # Find the event at fault: each one alone; the ones that still fail go back
            # to the transport (and reach the dead-letter place after max deliveries).
            log.warning("batch failed (%s); retrying its events one by one", exc.message)
            pairs = []
            for d in deliveries:
                try:
                    pairs.append((d, self.pipeline.process([d.raw], [d.published_at])[0]))
                except StepError as one:
                    log.warning("event %s failed in step %s: %s", d.id, one.step, one.message)
                    rep.retried += 1
                    self.transport.nack([d])
        if deliveries and not pairs:
            # Every event failed even alone: a backend outage rather than poison. Slow
            # down instead of burning through the deliveries budget.
            self._backoff = min(5.0, max(0.25, self._backoff * 2))
            log.warning("every event failed; backing off %.2fs", self._backoff)
            time.sleep(self._backoff)
        else:
            self._backoff = 0.0
        done = []
        for d, r in pairs:
            if r.status == "rejected":
                self.transport.dead_letter(d, r.reason or "rejected", r.detail or "")
                rep.dead_lettered += 1
                rep.reasons[r.reason or "rejected"] = rep.reasons.get(r.reason or "rejected", 0) + 1
                self.pipeline.metrics.count_dead_letter(r.reason or "rejected")
            else:
                done.append(d)
                if r.status == "duplicate":
                    rep.duplicates += 1
                else:
                    rep.processed += 1
        self.transport.ack(done)
        return len(deliveries)

    def run(
        self,
        *,
        max_events: int | None = None,
        idle_exit_s: float | None = None,
        install_signals: bool = True,
        progress: Callable[[WorkerReport], None] | None = None,
    ) -> WorkerReport:
        """Loop until stopped (SIGTERM/SIGINT), ``max_events`` received, or idle for
        ``idle_exit_s`` seconds; then close the transport and return the report.
        ``progress`` is called with the report about once a second."""
        if install_signals and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        server = (
            serve_metrics(self.pipeline.metrics, self.metrics_port) if self.metrics_port else None
        )
        t0 = time.monotonic()
        idle_since = time.monotonic()
        next_stats = 0.0
        if self.freeze_gc:
            _gc_enter()
        try:
            while not self._stop.is_set():
                try:
                    n = self.step()
                except BackendError as exc:
                    # The transport is unreachable: nothing was acked; wait and retry.
                    log.warning("transport failed: %s; retrying in 1s", exc.message)
                    self._stop.wait(1.0)
                    continue
                now = time.monotonic()
                if n:
                    idle_since = now
                elif idle_exit_s is not None and now - idle_since >= idle_exit_s:
                    break
                if max_events is not None and self.report.received >= max_events:
                    break
                if now >= next_stats:
                    next_stats = now + 1.0
                    self._refresh_gauges()
                    if progress is not None:
                        progress(self.report)
        finally:
            if self.freeze_gc:
                _gc_exit()
            self.report.seconds = time.monotonic() - t0
            self.transport.close()
            if server is not None:
                server.shutdown()
        return self.report

    def _refresh_gauges(self) -> None:
        m = self.pipeline.metrics
        m.tick_rate(self.report.processed + self.report.duplicates)
        try:
            for name, value in self.transport.stats().items():
                m.set_gauge(name, float(value))
        except Exception as exc:
            log.debug("transport stats failed: %s", exc)
        m.set_gauge("pid", float(os.getpid()))

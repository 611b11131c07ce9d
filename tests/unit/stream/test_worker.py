"""The worker loop on the memory transport: ack after effects, poison isolation, dead
letters with reasons, stop() draining, and the Prometheus endpoint."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest

from chatpersona.pipeline import Pipeline, Worker
from chatpersona.pipeline.steps import DEFAULT_STEPS, Batch, Step, StepContext
from chatpersona.profiles import open_store
from chatpersona.stream import open_transport
from chatpersona.stream.memory import reset_memory_buses

from .helpers import make_events


@pytest.fixture(autouse=True)
def _fresh_buses() -> Iterator[None]:
    reset_memory_buses()
    yield
    reset_memory_buses()


class Explode(Step):
    """A step that fails on events whose text is 'boom' (a bug the event triggers)."""

    name = "explode"

    def run(self, batch: Batch, ctx: StepContext) -> None:
        for item in batch.live():
            if item.event is not None and item.event.payload.get("text") == "boom":
                raise RuntimeError("boom")


def test_poison_is_isolated_retried_then_dead_lettered() -> None:
    transport = open_transport("memory://w1?max_deliveries=3")
    events = make_events(4, users=3, chats=5)
    boom = {
        **events[1],
        "event_id": "boom-1",
        "type": "message",
        "payload": {"chat_id": "cb", "text": "boom"},
    }
    transport.publish([json.dumps(e).encode() for e in [*events, boom]] + [b"garbage"])
    store = open_store("memory://")
    steps = [*DEFAULT_STEPS[:3], Explode, *DEFAULT_STEPS[3:]]
    pipeline = Pipeline(store=store, steps=steps)
    report = Worker(transport, pipeline, batch_size=7, poll_timeout_s=0.05).run(
        idle_exit_s=0.3, install_signals=False
    )
    assert report.processed == len(events)
    assert report.retried == 3  # boom-1 failed on each of its 3 deliveries
    reasons = sorted(d.reason for d in transport.dead_letters())
    assert reasons == ["max_deliveries", "not_json"]
    assert transport.stats()["pending"] == 0
    users = {e["user_id"] for e in events}
    assert sum(store.get("default", u).interaction_count for u in users) == 5  # type: ignore[union-attr]


def test_stop_finishes_and_metrics_are_served() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    transport = open_transport("memory://w2")
    events = make_events(5, users=2, chats=10)
    transport.publish([json.dumps(e).encode() for e in events])
    worker = Worker(transport, Pipeline(), batch_size=10, poll_timeout_s=0.05, metrics_port=port)
    thread = threading.Thread(target=worker.run, kwargs={"install_signals": False})
    thread.start()
    try:
        for _ in range(100):
            if worker.report.processed == len(events):
                break
            threading.Event().wait(0.05)
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        worker.stop()
        thread.join(10)
    assert not thread.is_alive()
    assert f'chatpersona_stream_events_total{{status="processed"}} {len(events)}' in body
    assert 'chatpersona_stream_step_seconds_total{step="window"}' in body
    assert "chatpersona_stream_event_to_profile_seconds_count" in body
    assert transport.stats() == {"pending": 0, "lag": 0, "dead_letters": 0}


def test_gc_settings_are_restored_after_overlapping_workers() -> None:
    import gc

    before = gc.get_threshold()
    workers = [
        Worker(open_transport(f"memory://gc{i}"), Pipeline(), poll_timeout_s=0.02) for i in range(2)
    ]
    threads = [threading.Thread(target=w.run, kwargs={"install_signals": False}) for w in workers]
    threads[0].start()
    for _ in range(200):
        if gc.get_threshold()[0] != before[0]:
            break
        time.sleep(0.01)
    assert gc.get_threshold()[0] >= 20_000 and gc.get_freeze_count() > 0  # while running
    threads[1].start()
    time.sleep(0.1)
    workers[0].stop()
    threads[0].join()
    assert gc.get_threshold()[0] >= 20_000  # the second worker still runs
    workers[1].stop()
    threads[1].join()
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0

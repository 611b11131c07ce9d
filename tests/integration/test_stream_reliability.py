"""Nothing lost, nothing doubled: 50,000 generated events through Redis Streams while the
worker is SIGKILLed at least 10 times (and restarted), plus 50 poison events.

Checks, against an oracle computed from the distinct valid events:
0 lost (every event id is marked processed), 0 duplicate effects (event counts in state,
chat counts and CSAT counts in the SQLite profiles equal the oracle's), pending entries
drained, the 50 poison events in the dead-letter stream (none retried forever), and a
final SIGTERM exits cleanly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from chatpersona.profiles import open_store
from chatpersona.stream import open_state, open_transport, window_summary
from chatpersona.stream.redis_streams import RedisStreamsTransport

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N_EVENTS = 50_000
N_KILLS = 10


def generated_events() -> list[dict]:
    from chatpersona.datagen.generator import generate_events

    frame = generate_events(2000, 11, events_per_user=25).head(N_EVENTS)
    out = []
    for row in frame.iter_rows(named=True):
        row["payload"] = {k: v for k, v in (row["payload"] or {}).items() if v is not None}
        out.append({k: v for k, v in row.items() if v is not None})
    assert len(out) == N_EVENTS
    return out


def poison(n: int) -> list[bytes]:
    kinds = [
        lambda i: b"{broken json " + str(i).encode(),
        lambda i: json.dumps(
            {"event_id": f"p{i}", "user_id": "U1", "type": "refund", "ts": "2026-05-01T00:00:00Z"}
        ).encode(),
        lambda i: json.dumps(
            {
                "event_id": f"p{i}",
                "user_id": "U1",
                "type": "feedback",
                "ts": "2026-05-01T00:00:00Z",
                "payload": {"chat_id": "c", "csat": 42},
            }
        ).encode(),
        lambda i: json.dumps(
            {
                "event_id": f"p{i}",
                "user_id": "U1",
                "type": "message",
                "ts": "2026-05-01T00:00:00Z",
                "payload": {"chat_id": "c", "text": "x" * 40_000},
            }
        ).encode(),
        lambda i: json.dumps({"event_id": f"p{i}", "type": "message", "ts": "2026-05-01"}).encode(),
    ]
    return [kinds[i % len(kinds)](i) for i in range(n)]


def start_worker(source: str, state: str, store: str) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "chatpersona.cli.main",
        "worker",
        "--source",
        source,
        "--state",
        state,
        "--store",
        store,
        "--batch-size",
        "250",
        "--quiet",
    ]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def backlog(t: RedisStreamsTransport) -> int:
    s = t.stats()
    return s["lag"] + s["pending"]


def test_sigkill_storm_loses_and_doubles_nothing(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    events = generated_events()
    bad = poison(50)
    base = redis_url.rsplit("/", 1)[0]
    source = f"{base}/{redis_prefix}ev?shards=4&lease_ms=800&max_deliveries=5"
    state_url = f"{redis_url}?prefix={redis_prefix}st:"
    store_url = f"sqlite:///{tmp_path / 'profiles.db'}"

    producer = open_transport(source)
    assert isinstance(producer, RedisStreamsTransport)
    raws = [json.dumps(e).encode() for e in events]
    mixed = raws[:]
    for i, p in enumerate(bad):  # poison spread through the stream
        mixed.insert((i * 997) % len(mixed), p)
    producer.publish(mixed)
    total = len(mixed)
    assert backlog(producer) == total

    kills = 0
    t_start = time.monotonic()
    while kills < N_KILLS:
        proc = start_worker(source, state_url, store_url)
        before = backlog(producer)
        deadline = time.monotonic() + 20
        # kill only once the worker is really working (some events went through)
        while time.monotonic() < deadline and before - backlog(producer) < 1500:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
    assert backlog(producer) > 0, "the kills should happen while events remain"

    final = start_worker(source, state_url, store_url)
    deadline = time.monotonic() + 120
    while backlog(producer) and time.monotonic() < deadline:
        time.sleep(0.2)
    final.send_signal(signal.SIGTERM)
    assert final.wait(30) == 0, final.stderr.read().decode() if final.stderr else ""
    elapsed = time.monotonic() - t_start

    stats = producer.stats()
    assert stats["pending"] == 0 and stats["lag"] == 0, stats
    dead = producer.dead_letters()
    assert len(dead) == 50, [d.reason for d in dead]
    assert sorted(d.raw for d in dead) == sorted(bad)
    assert {d.reason for d in dead} <= {"not_json", "unknown_type", "invalid_field", "too_large"}

    # --- the oracle ------------------------------------------------------------------
    per_user: dict[str, int] = defaultdict(int)
    chats: dict[str, set[str]] = defaultdict(set)
    csats: dict[str, int] = defaultdict(int)
    for e in events:
        per_user[e["user_id"]] += 1
        chats[e["user_id"]].add(e["payload"]["chat_id"])
        if "csat" in e["payload"]:
            csats[e["user_id"]] += 1

    state = open_state(state_url)
    assert state.seen([f"default:{e['event_id']}" for e in events]) == {
        f"default:{e['event_id']}" for e in events
    }, "an event was lost"
    docs = state.load([f"default:{u}" for u in per_user])
    assert len(docs) == len(per_user)
    store = open_store(store_url)
    for user, n in per_user.items():
        assert window_summary(docs[f"default:{user}"]["w"])["events_total"] == n, user
        prof = store.get("default", user)
        assert prof is not None
        assert prof.interaction_count == len(chats[user]), user
        assert prof.feedback.csat_count == csats[user], user
    store.close()
    state.close()
    producer.close()
    print(f"\n{total} events, {kills} SIGKILLs, drained in {elapsed:.1f}s")

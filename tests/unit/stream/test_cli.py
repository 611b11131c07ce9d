"""`chatpersona replay` and `chatpersona worker` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chatpersona.profiles import open_store
from chatpersona.stream import open_transport

from .helpers import make_events


def run(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    return subprocess.run(
        [sys.executable, "-m", "chatpersona.cli.main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_help_texts(tmp_path: Path) -> None:
    for cmd in ("worker", "replay"):
        done = run(cmd, "--help", cwd=tmp_path)
        assert done.returncode == 0
        assert "--source" in done.stdout if cmd == "worker" else "--rate" in done.stdout


def test_memory_source_cannot_fan_out(tmp_path: Path) -> None:
    done = run("worker", "--source", "memory://x", "--concurrency", "2", cwd=tmp_path)
    assert done.returncode == 2
    assert "'concurrency' parameter of worker" in done.stderr


@pytest.mark.integration
def test_replay_then_two_worker_processes(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    events = make_events(9, users=6, chats=30)
    lines = [json.dumps(e) for e in events] + ["{poison"]
    (tmp_path / "events.jsonl").write_text("\n".join(lines) + "\n")
    source = f"{redis_url.rsplit('/', 1)[0]}/{redis_prefix}cli?shards=4&lease_ms=600"
    done = run("replay", "events.jsonl", "--to", source, "--rate", "2000", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"replayed {len(lines)} events" in done.stderr
    done = run(
        "worker", "--source", source,
        "--state", f"{redis_url}?prefix={redis_prefix}st:",
        "--store", "sqlite:///p.db", "--concurrency", "2", "--idle-exit", "2",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    t = open_transport(source)
    assert t.stats()["pending"] == 0 and t.stats()["lag"] == 0
    assert [d.reason for d in t.dead_letters()] == ["not_json"]
    t.close()
    store = open_store(f"sqlite:///{tmp_path / 'p.db'}")
    chats = {e["payload"]["chat_id"] for e in events}
    got = sum(p.interaction_count for p in store.scan("default", limit=100).items)
    assert got == len(chats)
    store.close()

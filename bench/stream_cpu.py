"""CPU per event of the stream worker, per step, in this process (a profiling aid).

Wall-clock throughput on a shared machine moves by ±40 % between runs; the thread CPU
time of the worker (``time.thread_time``) hardly moves. This drains a pre-filled stream
with one in-process worker and reports events per CPU-second of the worker thread, the
CPU seconds of each pipeline step and of the transport's receive / ack, and optionally a
cProfile of the run.

Setups: ``a`` = memory transport + memory state + SQLite; ``b`` = Redis Streams + Redis
state + PostgreSQL (the servers' own CPU is not counted: this is the worker's share).

Usage: ``.venv/bin/python bench/stream_cpu.py --setup a --events 20000 [--repeat 3]
[--profile 30]``. Run it from a copy of an older tree (``git archive REV src bench``) for
a before/after pair: it imports the ``src/`` next to its own ``bench/`` directory.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import pstats
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from bench_stream import (  # noqa: E402
    REDIS,
    clean_redis,
    drop_pg,
    fit_model,
    fresh_pg,
    make_events,
)


def _timed(obj: Any, name: str, acc: dict[str, float], label: str, wall: dict[str, float]) -> None:
    orig = getattr(obj, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0, w0 = time.thread_time(), time.perf_counter()
        try:
            return orig(*args, **kwargs)
        finally:
            acc[label] = acc.get(label, 0.0) + time.thread_time() - t0
            wall[label] = wall.get(label, 0.0) + time.perf_counter() - w0

    setattr(obj, name, wrapper)


def run_once(
    setup: str, raws: list[bytes], model_dir: Path, tmp: Path, batch: int, profile: int
) -> dict[str, Any]:
    from chatpersona.pipeline import Pipeline, Worker
    from chatpersona.pipeline.worker import open_models
    from chatpersona.profiles import open_store
    from chatpersona.stream import MemoryStateStore, open_state, open_transport

    tag = uuid.uuid4().hex[:8]
    cleanup: list[Any] = []
    if setup == "a":
        state: Any = MemoryStateStore()
        store = open_store(f"sqlite:///{tmp / (tag + '.db')}")
        transport = open_transport(f"memory://cpu-{tag}")
    else:
        prefix = f"cpbench:{tag}:"
        db, pg = fresh_pg()
        cleanup += [lambda: drop_pg(db), lambda: clean_redis(prefix)]
        state = open_state(f"{REDIS}/0?prefix={prefix}st:")
        store = open_store(pg)
        transport = open_transport(f"{REDIS}/{prefix}ev?shards=8&lease_ms=10000")
    try:
        pipeline = Pipeline(state=state, store=store, models=open_models(model_dir))
        pipeline.ctx.models.current()  # type: ignore[union-attr]  # load before timing
        transport.publish(raws)
        acc: dict[str, float] = {}
        wall_acc: dict[str, float] = {}
        for step in pipeline.steps:
            _timed(step, "run", acc, step.name, wall_acc)
        _timed(transport, "receive", acc, "receive", wall_acc)
        _timed(transport, "ack", acc, "ack", wall_acc)
        worker = Worker(transport, pipeline, batch_size=batch, poll_timeout_s=0.02)
        prof = cProfile.Profile() if profile else None
        gc.collect()
        c0, w0 = time.thread_time(), time.perf_counter()
        if prof is not None:
            prof.enable()
        rep = worker.run(max_events=len(raws), install_signals=False)
        if prof is not None:
            prof.disable()
        cpu, wall = time.thread_time() - c0, time.perf_counter() - w0
        if prof is not None:
            pstats.Stats(prof).sort_stats("tottime").print_stats(profile)
        assert rep.processed == len(raws), rep
        return {
            "events": len(raws),
            "cpu_s": round(cpu, 3),
            "wall_s": round(wall, 3),
            "events_per_cpu_s": round(len(raws) / cpu),
            "events_per_wall_s": round(len(raws) / wall),
            "cpu_by_part": {k: round(v, 3) for k, v in acc.items()},
            "wall_by_part": {k: round(v, 3) for k, v in wall_acc.items()},
        }
    finally:
        store.close()
        for fn in cleanup:
            fn()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--setup", choices=("a", "b"), default="a")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=2_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--profile", type=int, default=0, help="print the top N of a cProfile")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cpcpu-"))
    try:
        raws = make_events(args.events, args.users)
        model_dir = fit_model(raws, tmp)
        for _ in range(args.repeat):
            res = run_once(args.setup, raws, model_dir, tmp, args.batch, args.profile)
            print(json.dumps(res), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

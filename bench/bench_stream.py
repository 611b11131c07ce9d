"""Stream pipeline benchmark: end-to-end events/s and p99 event-to-profile latency.

Configurations (all run the full pipeline: validate, dedupe, clean, window, online
feature aggregates + the fitted feature spec, assign_one with a real SegmentModel,
profile merge, state commit):

- (a) memory transport + memory state + SQLite profiles, one in-process worker
  (the memory transport is in-process, so it has no multi-process variant);
- (b) Redis Streams + Redis state + PostgreSQL profiles, 1 and 2 worker processes;
- naive baseline, same run: (b) with one Redis round trip per state field and no batching
  (batch size 1), 1 worker.

Throughput: the stream is filled first, then the workers drain it (events / time from
the first receive to the last ack). Latency: a producer publishes at a fixed rate (at most
half the throughput just measured for that setup, so the queue does not grow without
bound) while the workers run; latency = profile written - transport accepted the event.

Usage: ``.venv/bin/python bench/bench_stream.py [--events 30000] [--rate 2000]``;
writes ``bench/results/stream.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))

REDIS = "redis://127.0.0.1:6379"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


# -- data and model ---------------------------------------------------------------------
def make_events(n: int, users: int, seed: int = 1) -> list[bytes]:
    from chatpersona.datagen.generator import generate_events

    users = max(20, min(users, n // 12))  # the generator wants >= ~5 events per user
    frame = generate_events(users, seed, events_per_user=n / users * 1.05).head(n)
    out = []
    for row in frame.iter_rows(named=True):
        row["payload"] = {k: v for k, v in (row["payload"] or {}).items() if v is not None}
        out.append(json.dumps({k: v for k, v in row.items() if v is not None}).encode())
    return out


def fit_model(raws: list[bytes], directory: Path) -> Path:
    import random

    import polars as pl

    from chatpersona.features.batch import read_events
    from chatpersona.segment.run import run_segmentation

    events_file = directory / "events.jsonl"
    events_file.write_bytes(b"\n".join(raws) + b"\n")
    events = read_events(events_file)
    ids = sorted(events["user_id"].unique().to_list())
    rng = random.Random(0)
    users = pl.DataFrame({"user_id": ids, "age": [float(rng.randint(18, 80)) for _ in ids]})
    result = run_segmentation(users, events=events, algo="kmeans", k=4, seed=0)
    return result.model.save(directory / "model")


# -- the naive baseline state store -----------------------------------------------------
def naive_state_class() -> Any:
    import redis

    from chatpersona.stream.state import StateStore

    class NaiveRedisState(StateStore):
        """One Redis round trip per state field: HGET/HSET each field, no pipelining."""

        scheme = "naive"

        def __init__(self, prefix: str) -> None:
            self.prefix = prefix
            self.client = redis.Redis.from_url(REDIS + "/0")

        @classmethod
        def from_url(cls, url: str, **options: Any) -> NaiveRedisState:
            return cls(options.get("prefix", "naive:"))

        def load(self, keys: Any) -> dict[str, dict[str, Any]]:
            out: dict[str, dict[str, Any]] = {}
            for key in keys:
                hkey = f"{self.prefix}s:{key}"
                names = self.client.hkeys(hkey)
                if not names:
                    continue
                doc: dict[str, Any] = {"w": {}, "agg": {}}
                for name in names:
                    raw = self.client.hget(hkey, name)  # one round trip per field
                    section, field = name.decode().split(".", 1)
                    value = json.loads(raw)
                    if section in ("w", "agg"):
                        doc[section][field] = value
                    else:
                        doc[field] = value
                if not doc["agg"]:
                    doc["agg"] = None
                out[key] = doc
            return out

        def seen(self, event_ids: Any) -> set[str]:
            return {e for e in event_ids if self.client.exists(f"{self.prefix}d:{e}")}

        def commit(self, states: Any, event_ids: Any) -> None:
            for key, doc in states.items():
                hkey = f"{self.prefix}s:{key}"
                for section in ("w", "agg"):
                    for field, value in (doc.get(section) or {}).items():
                        self.client.hset(hkey, f"{section}.{field}", json.dumps(value))
                for field in ("user", "segment"):
                    self.client.hset(hkey, f"top.{field}", json.dumps(doc.get(field)))
                self.client.expire(hkey, 86400)
            for e in event_ids:
                self.client.set(f"{self.prefix}d:{e}", 1, ex=86400)

    return NaiveRedisState


# -- one worker process -----------------------------------------------------------------
def worker_main(cfg: dict[str, Any], out: Any) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    from chatpersona.pipeline import Pipeline, PipelineMetrics, Worker
    from chatpersona.pipeline.worker import open_models
    from chatpersona.profiles import open_store
    from chatpersona.stream import open_state, open_transport

    class Recording(PipelineMetrics):
        def __init__(self) -> None:
            super().__init__()
            self.samples: list[float] = []

        def observe_latency(self, seconds: float) -> None:
            self.samples.append(seconds)

    if cfg["state"] == "naive":
        state = naive_state_class()(cfg["state_prefix"])
    else:
        state = open_state(cfg["state"])
    metrics = Recording()
    pipeline = Pipeline(
        state=state,
        store=open_store(cfg["store"]),
        models=open_models(cfg["model_dir"]),
        metrics=metrics,
    )
    transport = open_transport(cfg["source"])
    w = Worker(transport, pipeline, batch_size=cfg["batch_size"], poll_timeout_s=0.05)
    first: list[float] = []
    last = [0.0]
    orig_step = w.step

    def step() -> int:
        t0 = time.time()  # before the receive: the first batch's work counts too
        n = orig_step()
        if n:
            if not first:
                first.append(t0)
            last[0] = time.time()
        return n

    w.step = step  # type: ignore[method-assign]
    pipeline.ctx.models.current()  # type: ignore[union-attr]  # load the model before timing
    out.put({"ready": True})
    report = w.run(idle_exit_s=cfg["idle_exit"], install_signals=False)
    out.put(
        {
            "processed": report.processed,
            "received": report.received,
            "first": first[0] if first else None,
            "last": last[0],
            "latencies": metrics.samples,
            "steps": metrics.snapshot()["step_seconds"],
        }
    )


def run_workers(cfg: dict[str, Any], n: int, producer: Any = None) -> list[dict[str, Any]]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=worker_main, args=(cfg, q)) for _ in range(n)]
    for p in procs:
        p.start()
    for _ in procs:  # every worker has imported everything and loaded the model
        assert q.get().get("ready")
    if producer is not None:
        producer()
    results = [q.get() for _ in procs]
    for p in procs:
        p.join()
    return results


def p99(samples: list[float]) -> float | None:
    if len(samples) < 10:
        return None
    return statistics.quantiles(samples, n=100)[98]


def summarize(results: list[dict[str, Any]], n_events: int) -> dict[str, Any]:
    firsts = [r["first"] for r in results if r["first"]]
    span = max(r["last"] for r in results) - min(firsts)
    processed = sum(r["processed"] for r in results)
    return {
        "events": n_events,
        "processed": processed,
        "seconds": round(span, 3),
        "events_per_s": round(processed / span, 1) if span > 0 else None,
    }


# -- Postgres ---------------------------------------------------------------------------
def fresh_pg() -> tuple[str, str]:
    import psycopg

    name = f"cpbench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, f"postgresql://postgres@127.0.0.1:5432/{name}"


def drop_pg(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def clean_redis(prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(REDIS + "/0")
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    for i in range(0, len(keys), 1000):
        client.delete(*keys[i : i + 1000])
    client.close()


# -- scenarios --------------------------------------------------------------------------
def scenario_a(
    raws: list[bytes],
    lat_raws: list[bytes],
    rate: float,
    model_dir: Path,
    tmp: Path,
    batch_size: int,
) -> dict[str, Any]:
    """memory + memory + SQLite, in this process (a worker thread for the latency run)."""
    from chatpersona.pipeline import Pipeline, PipelineMetrics, Worker
    from chatpersona.pipeline.worker import open_models
    from chatpersona.profiles import open_store
    from chatpersona.stream import MemoryStateStore, open_transport

    class Recording(PipelineMetrics):
        def __init__(self) -> None:
            super().__init__()
            self.samples: list[float] = []

        def observe_latency(self, seconds: float) -> None:
            self.samples.append(seconds)

    def build(name: str) -> tuple[Any, Worker, Recording]:
        metrics = Recording()
        pipeline = Pipeline(
            state=MemoryStateStore(),
            store=open_store(f"sqlite:///{tmp / (name + '.db')}"),
            models=open_models(model_dir),
            metrics=metrics,
        )
        pipeline.ctx.models.current()  # type: ignore[union-attr]  # load the model before timing
        t = open_transport(f"memory://{name}")
        return t, Worker(t, pipeline, batch_size=batch_size, poll_timeout_s=0.02), metrics

    t, w, _m = build("a-throughput")
    t.publish(raws)
    # Timed like (b): from the first receive to the last ack (not the worker's start-up,
    # e.g. the gc.collect() before gc.freeze(), which walks this process's whole heap).
    first: list[float] = []
    last = [0.0]
    orig_step = w.step

    def step() -> int:
        t0 = time.perf_counter()
        n = orig_step()
        if n:
            if not first:
                first.append(t0)
            last[0] = time.perf_counter()
        return n

    w.step = step  # type: ignore[method-assign]
    rep = w.run(idle_exit_s=0.2, install_signals=False)
    secs = last[0] - first[0]
    thr = {
        "events": len(raws),
        "processed": rep.processed,
        "seconds": round(secs, 3),
        "events_per_s": round(rep.processed / secs, 1),
    }

    rate = min(rate, round(0.5 * thr["events_per_s"]))  # a load this setup sustains
    t, w, m = build("a-latency")
    thread = threading.Thread(target=w.run, kwargs={"idle_exit_s": 0.5, "install_signals": False})
    thread.start()
    paced_publish(t, lat_raws, rate)
    thread.join()
    return {"throughput": thr, "latency": latency_summary(m.samples, rate)}


def paced_publish(t: Any, raws: list[bytes], rate: float, chunk: int = 20) -> None:
    t0 = time.perf_counter()
    for i in range(0, len(raws), chunk):
        ahead = (i / rate) - (time.perf_counter() - t0)
        if ahead > 0:
            time.sleep(ahead)
        t.publish(raws[i : i + chunk])


def latency_summary(samples: list[float], rate: float) -> dict[str, Any]:
    return {
        "rate_events_per_s": rate,
        "samples": len(samples),
        "p50_ms": round(statistics.median(samples) * 1000, 2) if samples else None,
        "p99_ms": round((p99(samples) or 0) * 1000, 2) if samples else None,
    }


def scenario_b(
    raws: list[bytes],
    lat_raws: list[bytes],
    rate: float,
    model_dir: Path,
    workers: int,
    batch_size: int,
    naive: bool = False,
) -> dict[str, Any]:
    from chatpersona.stream import open_transport

    out: dict[str, Any] = {}
    for phase in ("throughput", "latency") if not naive else ("throughput",):
        prefix = f"cpbench:{uuid.uuid4().hex[:8]}:"
        db, pg = fresh_pg()
        try:
            cfg = {
                "source": f"{REDIS}/{prefix}ev?shards=8&lease_ms=3000",
                "state": "naive" if naive else f"{REDIS}/0?prefix={prefix}st:",
                "state_prefix": prefix + "naive:",
                "store": pg,
                "model_dir": str(model_dir),
                "batch_size": 1 if naive else batch_size,
                "idle_exit": 4.0,
            }
            producer_t = open_transport(cfg["source"])
            if phase == "latency":  # a load this setup sustains: half its throughput
                rate = min(rate, round(0.5 * out["throughput"]["events_per_s"]))
            if phase == "throughput":
                producer_t.publish(raws)
                results = run_workers(cfg, workers)
                out["throughput"] = summarize(results, len(raws))
                out["step_seconds"] = {
                    k: round(sum(r["steps"].get(k, 0.0) for r in results), 3)
                    for k in results[0]["steps"]
                }
            else:

                def produce(t: Any = producer_t, r: float = rate) -> None:
                    time.sleep(1.0)  # let the workers take their shard leases
                    paced_publish(t, lat_raws, r)

                results = run_workers(cfg, workers, producer=produce)
                samples = [s for r in results for s in r["latencies"]]
                out["latency"] = latency_summary(samples, rate)
            producer_t.close()
        finally:
            drop_pg(db)
            clean_redis(prefix)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=30_000, help="events for the throughput runs")
    parser.add_argument("--users", type=int, default=2_000, help="distinct users")
    parser.add_argument(
        "--latency-events", type=int, default=6_000, help="events for the latency runs"
    )
    parser.add_argument(
        "--rate", type=float, default=1_000.0, help="producer rate for the latency runs"
    )
    parser.add_argument(
        "--naive-events", type=int, default=2_000, help="events for the naive baseline"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=5_000,
        help="worker batch size of (a) and (b) (the worker's default; the naive baseline uses 1)",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "stream.json")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="cpbench-"))
    try:
        t0 = time.perf_counter()
        raws = make_events(args.events, args.users)
        lat_raws = make_events(args.latency_events, args.users, seed=2)
        naive_raws = make_events(args.naive_events, args.users, seed=3)
        model_dir = fit_model(raws, tmp)
        print(f"data + model ready in {time.perf_counter() - t0:.1f}s", flush=True)
        results: dict[str, Any] = {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "machine": f"{platform.machine()}, 2 cores shared with other work, Python {platform.python_version()}",
            "events": args.events,
            "users": args.users,
            "batch_size": args.batch_size,
            "load_average_at_start": list(os.getloadavg()),
        }
        results["a_memory_memory_sqlite_1w"] = scenario_a(
            raws, lat_raws, args.rate, model_dir, tmp, args.batch_size
        )
        print("a", json.dumps(results["a_memory_memory_sqlite_1w"]), flush=True)
        for n in (1, 2):
            key = f"b_redis_redis_postgres_{n}w"
            results[key] = scenario_b(raws, lat_raws, args.rate, model_dir, n, args.batch_size)
            print(key, json.dumps(results[key]), flush=True)
        results["naive_redis_per_field_postgres_1w"] = scenario_b(
            naive_raws, [], args.rate, model_dir, 1, 1, naive=True
        )
        print("naive", json.dumps(results["naive_redis_per_field_postgres_1w"]), flush=True)
        naive_rate = results["naive_redis_per_field_postgres_1w"]["throughput"]["events_per_s"]
        for key in (
            "a_memory_memory_sqlite_1w",
            "b_redis_redis_postgres_1w",
            "b_redis_redis_postgres_2w",
        ):
            rate = results[key]["throughput"]["events_per_s"]
            results[key]["ratio_vs_naive"] = round(rate / naive_rate, 1) if naive_rate else None
        results["targets"] = {
            "a_events_per_s": 40_000,
            "b_events_per_s": 20_000,
            "b_p99_ms": 50,
        }
        results["load_average_at_end"] = list(os.getloadavg())
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2))
        print(f"wrote {args.out}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

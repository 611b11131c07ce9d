"""Profile stores without HTTP: bulk load, get and merge throughput and latency.

Measures, for memory (the baseline), SQLite (temp file), PostgreSQL (a scratch database)
and PostgreSQL behind the Redis cache: ``merge_many`` load rate, then random ``get`` and
``merge`` from 1 and from 8 threads (p50/p99 latency per call), then the same ``get``
calls again (``get_repeat_8t``: cache hits behind Redis). Writes
bench/results/profiles.json. Needs PostgreSQL on 127.0.0.1:5432 and Redis on 6379.

    .venv/bin/python bench/bench_profiles.py --profiles 20000 --ops 4000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import redis

from chatpersona.profiles import ProfilePatch, ProfileStore, open_store

HERE = Path(__file__).resolve().parent
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS = "redis://127.0.0.1:6379/0"


def _patch(i: int, rng: random.Random) -> ProfilePatch:
    return ProfilePatch(
        preferences={"language": rng.choice(["en", "es"]), "product_interest": "laptops"},
        attributes={"age": rng.randint(18, 80), "region": rng.choice(["North", "South"])},
        interaction_history=[f"chat_{i}_{k}" for k in range(rng.randint(1, 5))],
    )


def _timed(fn: Callable[[int], Any], n: int, threads: int) -> dict[str, float]:
    lat: list[float] = []
    lock = threading.Lock()

    def run(worker: int) -> None:
        mine = []
        for k in range(worker, n, threads):
            t = time.perf_counter()
            fn(k)
            mine.append(time.perf_counter() - t)
        with lock:
            lat.extend(mine)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(run, range(threads)))
    wall = time.perf_counter() - start
    q = statistics.quantiles(lat, n=100)
    return {
        "ops": n,
        "threads": threads,
        "ops_per_s": round(n / wall, 1),
        "p50_ms": round(q[49] * 1000, 3),
        "p99_ms": round(q[98] * 1000, 3),
    }


def bench_store(store: ProfileStore, n_profiles: int, n_ops: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    items = [(f"user-{i:07d}", _patch(i, rng)) for i in range(n_profiles)]
    t = time.perf_counter()
    store.merge_many("bench", items, chunk_size=500)
    load_s = time.perf_counter() - t
    ids = [f"user-{rng.randrange(n_profiles):07d}" for _ in range(n_ops)]
    out: dict[str, Any] = {"load_profiles_per_s": round(n_profiles / load_s, 1)}

    def get(k: int) -> None:
        assert store.get("bench", ids[k]) is not None

    def merge(k: int) -> None:
        store.merge("bench", ids[k], ProfilePatch(interaction_history=[f"new_{k}"]))

    _timed(get, min(n_ops, 500), 1)  # warm connections (and, with a cache, some keys)
    for threads in (1, 8):
        out[f"get_{threads}t"] = _timed(get, n_ops, threads)
        out[f"merge_{threads}t"] = _timed(merge, n_ops // 2, threads)
    # The same ids again: behind a cache these are mostly hits (merges invalidated some).
    out["get_repeat_8t"] = _timed(get, n_ops, 8)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--profiles", type=int, default=20_000, help="profiles loaded per store")
    ap.add_argument("--ops", type=int, default=4_000, help="get calls per measurement")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "profiles.json")
    args = ap.parse_args()

    tag = uuid.uuid4().hex[:10]
    db = f"cpbench_{tag}"
    prefix = f"cpbench:{tag}:"
    tmp = tempfile.TemporaryDirectory()
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    pg_url = f"postgresql://postgres@127.0.0.1:5432/{db}"
    kinds: dict[str, Callable[[], ProfileStore]] = {
        "memory": lambda: open_store("memory://"),
        "sqlite": lambda: open_store(f"sqlite:///{tmp.name}/bench.db"),
        "postgresql": lambda: open_store(pg_url, max_size=8),
        "postgresql+redis": lambda: open_store(
            pg_url, max_size=8, cache_url=REDIS, cache_prefix=prefix, cache_ttl_seconds=300
        ),
    }
    results: dict[str, Any] = {}
    try:
        for name, opener in kinds.items():
            if name == "postgresql+redis":  # same rows, new tenant space: reset the table
                with psycopg.connect(pg_url, autocommit=True) as conn:
                    conn.execute("TRUNCATE profiles")
            store = opener()
            try:
                results[name] = bench_store(store, args.profiles, args.ops, args.seed)
            finally:
                store.close()
            print(name, json.dumps(results[name]), flush=True)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        r = redis.Redis.from_url(REDIS)
        keys = list(r.scan_iter(match=prefix + "*", count=1000))
        if keys:
            r.delete(*keys)
        r.close()
        tmp.cleanup()
    base = results["memory"]["get_1t"]["ops_per_s"]
    for res in results.values():
        res["get_1t_vs_memory"] = round(res["get_1t"]["ops_per_s"] / base, 3)
    report = {
        "command": f"bench/bench_profiles.py --profiles {args.profiles} --ops {args.ops}",
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
            "note": "2 cores shared with other work during this session",
        },
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Profiles REST API under load, over loopback, with ``wrk`` (a C load generator).

For each backend — (a) SQLite (temp file) and (b) PostgreSQL (a scratch database) behind
the Redis read-through cache — the script loads N profiles (100,000 by default) with
``merge_many``, creates an API key, starts ``chatpersona serve`` on 127.0.0.1 with
``--workers W``, and drives it with wrk at 32 connections:

- ``get_max``: GET random profiles as fast as possible (throughput; target >= 3,000/s);
- ``mix_max``: 80% GET / 20% POST (merge) as fast as possible;
- ``get_1000`` / ``mix_1000``: the same paced to about 1,000 requests/s in total (each
  connection waits 32 ms between requests; target p99 < 10 ms at that rate).

The baseline, measured in the same run on the same server, is ``GET /healthz`` (no
auth, no store): the framework's own ceiling on this machine. Results go to
bench/results/api.json. wrk is installed with apt-get when missing. Only 127.0.0.1 is
ever targeted; every run is bounded by ``--duration``.

    .venv/bin/python bench/bench_api.py                      # full: 100,000 profiles
    .venv/bin/python bench/bench_api.py --profiles 10000 --duration 5 --backends sqlite
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from chatpersona.profiles import ProfilePatch, open_store
from chatpersona.profiles.keys import KeyStore

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HOST = "127.0.0.1"  # loopback only, by design
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS = "redis://127.0.0.1:6379/0"
TENANT = "bench"
CONNECTIONS = 32

LUA = r"""
local n = tonumber(os.getenv("CP_USERS"))
local key = os.getenv("CP_KEY")
local write_share = tonumber(os.getenv("CP_WRITE_SHARE"))
local pace_ms = tonumber(os.getenv("CP_DELAY_MS"))
local fixed_path = os.getenv("CP_PATH")
local threads = {}
local counter = 0
local headers = {["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json"}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  math.randomseed(7919 * tid)
end

function request()
  if fixed_path ~= nil and fixed_path ~= "" then
    return wrk.format("GET", fixed_path)
  end
  local uid = string.format("u%06d", math.random(0, n - 1))
  if write_share > 0 and math.random() < write_share then
    counter = counter + 1
    local body = '{"preferences": {"language": "es"}, "interaction_history": ["bench-'
      .. tid .. '-' .. counter .. '"]}'
    return wrk.format("POST", "/api/user/" .. uid .. "/profile", headers, body)
  end
  return wrk.format("GET", "/api/user/" .. uid .. "/profile", headers)
end

if pace_ms > 0 then
  function delay()
    return pace_ms
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'CPJSON {"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d, '
    .. '"p50_us": %d, "p90_us": %d, "p95_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency.max, latency.mean))
end
"""


def ensure_wrk() -> str:
    """Path of ``wrk``; installs the Debian package when it is missing."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk not found: installing the Debian package", flush=True)
    subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk could not be installed")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def load_profiles(url: str, n: int, *, seed: int) -> str:
    """Load ``n`` profiles ``u000000``.. into the store at ``url``; return a read/write key."""
    rng = random.Random(seed)
    store = open_store(url)
    try:
        started = time.perf_counter()

        def items() -> Iterator[tuple[str, ProfilePatch]]:
            for i in range(n):
                yield (
                    f"u{i:06d}",
                    ProfilePatch(
                        preferences={
                            "language": rng.choice(["en", "es"]),
                            "product_interest": rng.choice(["laptops", "phones", "tv"]),
                        },
                        attributes={"age": rng.randint(18, 80), "country": "US"},
                        interaction_history=[f"chat_{i}_{k}" for k in range(rng.randint(1, 5))],
                    ),
                )

        done = 0
        batch: list[tuple[str, ProfilePatch]] = []
        for item in items():
            batch.append(item)
            if len(batch) == 5000:
                done += store.merge_many(TENANT, batch, chunk_size=1000)
                batch = []
                print(f"  loaded {done:,}/{n:,}", end="\r", flush=True)
        if batch:
            done += store.merge_many(TENANT, batch, chunk_size=1000)
        elapsed = time.perf_counter() - started
        print(f"  loaded {done:,} profiles in {elapsed:.1f}s ({done / elapsed:,.0f}/s)")
        assert isinstance(store, KeyStore)
        _, secret = store.create_key(TENANT, {"profile:read", "profile:write"}, name="bench")
        return secret
    finally:
        store.close()


@contextmanager
def server(store_url: str, cache_url: str | None, workers: int) -> Iterator[tuple[str, int]]:
    """``chatpersona serve`` on 127.0.0.1 in a subprocess; yields its base URL and pid."""
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "chatpersona.cli.main",
        "serve",
        "--store",
        store_url,
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    if cache_url:
        cmd += ["--cache", cache_url]
    env = {
        **os.environ,
        "CHATPERSONA_RATE_LIMIT_PER_MINUTE": "0",  # measure the API, not the limiter
        "CHATPERSONA_LOG_LEVEL": "WARNING",  # no per-request access log line
    }
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        base = f"http://{HOST}:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    output = log.read().decode(errors="replace")
                    raise SystemExit("server did not start:\n" + output)
                time.sleep(0.2)
            yield base, proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by the server and its worker processes."""
    import psutil

    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def run_wrk(
    wrk: str,
    script: Path,
    base: str,
    *,
    key: str,
    users: int,
    duration: int,
    write_share: float = 0.0,
    delay_ms: int = 0,
    path: str = "",
    threads: int = 2,
    server_pid: int | None = None,
) -> dict[str, Any]:
    env = {
        **os.environ,
        "CP_USERS": str(users),
        "CP_KEY": key,
        "CP_WRITE_SHARE": str(write_share),
        "CP_DELAY_MS": str(delay_ms),
        "CP_PATH": path,
    }
    cmd = [
        wrk,
        f"-t{threads}",
        f"-c{CONNECTIONS}",
        f"-d{duration}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        base,
    ]
    cpu_before = server_cpu_seconds(server_pid) if server_pid else 0.0
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    cpu_used = server_cpu_seconds(server_pid) - cpu_before if server_pid else 0.0
    line = next(li for li in out.splitlines() if li.startswith("CPJSON "))
    raw = json.loads(line[len("CPJSON ") :])
    seconds = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "seconds": round(seconds, 2),
        "throughput_rps": round(raw["requests"] / seconds, 1),
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p95_ms": raw["p95_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "non_2xx": raw["status_errors"],
        "socket_errors": raw["socket_errors"],
        # Measured, load-independent cost: server CPU time (all workers) per request.
        "server_cpu_ms_per_request": round(1000 * cpu_used / max(raw["requests"], 1), 3),
        "server_cpu_cores_used": round(cpu_used / seconds, 2),
    }


def scenarios(duration: int) -> list[tuple[str, float, int]]:
    # name, write share, per-connection delay (ms): 32 connections x 1 request per 32 ms
    # offers about 1,000 requests/s in total.
    pace = round(CONNECTIONS * 1000 / 1000)
    return [
        ("get_max", 0.0, 0),
        ("mix_max", 0.2, 0),
        ("get_1000", 0.0, pace),
        ("mix_1000", 0.2, pace),
    ]


@contextmanager
def backend(name: str, tmp: Path) -> Iterator[tuple[str, str | None]]:
    """``(store_url, cache_url)`` of a fresh store for ``name``; dropped afterwards."""
    if name == "sqlite":
        yield f"sqlite:///{tmp / 'bench.db'}", None
        return
    import psycopg
    import redis

    db = f"cpbench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{db}", REDIS
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        client = redis.Redis.from_url(REDIS)
        for pattern in (f"chatpersona:profile:{TENANT}:*", f"chatpersona:lease:{TENANT}:*"):
            keys = list(client.scan_iter(match=pattern, count=5000))
            for i in range(0, len(keys), 5000):
                client.delete(*keys[i : i + 5000])
        client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", type=int, default=100_000, help="profiles to load")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (1-60)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--wrk-threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--backends", default="sqlite,postgres+redis", help="comma list: sqlite, postgres+redis"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "api.json")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 60 or not 1 <= args.profiles <= 1_000_000:
        parser.error("--duration must be 1-60 s and --profiles 1-1,000,000")
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if any(b not in ("sqlite", "postgres+redis") for b in backends):
        parser.error(f"unknown backend in {backends}")

    wrk = ensure_wrk()
    results: list[dict[str, Any]] = []
    baseline: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory(prefix="cpbench-") as tmpdir:
        script = Path(tmpdir) / "load.lua"
        script.write_text(LUA)
        for name in backends:
            print(f"== {name}: loading {args.profiles:,} profiles", flush=True)
            with backend(name, Path(tmpdir)) as (store_url, cache_url):
                key = load_profiles(store_url, args.profiles, seed=args.seed)
                with server(store_url, cache_url, args.workers) as (base, pid):
                    common = {
                        "key": key,
                        "users": args.profiles,
                        "threads": args.wrk_threads,
                        "server_pid": pid,
                    }
                    # Warm-up: imports, connection pools, the cache, the page cache.
                    run_wrk(wrk, script, base, duration=min(5, args.duration), **common)
                    if baseline is None:
                        baseline = run_wrk(
                            wrk, script, base, duration=args.duration, path="/healthz", **common
                        )
                        baseline.update(backend=name, scenario="healthz_max")
                        print(
                            f"  baseline GET /healthz: {baseline['throughput_rps']:,.0f}/s, "
                            f"{baseline['server_cpu_ms_per_request']:.3f} ms CPU/request"
                        )
                    for scenario, share, delay in scenarios(args.duration):
                        res = run_wrk(
                            wrk,
                            script,
                            base,
                            duration=args.duration,
                            write_share=share,
                            delay_ms=delay,
                            **common,
                        )
                        res.update(backend=name, scenario=scenario)
                        results.append(res)
                        print(
                            f"  {scenario:9s} {res['throughput_rps']:8,.0f} req/s  "
                            f"p50 {res['p50_ms']:6.2f}  p95 {res['p95_ms']:6.2f}  "
                            f"p99 {res['p99_ms']:6.2f} ms  non-2xx {res['non_2xx']}  "
                            f"socket errors {res['socket_errors']}  "
                            f"server CPU {res['server_cpu_ms_per_request']:.3f} ms/req "
                            f"({res['server_cpu_cores_used']:.2f} cores)",
                            flush=True,
                        )

    def pick(b: str, s: str) -> dict[str, Any] | None:
        return next((r for r in results if r["backend"] == b and r["scenario"] == s), None)

    targets = {}
    for name in backends:
        get_max, get_1000, mix_1000 = (
            pick(name, "get_max"),
            pick(name, "get_1000"),
            pick(name, "mix_1000"),
        )
        targets[name] = {
            "get_throughput_ge_3000": bool(get_max and get_max["throughput_rps"] >= 3000),
            "p99_lt_10ms_at_1000rps_get": bool(get_1000 and get_1000["p99_ms"] < 10),
            "p99_lt_10ms_at_1000rps_mix": bool(mix_1000 and mix_1000["p99_ms"] < 10),
        }
        if baseline and get_max:
            targets[name]["get_vs_healthz_ratio"] = round(
                get_max["throughput_rps"] / baseline["throughput_rps"], 3
            )
    load = os.getloadavg()
    report = {
        "benchmark": "api",
        "command": "python bench/bench_api.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "note": "2 cores shared by the server, wrk and any other work running at the time",
            "loadavg_1_5_15_at_end": [round(x, 2) for x in load],
        },
        "profiles": args.profiles,
        "connections": CONNECTIONS,
        "workers": args.workers,
        "wrk_threads": args.wrk_threads,
        "duration_s": args.duration,
        "baseline": baseline,
        "results": results,
        "targets": targets,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    print(json.dumps(targets, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark the decide stage: decision latency, online and batch throughput, reward
ingestion, against a naive numpy LinUCB (a full matrix inverse per action per decision)
measured in the same run. Writes bench/results/decide.json.

Targets (issue 6): decide p99 < 1 ms for 20 actions x 64 context features; >= 5,000
decisions/s online; >= 50,000/s in batch; reward ingestion >= 2,000/s.

    .venv/bin/python bench/bench_decide.py [--decisions 20000] [--batch 100000]
        [--reference REV] [--reference-rounds 2]

``--reference REV`` also measures the decide code of git revision ``REV`` (extracted with
``git archive`` into a temporary directory) on the same logged latency and online
workloads, alternating reference and current subprocesses, so old and new code are
compared in the same run on the same (shared) machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from chatpersona.decide import (
    DecisionConfig,
    DecisionEngine,
    Guardrails,
    JsonlDecisionLog,
    LinUCB,
    make_policy,
)
from chatpersona.decide.context import ContextSchema

HERE = Path(__file__).resolve().parent
N_ACTIONS = 20
SEGMENTS = (
    "billing_focused",
    "mobile_shopper",
    "loyal_premium",
    "at_risk_complainer",
    "new_explorer",
)
INTENTS = tuple(f"intent_{i}" for i in range(8))
CHANNELS = ("web", "mobile_app", "email", "whatsapp", "phone")
# 1 bias + 6 segment + 9 intent + 6 channel one-hots = 22; 42 numeric -> 64 features.
NUMERIC = tuple(f"f{i}" for i in range(42))
SCHEMA = ContextSchema(segments=SEGMENTS, intents=INTENTS, channels=CHANNELS, numeric=NUMERIC)
ACTIONS = [f"action_{i}" for i in range(N_ACTIONS)]


def contexts(n: int, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(n, len(NUMERIC))).round(4)
    seg = rng.integers(0, len(SEGMENTS), n)
    intent = rng.integers(0, len(INTENTS), n)
    chan = rng.integers(0, len(CHANNELS), n)
    return [
        {
            "user_id": f"u{i % 5000}",
            "segment": SEGMENTS[seg[i]],
            "intent": INTENTS[intent[i]],
            "channel": CHANNELS[chan[i]],
            "features": dict(zip(NUMERIC, feats[i].tolist(), strict=True)),
        }
        for i in range(n)
    ]


def warm(policy: LinUCB, ctxs: list[dict[str, Any]], seed: int) -> None:
    rng = np.random.default_rng(seed)
    for c in ctxs:
        policy.update(c, ACTIONS[int(rng.integers(0, N_ACTIONS))], float(rng.random()))


class NaiveLinUCB:
    """The textbook implementation: keep A and b per action, invert A at every decision."""

    def __init__(self, n_actions: int, dim: int, alpha: float = 0.5) -> None:
        self.A = np.tile(np.eye(dim), (n_actions, 1, 1))
        self.b = np.zeros((n_actions, dim))
        self.alpha = alpha

    def decide(self, x: np.ndarray) -> int:
        scores = np.empty(self.A.shape[0])
        for a in range(self.A.shape[0]):
            A_inv = np.linalg.inv(self.A[a])
            theta = A_inv @ self.b[a]
            scores[a] = theta @ x + self.alpha * np.sqrt(x @ A_inv @ x)
        return int(np.argmax(scores))

    def update(self, a: int, x: np.ndarray, r: float) -> None:
        self.A[a] += np.outer(x, x)
        self.b[a] += r * x


def percentiles(samples: list[float], prefix: str = "") -> dict[str, float]:
    arr = np.asarray(samples) * 1e3
    return {
        f"{prefix}p50_ms": float(np.percentile(arr, 50)),
        f"{prefix}p99_ms": float(np.percentile(arr, 99)),
        f"{prefix}mean_ms": float(arr.mean()),
    }


class Timer:
    """Wall-clock, this thread's and the whole process's CPU time: on a shared machine the
    CPU figure is what the code costs, the wall figure also holds time spent waiting for
    a core. The process figure counts any other thread's work too (none is started by
    the decide code)."""

    def __enter__(self) -> Timer:
        self.w0, self.c0 = time.perf_counter(), time.thread_time()
        self.p0 = time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.w0
        self.cpu = time.thread_time() - self.c0
        self.proc = time.process_time() - self.p0


def rates(n: int, t: Timer, name: str) -> dict[str, float]:
    return {
        f"{name}_per_s_wall": n / t.wall,
        f"{name}_per_s_cpu": n / t.cpu,
        f"{name}_per_s_process_cpu": n / t.proc,
    }


def bench_latency(ctxs: list[dict[str, Any]], sink: Any) -> dict[str, float]:
    policy = LinUCB(
        ACTIONS,
        schema=SCHEMA,
        alpha=0.5,
        exploration_floor=0.002,
        guardrails=Guardrails.standard(),
        sink=sink,
        seed=0,
    )
    warm(policy, ctxs[:2000], 1)
    lat, cpu = [], []
    for c in ctxs:
        t, c0 = time.perf_counter(), time.thread_time()
        policy.decide(c)
        cpu.append(time.thread_time() - c0)
        lat.append(time.perf_counter() - t)
    out = {**percentiles(lat, "wall_"), **percentiles(cpu, "cpu_")}
    out["decisions_per_s_wall"] = len(ctxs) / sum(lat)
    out["decisions_per_s_cpu"] = len(ctxs) / sum(cpu)
    return out


def bench_online(ctxs: list[dict[str, Any]], sink: Any) -> dict[str, float]:
    """Decide, then learn from a reward, for every context (one thread, wall clock)."""
    policy = LinUCB(ACTIONS, schema=SCHEMA, alpha=0.5, guardrails=Guardrails.standard(), sink=sink)
    rng = np.random.default_rng(2)
    rewards = rng.random(len(ctxs))
    with Timer() as t:
        for i, c in enumerate(ctxs):
            d = policy.decide(c)
            policy.update_decision(d, float(rewards[i]))
    return rates(len(ctxs), t, "decide_and_update")


def bench_batch(ctxs: list[dict[str, Any]], n: int) -> dict[str, float]:
    policy = LinUCB(ACTIONS, schema=SCHEMA, alpha=0.5, exploration_floor=0.002, seed=0)
    warm(policy, ctxs[:2000], 3)
    reps = max(1, -(-n // len(ctxs)))
    many = (ctxs * reps)[:n]
    with Timer() as tf:
        X = policy.featurizer_.transform(many)
    # BLAS may use both cores here: the CPU figure is the whole process's CPU time.
    t0, p0 = time.perf_counter(), time.process_time()
    res = policy.decide_batch(many, X=X)
    t_score, p_score = time.perf_counter() - t0, time.process_time() - p0
    assert len(res.actions) == n
    return {
        "rows": n,
        "scored_per_s_wall": n / t_score,
        "scored_per_cpu_s": n / p_score,
        "featurized_per_s_wall": n / tf.wall,
        "featurized_and_scored_per_s_wall": n / (tf.wall + t_score),
    }


def bench_rewards(ctxs: list[dict[str, Any]], sink: Any) -> dict[str, float]:
    config = DecisionConfig.from_dict(
        {
            "context": SCHEMA.to_dict(),
            "decision_points": {"bench": {"actions": ACTIONS, "policy": {"type": "linucb"}}},
        }
    )
    engine = DecisionEngine(config, sink=sink, max_pending=len(ctxs) + 1)
    ids = [engine.decide(c["user_id"], "bench", c).decision_id for c in ctxs]
    rng = np.random.default_rng(4)
    csat = rng.integers(1, 6, len(ids))
    with Timer() as t:
        for i, did in enumerate(ids):
            engine.reward(did, outcomes={"csat": int(csat[i]), "resolved": bool(csat[i] > 2)})
    return rates(len(ids), t, "rewards")


def bench_naive(ctxs: list[dict[str, Any]], fast_ctx: list[dict[str, Any]]) -> dict[str, Any]:
    """The same decisions with the naive baseline and with LinUCB, no logging, no
    guardrails: the ratio isolates the algorithmic difference."""
    fast = make_policy({"type": "linucb", "alpha": 0.5}, ACTIONS, schema=SCHEMA)
    naive = NaiveLinUCB(N_ACTIONS, SCHEMA.dim)
    rng = np.random.default_rng(5)
    X = fast.featurizer_.transform(ctxs)
    for _ in range(200):  # same warm data for both
        a, i, r = (
            int(rng.integers(0, N_ACTIONS)),
            int(rng.integers(0, len(ctxs))),
            float(rng.random()),
        )
        naive.update(a, X[i], r)
        fast.update_x(X[i], ACTIONS[a], r)
    lat_naive = []
    for x in X:
        t = time.thread_time()
        naive.decide(x)
        lat_naive.append(time.thread_time() - t)
    lat_fast = []
    for c in ctxs:
        t = time.thread_time()
        fast.decide(c)
        lat_fast.append(time.thread_time() - t)
    # agreement: both pick the same argmax (before exploration) on these contexts
    agree = 0
    for c, x in zip(ctxs, X, strict=True):
        probs = fast.probabilities(c)
        agree += int(max(probs, key=probs.__getitem__) == ACTIONS[naive.decide(x)])
    n_p, f_p = percentiles(lat_naive), percentiles(lat_fast)
    return {
        "decisions": len(ctxs),
        "clock": "thread CPU time",
        "naive": n_p,
        "chatpersona": f_p,
        "speedup_mean": n_p["mean_ms"] / f_p["mean_ms"],
        "speedup_p99": n_p["p99_ms"] / f_p["p99_ms"],
        "argmax_agreement": agree / len(ctxs),
    }


def online_only(n: int) -> dict[str, Any]:
    """The logged latency and online workloads alone (one side of ``--reference``)."""
    ctxs = contexts(n, 0)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        with JsonlDecisionLog(Path(tmp) / "lat.jsonl") as sink:
            out["latency_logged_jsonl"] = bench_latency(ctxs, sink)
        with JsonlDecisionLog(Path(tmp) / "online.jsonl") as sink:
            out["online_logged_jsonl"] = bench_online(ctxs, sink)
    return out


def _side(src: Path | None, n: int) -> dict[str, Any]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--online-only", str(n)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def bench_reference(rev: str, n: int, rounds: int) -> dict[str, Any]:
    """Old (``rev``) vs current decide code, alternating subprocesses, best round each."""
    root = HERE.parent
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", str(root), "archive", rev, "src/chatpersona"],
            capture_output=True,
            check=True,
        )
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        ref_src = Path(tmp) / "src"
        runs: dict[str, list[dict[str, Any]]] = {"reference": [], "current": []}
        for _ in range(rounds):
            runs["reference"].append(_side(ref_src, n))
            runs["current"].append(_side(None, n))

    def best(side: str, part: str, key: str, low: bool = False) -> float:
        vals = [r[part][key] for r in runs[side]]
        return min(vals) if low else max(vals)

    summary: dict[str, Any] = {"revision": rev, "decisions": n, "rounds": rounds}
    for side in ("reference", "current"):
        summary[side] = {
            "online_per_s_wall": best(side, "online_logged_jsonl", "decide_and_update_per_s_wall"),
            "online_per_s_cpu": best(side, "online_logged_jsonl", "decide_and_update_per_s_cpu"),
            "online_per_s_process_cpu": best(
                side, "online_logged_jsonl", "decide_and_update_per_s_process_cpu"
            ),
            "decide_logged_cpu_p50_ms": best(side, "latency_logged_jsonl", "cpu_p50_ms", True),
            "decide_logged_cpu_p99_ms": best(side, "latency_logged_jsonl", "cpu_p99_ms", True),
            "decide_logged_wall_p99_ms": best(side, "latency_logged_jsonl", "wall_p99_ms", True),
        }
    ref, cur = summary["reference"], summary["current"]
    summary["speedup_online_cpu"] = cur["online_per_s_cpu"] / ref["online_per_s_cpu"]
    summary["speedup_online_wall"] = cur["online_per_s_wall"] / ref["online_per_s_wall"]
    summary["speedup_p99_cpu"] = ref["decide_logged_cpu_p99_ms"] / cur["decide_logged_cpu_p99_ms"]
    summary["runs"] = runs
    return summary


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--online-only":  # a --reference subprocess
        print(json.dumps(online_only(int(sys.argv[2]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=20_000, help="online decisions to time")
    parser.add_argument("--batch", type=int, default=100_000, help="rows in the batch run")
    parser.add_argument("--naive", type=int, default=1_000, help="decisions for the baseline")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "decide.json")
    parser.add_argument(
        "--reference",
        default=None,
        help="also time the decide code of this git revision (old vs new, same run)",
    )
    parser.add_argument(
        "--reference-decisions", type=int, default=10_000, help="decisions per reference side"
    )
    parser.add_argument("--reference-rounds", type=int, default=2, help="alternating rounds")
    args = parser.parse_args()

    ctxs = contexts(args.decisions, 0)
    results: dict[str, Any] = {
        "machine": {"cpus": 2, "python": platform.python_version(), "shared": True},
        "setup": {"actions": N_ACTIONS, "features": SCHEMA.dim, "policy": "linucb"},
    }
    with tempfile.TemporaryDirectory() as tmp:
        with JsonlDecisionLog(Path(tmp) / "lat.jsonl") as sink:
            results["latency_logged_jsonl"] = bench_latency(ctxs, sink)
        results["latency_unlogged"] = bench_latency(ctxs, None)
        with JsonlDecisionLog(Path(tmp) / "online.jsonl") as sink:
            results["online_logged_jsonl"] = bench_online(ctxs, sink)
        results["batch"] = bench_batch(ctxs, args.batch)
        with JsonlDecisionLog(Path(tmp) / "rewards.jsonl") as sink:
            results["rewards_logged_jsonl"] = bench_rewards(ctxs[: min(len(ctxs), 10_000)], sink)
    results["vs_naive"] = bench_naive(ctxs[: args.naive], ctxs)
    if args.reference:
        results["vs_reference"] = bench_reference(
            args.reference, args.reference_decisions, args.reference_rounds
        )
    lat = results["latency_logged_jsonl"]
    online = results["online_logged_jsonl"]
    rew = results["rewards_logged_jsonl"]
    batch = results["batch"]
    results["targets"] = {
        "decide_p99_under_1ms": {"wall": lat["wall_p99_ms"] < 1.0, "cpu": lat["cpu_p99_ms"] < 1.0},
        "online_5000_per_s": {
            "wall": online["decide_and_update_per_s_wall"] >= 5000,
            "cpu": online["decide_and_update_per_s_cpu"] >= 5000,
        },
        "batch_50000_per_s": {
            "wall": batch["scored_per_s_wall"] >= 50_000,
            "cpu": batch["scored_per_cpu_s"] >= 50_000,
        },
        "rewards_2000_per_s": {
            "wall": rew["rewards_per_s_wall"] >= 2000,
            "cpu": rew["rewards_per_s_cpu"] >= 2000,
        },
    }
    results["load_average_1min"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

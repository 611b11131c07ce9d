"""Benchmark of ``chatpersona generate``: 1M users under a minute, against a naive generator.

In one run, each measurement in its own process (so peak RSS is its own):
  (a) baseline: a straightforward generator written the usual way: a Python loop per user
      and per chat with the ``random`` module, ``json.dumps`` per event and ``csv.writer``
      per row, over the same segment parameters and the same file shapes;
  (b) ``chatpersona.datagen.generate`` at the same size, for the ratio;
  (c) ``chatpersona.datagen.generate`` at the target size (default 1,000,000 users), with
      per-stage timings; the target is < 60 s.

Writes bench/results/generate.json. ``--help`` for the options.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import os
import platform
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
TARGET_SECONDS = 60.0


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _naive_generate(n_users: int, seed: int, out: Path) -> dict[str, Any]:
    """The baseline: one Python iteration per user, chat and event."""
    from datetime import UTC, datetime

    from chatpersona.datagen import CATEGORIES, CHANNELS, DEVICES, SEGMENTS, load_utterances

    rng = random.Random(seed)
    utt = load_utterances().to_dicts()
    by_cat: dict[str, list[dict[str, str]]] = {}
    for row in utt:
        by_cat.setdefault(row["category"], []).append(row)
    start = datetime(2026, 5, 1, tzinfo=UTC).timestamp()
    span = 184 * 86400
    out.mkdir(parents=True, exist_ok=True)
    n_events = 0
    with (
        (out / "users.csv").open("w", newline="") as uf,
        (out / "events.jsonl").open("w") as ef,
        (out / "truth.csv").open("w", newline="") as tf,
    ):
        users = csv.writer(uf)
        truth = csv.writer(tf)
        users.writerow(["user_id", "signup_date", "age", "monthly_spend", "is_vip", "updated_at"])
        truth.writerow(["user_id", "segment"])
        weights = [s.share for s in SEGMENTS]
        for u in range(n_users):
            seg = rng.choices(SEGMENTS, weights)[0]
            uid = f"U{u + 1:07d}"
            age = "" if rng.random() < 0.05 else str(int(rng.gauss(seg.age_mean, seg.age_sd)))
            signup = datetime.fromtimestamp(start - rng.random() * 3 * 365 * 86400, UTC)
            spend = rng.lognormvariate(0, 0.45) * seg.spend_median
            users.writerow(
                [
                    uid,
                    signup.strftime(rng.choice(["%Y-%m-%d", "%d/%m/%Y", "%b %d %Y"])),
                    age,
                    f"${spend:,.2f}",
                    rng.choice(["Y", "Yes", "true", "1"] if rng.random() < seg.vip_rate else ["N"]),
                    datetime.fromtimestamp(start + rng.random() * span, UTC).isoformat(),
                ]
            )
            truth.writerow([uid, seg.name])
            n_chats = 1
            lam = seg.chat_rate
            while rng.random() < lam / (lam + 1):  # geometric stand-in for the Poisson
                n_chats += 1
            for k in range(n_chats):
                chat_id = f"{uid}-{k + 1}"
                channel = rng.choices(CHANNELS, [seg.channel_weights.get(c, 0) for c in CHANNELS])[
                    0
                ]
                device = rng.choices(DEVICES, [seg.device_weights.get(d, 0) for d in DEVICES])[0]
                cat = rng.choices(
                    CATEGORIES, [max(seg.category_weights.get(c, 0), 1) for c in CATEGORIES]
                )[0]
                t = start + rng.random() * span
                events = [("chat_started", {"chat_id": chat_id})]
                for _ in range(1 + min(int(rng.expovariate(1 / (seg.message_rate + 1e-9))), 5)):
                    row = rng.choice(by_cat[cat])
                    payload = {"chat_id": chat_id, "text": row["text"]}
                    events.append(("message", payload | {"intent": row["intent"], "category": cat}))
                events.append(
                    (
                        "chat_ended",
                        {
                            "chat_id": chat_id,
                            "resolved": rng.random() < seg.resolution_rate,
                            "handle_time_s": round(rng.expovariate(1 / seg.handle_time_s), 1),
                        },
                    )
                )
                if rng.random() < seg.feedback_rate:
                    csat = rng.choices(range(1, 6), seg.csat_probs)[0]
                    events.append(("feedback", {"chat_id": chat_id, "csat": csat}))
                for kind, payload in events:
                    t += rng.randint(2, 120)
                    event = {
                        "event_id": f"{rng.getrandbits(128):032x}",
                        "user_id": uid,
                        "type": kind,
                        "ts": datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "channel": channel,
                        "device": device,
                        "payload": payload,
                    }
                    ef.write(json.dumps(event) + "\n")
                    n_events += 1
    # (the naive writer does not sort by ts: sorting would need all events in memory)
    return {"n_events": n_events}


def _run(kind: str, n_users: int, seed: int, out: str, queue: Any) -> None:
    stages: dict[str, float] = {}
    marks: dict[str, float] = {}

    def progress(stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        marks.setdefault(stage, now)
        if done >= total:
            stages[stage] = round(now - marks[stage], 3)

    from chatpersona.datagen import generate, load_utterances

    load_utterances()  # imports and the bundled data load are not part of either timing
    t0 = time.perf_counter()
    if kind == "naive":
        info = _naive_generate(n_users, seed, Path(out))
    else:
        result = generate(n_users, seed, Path(out), progress=progress)
        info = {
            "n_events": result.n_events,
            "n_chats": result.n_chats,
            "n_user_rows": result.n_user_rows,
            "stages_s": stages,
        }
    seconds = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    size = sum(p.stat().st_size for p in Path(out).iterdir())
    queue.put(
        info
        | {
            "kind": kind,
            "n_users": n_users,
            "seconds": round(seconds, 3),
            # CPU seconds of the process (all threads, includes imports): a figure less
            # sensitive than wall time to other work sharing the two cores.
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
            "users_per_s": round(n_users / seconds, 1),
            "events_per_s": round(info["n_events"] / seconds, 1),
            "bytes_written": size,
            "peak_rss_mb": round(_peak_rss_mb(), 1),
        }
    )


def _measure(kind: str, n_users: int, seed: int, root: Path) -> dict[str, Any]:
    out = root / f"{kind}-{n_users}"
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_run, args=(kind, n_users, seed, str(out), queue))
    proc.start()
    result = queue.get()
    proc.join()
    shutil.rmtree(out, ignore_errors=True)
    print(json.dumps(result), flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000, help="target size (users)")
    parser.add_argument(
        "--baseline-users", type=int, default=50_000, help="size of the naive-vs-ours comparison"
    )
    parser.add_argument("--seed", type=int, default=1, help="generator seed")
    parser.add_argument("--tmp", type=Path, default=None, help="scratch directory (default: temp)")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0]
    root = Path(tempfile.mkdtemp(prefix="bench-generate-", dir=args.tmp))
    try:
        naive = _measure("naive", args.baseline_users, args.seed, root)
        ours_small = _measure("chatpersona", args.baseline_users, args.seed, root)
        ours = _measure("chatpersona", args.users, args.seed, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report = {
        "benchmark": "generate",
        "command": "python bench/bench_generate.py " + " ".join(argv or sys.argv[1:]),
        "machine": {"python": platform.python_version(), "cpus": mp.cpu_count()},
        "load_avg_1m": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "target_seconds": TARGET_SECONDS,
        "target_met": ours["seconds"] < TARGET_SECONDS,
        "baseline": naive,
        "same_size": ours_small,
        "speedup_vs_naive_users_per_s": round(ours_small["users_per_s"] / naive["users_per_s"], 1),
        "target": ours,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "generate.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(
        f"{ours['n_users']:,} users -> {ours['n_events']:,} events in {ours['seconds']:.1f} s "
        f"(target < {TARGET_SECONDS:.0f} s: {'met' if report['target_met'] else 'MISSED'}); "
        f"{report['speedup_vs_naive_users_per_s']}x the naive generator at "
        f"{args.baseline_users:,} users"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

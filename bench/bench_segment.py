"""Benchmark the segmentation path; writes bench/results/segment.json.

1. Large: N users x F features (default 1,000,000 x 20): scaling + PCA (0.9), K-Means
   sweep k = 2..12 (fits on a seeded 100,000-row subsample, silhouette on a seeded
   2,000-row sample), final fit (k-means++ on a 100,000-row sample, Lloyd over all rows)
   and labels for all rows.
   Target: under 20 s on 2 cores.
2. Baseline at M users (default 50,000), same run: the naive approach (K-Means on all rows
   for each k and the exact silhouette on all rows) against ours; speed ratio and whether
   both choose the same k.
3. ``SegmentModel.assign_one`` calls per second (centroid rule from run 1, and a core rule
   from HDBSCAN), plus latency percentiles.

Usage: ``.venv/bin/python bench/bench_segment.py [--users N] [--features F]
[--naive-users M] [--quick]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import silhouette_score

from chatpersona.features import Preprocessor
from chatpersona.segment import HDBSCANSegmenter, KMeansSegmenter, SegmentModel
from chatpersona.segment.base import small_threads

HERE = Path(__file__).resolve().parent
K_RANGE = range(2, 13)


def data(n: int, f: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    X, y = make_blobs(n_samples=n, centers=6, n_features=f, cluster_std=2.0, random_state=seed)
    return X.astype(np.float64), y


def ours(X: np.ndarray, names: list[str], seed: int) -> dict[str, Any]:
    c0 = time.process_time()
    t0 = time.perf_counter()
    pre = Preprocessor(pca=0.9).fit(X, names)
    Z = pre.transform(X)
    t1 = time.perf_counter()
    seg = KMeansSegmenter(seed=seed).fit(Z)
    t2 = time.perf_counter()
    return {
        "cpu_s": time.process_time() - c0,
        "loadavg_1m_after": os.getloadavg()[0],
        "rows": len(X),
        "features": X.shape[1],
        "pca_components": int(pre.n_components_),
        "pca_s": t1 - t0,
        "sweep_fit_label_s": t2 - t1,
        "total_s": t2 - t0,
        "k": int(seg.k_),
        "minibatch": bool(seg.minibatch_),
        "_model": SegmentModel.from_fitted(seg, pre, names),
    }


def naive(X: np.ndarray, names: list[str], seed: int) -> dict[str, Any]:
    c0 = time.process_time()
    t0 = time.perf_counter()
    pre = Preprocessor(pca=0.9).fit(X, names)
    Z = pre.transform(X)
    scores = {}
    # same thread policy as our path, so the comparison is about the algorithm only
    with small_threads(len(Z)):
        for k in K_RANGE:
            km = KMeans(n_clusters=k, n_init=2, random_state=seed).fit(Z)
            scores[k] = float(silhouette_score(Z, km.labels_))
        best = max(scores, key=lambda k: scores[k])
        KMeans(n_clusters=best, n_init=4, random_state=seed).fit(Z)
    return {
        "rows": len(X),
        "total_s": time.perf_counter() - t0,
        "cpu_s": time.process_time() - c0,
        "k": best,
        "silhouettes": scores,
    }


def calls_per_second(model: SegmentModel, X: np.ndarray, n_calls: int) -> dict[str, Any]:
    names = model.feature_names
    rows = [dict(zip(names, map(float, r), strict=True)) for r in X[:1000]]
    for r in rows[:100]:  # warm up
        model.assign_one(r)
    lat = np.empty(n_calls)
    t0 = time.perf_counter()
    for i in range(n_calls):
        s = time.perf_counter()
        model.assign_one(rows[i % len(rows)])
        lat[i] = time.perf_counter() - s
    total = time.perf_counter() - t0
    batch = model.predict(np.array([[r[n] for n in names] for r in rows]))
    parity = all(model.assign_one(r).segment_id == b for r, b in zip(rows, batch, strict=True))
    return {
        "calls": n_calls,
        "calls_per_s": n_calls / total,
        "p50_us": float(np.percentile(lat, 50) * 1e6),
        "p99_us": float(np.percentile(lat, 99) * 1e6),
        "parity_with_predict": parity,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--users", type=int, default=1_000_000, help="rows of the large run")
    ap.add_argument("--features", type=int, default=20, help="features per row")
    ap.add_argument("--naive-users", type=int, default=50_000, help="rows of the baseline run")
    ap.add_argument("--calls", type=int, default=100_000, help="assign_one calls to time")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke test)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "segment.json")
    args = ap.parse_args()
    if args.quick:
        args.users, args.naive_users, args.calls = 20_000, 3_000, 5_000
    names = [f"f{i}" for i in range(args.features)]
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "note": "2 cores shared with other work during this session",
            "loadavg_1m_at_start": os.getloadavg()[0],
        },
        "command": "bench/bench_segment.py "
        + f"--users {args.users} --features {args.features} --naive-users {args.naive_users}",
    }
    X, _ = data(args.users, args.features, args.seed)
    big = ours(X, names, args.seed)
    model = big.pop("_model")
    big["target_s"] = 20.0
    big["target_met"] = big["total_s"] < 20.0
    results["large"] = big
    print(f"large: {big}", flush=True)
    del X

    Xs, _ = data(args.naive_users, args.features, args.seed + 1)
    small = ours(Xs, names, args.seed)
    small.pop("_model")
    base = naive(Xs, names, args.seed)
    results["baseline"] = {
        "rows": args.naive_users,
        "ours_s": small["total_s"],
        "ours_cpu_s": small["cpu_s"],
        "naive_exact_silhouette_s": base["total_s"],
        "naive_cpu_s": base["cpu_s"],
        "speedup": base["total_s"] / small["total_s"],
        "speedup_cpu": base["cpu_s"] / small["cpu_s"],
        "ours_k": small["k"],
        "naive_k": base["k"],
        "same_k": small["k"] == base["k"],
        "naive_silhouettes": base["silhouettes"],
    }
    print(f"baseline: {results['baseline']}", flush=True)

    results["assign_one_centroid"] = calls_per_second(model, Xs, args.calls)
    Xh = Xs[:5000]
    pre = Preprocessor(pca=0.9).fit(Xh, names)
    hd = HDBSCANSegmenter(seed=args.seed).fit(pre.transform(Xh))
    core_model = SegmentModel.from_fitted(hd, pre, names)
    results["assign_one_core"] = {
        "n_cores": len(hd.cores_),
        **calls_per_second(core_model, Xh, max(args.calls // 5, 1000)),
    }
    print(f"assign_one: {results['assign_one_centroid']} / {results['assign_one_core']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

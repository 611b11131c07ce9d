"""Scale-out benchmark: clean + segment on Spark (``local[2]``) against the Polars engine,
in the same run, at several sizes.

For each size N: generate N messy users with ``chatpersona.datagen.generate_users`` (written
once as CSV), then — each engine in its own subprocess, so time and peak memory are per
engine — (1) clean the CSV with an inferred plan into Parquet, (2) segment the cleaned
Parquet with K-Means (k=5). Peak memory is the peak summed RSS of the subprocess tree
(for Spark: the driver, the JVM and its Python workers), polled every 0.2 s with psutil.
Writes bench/results/scale.json.

    .venv/bin/python bench/bench_scale.py --sizes 1000000 5000000 10000000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"

ENGINE_SCRIPT = r"""
import json, sys, time
from pathlib import Path
engine, src, work, master = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
from chatpersona.clean.runner import default_paths
out = {}
t0 = time.perf_counter()
if engine == "polars":
    import polars as pl
    from chatpersona.clean.runner import clean_file
    from chatpersona.segment import run_segmentation
    t = time.perf_counter()
    rep = clean_file(src, default_paths(work / "clean.parquet"))
    out["clean_s"] = time.perf_counter() - t
    t = time.perf_counter()
    res = run_segmentation(pl.read_parquet(work / "clean.parquet"), algo="kmeans", k=5, seed=0)
    res.assignments.write_parquet(work / "assign.parquet")
    out["segment_s"] = time.perf_counter() - t
else:
    from chatpersona.scale import clean_file_spark, get_spark, run_segmentation_spark
    t = time.perf_counter()
    spark = get_spark(master)
    out["startup_s"] = time.perf_counter() - t
    t = time.perf_counter()
    rep = clean_file_spark(src, default_paths(work / "clean.parquet"), spark=spark)
    out["clean_s"] = time.perf_counter() - t
    t = time.perf_counter()
    res = run_segmentation_spark(work / "clean.parquet", algo="kmeans", k=5, seed=0, spark=spark)
    res.assignments.write_parquet(work / "assign.parquet")
    out["segment_s"] = time.perf_counter() - t
out["total_s"] = time.perf_counter() - t0
out["rows_in"] = rep["rows_in"]
out["rows_accepted"] = rep["rows_accepted"]
out["rows_quarantined"] = rep["rows_quarantined"]
out["rows_duplicate"] = rep["rows_duplicate"]
print("RESULT " + json.dumps(out))
"""


def _run(engine: str, src: Path, work: Path, master: str) -> dict[str, object]:
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", ENGINE_SCRIPT, engine, str(src), str(work), master],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = 0
    done = threading.Event()

    def poll() -> None:
        nonlocal peak
        p = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                procs = [p, *p.children(recursive=True)]
                rss = 0
                for q in procs:
                    with contextlib.suppress(psutil.Error):
                        rss += q.memory_info().rss
                peak = max(peak, rss)
            except psutil.Error:
                pass
            time.sleep(0.2)

    th = threading.Thread(target=poll, daemon=True)
    th.start()
    stdout, stderr = proc.communicate()
    done.set()
    th.join()
    wall = time.perf_counter() - t0
    line = next((ln for ln in stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        # the cause is near the top of a JVM trace, the Python traceback at the bottom
        causes = [ln for ln in stderr.splitlines() if "Exception" in ln or "Error" in ln]
        return {
            "engine": engine,
            "error": stderr[-2000:],
            "error_lines": causes[:20],
            "wall_s": wall,
        }
    res: dict[str, object] = json.loads(line[7:])
    res.update({"engine": engine, "wall_s": wall, "peak_rss_mb": peak / 2**20})
    return res


def _ari(work: Path) -> float:
    import polars as pl
    from sklearn.metrics import adjusted_rand_score

    a = pl.read_parquet(work / "polars" / "assign.parquet")
    b = pl.read_parquet(work / "spark" / "assign.parquet")
    j = a.join(b, on="user_id", suffix="_s")
    return float(adjusted_rand_score(j["segment"], j["segment_s"]))


def _same_clean(work: Path) -> bool:
    import polars as pl

    a = pl.read_parquet(work / "polars" / "clean.parquet")
    b = pl.read_parquet(work / "spark" / "clean.parquet")
    return a.equals(b)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", type=Path, default=RESULTS / "scale.json")
    args = ap.parse_args()
    from chatpersona.datagen import generate_users

    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        for n in args.sizes:
            src = Path(tmp) / f"users_{n}.csv"
            t = time.perf_counter()
            generate_users(n, args.seed).write_csv(src)
            gen_s = time.perf_counter() - t
            work = Path(tmp) / str(n)
            row: dict[str, object] = {"rows": n, "generate_s": gen_s}
            for engine in ("polars", "spark"):
                load_before = os.getloadavg()[0]
                row[engine] = _run(engine, src, work / engine, args.master)
                row[engine]["loadavg_1m_before_after"] = [load_before, os.getloadavg()[0]]  # type: ignore[index]
                print(json.dumps({"rows": n, engine: row[engine]}), flush=True)
            if "error" not in row["polars"] and "error" not in row["spark"]:  # type: ignore[operator]
                row["identical_cleaned_table"] = _same_clean(work)
                row["ari"] = _ari(work)
                p, s = row["polars"], row["spark"]
                row["spark_over_polars_time"] = s["wall_s"] / p["wall_s"]  # type: ignore[index]
            runs.append(row)
            src.unlink()
            _write(args, runs)  # after every size: a long run keeps what it measured
    _write(args, runs)


def _write(args: argparse.Namespace, runs: list[dict[str, object]]) -> None:
    result = {
        "benchmark": "scale",
        "command": "bench/bench_scale.py --sizes " + " ".join(map(str, args.sizes)),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "note": "2 cores; see loadavg_1m_before_after per engine run",
        },
        "master": args.master,
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2), encoding="utf-8")
    print(json.dumps(result, indent=2), flush=True)


if __name__ == "__main__":
    main()

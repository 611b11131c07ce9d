"""Benchmark of the cleaning stage against the seed's pandas approach, in one run.

Generates a messy N x 20 table with numpy (mixed date formats, currency strings, Y/N labels,
text needing normalization, ~5% missing, ~1% outliers), then, each in its own subprocess so
that peak RSS is measured per engine:

(a) the seed's pandas approach for the same operations (fillna median, to_datetime with
    errors='coerce' per format, .str.strip().str.lower(), Z-score filter, label replace);
(b) ``chatpersona clean INPUT -o OUTPUT --plan PLAN`` with the equivalent plan;

checks that both produce the same cleaned values, and measures ``transform_record``
records/s. The two commands run ``--repeat`` times, interleaved (pandas, ours, pandas, ...),
so that both meet the same machine; every pair is recorded, and the headline figures are the
medians (of the times, the peaks and the per-pair ratios). Writes bench/results/clean.json.

    .venv/bin/python bench/bench_clean.py --rows 1000000
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import numpy as np

# Polars is imported inside the functions that use it: the pandas run (a subprocess of this
# script) must not carry Polars' import time and memory.

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
WS = " \t\n\r\f\v"
MISSING_SHARE = 0.05
OUTLIER_SHARE = 0.01

INTEGER = ["age", "tenure_months", "visits"]
NUMERIC = ["income", "score"]
ZSCORE = ["age", "income", "score"]
BOOLEAN = ["is_vip", "newsletter", "churned"]
CATEGORICAL = ["gender", "region", "plan", "language", "channel", "country", "city"]
TRUE = {"y", "yes", "true", "t", "1", "on"}
FALSE = {"n", "no", "false", "f", "0", "off"}
SYNONYMS = {"f": "female", "m": "male"}

PLAN = {
    "columns": {
        "user_id": {"kind": "id"},
        "signup_date": {"kind": "date", "dayfirst": True},
        **{
            c: {
                "kind": "integer",
                "missing": "median",
                "outliers": {"method": "zscore" if c in ZSCORE else "none"},
            }
            for c in INTEGER
        },
        **{
            c: {"kind": "numeric", "missing": "median", "outliers": {"method": "zscore"}}
            for c in NUMERIC
        },
        **{c: {"kind": "boolean", "missing": "mode"} for c in BOOLEAN},
        "monthly_spend": {"kind": "currency", "missing": "median"},
        **{
            c: {
                "kind": "categorical",
                "missing": "mode",
                "normalize": {"nfkc": False, "collapse": False, "trim": True, "lower": True},
                **({"synonyms": SYNONYMS} if c == "gender" else {}),
            }
            for c in CATEGORICAL
        },
        "notes": {
            "kind": "text",
            "normalize": {"nfkc": True, "collapse": True, "trim": True, "lower": False},
        },
        "updated_at": {"kind": "datetime"},
    },
    "duplicates": {"exact_rows": False},
}


# --------------------------------------------------------------------------- data
def generate(n: int, seed: int, path: Path) -> None:
    """Write a messy n x 20 CSV (numpy randomness; Polars only formats the strings)."""
    import polars as pl

    rng = np.random.default_rng(seed)

    def pick(options: list[str]) -> np.ndarray:
        return np.array(options, dtype=object)[rng.integers(0, len(options), n)]

    def blank(s: pl.Series) -> pl.Series:
        mask = rng.random(n) < MISSING_SHARE
        return pl.select(pl.when(pl.lit(pl.Series(mask))).then(None).otherwise(s)).to_series()

    def outliers(x: np.ndarray, values: list[float]) -> np.ndarray:
        mask = rng.random(n) < OUTLIER_SHARE
        x = x.astype(float)
        x[mask] = np.array(values)[rng.integers(0, len(values), mask.sum())]
        return x

    days = rng.integers(0, 3650, n)
    dates = (pl.Series(days + 16436, dtype=pl.Int32)).cast(pl.Date)  # from 2015-01-01
    style = pl.Series(rng.integers(0, 4, n))
    epoch = (dates.cast(pl.Datetime("us")).dt.epoch("s")).cast(pl.Utf8)
    signup = pl.select(
        pl.when(pl.lit(style) == 0)
        .then(pl.lit(dates).dt.strftime("%Y-%m-%d"))
        .when(pl.lit(style) == 1)
        .then(pl.lit(dates).dt.strftime("%d/%m/%Y"))
        .when(pl.lit(style) == 2)
        .then(pl.lit(dates).dt.strftime("%b %d %Y"))
        .otherwise(pl.lit(epoch))
    ).to_series()
    seconds = rng.integers(0, 86400 * 365, n)
    updated = (
        pl.Series((seconds + 1_735_689_600) * 1_000_000, dtype=pl.Int64)
        .cast(pl.Datetime("us"))
        .dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    amounts = np.round(rng.gamma(2.0, 400.0, n), 2)
    amounts = outliers(amounts, [250000.0, 99999.99])
    money_style = rng.integers(0, 4, n)
    spend = []
    for a, s in zip(amounts.tolist(), money_style.tolist(), strict=True):
        whole, cents = divmod(round(a * 100), 100)
        if s == 0:
            spend.append(f"${whole:,}.{cents:02d}")
        elif s == 1:
            spend.append(f"{whole:,}".replace(",", ".") + f",{cents:02d} €")
        elif s == 2:
            spend.append(f"USD {whole}.{cents:02d}")
        else:
            spend.append(f"€ {whole},{cents:02d}")
    notes_pool = [
        "  Great   service, thanks! ",
        "ﬁne",
        "Ｆｕｌｌ width text",
        "needs\ta callback",
        "Cancelled  order #12",
        "Refund\u00a0pending",
        "ok",
        "Slow delivery ",
        "Asked about   invoice",
        "Happy customer",
    ]
    table = pl.DataFrame(
        {
            "user_id": pl.Series(np.arange(n)).cast(pl.Utf8).str.zfill(8),
            "signup_date": blank(signup),
            "age": blank(
                pl.Series(
                    outliers(rng.integers(18, 80, n), [420, 999, -300]).astype(np.int64)
                ).cast(pl.Utf8)
            ),
            "tenure_months": blank(pl.Series(rng.integers(0, 120, n)).cast(pl.Utf8)),
            "visits": blank(pl.Series(rng.poisson(6, n)).cast(pl.Utf8)),
            "income": blank(
                pl.Series(outliers(np.round(rng.normal(52000, 15000, n), 2), [2.5e6, -9e5])).cast(
                    pl.Utf8
                )
            ),
            "score": blank(
                pl.Series(outliers(np.round(rng.normal(0.5, 0.15, n), 4), [40.0, -35.0])).cast(
                    pl.Utf8
                )
            ),
            **{
                c: blank(
                    pl.Series(
                        pick(["Y", "Yes", " yes", "true", "1", "N", "No", "false", "0", "NO "])
                    )
                )
                for c in BOOLEAN
            },
            "monthly_spend": blank(pl.Series(spend)),
            "gender": blank(
                pl.Series(pick(["F", "female", " Female ", "M", "male", "MALE", "Non-binary"]))
            ),
            "region": blank(
                pl.Series(pick(["North", "north ", "NORTH", "South", "East", "West", " central"]))
            ),
            "plan": blank(
                pl.Series(pick(["basic", "Basic ", "PREMIUM", "premium", "Pro", " pro"]))
            ),
            "language": blank(pl.Series(pick(["en", "EN", " es", "ES", "fr", "De"]))),
            "channel": blank(
                pl.Series(pick(["web", "WEB", "mobile_app", "Email ", "whatsapp", "Phone"]))
            ),
            "country": blank(pl.Series(pick(["US", "us", "ES", "MX", " mx", "UK", "DE"]))),
            "city": blank(
                pl.Series(pick(["Madrid", "madrid ", "NYC", "nyc", "Lima", "Paris", "Berlin"]))
            ),
            "notes": blank(pl.Series(pick(notes_pool))),
            "updated_at": updated,
        }
    )
    assert table.width == 20, table.width
    table.write_csv(path)


# --------------------------------------------------------------------------- pandas
def run_pandas(src: Path, out: Path) -> None:
    """The seed's pandas approach, made correct for the same rules (see module docstring)."""
    import pandas as pd

    df = pd.read_csv(src, dtype=str, keep_default_na=False, na_values=[""])
    keep = pd.Series(True, index=df.index)
    for c in INTEGER + NUMERIC:
        x = pd.to_numeric(df[c], errors="coerce")
        if c in ZSCORE:
            mean, std = x.mean(), x.std()
            keep &= ~((x < mean - 3 * std) | (x > mean + 3 * std))
        med = x.median()
        fill = round(med) if c in INTEGER else med
        df[c] = x.fillna(fill).astype("int64" if c in INTEGER else "float64")
    s = df["signup_date"].str.strip()
    parsed = pd.to_datetime(s, format="ISO8601", errors="coerce", utc=True)
    for fmt in ("%d/%m/%Y", "%b %d %Y"):
        parsed = parsed.fillna(pd.to_datetime(s, format=fmt, errors="coerce", utc=True))
    epoch = pd.to_numeric(s.where(s.str.fullmatch(r"[0-9]{9,10}", na=False)), errors="coerce")
    df["signup_date"] = parsed.fillna(pd.to_datetime(epoch, unit="s", utc=True))
    df["updated_at"] = pd.to_datetime(df["updated_at"], format="ISO8601", errors="coerce", utc=True)
    vocab = {**dict.fromkeys(TRUE, True), **dict.fromkeys(FALSE, False)}
    for c in BOOLEAN:
        b = df[c].str.strip().str.lower().map(vocab)
        df[c] = b.fillna(b.mode()[0]).astype(bool)
    for c in CATEGORICAL:
        lab = df[c].str.strip(WS).str.lower()
        if c == "gender":
            lab = lab.replace(SYNONYMS)
        counts = lab.value_counts()
        mode = sorted(counts[counts == counts.max()].index)[0]
        df[c] = lab.fillna(mode)
    df["notes"] = (
        df["notes"]
        .str.normalize("NFKC")
        .str.replace(r"[ \t\n\r\f\v]+", " ", regex=True)
        .str.strip(WS)
    )
    # Currency: symbol/code -> code, separators by the last-mark rule, then median fill.
    m = (
        df["monthly_spend"]
        .str.strip()
        .str.extract(
            r"^(?P<pre>[A-Za-z]{3}|[$€£])?\s*(?P<num>[0-9][0-9.,]*[0-9]|[0-9])\s*(?P<post>[A-Za-z]{3}|[$€£])?$"
        )
    )
    num = m["num"]
    comma_decimal = num.str.contains(r",[0-9]{1,2}$", na=False)
    num = num.where(
        ~comma_decimal, num.str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
    )
    num = num.where(comma_decimal, num.str.replace(",", "", regex=False))
    amount = pd.to_numeric(num, errors="coerce")
    code = m["pre"].fillna(m["post"]).replace({"$": "USD", "€": "EUR", "£": "GBP"}).str.upper()
    df["monthly_spend"] = amount.fillna(amount.median())
    df.insert(
        df.columns.get_loc("monthly_spend") + 1,
        "monthly_spend_currency",
        code.where(amount.notna(), code.mode()[0]),
    )
    df = df[keep]
    df.to_parquet(out, index=False)


# --------------------------------------------------------------------------- measure
def measured(cmd: list[str]) -> dict[str, float]:
    """Run ``cmd`` in a wrapper process; wall time, the child's peak RSS (``ru_maxrss``) and
    CPU time (user + system, all threads). The wrapper only waits: polling the child (for
    ``VmHWM``) would take CPU from a run that uses both cores (the two agreed to the MB
    when compared)."""
    wrapper = (
        "import json, resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "rc = subprocess.run(sys.argv[1:]).returncode\n"
        "wall = time.perf_counter() - t\n"
        "ru = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
        "print(json.dumps({'rc': rc, 'seconds': wall, 'peak_rss_mb': ru.ru_maxrss / 1024,\n"
        "                  'cpu_seconds': ru.ru_utime + ru.ru_stime}))\n"
    )
    res = subprocess.run(
        [sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, check=True
    )
    out = json.loads(res.stdout.strip().splitlines()[-1])
    if out["rc"] != 0:
        raise RuntimeError(f"{cmd} failed: {res.stderr[-2000:]}")
    return out


def compare(pandas_out: Path, ours: Path) -> dict[str, object]:
    import polars as pl

    a = pl.read_parquet(pandas_out).sort("user_id")
    b = pl.read_parquet(ours).sort("user_id")
    result: dict[str, object] = {"rows_pandas": a.height, "rows_chatpersona": b.height}
    if a.height != b.height or not a["user_id"].equals(b["user_id"]):
        result["same_rows"] = False
        return result
    result["same_rows"] = True
    mismatched: dict[str, int] = {}
    for c in b.columns:
        x, y = a[c], b[c]
        if b.schema[c] == pl.Date:
            x = x.dt.date()
        if x.dtype.is_float() or y.dtype.is_float():
            diff = (
                (x.cast(pl.Float64) - y.cast(pl.Float64)).abs()
                > 1e-9 * (y.cast(pl.Float64).abs() + 1)
            ).sum()
            bad = int(diff) + int((x.is_null() != y.is_null()).sum())
        else:
            bad = int((x.cast(y.dtype) != y).fill_null(True).sum()) - int(
                (x.is_null() & y.is_null()).sum()
            )
        if bad:
            mismatched[c] = bad
    result["mismatched_values"] = mismatched
    result["same_values"] = not mismatched
    return result


def record_rate(fitted_json: Path, src: Path, n: int) -> dict[str, float]:
    import polars as pl

    from chatpersona.clean import FittedPlan

    fitted = FittedPlan.from_json(fitted_json)
    rows = pl.read_csv(src, infer_schema=False, n_rows=n).to_dicts()
    t = time.perf_counter()
    ok = 0
    for row in rows:
        ok += fitted.transform_record(row).ok
    seconds = time.perf_counter() - t
    # A second pass over the same records: the per-column memos are warm, as in a
    # long-running stream worker (the first pass is the headline figure).
    t = time.perf_counter()
    for row in rows:
        fitted.transform_record(row)
    warm = time.perf_counter() - t
    return {
        "records": len(rows),
        "seconds": seconds,
        "records_per_s": len(rows) / seconds,
        "records_per_s_warm": len(rows) / warm,
        "ok": ok,
    }


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the messy table")
    ap.add_argument("--seed", type=int, default=7, help="seed of the generator")
    ap.add_argument("--records", type=int, default=100_000, help="records for transform_record")
    ap.add_argument(
        "--repeat", type=int, default=3, help="interleaved runs of each side (medians reported)"
    )
    ap.add_argument("--run", choices=["pandas"], help=argparse.SUPPRESS)
    ap.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run == "pandas":
        run_pandas(args.input, args.output)
        return 0
    import polars as pl

    # The package's bytecode, as an installed package has it: an editable install run with
    # PYTHONDONTWRITEBYTECODE compiles its sources at every start (~0.05 s measured).
    import chatpersona

    compileall.compile_dir(Path(chatpersona.__file__).parent, quiet=1)
    RESULTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-clean-") as tmp:
        d = Path(tmp)
        src = d / "messy.csv"
        t = time.perf_counter()
        generate(args.rows, args.seed, src)
        gen_s = time.perf_counter() - t
        plan = d / "plan.yaml"
        import yaml

        plan.write_text(yaml.safe_dump(PLAN))
        pandas_out, ours = d / "pandas.parquet", d / "clean.parquet"
        pandas_cmd = [
            sys.executable,
            __file__,
            "--run",
            "pandas",
            "--input",
            str(src),
            "--output",
            str(pandas_out),
        ]
        cli = str(Path(sys.executable).with_name("chatpersona"))
        ours_cmd = [
            cli,
            "clean",
            str(src),
            "-o",
            str(ours),
            "--plan",
            str(plan),
            "--save-fitted",
            str(d / "fitted.json"),
            "-q",
        ]
        pairs = []
        for k in range(max(1, args.repeat)):
            pd_k = measured(pandas_cmd)
            cp_k = measured(ours_cmd)
            pairs.append({"pandas": pd_k, "chatpersona": cp_k})
            print(
                f"pair {k + 1}: pandas {pd_k['seconds']:.2f} s, {pd_k['peak_rss_mb']:.0f} MB; "
                f"chatpersona {cp_k['seconds']:.2f} s, {cp_k['peak_rss_mb']:.0f} MB; "
                f"{pd_k['seconds'] / cp_k['seconds']:.2f}x",
                file=sys.stderr,
                flush=True,
            )
        same = compare(pandas_out, ours)
        rec = record_rate(d / "fitted.json", src, min(args.records, args.rows))
        size_mb = src.stat().st_size / 1e6
    pd_m = {k: median([p["pandas"][k] for p in pairs]) for k in pairs[0]["pandas"]}
    cp_m = {k: median([p["chatpersona"][k] for p in pairs]) for k in pairs[0]["chatpersona"]}
    ratios = {
        "speedup": [p["pandas"]["seconds"] / p["chatpersona"]["seconds"] for p in pairs],
        "cpu_ratio": [p["pandas"]["cpu_seconds"] / p["chatpersona"]["cpu_seconds"] for p in pairs],
        "memory_ratio": [
            p["chatpersona"]["peak_rss_mb"] / p["pandas"]["peak_rss_mb"] for p in pairs
        ],
    }
    speedup, memory_ratio = median(ratios["speedup"]), median(ratios["memory_ratio"])
    result = {
        "rows": args.rows,
        "columns": 20,
        "csv_mb": round(size_mb, 1),
        "generate_s": round(gen_s, 2),
        "repeat": len(pairs),
        "pandas": {**pd_m, "rows_per_s": args.rows / pd_m["seconds"]},
        "chatpersona": {**cp_m, "rows_per_s": args.rows / cp_m["seconds"]},
        "speedup": speedup,
        "cpu_ratio": median(ratios["cpu_ratio"]),
        "memory_ratio": memory_ratio,
        "pairs": pairs,
        "pair_ratios": ratios,
        "equivalence": same,
        "transform_record": rec,
        "targets": {
            "speedup_ge_5": speedup >= 5,
            "memory_le_half": memory_ratio <= 0.5,
            "records_per_s_ge_50k": rec["records_per_s"] >= 50_000,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "polars": pl.__version__,
        },
    }
    (RESULTS / "clean.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

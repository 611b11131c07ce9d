"""``chatpersona demo``: the whole flow on generated data, on the embedded default.

generate (seeded messy data) -> infer a cleaning plan -> clean (with accounting and an
HTML report) -> segment (features from the event log, algorithm chosen with evidence).
Later stages (profiles, API, worker, chatbot UI) are added as they land.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["register", "run_batch"]


def run_batch(
    out: Path,
    *,
    users: int,
    seed: int,
    console: Any,
) -> dict[str, Any]:
    """Run the batch half of the demo into ``out``; returns the paths and figures."""
    import polars as pl

    from chatpersona.clean.runner import clean_file, default_paths
    from chatpersona.datagen import generate
    from chatpersona.features import read_events
    from chatpersona.segment import run_segmentation

    out.mkdir(parents=True, exist_ok=True)
    data_dir, clean_dir, model_dir = out / "data", out / "clean", out / "model"
    clean_dir.mkdir(exist_ok=True)
    summary: dict[str, Any] = {"out": str(out)}

    t0 = time.perf_counter()
    with console.status(f"generating {users:,} users (seed {seed})"):
        gen = generate(users, seed, data_dir)
    summary["generate_s"] = time.perf_counter() - t0
    console.print(
        f"[bold]1. generate[/]  {data_dir}/users.csv, events.jsonl, truth.csv "
        f"({getattr(gen, 'n_events', '?')} events)"
    )

    paths = default_paths(
        clean_dir / "users.parquet",
        report_html=clean_dir / "users.report.html",
        plan_yaml=clean_dir / "plan.yaml",
        fitted_json=clean_dir / "fitted_plan.json",
    )
    t0 = time.perf_counter()
    with console.status("inferring a plan and cleaning users.csv"):
        report = clean_file(data_dir / "users.csv", paths)
    summary["clean_s"] = time.perf_counter() - t0
    console.print(f"[bold]2. plan[/]      inferred plan written to {paths.plan_yaml}")
    total = report["rows_accepted"] + report["rows_duplicate"] + report["rows_quarantined"]
    console.print(
        f"[bold]3. clean[/]     rows in {report['rows_in']:,} = accepted {report['rows_accepted']:,}"
        f" + duplicate {report['rows_duplicate']:,} + quarantined {report['rows_quarantined']:,}"
        f" ({'adds up' if total == report['rows_in'] else 'DOES NOT ADD UP'})"
    )
    for code, n in sorted(report["reasons"].items(), key=lambda kv: -kv[1]):
        console.print(f"              {code}: {n:,}")
    console.print(f"              quarantine: {paths.quarantine}")
    console.print(f"              HTML report: {paths.report_html}")
    summary["clean_report"] = report
    summary["clean_html"] = str(paths.report_html)

    t0 = time.perf_counter()
    with console.status("building features and choosing a segmentation"):
        clean_users = pl.read_parquet(paths.output)
        events = read_events(data_dir / "events.jsonl")
        result = run_segmentation(clean_users, events=events, algo="kmeans", seed=seed)
        result.write(model_dir)
    summary["segment_s"] = time.perf_counter() - t0
    rep = result.report
    console.print(
        f"[bold]4. segment[/]   {rep['n_segments']} segments ({rep['algorithm']}), "
        f"model in {model_dir}, HTML report {model_dir / 'report.html'}"
    )
    for s in rep["segments"]:
        console.print(
            f"              {s['id']}: {s['name']} — {s['size']:,} users ({s['share']:.0%})"
        )
    summary["model_dir"] = str(model_dir)
    summary["segments"] = rep["segments"]
    return summary


def demo(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Directory for every artifact of the demo.")
    ] = Path("demo-output"),
    users: Annotated[int, typer.Option("--users", min=50, help="Users to generate.")] = 2000,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of all randomness.")] = 7,
) -> None:
    """Run the whole flow on generated data with no servers: generate, clean, segment."""
    from rich.console import Console

    console = Console()
    t0 = time.perf_counter()
    run_batch(out, users=users, seed=seed, console=console)
    console.print(f"[green]done[/] in {time.perf_counter() - t0:.1f} s; artifacts in {out}/")


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command to the root app."""
    app.command("demo")(demo)

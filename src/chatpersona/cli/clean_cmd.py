"""CLI commands of the clean stage: ``chatpersona clean`` and ``chatpersona plan infer``."""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["plan_app", "register"]

plan_app = typer.Typer(
    help="Work with cleaning plans (YAML files of per-column rules).",
    no_args_is_help=True,
)

INPUT_HELP = "Input table: .csv, .parquet or .jsonl (JSON Lines)."
ALLOCATOR_ENV = "_RJEM_MALLOC_CONF"
ALLOCATOR_CONF = "narenas:1,dirty_decay_ms:500,muzzy_decay_ms:1000"
POLARS_ALLOCATOR_DEFAULT = "dirty_decay_ms:500,muzzy_decay_ms:1000"
"""What ``import polars`` writes into the environment when it is unset; a child of a Python
process that imported Polars inherits it, so it counts as unset here."""


def clean(
    input: Annotated[Path, typer.Argument(help=INPUT_HELP, show_default=False)],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Cleaned (accepted) rows; format by extension.",
            show_default=False,
        ),
    ],
    plan: Annotated[
        Path | None,
        typer.Option("--plan", help="Cleaning plan YAML (see `chatpersona plan infer`)."),
    ] = None,
    infer: Annotated[
        bool,
        typer.Option("--infer", help="Infer the plan from the input (the default without --plan)."),
    ] = False,
    fitted: Annotated[
        Path | None,
        typer.Option("--fitted", help="Apply an already fitted plan JSON instead of fitting."),
    ] = None,
    quarantine: Annotated[
        Path | None,
        typer.Option(
            "--quarantine",
            help="Quarantined rows (original row + _reason, _column). "
            "Default: <stem>.quarantine<ext> beside OUTPUT.",
        ),
    ] = None,
    duplicates: Annotated[
        Path | None,
        typer.Option(
            "--duplicates",
            help="Duplicate rows (cleaned + _reason). Default: <stem>.duplicates<ext> beside OUTPUT.",
        ),
    ] = None,
    report_json: Annotated[
        Path | None,
        typer.Option(
            "--report-json", help="JSON report (always written). Default: <stem>.report.json."
        ),
    ] = None,
    report_html: Annotated[
        Path | None,
        typer.Option("--report-html", help="Self-contained HTML report (no network needed)."),
    ] = None,
    save_fitted: Annotated[
        Path | None,
        typer.Option(
            "--save-fitted", help="Also write the fitted plan JSON (for the stream worker)."
        ),
    ] = None,
    save_plan: Annotated[
        Path | None,
        typer.Option("--save-plan", help="Also write the plan YAML that was used (e.g. inferred)."),
    ] = None,
    batch_rows: Annotated[
        int | None,
        typer.Option(
            "--batch-rows",
            min=1,
            help="Process in batches of this many rows. Default: CSV and Parquet inputs are "
            "streamed (never loaded whole); JSON Lines inputs over 512 MiB go in batches.",
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")
    ] = False,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="polars (one machine) or spark (same plan, fitted JSON, rows and report).",
        ),
    ] = "polars",
    spark_master: Annotated[
        str,
        typer.Option(
            "--spark-master",
            help="Spark master for --engine spark: local[*], spark://host:7077, yarn.",
        ),
    ] = "local[*]",
) -> None:
    """Clean INPUT with a plan into OUTPUT; every input row ends up accepted, duplicate or
    quarantined (with a reason code), and the counts add up."""
    # Polars' allocator (jemalloc) keeps an arena per thread; the streamed passes allocate
    # on several threads (read-ahead, two cleaning workers, the writer), so one shared arena
    # lowers the peak (measured -60 MB at 1M rows; decay times are Polars' own). Read when
    # Polars is first loaded, i.e. only in a fresh process.
    if os.environ.get(ALLOCATOR_ENV, "") in ("", POLARS_ALLOCATOR_DEFAULT):
        os.environ[ALLOCATOR_ENV] = ALLOCATOR_CONF
    # Cleaning makes no BLAS calls worth threads, and idle OpenBLAS threads spin (measured
    # ~2% of the CPU of a 1M-row clean). Read when numpy is first loaded.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # pyarrow (loaded only by the Spark engine's conversions; Polars writes the Parquet
    # files) on jemalloc returns its freed pages sooner than on its default mimalloc pool.
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")
    from chatpersona.clean.fitted import FittedPlan
    from chatpersona.clean.plan import CleaningPlan
    from chatpersona.clean.runner import clean_file, default_paths
    from chatpersona.exceptions import ParameterError

    # The imported modules' objects live until the command ends: out of the collector's
    # sight, each collection only walks what the run itself allocates.
    gc.freeze()

    given = [name for name, v in (("--plan", plan), ("--infer", infer), ("--fitted", fitted)) if v]
    if len(given) > 1:
        raise ParameterError("clean", " / ".join(given), "used alone", "together")
    cleaning_plan = CleaningPlan.from_yaml(plan) if plan is not None else None
    fitted_plan = FittedPlan.from_json(fitted) if fitted is not None else None
    paths = default_paths(
        output,
        quarantine=quarantine,
        duplicates=duplicates,
        report_json=report_json,
        report_html=report_html,
        fitted_json=save_fitted,
        plan_yaml=save_plan,
    )

    def run(progress: Callable[[str, int], None]) -> dict[str, Any]:
        if engine == "spark":
            from chatpersona.scale import clean_file_spark

            return clean_file_spark(
                input,
                paths,
                plan=cleaning_plan,
                fitted=fitted_plan,
                master=spark_master,
                progress=progress,
            )
        if engine == "polars":
            return clean_file(
                input,
                paths,
                plan=cleaning_plan,
                fitted=fitted_plan,
                batch_rows=batch_rows,
                progress=progress,
            )
        raise ParameterError("clean", "--engine", "polars or spark", engine)

    if quiet:  # nothing printed: no terminal library loaded either
        run(lambda stage, n: None)
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,} rows"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        tasks: dict[str, Any] = {}

        def step(stage: str, n: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=None)
            bar.advance(tasks[stage], n)

        report = run(step)
    out = Console()
    out.print(
        f"rows in {report['rows_in']:,}: accepted {report['rows_accepted']:,}, "
        f"duplicate {report['rows_duplicate']:,}, quarantined {report['rows_quarantined']:,}"
    )
    for code, n in sorted(report["reasons"].items(), key=lambda kv: -kv[1]):
        out.print(f"  {code}: {n:,}")
    out.print(f"output: {paths.output}")
    out.print(f"report: {paths.report_json}")
    if paths.report_html is not None:
        out.print(f"html report: {paths.report_html}")


@plan_app.command("infer")
def plan_infer(
    input: Annotated[Path, typer.Argument(help=INPUT_HELP, show_default=False)],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Where to write the plan YAML.", show_default=False),
    ],
    sample_rows: Annotated[
        int, typer.Option("--sample-rows", min=1, help="Look at most at this many rows.")
    ] = 200_000,
) -> None:
    """Propose a cleaning plan for INPUT and write it as YAML for a person to review."""
    from rich.console import Console

    from chatpersona.clean.infer import infer_plan
    from chatpersona.clean.io import iter_batches

    sample = next(iter_batches(input, sample_rows))
    plan = infer_plan(sample, sample_rows=sample_rows)
    plan.to_yaml(output)
    console = Console()
    for name, rule in plan.columns.items():
        console.print(f"{name}: {rule.kind}, missing={rule.missing} — {rule.note or ''}")
    console.print(f"plan: {output}")


def register(app: typer.Typer) -> None:
    """Add ``clean`` and ``plan infer`` to the root app."""
    app.command("clean")(clean)
    app.add_typer(plan_app, name="plan")

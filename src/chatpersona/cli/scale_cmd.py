"""CLI commands of the scale-out stage: ``chatpersona spark clean`` and
``chatpersona spark segment`` — the clean and segment stages on Apache Spark."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["MASTER_HELP", "register", "spark_app"]

spark_app = typer.Typer(
    help="Run the batch stages on Apache Spark (same plans, same model artifact as Polars).",
    no_args_is_help=True,
)

MASTER_HELP = (
    "Spark master: local[*] (all local cores), local[2], spark://host:7077, yarn, k8s://... "
    "Under spark-submit, pass the same master as there."
)


def _progress(quiet: bool) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:,} rows"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=quiet,
        transient=True,
    )


@spark_app.command("clean")
def spark_clean(
    input: Annotated[
        Path,
        typer.Argument(
            help="Input table: .csv, .parquet or .jsonl (a file or a Spark output directory).",
            show_default=False,
        ),
    ],
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
        Path | None, typer.Option("--plan", help="Cleaning plan YAML to fit on Spark.")
    ] = None,
    fitted: Annotated[
        Path | None,
        typer.Option("--fitted", help="Apply an already fitted plan JSON instead of fitting."),
    ] = None,
    quarantine: Annotated[
        Path | None,
        typer.Option("--quarantine", help="Quarantined rows. Default: <stem>.quarantine<ext>."),
    ] = None,
    duplicates: Annotated[
        Path | None,
        typer.Option("--duplicates", help="Duplicate rows. Default: <stem>.duplicates<ext>."),
    ] = None,
    report_json: Annotated[
        Path | None,
        typer.Option("--report-json", help="JSON report. Default: <stem>.report.json."),
    ] = None,
    report_html: Annotated[
        Path | None, typer.Option("--report-html", help="Self-contained HTML report.")
    ] = None,
    save_fitted: Annotated[
        Path | None,
        typer.Option(
            "--save-fitted", help="Also write the fitted plan JSON (for the stream worker)."
        ),
    ] = None,
    save_plan: Annotated[
        Path | None, typer.Option("--save-plan", help="Also write the plan YAML that was used.")
    ] = None,
    spark_master: Annotated[str, typer.Option("--spark-master", help=MASTER_HELP)] = "local[*]",
    parts: Annotated[
        bool,
        typer.Option(
            "--parts/--single-file",
            help="Write each output as a Spark directory of part files (cluster storage) "
            "instead of one file. Default: one file for local masters.",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or summary.")] = False,
) -> None:
    """Clean INPUT on Spark: the same plan, fitted-plan JSON, rows, reasons and accounting as
    ``chatpersona clean``."""
    from rich.console import Console

    from chatpersona.clean.fitted import FittedPlan
    from chatpersona.clean.plan import CleaningPlan
    from chatpersona.clean.runner import default_paths
    from chatpersona.exceptions import ParameterError
    from chatpersona.scale.clean_spark import clean_file_spark

    if plan is not None and fitted is not None:
        raise ParameterError("spark clean", "--plan / --fitted", "used alone", "together")
    paths = default_paths(
        output,
        quarantine=quarantine,
        duplicates=duplicates,
        report_json=report_json,
        report_html=report_html,
        fitted_json=save_fitted,
        plan_yaml=save_plan,
    )
    with _progress(quiet) as bar:
        tasks: dict[str, Any] = {}

        def step(stage: str, n: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=None)
            bar.advance(tasks[stage], n)

        report = clean_file_spark(
            input,
            paths,
            plan=CleaningPlan.from_yaml(plan) if plan is not None else None,
            fitted=FittedPlan.from_json(fitted) if fitted is not None else None,
            master=spark_master,
            single_file=False if parts else None,
            progress=step,
        )
    if not quiet:
        out = Console()
        out.print(
            f"rows in {report['rows_in']:,}: accepted {report['rows_accepted']:,}, "
            f"duplicate {report['rows_duplicate']:,}, quarantined {report['rows_quarantined']:,}"
        )
        for code, n in sorted(report["reasons"].items(), key=lambda kv: -kv[1]):
            out.print(f"  {code}: {n:,}")
        out.print(f"output: {paths.output}")
        out.print(f"report: {paths.report_json}")


@spark_app.command("segment")
def spark_segment(
    input_path: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT", help="Clean user table (Parquet recommended; CSV, JSON lines)."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Model directory (model.json + arrays.npz, assignments.csv, reports).",
        ),
    ],
    features: Annotated[
        Path | None, typer.Option("--features", help="Feature spec (YAML).")
    ] = None,
    id_column: Annotated[str, typer.Option("--id-column", help="The user id column.")] = "user_id",
    algo: Annotated[
        str,
        typer.Option(
            "--algo",
            help="kmeans (Spark MLlib, all users), auto, "
            "hierarchical, hdbscan or dbscan (fitted on the driver sample, assigned at scale).",
        ),
    ] = "kmeans",
    k: Annotated[
        str | None, typer.Option("--k", help="Number of segments (5) or a range (2..12).")
    ] = None,
    pca: Annotated[
        float | None,
        typer.Option("--pca", help="PCA target: variance share, number of components, or 0."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of all randomness.")] = 0,
    sample_rows: Annotated[
        int,
        typer.Option(
            "--sample-rows", min=100, help="Driver sample size (spec fit, k sweep, descriptions)."
        ),
    ] = 200_000,
    spark_master: Annotated[str, typer.Option("--spark-master", help=MASTER_HELP)] = "local[*]",
) -> None:
    """Segment a clean user table on Spark into the same model directory as
    ``chatpersona segment`` (assign_one, the API and the stream worker use it unchanged)."""
    from rich.console import Console
    from rich.table import Table

    from chatpersona.cli.segment_cmd import parse_k
    from chatpersona.features import FeatureSpec
    from chatpersona.scale.segment_spark import run_segmentation_spark

    pca_value: float | int | str | None
    if pca is None:
        pca_value = "spec"
    elif pca == 0:
        pca_value = None
    elif pca >= 1 and float(pca).is_integer() and pca != 1:
        pca_value = int(pca)
    else:
        pca_value = float(pca)
    console = Console()
    spec = FeatureSpec.from_yaml(features) if features is not None else None
    with console.status("segmenting on Spark") as status:
        result = run_segmentation_spark(
            input_path,
            spec=spec,
            id_column=id_column,
            algo=algo,
            k=parse_k(k),
            pca=pca_value,
            seed=seed,
            master=spark_master,
            sample_rows=sample_rows,
            progress=lambda s: status.update(f"segmenting on Spark: {s}"),
        )
        status.update("writing the model directory")
        result.write(out)
    rep = result.report
    table = Table(title=f"{rep['n_segments']} segments ({rep['algorithm']}, Spark)")
    for col in ("id", "name", "size", "share"):
        table.add_column(col)
    for s in rep["segments"]:
        table.add_row(s["id"], s["name"], str(s["size"]), f"{s['share']:.1%}")
    console.print(table)
    console.print(f"Model {rep['model']['version']} written to {out}")


def register(app: typer.Typer) -> None:
    """Add the ``spark`` command group (``spark clean``, ``spark segment``) to the root app."""
    app.add_typer(spark_app, name="spark")

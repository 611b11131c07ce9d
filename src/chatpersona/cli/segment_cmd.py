"""CLI command ``chatpersona segment``: features -> PCA -> segmenters -> a model directory."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["parse_k", "register", "segment"]


def parse_k(value: str | None) -> int | tuple[int, int] | None:
    """``"5"`` -> 5, ``"2..12"`` -> (2, 12), ``None`` -> None (2..12)."""
    from chatpersona.exceptions import ParameterError

    if value is None:
        return None
    text = value.strip()
    try:
        if ".." in text:
            lo, hi = (int(p) for p in text.split("..", 1))
            if lo < 2 or hi < lo:
                raise ValueError
            return (lo, hi)
        k = int(text)
        if k < 1:
            raise ValueError
        return k
    except ValueError:
        raise ParameterError("segment", "--k", "an int >= 1 or a range like 2..12", value) from None


def _read_input(path: Path, clean: bool) -> tuple[Any, dict[str, Any] | None]:
    import polars as pl

    from chatpersona.exceptions import InputError

    if not path.is_file():
        raise InputError("input file not found", code="file_not_found", file=str(path))
    if clean:
        from chatpersona.clean import infer_plan, read_table

        raw = read_table(path)
        result = infer_plan(raw).fit(raw).transform(raw)
        return result.accepted, dict(result.report)
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pl.read_parquet(path), None
        if suffix in (".jsonl", ".ndjson", ".json"):
            return pl.read_ndjson(path, infer_schema_length=None), None
        return pl.read_csv(path, infer_schema_length=10_000), None
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise InputError(f"cannot read the input: {exc}", file=str(path)) from exc


def segment(
    input_path: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT",
            help="Clean user table (CSV, Parquet or JSON lines), one row per user.",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Model directory to write: model.json + arrays.npz, assignments.csv, "
            "report.json, report.html.",
        ),
    ],
    features: Annotated[
        Path | None,
        typer.Option(
            "--features",
            help="Feature spec (YAML). Without it every column but the id is a feature, "
            "encoded by its kind.",
        ),
    ] = None,
    events: Annotated[
        Path | None,
        typer.Option(
            "--events",
            help="Event log (JSON lines); adds behavioral, contextual and feedback features.",
        ),
    ] = None,
    id_column: Annotated[
        str, typer.Option("--id-column", help="Name of the user id column.")
    ] = "user_id",
    algo: Annotated[
        str,
        typer.Option(
            "--algo",
            help="auto (fit kmeans, hierarchical, hdbscan and dbscan, compare, choose), kmeans, "
            "bisecting (bisecting K-Means), dbscan, hdbscan or hierarchical.",
        ),
    ] = "auto",
    k: Annotated[
        str | None,
        typer.Option(
            "--k", help="Number of segments (5) or a range to choose from (2..12, the default)."
        ),
    ] = None,
    pca: Annotated[
        float | None,
        typer.Option(
            "--pca",
            help="PCA target: a variance share in (0, 1] (default 0.9), a number of "
            "components (>= 2), or 0 for no PCA. Overrides the spec's value when given.",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of all randomness.")] = 0,
    outcome: Annotated[
        list[str] | None,
        typer.Option(
            "--outcome",
            help="Outcome column reported per segment, never a feature (repeatable; default: "
            "columns named churn/churned/exited).",
        ),
    ] = None,
    clean: Annotated[
        bool,
        typer.Option(
            "--clean/--no-clean",
            help="Run the cleaning stage (inferred plan) on INPUT first; rejected rows are "
            "counted, not segmented.",
        ),
    ] = False,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Reference time for windows and dates (ISO-8601); default: last event time.",
        ),
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="polars (one machine) or spark (features, PCA and K-Means on Spark; same "
            "model directory; --clean: run `chatpersona clean --engine spark` first).",
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
    """Segment users: build features, choose the algorithm and k with evidence, write a model.

    Example: chatpersona segment users.csv -o model --events events.jsonl --algo auto
    """
    from rich.console import Console
    from rich.table import Table

    from chatpersona.exceptions import InputError, ParameterError
    from chatpersona.features import FeatureSpec, read_events
    from chatpersona.features.online import parse_ts
    from chatpersona.segment import ALGORITHMS, run_segmentation

    console = Console()
    if algo not in ALGORITHMS:
        raise ParameterError("segment", "--algo", f"one of {list(ALGORITHMS)}", algo)
    k_value = parse_k(k)
    pca_value: float | int | str | None
    if pca is None:
        pca_value = "spec"
    elif pca == 0:
        pca_value = None
    elif pca >= 1 and float(pca).is_integer() and pca != 1:
        pca_value = int(pca)
    else:
        pca_value = float(pca)
    as_of_dt: datetime | None = parse_ts(as_of) if as_of else None

    if engine not in ("polars", "spark"):
        raise ParameterError("segment", "--engine", "polars or spark", engine)
    if engine == "spark" and clean:
        raise ParameterError(
            "segment",
            "--clean",
            "--no-clean with --engine spark (clean with `chatpersona clean --engine spark`)",
            True,
        )
    if events is not None and not events.exists():
        raise InputError("event file does not exist", file=str(events))
    with console.status("reading input") as status:
        users, clean_report = (None, None) if engine == "spark" else _read_input(input_path, clean)
        if clean_report is not None:
            console.print(
                f"cleaned: {clean_report.get('rows_accepted')} accepted, "
                f"{clean_report.get('rows_quarantined')} quarantined, "
                f"{clean_report.get('rows_duplicate')} duplicate rows"
            )
        ev = read_events(events) if events is not None and engine != "spark" else None
        spec = FeatureSpec.from_yaml(features) if features is not None else None
        if spec is not None and spec.id_column != id_column and id_column == "user_id":
            id_column = spec.id_column

        def progress(step: str) -> None:
            status.update(f"segmenting: {step}")

        if engine == "spark":
            from chatpersona.scale import run_segmentation_spark

            result = run_segmentation_spark(
                input_path,
                events=events,
                spec=spec,
                id_column=id_column,
                algo=algo,
                k=k_value,
                pca=pca_value,
                seed=seed,
                as_of=as_of_dt,
                outcomes=outcome or None,
                master=spark_master,
                progress=progress,
            )
        else:
            assert users is not None  # read above for the polars engine
            result = run_segmentation(
                users,
                events=ev,
                spec=spec,
                id_column=id_column,
                algo=algo,
                k=k_value,
                pca=pca_value,
                seed=seed,
                as_of=as_of_dt,
                outcomes=outcome or None,
                progress=progress,
            )
        status.update("writing the model directory")
        result.write(out)

    rep = result.report
    if rep["comparison"]:
        table = Table(title="Algorithm comparison (scores on a seeded sample)")
        for col in (
            "algorithm",
            "segments",
            "silhouette",
            "Davies-Bouldin",
            "Calinski-Harabasz",
            "noise",
            "stability",
            "fit s",
        ):
            table.add_column(col, justify="left" if col == "algorithm" else "right")
        for r in rep["comparison"]:

            def f(v: Any, fmt: str = "{:.3f}") -> str:
                return "–" if v is None else fmt.format(v)

            mark = " ✔" if r["algorithm"] == rep["algorithm"] else ""
            table.add_row(
                r["algorithm"] + mark,
                str(r["n_segments"]),
                f(r["silhouette"]),
                f(r["davies_bouldin"]),
                f(r["calinski_harabasz"], "{:.1f}"),
                f(r["noise_share"], "{:.1%}"),
                f(r["stability"]),
                f(r["fit_time_s"], "{:.2f}"),
            )
        console.print(table)
        console.print(rep["choice_rule"])
    seg_table = Table(title=f"{rep['n_segments']} segments ({rep['algorithm']})")
    for col in ("id", "name", "size", "share"):
        seg_table.add_column(col)
    for s in rep["segments"]:
        seg_table.add_row(s["id"], s["name"], str(s["size"]), f"{s['share']:.1%}")
    console.print(seg_table)
    pca_info = rep["pca"]
    console.print(
        f"PCA: {pca_info['n_components']} components, "
        f"{sum(pca_info['explained_variance_ratio']):.1%} of the variance. "
        f"Model {rep['model']['version']} written to {out}"
    )
    if rep["excluded_columns"]:
        for col, why in rep["excluded_columns"].items():
            console.print(f"[yellow]not a feature[/]: {col}: {why}")


def register(app: typer.Typer) -> None:
    """Add the ``segment`` command to the root app."""
    app.command("segment")(segment)

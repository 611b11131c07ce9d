"""CLI command ``chatpersona features``: the feature build alone — one feature row per user,
written as a table — on the Polars engine or on Spark (the same spec, the same values)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["features", "register"]


def features(
    input_path: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT", help="Clean user table (CSV, Parquet or JSON lines), one row per user."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Feature table to write (.parquet, .csv or .jsonl): id + features."
        ),
    ],
    spec_path: Annotated[
        Path | None,
        typer.Option(
            "--features",
            help="Feature spec (YAML). Without it every column but the id is a feature.",
        ),
    ] = None,
    events: Annotated[
        Path | None,
        typer.Option("--events", help="Event log (JSON lines) for the event features."),
    ] = None,
    id_column: Annotated[
        str, typer.Option("--id-column", help="Name of the user id column.")
    ] = "user_id",
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Reference time (ISO-8601); default: last event time."),
    ] = None,
    spec_out: Annotated[
        Path | None,
        typer.Option("--spec-out", help="Also write the fitted feature spec (JSON) here."),
    ] = None,
    engine: Annotated[
        str, typer.Option("--engine", help="polars (one machine) or spark.")
    ] = "polars",
    spark_master: Annotated[
        str,
        typer.Option(
            "--spark-master", help="Spark master for --engine spark: local[*], spark://host:7077."
        ),
    ] = "local[*]",
) -> None:
    """Build every user's feature row (the spec fitted on the users, or on Spark's driver
    sample when there are more than 200,000) and write it.

    Example: chatpersona features users.parquet -o features.parquet --events events.jsonl
    """
    from rich.console import Console

    from chatpersona.clean.io import table_format, write_table
    from chatpersona.exceptions import InputError, ParameterError
    from chatpersona.features import FeatureSpec, read_events
    from chatpersona.features.online import parse_ts

    console = Console()
    if engine not in ("polars", "spark"):
        raise ParameterError("features", "--engine", "polars or spark", engine)
    table_format(out)  # a clear error for an unknown extension, before any work
    if events is not None and not events.exists():
        raise InputError("event file does not exist", file=str(events))
    spec = FeatureSpec.from_yaml(spec_path) if spec_path is not None else None
    when: datetime | None = parse_ts(as_of) if as_of else None
    with console.status(f"building features ({engine})"):
        if engine == "spark":
            from chatpersona.scale.segment_spark import build_features_spark

            sdf, fitted, _, _ = build_features_spark(
                input_path,
                events=events,
                spec=spec,
                id_column=id_column,
                as_of=when,
                master=spark_master,
            )
            from chatpersona.scale.spark import is_local_master, spark_write

            # local masters: one file, as the Polars engine writes; a cluster: a directory
            spark_write(sdf, out, single_file=is_local_master(spark_master))
        else:
            from chatpersona.cli.segment_cmd import _read_input

            users, _ = _read_input(input_path, False)
            ev = read_events(events) if events is not None else None
            if spec is None:
                spec, _excluded = FeatureSpec.infer(
                    users, id_column=id_column, events=ev is not None
                )
            fitted = spec.fit(users, ev, when)
            write_table(fitted.transform(users, ev, fitted.as_of_), out)
    if spec_out is not None:
        spec_out.write_text(fitted.to_json(), encoding="utf-8")
    console.print(
        f"{len(fitted.feature_names_)} features per user (as of {fitted.as_of_.isoformat()}) "
        f"written to {out}",
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    """Add the ``features`` command to the root app."""
    app.command("features")(features)

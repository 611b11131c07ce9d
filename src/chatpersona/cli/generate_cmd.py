"""CLI command ``chatpersona generate``: write a seeded messy data set with latent segments."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]


def _parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        from chatpersona.exceptions import InputError

        raise InputError(
            f"{option} must be a date like 2026-05-01", column=option, value=value
        ) from None


def generate(
    users: Annotated[
        int, typer.Option("--users", "-n", help="Number of distinct users to generate (>= 1).")
    ] = 10_000,
    seed: Annotated[
        int, typer.Option("--seed", "-s", help="Seed of all randomness; same seed, same files.")
    ] = 0,
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Output directory; users.csv, events.jsonl and truth.csv are written there.",
        ),
    ] = Path("data"),
    events_per_user: Annotated[
        float | None,
        typer.Option(
            "--events-per-user",
            help="Target mean events per user (default: the segments' natural rates, ~13). "
            "Scales the number of chats; every user keeps at least one chat.",
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option("--start", help="First day of the event window, YYYY-MM-DD."),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(
            "--end", help="Day after the event window, YYYY-MM-DD (exclusive; default 2026-11-01)."
        ),
    ] = None,
    months: Annotated[
        int | None,
        typer.Option(
            "--months",
            help="Window length in months back from --end (default 6; not with --start).",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result (counts, paths) as JSON.")
    ] = False,
) -> None:
    """Generate messy users, chat events and the latent segment of every user.

    Writes OUT/users.csv (messy demographics with duplicate ids), OUT/events.jsonl (chats:
    chat_started, messages with real support utterances, chat_ended, feedback) and
    OUT/truth.csv (user_id,segment).
    """
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from chatpersona.datagen import generate as run

    console = Console(stderr=True)
    tasks: dict[str, TaskID] = {}
    with Progress(
        TextColumn("[bold]{task.description:<14}"),
        BarColumn(),
        TextColumn("{task.completed:>12,.0f}/{task.total:,.0f}"),
        TimeElapsedColumn(),
        console=console,
        transient=as_json,
    ) as bar:

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=max(total, 1))
            bar.update(tasks[stage], completed=done, total=max(total, 1))

        result = run(
            users,
            seed,
            out,
            events_per_user=events_per_user,
            start=_parse_date(start, "--start"),
            end=_parse_date(end, "--end"),
            months=months,
            progress=progress,
        )
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    table = Table(title=f"Generated in {result.seconds:.1f} s (seed {result.seed})")
    table.add_column("file")
    table.add_column("rows", justify="right")
    table.add_row(str(result.users_path), f"{result.n_user_rows:,}")
    table.add_row(str(result.events_path), f"{result.n_events:,}")
    table.add_row(str(result.truth_path), f"{result.n_users:,}")
    Console().print(table)
    typer.echo("segments: " + ", ".join(f"{k}={v:,}" for k, v in result.segment_counts.items()))


def register(app: typer.Typer) -> None:
    """Add the ``generate`` command to the root app."""
    app.command("generate")(generate)

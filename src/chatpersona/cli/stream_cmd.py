"""CLI commands of the stream stage: ``chatpersona worker`` and ``chatpersona replay``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console(stderr=True)


def _worker_report_table(report: object) -> Table:
    table = Table(title="worker", show_header=False)
    for name in ("received", "processed", "duplicates", "dead_lettered", "retried", "batches"):
        table.add_row(name, str(getattr(report, name)))
    table.add_row("seconds", f"{getattr(report, 'seconds', 0.0):.2f}")
    reasons = getattr(report, "reasons", {})
    if reasons:
        table.add_row(
            "dead-letter reasons", ", ".join(f"{k}={v}" for k, v in sorted(reasons.items()))
        )
    return table


def worker(
    source: Annotated[
        str,
        typer.Option(
            "--source",
            help="Transport URL to consume: memory://NAME, redis://host:port/STREAM, "
            "kafka://host:port/TOPIC (query options: shards, group, max_deliveries, lease_ms).",
        ),
    ],
    state: Annotated[
        str,
        typer.Option(
            "--state", help="State store URL: memory:// or redis://host:port/DB?prefix=...&ttl=..."
        ),
    ] = "memory://",
    store: Annotated[
        str,
        typer.Option(
            "--store", help="Profile store URL: memory://, sqlite:///file.db, postgresql://..."
        ),
    ] = "sqlite:///chatpersona.db",
    model_dir: Annotated[
        Path | None,
        typer.Option(
            "--model-dir",
            help="Segment model directory or model registry root; watched, so activating "
            "a new version switches the running worker.",
        ),
    ] = None,
    concurrency: Annotated[
        int,
        typer.Option("--concurrency", min=1, help="Worker processes sharing the consumer group."),
    ] = 1,
    plan: Annotated[
        Path | None,
        typer.Option("--plan", help="Fitted cleaning plan JSON for profile_update events."),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Events per receive and pipeline batch.")
    ] = 5000,
    lateness: Annotated[
        float,
        typer.Option("--lateness", min=0, help="Allowed lateness in seconds (event time)."),
    ] = 3600.0,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            help="Serve Prometheus /metrics here (process i of --concurrency uses port+i).",
        ),
    ] = None,
    max_events: Annotated[
        int | None, typer.Option("--max-events", help="Stop after receiving this many events.")
    ] = None,
    idle_exit: Annotated[
        float | None,
        typer.Option("--idle-exit", help="Stop after this many seconds without events."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress and no summary.")] = False,
) -> None:
    """Consume events and update state, features, segment and profile for each one.

    SIGTERM (or Ctrl-C) finishes the events in flight, acks them and exits.
    """
    from chatpersona.exceptions import ParameterError

    if concurrency > 1:
        if source.startswith("memory://"):
            raise ParameterError(
                "worker", "concurrency", "1 with a memory:// source (in-process bus)", concurrency
            )
        args = ["worker", "--source", source, "--state", state, "--store", store]
        args += ["--batch-size", str(batch_size), "--lateness", str(lateness), "--quiet"]
        for flag, value in (
            ("--model-dir", model_dir),
            ("--plan", plan),
            ("--max-events", max_events),
            ("--idle-exit", idle_exit),
        ):
            if value is not None:
                args += [flag, str(value)]
        raise typer.Exit(_run_children(concurrency, args, metrics_port))
    _run_one_worker(
        source=source,
        state=state,
        store=store,
        model_dir=model_dir,
        plan=plan,
        batch_size=batch_size,
        lateness=lateness,
        metrics_port=metrics_port,
        max_events=max_events,
        idle_exit=idle_exit,
        quiet=quiet,
    )


def _run_children(n: int, args: list[str], metrics_port: int | None) -> int:
    """Run ``n`` single-process workers with ``args`` and wait for them (signals are
    forwarded, so SIGTERM drains every child)."""
    procs = []
    for i in range(n):
        extra = ["--metrics-port", str(metrics_port + i)] if metrics_port is not None else []
        cmd = [sys.executable, "-m", "chatpersona.cli.main", *args, *extra]
        procs.append(subprocess.Popen(cmd))

    def forward(signum: int, _frame: object) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return max(p.wait() for p in procs)


def _run_one_worker(
    *,
    source: str,
    state: str,
    store: str,
    model_dir: Path | None,
    plan: Path | None,
    batch_size: int,
    lateness: float,
    metrics_port: int | None,
    max_events: int | None,
    idle_exit: float | None,
    quiet: bool,
) -> None:
    from rich.live import Live

    from chatpersona.pipeline import Pipeline, Worker, WorkerReport
    from chatpersona.pipeline.worker import open_models
    from chatpersona.profiles import open_store
    from chatpersona.stream import WindowConfig, open_state, open_transport

    cleaner = None
    if plan is not None:
        from chatpersona.clean import FittedPlan

        cleaner = FittedPlan.from_json(plan)
    models = open_models(model_dir) if model_dir is not None else None
    transport = open_transport(source)
    pipeline = Pipeline(
        state=open_state(state),
        store=open_store(store),
        cleaner=cleaner,
        models=models,
        windows=WindowConfig(allowed_lateness_s=lateness),
    )
    w = Worker(transport, pipeline, batch_size=batch_size, metrics_port=metrics_port)
    if not quiet:
        console.print(
            f"worker pid {os.getpid()}: {source} -> state {state}, store {store}"
            + (f", metrics on :{metrics_port}/metrics" if metrics_port else ""),
            highlight=False,
        )
    if quiet or not console.is_terminal:
        report: WorkerReport = w.run(max_events=max_events, idle_exit_s=idle_exit)
    else:
        with Live(console=console, refresh_per_second=2) as live:
            t0 = time.monotonic()

            def show(rep: WorkerReport) -> None:
                rate = rep.processed / max(time.monotonic() - t0, 1e-9)
                live.update(
                    f"processed {rep.processed}  duplicates {rep.duplicates}  "
                    f"dead-lettered {rep.dead_lettered}  ({rate:,.0f} events/s)"
                )

            report = w.run(max_events=max_events, idle_exit_s=idle_exit, progress=show)
    if not quiet:
        console.print(_worker_report_table(report))


def replay(
    events: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, help="Events JSONL file, one event per line."),
    ],
    to: Annotated[str, typer.Option("--to", help="Transport URL to publish to.")],
    rate: Annotated[
        float | None,
        typer.Option("--rate", min=0.001, help="Events per second (default: as fast as possible)."),
    ] = None,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Events per publish call.")
    ] = 500,
) -> None:
    """Publish the lines of EVENTS as they are (invalid lines included: the worker
    dead-letters them with a reason), optionally at a fixed rate."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from chatpersona.stream import open_transport

    with events.open("rb") as fh:
        total = sum(1 for line in fh if line.strip())
    transport = open_transport(to)
    step = min(batch_size, max(1, int(rate))) if rate else batch_size
    sent = 0
    t0 = time.monotonic()
    with (
        Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not console.is_terminal,
        ) as progress,
        events.open("rb") as fh,
    ):
        task = progress.add_task("replay", total=total)
        chunk: list[bytes] = []
        for line in fh:
            line = line.strip()
            if not line:
                continue
            chunk.append(line)
            if len(chunk) >= step:
                sent += transport.publish(chunk)
                progress.advance(task, len(chunk))
                chunk = []
                if rate:
                    ahead = sent / rate - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
        if chunk:
            sent += transport.publish(chunk)
            progress.advance(task, len(chunk))
    transport.close()
    secs = time.monotonic() - t0
    console.print(f"replayed {sent} events to {to} in {secs:.2f}s", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``worker`` and ``replay`` to the root app."""
    app.command("worker")(worker)
    app.command("replay")(replay)

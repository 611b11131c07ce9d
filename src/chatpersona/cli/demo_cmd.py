"""``chatpersona demo``: the whole system on generated data, in one command.

Batch half: generate (seeded messy data) -> infer a cleaning plan -> clean (accounting,
HTML report) -> segment (features from the event log, algorithm chosen with evidence).
Live half: load profiles into the store, replay the event history through the stream
pipeline (the same fitted plan, features and model), train the intent model, then serve
the API, the in-process worker and the chatbot UI until Ctrl-C.

The embedded default needs no server: SQLite, in-memory bus and state. With
``--store postgresql://… --state redis://… --bus redis://…`` it runs on real servers.
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


DEMO_TENANT = "default"
DEMO_SCOPES = ("profile:read", "profile:write", "events:write", "admin")
ATTRIBUTE_COLUMNS = (
    "age", "gender", "region", "country", "plan", "is_vip", "newsletter",
    "monthly_spend", "monthly_spend_currency", "signup_date", "email",
)  # fmt: skip


def _jsonable(value: Any) -> Any:
    import datetime as dt

    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value


def load_profiles(store: Any, clean_users_path: Path, tenant: str = DEMO_TENANT) -> int:
    """Demographics and the language preference of every clean user into the store."""
    import polars as pl

    from chatpersona.profiles.schema import ProfilePatch

    users = pl.read_parquet(clean_users_path)
    cols = [c for c in ATTRIBUTE_COLUMNS if c in users.columns]
    items = []
    for row in users.iter_rows(named=True):
        attrs = {c: _jsonable(row[c]) for c in cols if row[c] is not None}
        prefs = {}
        lang = str(row.get("language") or "").strip().lower()
        if lang:
            prefs["language"] = "es" if lang.startswith(("es", "spa")) else "en"
        items.append((str(row["user_id"]), ProfilePatch(attributes=attrs, preferences=prefs)))
    store.merge_many(tenant, items)
    return len(items)


def replay_history(
    pipeline: Any, events_path: Path, console: Any, *, batch: int = 500
) -> dict[str, int]:
    """Feed the generated event history through the stream pipeline, in batches."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    lines = events_path.read_bytes().splitlines()
    counts: dict[str, int] = {}
    with Progress(
        "[bold]replaying history",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("replay", total=len(lines))
        for i in range(0, len(lines), batch):
            chunk = lines[i : i + batch]
            for r in pipeline.process(chunk):
                counts[r.status] = counts.get(r.status, 0) + 1
            bar.advance(task, len(chunk))
    return counts


def demo(
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Directory for every artifact of the demo.")
    ] = Path("demo-output"),
    users: Annotated[int, typer.Option("--users", min=50, help="Users to generate.")] = 1500,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of all randomness.")] = 7,
    store_url: Annotated[
        str | None,
        typer.Option("--store", help="Profile store URL (default: SQLite file in --out)."),
    ] = None,
    state_url: Annotated[
        str, typer.Option("--state", help="Real-time state URL: memory:// or redis://…")
    ] = "memory://",
    bus_url: Annotated[
        str,
        typer.Option(
            "--bus", help="Event transport URL: memory://demo, redis://…/STREAM, kafka://…"
        ),
    ] = "memory://demo",
    host: Annotated[str, typer.Option("--host", help="Address to serve on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to serve on.")] = 8000,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve/--no-serve", help="Start the API, worker and UI after the batch half."
        ),
    ] = True,
) -> None:
    """Run the whole system on generated data: generate, clean, segment, load profiles,
    replay history through the stream pipeline, train the intent model, then serve the API,
    the worker and the chatbot UI on http://HOST:PORT until Ctrl-C."""
    import threading

    from rich.console import Console

    console = Console(soft_wrap=True)  # paths and URLs stay whole for copy and paste
    t0 = time.perf_counter()
    summary = run_batch(out, users=users, seed=seed, console=console)

    from chatpersona.chat.bot import Bot
    from chatpersona.chat.demo import apply_open_issues, pick_demo_users, read_events_jsonl
    from chatpersona.chat.intents import load_or_train
    from chatpersona.clean import FittedPlan
    from chatpersona.config import Settings
    from chatpersona.exceptions import ConfigError
    from chatpersona.pipeline.worker import ModelDir, Pipeline, Worker
    from chatpersona.profiles import open_store
    from chatpersona.stream import open_transport
    from chatpersona.stream.state import open_state

    if store_url is None:
        db = out / "chatpersona.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        store_url = f"sqlite:///{db}"
    store = open_store(store_url)
    n = load_profiles(store, out / "clean" / "users.parquet")
    console.print(f"[bold]5. profiles[/]  {n:,} profiles loaded into {store_url}")

    state = open_state(state_url)
    pipeline = Pipeline(
        state=state,
        store=store,
        cleaner=FittedPlan.from_json(out / "clean" / "fitted_plan.json"),
        models=ModelDir(summary["model_dir"]),
    )
    counts = replay_history(pipeline, out / "data" / "events.jsonl", console)
    issues = apply_open_issues(store, DEMO_TENANT, read_events_jsonl(out / "data" / "events.jsonl"))
    console.print(
        "[bold]6. stream[/]    history replayed through the pipeline: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items()))
        + f"; {issues} users have an open issue"
    )

    with console.status("training the intent model (cached after the first run)"):
        intents = load_or_train(out / "cache")
    console.print(f"[bold]7. intents[/]   model ready (cache {out / 'cache'})")
    if not serve:
        store.close()
        console.print(f"[green]done[/] in {time.perf_counter() - t0:.1f} s")
        return

    from chatpersona.profiles.keys import KeyStore

    if not isinstance(store, KeyStore):
        raise ConfigError(f"The store {store_url!r} cannot hold API keys.", url=store_url)
    _, secret = store.create_key(DEMO_TENANT, DEMO_SCOPES, name="demo")
    transport = open_transport(bus_url)
    worker = Worker(transport, pipeline, batch_size=200, poll_timeout_s=0.2)
    thread = threading.Thread(
        target=worker.run, kwargs={"install_signals": False}, name="worker", daemon=True
    )
    thread.start()
    settings = Settings(
        store_url=store_url,
        state_url=state_url,
        bus_url=bus_url,
        model_dir=summary["model_dir"],
        host=host,
        port=port,
        extra={"cache_dir": str(out / "cache"), "decision_log": str(out / "decisions.jsonl")},
    )
    from chatpersona.api import create_app
    from chatpersona.api.erasure import StateEraser

    app = create_app(
        settings,
        store=store,
        services={"transport": transport, "state": StateEraser(state), "bot": Bot(intents)},
    )
    url = f"http://{host}:{port}/"
    console.rule("[bold green]chatpersona is up")
    console.print(f"UI:        {url}?key={secret}")
    console.print(f"API docs:  {url}docs")
    console.print(f"API key (tenant {DEMO_TENANT!r}, scopes {', '.join(DEMO_SCOPES)}):")
    console.print(secret, soft_wrap=True)
    from rich.table import Table

    table = Table(title="Demo users (one per segment, open issues first)", title_justify="left")
    for col in ("user", "name", "lang", "segment", "open issue"):
        table.add_column(col)
    for u in pick_demo_users(store, DEMO_TENANT, 6):
        issue = f"{u.get('open_issue') or ''} {str(u.get('open_issue_at') or '')[:10]}".strip()
        table.add_row(
            str(u["user_id"]), str(u.get("name") or ""), str(u.get("language") or ""),
            str(u.get("segment") or ""), issue,
        )  # fmt: skip
    console.print(table)
    console.print(f"started in {time.perf_counter() - t0:.1f} s — Ctrl-C stops everything")

    import uvicorn

    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        worker.stop()
        thread.join(timeout=10)
        store.close()
        console.print("stopped cleanly")


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command to the root app."""
    app.command("demo")(demo)

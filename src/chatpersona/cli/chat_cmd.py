"""CLI commands of the chat stage: ``chatpersona intents train|eval|predict`` (the intent
model) and ``chatpersona chat --user ID`` (the reference bot in the terminal, against a
profile store).

The intent model cache defaults to ``$XDG_CACHE_HOME/chatpersona`` (or
``~/.cache/chatpersona``); the CLI reads that location here, the library never does.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = ["default_cache_dir", "register"]


def default_cache_dir() -> Path:
    """Where the CLI caches the intent model (``$XDG_CACHE_HOME/chatpersona``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "chatpersona"


CacheOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        help="Directory of the cached intent model (default $XDG_CACHE_HOME/chatpersona).",
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of the model and of the split.")]


def evaluate(seed: int = 0) -> dict[str, Any]:
    """Held-out accuracy of the intent model on Bitext (seeded 80/20 split, intents and
    categories) and on the official BANKING77 test split, with train times."""
    from chatpersona.chat.intents import IntentModel, load_dataset, train_test_split

    out: dict[str, Any] = {"seed": seed}
    bitext = load_dataset("bitext")
    tr, te = train_test_split(bitext, 0.2, seed=seed)
    t0 = time.perf_counter()
    model = IntentModel(seed=seed).fit(tr.texts, tr.labels, tr.categories)
    fit_s = time.perf_counter() - t0
    pred = model.predict(te.texts)
    proba = model.predict_proba(te.texts).max(axis=1)
    out["bitext"] = {
        "train": len(tr),
        "test": len(te),
        "intents": len(set(bitext.labels)),
        "intent_accuracy": sum(p == y for p, y in zip(pred, te.labels, strict=True)) / len(te),
        "category_accuracy": sum(
            model.categories_[p] == bitext.categories[y]
            for p, y in zip(pred, te.labels, strict=True)
        )
        / len(te),
        "coverage_at_threshold": float((proba >= model.threshold).mean()),
        "threshold": model.threshold,
        "fit_seconds": round(fit_s, 3),
    }
    train = load_dataset("banking77", "train")
    test = load_dataset("banking77", "test")
    t0 = time.perf_counter()
    b77 = IntentModel(seed=seed).fit(train.texts, train.labels)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    acc = b77.score(test.texts, test.labels)
    out["banking77"] = {
        "train": len(train),
        "test": len(test),
        "intents": len(set(train.labels)),
        "accuracy": acc,
        "fit_seconds": round(fit_s, 3),
        "predict_ms_per_message": round((time.perf_counter() - t0) / len(test) * 1000, 4),
    }
    return out


def _chat_loop(user: str, store_url: str, tenant: str, cache_dir: Path, tone: str | None) -> None:
    from rich.console import Console

    from chatpersona.chat import Bot, load_or_train
    from chatpersona.profiles import Profile, open_store

    console = Console()
    with console.status("loading the intent model (trained on first use, a few seconds)"):
        bot = Bot(load_or_train(cache_dir))
    store = open_store(store_url)
    try:
        profile = store.get(tenant, user) or Profile(tenant=tenant, user_id=user)
        decision = {"action": tone} if tone else None
        turn = bot.greet(profile, decision, channel="web", device="desktop")
        conv = turn.conversation
        console.print(f"[dim]tone {conv.tone} · language {conv.lang} · /end to finish[/]")
        console.print(f"[bold cyan]bot[/] {turn.text}", highlight=False)
        if turn.quick_replies:
            console.print(f"[dim]  ({' | '.join(turn.quick_replies)})[/]")
        while True:
            try:
                text = console.input("[bold]you[/] ").strip()
            except EOFError:
                text = "/end"
            if not text:
                continue
            if text in ("/end", "/quit", "/exit"):
                break
            turn = bot.reply(profile, text, conversation=conv)
            meta = f" [dim]({turn.kind}"
            if turn.prediction is not None:
                meta += f" {turn.prediction.intent} {turn.prediction.confidence:.0%}"
            console.print(f"[bold cyan]bot[/] {turn.text}{meta})[/]", highlight=False)
            if turn.quick_replies:
                console.print(f"[dim]  ({' | '.join(turn.quick_replies)})[/]")
        end = bot.end_chat(profile, conv)
        csat = _ask_int(console, end.prompts["csat"], 1, 5, required=True)
        nps = _ask_int(console, end.prompts["nps"] + " (Enter to skip)", 0, 10, required=False)
        assert csat is not None
        post = bot.post_chat(profile, conv, csat=csat, nps=nps)
        console.print(f"[bold cyan]bot[/] {post.text}", highlight=False)
        if post.patch is not None:
            store.merge(tenant, user, post.patch)
        if post.fallback_patch is not None:
            store.merge(tenant, user, post.fallback_patch)
        after = store.get(tenant, user)
        if after is not None:
            console.print(
                f"[green]profile updated[/]: version {after.version}, "
                f"csat_mean {after.feedback.csat_mean}, chats {after.interaction_count}, "
                f"open issue {after.preferences.get('open_issue_category') or '-'}"
            )
        for event in [*end.events, *post.events]:
            console.print(f"[dim]event {event['type']} {json.dumps(event['payload'])}[/]")
    finally:
        store.close()


def _ask_int(console: Any, prompt: str, lo: int, hi: int, *, required: bool) -> int | None:
    while True:
        try:
            raw = console.input(f"[bold cyan]bot[/] {prompt} ").strip()
        except EOFError:
            raw = ""
        if not raw and not required:
            return None
        if raw.isdigit() and lo <= int(raw) <= hi:
            return int(raw)
        if not raw and required:
            return hi  # no answer on a closed input: do not block a scripted session
        console.print(f"[red]Please answer a whole number from {lo} to {hi}.[/]")


def register(app: typer.Typer) -> None:
    """Add ``intents`` (train, eval, predict) and ``chat`` to the root app."""
    intents = typer.Typer(
        help="The chatbot's intent model: train (cached), evaluate, predict.",
        no_args_is_help=True,
    )
    app.add_typer(intents, name="intents")

    @intents.command("train")
    def train(
        cache_dir: CacheOpt = None,
        seed: SeedOpt = 0,
        retrain: Annotated[
            bool, typer.Option("--retrain", help="Train again even if a cached model exists.")
        ] = False,
    ) -> None:
        """Train the bot's intent model (bundled Bitext + Spanish utterances) and cache it."""
        from rich.console import Console

        from chatpersona.chat import load_or_train

        where = cache_dir or default_cache_dir()
        t0 = time.perf_counter()
        with Console().status("training the intent model"):
            model = load_or_train(where, seed=seed, retrain=retrain)
        typer.echo(
            f"intent model: {len(model.classes_)} intents, trained on {model.n_train_} "
            f"utterances, cached in {where} ({time.perf_counter() - t0:.1f} s)"
        )

    @intents.command("eval")
    def eval_(
        seed: SeedOpt = 0,
        output: Annotated[
            Path | None, typer.Option("--json", help="Also write the figures to this JSON file.")
        ] = None,
    ) -> None:
        """Held-out accuracy: Bitext (seeded 80/20 split) and the BANKING77 test split."""
        from rich.console import Console
        from rich.table import Table

        with Console().status("training and evaluating (about 10-20 s)"):
            res = evaluate(seed)
        table = Table(title="Intent model, held-out accuracy")
        for col in ("data set", "train", "test", "intents", "accuracy", "fit s"):
            table.add_column(col)
        b, k = res["bitext"], res["banking77"]
        table.add_row("Bitext (intent)", str(b["train"]), str(b["test"]), str(b["intents"]),
                      f"{b['intent_accuracy']:.4f}", f"{b['fit_seconds']:.1f}")  # fmt: skip
        table.add_row("Bitext (category)", str(b["train"]), str(b["test"]), "11",
                      f"{b['category_accuracy']:.4f}", "")  # fmt: skip
        table.add_row("BANKING77 test", str(k["train"]), str(k["test"]), str(k["intents"]),
                      f"{k['accuracy']:.4f}", f"{k['fit_seconds']:.1f}")  # fmt: skip
        Console().print(table)
        if output is not None:
            output.write_text(json.dumps(res, indent=2), encoding="utf-8")

    @intents.command("predict")
    def predict(
        text: Annotated[str, typer.Argument(help="A customer message.")],
        cache_dir: CacheOpt = None,
    ) -> None:
        """Print the intent, category and calibrated confidence of one message."""
        from chatpersona.chat import load_or_train

        p = load_or_train(cache_dir or default_cache_dir()).predict_one(text)
        typer.echo(json.dumps(p.to_dict()))

    @app.command("chat")
    def chat(
        user: Annotated[str, typer.Option("--user", help="The user id to chat as.")],
        store: Annotated[
            str,
            typer.Option("--store", help="Profile store URL (sqlite:///path.db, memory://, ...)."),
        ] = "sqlite:///chatpersona.db",
        tenant: Annotated[
            str, typer.Option("--tenant", help="The tenant of the user.")
        ] = "default",
        tone: Annotated[
            str | None,
            typer.Option("--tone", help="Force a tone: concise, empathetic or formal."),
        ] = None,
        cache_dir: CacheOpt = None,
    ) -> None:
        """Chat with the reference bot in the terminal as USER; /end finishes and asks for
        CSAT and NPS, which update the profile in the store."""
        from chatpersona.chat import TONES
        from chatpersona.exceptions import ParameterError

        if tone is not None and tone not in TONES:
            raise ParameterError("chat", "tone", f"one of {', '.join(TONES)}", tone)
        _chat_loop(user, store, tenant, cache_dir or default_cache_dir(), tone)

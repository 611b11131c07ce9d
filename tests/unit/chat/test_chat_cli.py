"""``chatpersona intents`` and ``chatpersona chat`` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from chatpersona.cli.main import app
from chatpersona.profiles import ProfilePatch, open_store


def test_intents_train_then_predict_uses_the_cache(model_cache: Path) -> None:
    runner = CliRunner()
    (cached,) = list(model_cache.iterdir())
    stamp = (cached / "model.joblib").stat().st_mtime_ns
    out = runner.invoke(app, ["intents", "train", "--cache-dir", str(model_cache)])
    assert out.exit_code == 0, out.output
    assert "27 intents, trained on 4649 utterances" in out.output
    pred = runner.invoke(
        app, ["intents", "predict", "I want my money back", "--cache-dir", str(model_cache)]
    )
    assert pred.exit_code == 0, pred.output
    assert json.loads(pred.output)["category"] == "REFUND"
    assert (cached / "model.joblib").stat().st_mtime_ns == stamp


def test_terminal_chat_updates_the_profile(tmp_path: Path, model_cache: Path) -> None:
    db = f"sqlite:///{tmp_path / 'p.db'}"
    store = open_store(db)
    store.merge(
        "default",
        "u7",
        ProfilePatch(
            preferences={
                "name": "Sam",
                "open_issue_category": "PAYMENT",
                "open_issue_intent": "payment_issue",
                "open_issue_at": "2026-02-01T08:00:00Z",
                "open_issue_chat": "c-old",
            },
            interaction_history=["c-old"],
        ),
    )
    store.close()
    out = CliRunner().invoke(
        app,
        ["chat", "--user", "u7", "--store", db, "--cache-dir", str(model_cache)],
        input="yes\n/end\n5\n10\n",
    )
    assert out.exit_code == 0, out.output
    assert "Welcome back, Sam! Is this about the payment issue you asked about on 1 February?" in (
        " ".join(out.output.split())
    )
    store = open_store(db)
    after = store.get("default", "u7")
    store.close()
    assert after is not None
    assert (after.feedback.csat_last, after.feedback.nps_last) == (5, 10)
    assert after.interaction_count == 2
    assert "open_issue_category" not in after.preferences  # answered, so resolved


def test_bad_tone_exits_2() -> None:
    from chatpersona.cli.main import main

    try:
        main(["chat", "--user", "u1", "--store", "memory://", "--tone", "rude"])
    except SystemExit as exc:
        assert exc.code == 2
    else:
        raise AssertionError("expected exit 2")

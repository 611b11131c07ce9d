"""`chatpersona demo` runs the batch half end to end and its accounting adds up."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from chatpersona.cli.main import app


def test_demo_batch_runs_and_accounts_for_every_row(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(
        app, ["demo", "--users", "300", "--seed", "3", "-o", str(out), "--no-serve"]
    )
    assert result.exit_code == 0, result.output
    assert "adds up" in result.output
    report = json.loads((out / "clean" / "users.report.json").read_text())
    assert report["rows_in"] == (
        report["rows_accepted"] + report["rows_duplicate"] + report["rows_quarantined"]
    )
    assert report["rows_duplicate"] > 0  # the generator plants duplicate ids
    html = (out / "clean" / "users.report.html").read_text()
    assert "<html" in html.lower()
    # self-contained: nothing fetched (the SVG namespace URI is an identifier, not a fetch)
    for fetch in ('src="http', "src='http", 'href="http', "href='http", "@import", "url(http"):
        assert fetch not in html
    assert (out / "model" / "model.json").is_file()
    assigned = (out / "model" / "assignments.csv").read_text().splitlines()
    assert len(assigned) - 1 == report["rows_accepted"]
    # live half without serving: profiles loaded and history replayed through the pipeline
    assert "history replayed through the pipeline" in result.output
    from chatpersona.profiles import open_store

    store = open_store(f"sqlite:///{out / 'chatpersona.db'}")
    try:
        page = store.scan("default", limit=1000)
        # every user has chats, so every user gets a profile from the replay; the users
        # whose row was accepted by cleaning also carry their demographics
        truth = (out / "data" / "truth.csv").read_text().splitlines()[1:]
        assert len(page.items) == len(truth)
        with_attrs = [p for p in page.items if p.attributes]
        assert len(with_attrs) == report["rows_accepted"]
        with_history = [p for p in page.items if p.interaction_count > 0]
        assert len(with_history) == len(page.items)  # every generated user has chats
        assert all(p.segment is not None for p in page.items)
    finally:
        store.close()

"""The `chatpersona clean` / `plan infer` commands: outputs, reports, errors, atomicity."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from tests.unit.clean.conftest import MESSY_PLAN, messy_base

from chatpersona.cli.main import main


@pytest.fixture
def messy_csv(tmp_path: Path) -> Path:
    path = tmp_path / "users.csv"
    messy_base().write_csv(path)
    return path


def _run(argv: list[str]) -> int:
    try:
        main(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _outputs(d: Path) -> set[str]:
    return {p.name for p in d.iterdir()}


@pytest.mark.parametrize("ext", [".csv", ".parquet", ".jsonl"])
def test_clean_with_plan_writes_every_output(messy_csv: Path, tmp_path: Path, ext: str) -> None:
    import yaml

    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump(MESSY_PLAN))
    out = tmp_path / "out" / f"clean{ext}"
    html = tmp_path / "out" / "report.html"
    code = _run(
        [
            "clean",
            str(messy_csv),
            "-o",
            str(out),
            "--plan",
            str(plan),
            "--report-html",
            str(html),
            "-q",
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "out" / "clean.report.json").read_text())
    for key in (
        "rows_in",
        "rows_accepted",
        "rows_duplicate",
        "rows_quarantined",
        "reasons",
        "columns",
    ):
        assert key in report
    assert report["rows_in"] == 60
    col = report["columns"]["age"]
    for key in (
        "kind",
        "missing_before",
        "missing_after",
        "imputed",
        "standardized",
        "outliers",
        "stats",
    ):
        assert key in col
    read = {".csv": pl.read_csv, ".parquet": pl.read_parquet, ".jsonl": pl.read_ndjson}[ext]
    acc = read(out)
    q = read(tmp_path / "out" / f"clean.quarantine{ext}")
    assert acc.height == report["rows_accepted"]
    assert acc.height + q.height + report["rows_duplicate"] == 60
    assert {"_reason", "_column"} <= set(q.columns)
    page = html.read_text()
    assert "<svg" in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    assert "https://" not in page
    assert not [n for n in _outputs(tmp_path / "out") if n.endswith(".tmp")]


def test_clean_infer_and_plan_infer(messy_csv: Path, tmp_path: Path, capsys) -> None:
    plan = tmp_path / "plan.yaml"
    assert _run(["plan", "infer", str(messy_csv), "-o", str(plan)]) == 0
    assert "kind: integer" in plan.read_text()
    out = tmp_path / "a.parquet"
    assert (
        _run(
            [
                "clean",
                str(messy_csv),
                "-o",
                str(out),
                "--plan",
                str(plan),
                "--save-fitted",
                str(tmp_path / "f.json"),
            ]
        )
        == 0
    )
    assert "rows in 60" in capsys.readouterr().out
    assert (
        _run(
            [
                "clean",
                str(messy_csv),
                "-o",
                str(tmp_path / "b.parquet"),
                "--fitted",
                str(tmp_path / "f.json"),
                "-q",
            ]
        )
        == 0
    )
    assert pl.read_parquet(out).equals(pl.read_parquet(tmp_path / "b.parquet"))
    assert _run(["clean", str(messy_csv), "-o", str(tmp_path / "c.parquet"), "--infer", "-q"]) == 0


def test_batch_mode_gives_the_same_result(tmp_path: Path) -> None:
    import yaml

    table = pl.concat([messy_base()] * 5)  # exact duplicates across batches
    src = tmp_path / "in.csv"
    table.write_csv(src)
    spec = dict(
        MESSY_PLAN, duplicates={"exact_rows": True, "id_column": "user_id", "latest_by": "seen_at"}
    )
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump(spec))
    assert (
        _run(["clean", str(src), "-o", str(tmp_path / "mem.csv"), "--plan", str(plan), "-q"]) == 0
    )
    assert (
        _run(
            [
                "clean",
                str(src),
                "-o",
                str(tmp_path / "bat.csv"),
                "--plan",
                str(plan),
                "--batch-rows",
                "37",
                "-q",
            ]
        )
        == 0
    )
    mem = json.loads((tmp_path / "mem.report.json").read_text())
    bat = json.loads((tmp_path / "bat.report.json").read_text())
    for key in ("rows_in", "rows_accepted", "rows_duplicate", "rows_quarantined", "reasons"):
        assert mem[key] == bat[key], key
    assert bat["mode"] == "batched"
    assert pl.read_csv(tmp_path / "mem.csv").equals(pl.read_csv(tmp_path / "bat.csv"))
    assert pl.read_csv(tmp_path / "mem.quarantine.csv").equals(
        pl.read_csv(tmp_path / "bat.quarantine.csv")
    )


def test_plan_naming_a_missing_column_fails_cleanly(
    messy_csv: Path, tmp_path: Path, capsys
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("columns:\n  agee: {kind: integer}\n")
    out = tmp_path / "out.csv"
    assert _run(["clean", str(messy_csv), "-o", str(out), "--plan", str(plan)]) == 2
    err = capsys.readouterr().err
    assert "agee" in err and str(messy_csv) in err
    assert _outputs(tmp_path) == {"users.csv", "plan.yaml"}


def test_unparseable_value_under_strict_rule_fails_without_output(
    messy_csv: Path, tmp_path: Path, capsys
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text("columns:\n  score: {kind: numeric, on_invalid: error}\n")
    assert _run(["clean", str(messy_csv), "-o", str(tmp_path / "o.csv"), "--plan", str(plan)]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "column 'score'" in err and "row 60" in err and "value 'abc'" in err
    assert "users.csv" in err
    assert _outputs(tmp_path) == {"users.csv", "plan.yaml"}


@pytest.mark.parametrize(
    ("argv_tail", "message"),
    [
        pytest.param(["missing.csv", "-o", "o.csv"], "Input file not found", id="no-file"),
        pytest.param(["users.csv", "-o", "o.xlsx"], "Unsupported file extension", id="bad-ext"),
        pytest.param(
            ["users.csv", "-o", "o.csv", "--plan", "p.yaml", "--infer"], "used alone", id="both"
        ),
    ],
)
def test_bad_invocations_exit_2(
    messy_csv: Path, tmp_path: Path, capsys, argv_tail, message
) -> None:
    (tmp_path / "p.yaml").write_text("columns: {age: integer}\n")
    argv = [
        "clean",
        *[str(tmp_path / a) if a.endswith((".csv", ".xlsx", ".yaml")) else a for a in argv_tail],
    ]
    assert _run(argv) == 2
    assert message in " ".join(capsys.readouterr().err.split())


def test_unreadable_input_names_the_file(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    assert _run(["clean", str(bad), "-o", str(tmp_path / "o.csv")]) == 2
    assert "bad.parquet" in capsys.readouterr().err


def test_help_texts() -> None:
    from typer.testing import CliRunner

    from chatpersona.cli.main import app

    runner = CliRunner()
    for args in (["clean", "--help"], ["plan", "--help"], ["plan", "infer", "--help"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
    out = runner.invoke(app, ["clean", "--help"]).output
    for opt in (
        "--plan",
        "--infer",
        "--quarantine",
        "--report-html",
        "--report-json",
        "--batch-rows",
    ):
        assert opt in out


def test_nested_jsonl_to_csv_is_a_clear_error(tmp_path: Path, capsys) -> None:
    src = tmp_path / "events.jsonl"
    pl.DataFrame(
        {"event_id": ["e1", "e2"], "payload": [{"chat_id": "c1"}, {"chat_id": "c2"}]}
    ).write_ndjson(src)
    assert _run(["clean", str(src), "-o", str(tmp_path / "o.csv"), "--infer", "-q"]) == 2
    assert "Cannot write csv output" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()
    assert _run(["clean", str(src), "-o", str(tmp_path / "o.jsonl"), "--infer", "-q"]) == 0
    assert pl.read_ndjson(tmp_path / "o.jsonl")["payload"].to_list() == [
        {"chat_id": "c1"},
        {"chat_id": "c2"},
    ]

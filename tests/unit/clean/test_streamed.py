"""The streamed file path (``clean.streamed``) equals the in-memory transform: the same
accepted, quarantined and duplicate rows, the same report and the same fitted statistics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from tests.unit.clean.conftest import MESSY_PLAN

from chatpersona.clean import CleaningPlan, FittedPlan
from chatpersona.clean.io import read_table
from chatpersona.clean.runner import clean_file, default_paths

RUNNER_KEYS = ("mode", "input", "outputs", "plan_inferred")


def messy_table(n: int, seed: int) -> pl.DataFrame:
    """A messy table with missing, invalid and outlying values in every kind, exact
    duplicate rows and repeated ids with different timestamps."""
    rng = np.random.default_rng(seed)

    def pick(options: list[str | None]) -> list[str | None]:
        return [options[k] for k in rng.integers(0, len(options), n)]

    ages = [str(a) for a in rng.integers(18, 80, n)]
    for k in rng.integers(0, n, n // 50):
        ages[k] = str(rng.choice(["420", "-300", "", "na", "31.5", "abc"]))
    height = [f"{h:.1f}" for h in rng.normal(170, 10, n)]
    for k in rng.integers(0, n, n // 40):
        height[k] = str(rng.choice(["", "999", "n/a", "1e3"]))
    spend = [
        rng.choice(["${:,.2f}", "{:.2f} €", "USD {:.2f}", "€ {:.2f}"]).format(a)
        for a in rng.gamma(2.0, 300.0, n)
    ]
    for k in rng.integers(0, n, n // 30):
        spend[k] = str(rng.choice(["", "12", "£3", "lots", "1.234,50 €", "-$5"]))
    seconds = rng.integers(0, 86400 * 30, n)
    seen = [
        f"2024-03-{1 + s // 86400:02d}T{s % 86400 // 3600:02d}:{s % 3600 // 60:02d}:00Z"
        for s in seconds.tolist()
    ]
    for k in rng.integers(0, n, n // 60):
        seen[k] = str(rng.choice(["03/05/2024 10:00", "2024-03-05 12:00:00+02:00", "soon", ""]))
    ids = [f"u{k}" for k in rng.integers(0, n * 3 // 4, n)]  # repeated ids
    table = pl.DataFrame(
        {
            "user_id": ids,
            "age": ages,
            "height": height,
            "score": [str(x) for x in rng.integers(0, 17, n)],
            "is_vip": pick(["Y", "no", " yes", "N", "true", "0", "1", "", "maybe", None]),
            "gender": pick(["F", "female", " Female ", "M", "male", "MALE", "Non-binary", ""]),
            "region": pick(["North", "north ", "NORTH", "South", "East", None]),
            "signup": pick(["2024-03-05", "05/03/2024", "Mar 5 2024", "1709596800", "never", ""]),
            "seen_at": seen,
            "spend": spend,
            "notes": pick(["  Hello   World ", "ﬁne", "", "ok", "Ｆｕｌｌ width"]),
            "extra": [str(k) for k in rng.integers(0, 5, n)],
        }
    )
    copies = table.sample(n // 20, seed=seed, with_replacement=True)
    return pl.concat([table, copies])  # exact duplicates after their originals


PLAN: dict[str, Any] = MESSY_PLAN  # the unit suite's messy plan; each test sets duplicates

DUPLICATES = [
    pytest.param({"exact_rows": False}, id="no-duplicate-rules"),
    pytest.param({"exact_rows": True}, id="exact-rows"),
    pytest.param(
        {"exact_rows": True, "id_column": "user_id", "latest_by": "seen_at"}, id="id-latest"
    ),
    pytest.param({"exact_rows": False, "id_column": "user_id"}, id="id-first"),
]


def _in_memory(src: Path, plan: CleaningPlan) -> tuple[Any, FittedPlan]:
    fitted = FittedPlan(plan)
    return fitted.fit_transform(read_table(src), source=str(src)), fitted


def _report(path: Path) -> dict[str, Any]:
    report = json.loads(path.read_text())
    for key in RUNNER_KEYS:
        report.pop(key, None)
    return report


@pytest.mark.parametrize("duplicates", DUPLICATES)
@pytest.mark.parametrize("unplanned", ["keep", "drop"])
def test_streamed_equals_in_memory(tmp_path: Path, duplicates: dict, unplanned: str) -> None:
    src = tmp_path / "in.csv"
    messy_table(6000, seed=3).write_csv(src)
    plan = CleaningPlan.from_dict({**PLAN, "duplicates": duplicates, "unplanned": unplanned})
    paths = default_paths(tmp_path / "out.parquet", fitted_json=tmp_path / "fitted.json")
    report = clean_file(src, paths, plan=plan)
    assert report["mode"] == "streamed"
    expected, fitted = _in_memory(src, plan)

    # The same values and types (DataFrame.equals alone would take a categorical read back
    # as equal to strings): labels gathered as Enum codes are written as text.
    for path, want in (
        (paths.output, expected.accepted),
        (paths.quarantine, expected.quarantine),
        (paths.duplicates, expected.duplicates),
    ):
        got = pl.read_parquet(path)
        assert got.schema == want.schema
        assert got.equals(want)
    assert _report(paths.report_json) == json.loads(json.dumps(expected.report))
    assert FittedPlan.from_json(paths.fitted_json) == fitted
    # The accounting adds up and the cases of interest occur.
    assert report["rows_in"] == (
        report["rows_accepted"] + report["rows_duplicate"] + report["rows_quarantined"]
    )
    assert report["rows_quarantined"] > 0
    if duplicates.get("exact_rows") or duplicates.get("id_column"):
        assert report["rows_duplicate"] > 0


def test_streamed_with_a_fitted_plan_and_typed_parquet_input(tmp_path: Path) -> None:
    """A Parquet input with typed columns (cast to text for the plan, kept as they were in
    the quarantine file) cleaned with an already fitted plan."""
    table = messy_table(3000, seed=5).with_columns(
        pl.col("score").cast(pl.Int64), pl.col("extra").cast(pl.Int32)
    )
    src = tmp_path / "in.parquet"
    table.write_parquet(src)
    plan = CleaningPlan.from_dict(
        {**PLAN, "duplicates": {"exact_rows": True, "id_column": "user_id"}}
    )
    fitted = FittedPlan(plan).fit(table)
    paths = default_paths(tmp_path / "out.csv")
    report = clean_file(src, paths, fitted=fitted)
    assert report["mode"] == "streamed"
    expected = fitted.transform(table, source=str(src))
    tmp = tmp_path / "expected"
    tmp.mkdir()
    expected.accepted.write_csv(tmp / "a.csv")
    expected.quarantine.write_csv(tmp / "q.csv")
    expected.duplicates.write_csv(tmp / "d.csv")
    assert paths.output.read_text() == (tmp / "a.csv").read_text()
    assert paths.quarantine.read_text() == (tmp / "q.csv").read_text()
    assert paths.duplicates.read_text() == (tmp / "d.csv").read_text()
    assert _report(paths.report_json) == json.loads(json.dumps(expected.report))


def test_streamed_strict_rule_error_names_the_first_bad_row(tmp_path: Path) -> None:
    src = tmp_path / "in.csv"
    pl.DataFrame({"a": ["1", "2", "x", "y"], "b": ["1", "oops", "3", "4"]}).write_csv(src)
    plan = CleaningPlan.from_dict(
        {
            "columns": {
                "a": {"kind": "numeric", "on_invalid": "error"},
                "b": {"kind": "numeric", "on_invalid": "error"},
            }
        }
    )
    from chatpersona.exceptions import InputError

    with pytest.raises(InputError) as err:
        clean_file(src, default_paths(tmp_path / "o.csv"), plan=plan)
    # Columns are checked in plan order, as in memory: column a, data row 3, value "x".
    assert err.value.column == "a"
    assert err.value.row == 3
    assert err.value.value == "x"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of a few kB / a few hundred rows, so that every pass crosses many batches."""
    from chatpersona.clean import streamed

    monkeypatch.setattr(streamed, "CSV_CHUNK_BYTES", 4096)
    monkeypatch.setattr(streamed, "FIT_CHUNK_BYTES", 3 * 4096)  # pass 1: three ranges a batch
    monkeypatch.setattr(streamed, "PARQUET_BATCH_ROWS", 257)


@pytest.mark.parametrize("duplicates", DUPLICATES)
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_many_batches_equal_in_memory(
    tmp_path: Path, small_batches: None, duplicates: dict, suffix: str
) -> None:
    """Many batches (CSV cut at record boundaries, Parquet by row slices) give the same
    outputs, report and fitted plan as one in-memory transform."""
    src = tmp_path / f"in{suffix}"
    table = messy_table(3000, seed=11)
    table.write_csv(src) if suffix == ".csv" else table.write_parquet(src)
    plan = CleaningPlan.from_dict({**PLAN, "duplicates": duplicates})
    paths = default_paths(tmp_path / "out.csv", fitted_json=tmp_path / "fitted.json")
    clean_file(src, paths, plan=plan)
    expected, fitted = _in_memory(src, plan)
    tmp = tmp_path / "expected"
    tmp.mkdir()
    for name, df in (
        ("a", expected.accepted),
        ("q", expected.quarantine),
        ("d", expected.duplicates),
    ):
        df.write_csv(tmp / f"{name}.csv")
    assert paths.output.read_text() == (tmp / "a.csv").read_text()
    assert paths.quarantine.read_text() == (tmp / "q.csv").read_text()
    assert paths.duplicates.read_text() == (tmp / "d.csv").read_text()
    assert _report(paths.report_json) == json.loads(json.dumps(expected.report))
    assert FittedPlan.from_json(paths.fitted_json) == fitted


def test_quoted_newlines_across_batch_cuts(tmp_path: Path, small_batches: None) -> None:
    """Quoted fields holding newlines, commas and doubled quotes are never split by a cut."""
    rng = np.random.default_rng(2)
    notes = ['line one\nline "two"', "a, b\r\nc", '""', "plain", '"quoted"\n\n', None]
    table = pl.DataFrame(
        {
            "user_id": [f"u{k}" for k in range(2500)],
            "notes": [notes[k] for k in rng.integers(0, len(notes), 2500)],
            "age": [str(a) for a in rng.integers(18, 80, 2500)],
        }
    )
    src = tmp_path / "in.csv"
    table.write_csv(src)
    assert src.stat().st_size > 10 * 4096
    plan = CleaningPlan.from_dict(
        {
            "columns": {
                "user_id": {"kind": "id"},
                "notes": {"kind": "text"},
                "age": {"kind": "integer"},
            }
        }
    )
    paths = default_paths(tmp_path / "out.parquet")
    report = clean_file(src, paths, plan=plan)
    expected, _ = _in_memory(src, plan)
    assert report["rows_in"] == 2500
    assert pl.read_parquet(paths.output).equals(expected.accepted)


def test_a_bad_record_in_a_later_batch_leaves_no_output(
    tmp_path: Path, small_batches: None
) -> None:
    from chatpersona.exceptions import InputError

    src = tmp_path / "in.csv"
    lines = ["a,b"] + [f"{k},{k}" for k in range(3000)]
    lines[2500] = '1,2,3,"4'  # a ragged record with an unclosed quote, far past the first cut
    src.write_text("\n".join(lines) + "\n")
    plan = CleaningPlan.from_dict({"columns": {"a": {"kind": "integer"}, "b": {"kind": "integer"}}})
    with pytest.raises(InputError) as err:
        clean_file(src, default_paths(tmp_path / "o.parquet"), plan=plan)
    assert err.value.file == str(src)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_a_spool_that_cannot_be_written_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parsed numbers go to a spool beside the output; a failing write names the file
    and leaves neither outputs nor temporary files behind."""
    from chatpersona.exceptions import InputError

    src = tmp_path / "in.csv"
    messy_table(500, seed=2).write_csv(src)
    out_dir = tmp_path / "out"

    def broken(self: pl.DataFrame, path: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pl.DataFrame, "write_ipc", broken)
    plan = CleaningPlan.from_dict({**PLAN, "duplicates": {"exact_rows": False}})
    with pytest.raises(InputError) as err:
        clean_file(src, default_paths(out_dir / "o.parquet"), plan=plan)
    assert err.value.code == "unwritable_output"
    assert "No space left" in str(err.value)
    assert list(out_dir.iterdir()) == []

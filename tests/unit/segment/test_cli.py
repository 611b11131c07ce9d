"""``chatpersona segment`` end to end on small files, and its bad-input errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.datasets import make_blobs

from chatpersona.cli.main import main
from chatpersona.cli.segment_cmd import parse_k
from chatpersona.exceptions import ParameterError


def write_users(path: Path, n: int = 200) -> Path:
    X, _ = make_blobs(n, centers=3, n_features=2, random_state=0)
    pl.DataFrame(
        {
            "cid": [f"c{i}" for i in range(n)],
            "income": X[:, 0],
            "score": X[:, 1],
            "plan": np.where(X[:, 0] > 0, "pro", "basic"),
        }
    ).write_csv(path)
    return path


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
        raise SystemExit(0)
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def test_segment_writes_model_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    users = write_users(tmp_path / "users.csv")
    code, out, err = run(
        [
            "segment",
            str(users),
            "-o",
            str(tmp_path / "m"),
            "--id-column",
            "cid",
            "--algo",
            "kmeans",
            "--k",
            "2..6",
            "--pca",
            "0",
            "--seed",
            "1",
        ],
        capsys,
    )
    assert code == 0, err
    report = json.loads((tmp_path / "m" / "report.json").read_text())
    assert report["algorithm"] == "kmeans" and report["seed"] == 1
    assert report["pca"]["target"] is None
    assert "plan=pro" in report["features"]
    assert "segments (kmeans)" in out
    assert pl.read_csv(tmp_path / "m" / "assignments.csv").columns == ["cid", "segment"]


def test_segment_auto_prints_the_comparison(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    users = write_users(tmp_path / "users.csv", 150)
    code, out, err = run(
        ["segment", str(users), "-o", str(tmp_path / "m"), "--id-column", "cid"], capsys
    )
    assert code == 0, err
    assert "Algorithm comparison" in out and "stability" in out and "Chosen by" in out


def test_segment_bad_input_names_the_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pl.DataFrame(
        {"user_id": ["a", "b", "c", "d"], "x": [1.0, 2.0, 3.0, 4.0], "flat": [5.0, 5.0, 5.0, 5.0]}
    ).write_csv(tmp_path / "u.csv")
    code, _, err = run(
        ["segment", str(tmp_path / "u.csv"), "-o", str(tmp_path / "m"), "--algo", "kmeans"], capsys
    )
    assert code == 2
    assert "constant" in err and "'flat'" in err
    spec = tmp_path / "spec.yaml"
    spec.write_text("columns: {x: numeric}\n")
    code, _, err = run(
        [
            "segment",
            str(tmp_path / "u.csv"),
            "-o",
            str(tmp_path / "m"),
            "--features",
            str(spec),
            "--algo",
            "kmeans",
            "--k",
            "5",
        ],
        capsys,
    )
    assert code == 2 and "needs at least 5 rows for k=5, got 4" in err


def test_segment_help_documents_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["segment", "--help"], capsys)
    assert code == 0
    for option in ("--features", "--events", "--id-column", "--algo", "--k", "--pca", "--seed"):
        assert option in out


@pytest.mark.parametrize(("text", "value"), [("5", 5), ("2..12", (2, 12)), (None, None)])
def test_parse_k(text: str | None, value: object) -> None:
    assert parse_k(text) == value


@pytest.mark.parametrize("text", ["1..3", "8..4", "x", "0"])
def test_parse_k_rejects(text: str) -> None:
    with pytest.raises(ParameterError, match="The '--k' parameter of segment"):
        parse_k(text)

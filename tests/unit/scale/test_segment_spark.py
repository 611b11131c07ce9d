"""Segmentation on Spark against the one-machine run: same artifact, same assignments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from chatpersona.exceptions import ParameterError
from chatpersona.scale import run_segmentation_spark
from chatpersona.segment import SegmentModel, run_segmentation


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory) -> tuple[pl.DataFrame, Path]:
    X, _ = make_blobs(600, centers=4, n_features=4, cluster_std=1.2, random_state=3)
    df = pl.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(len(X))],
            **{f"f{j}": X[:, j] for j in range(X.shape[1])},
            "tier": ["gold" if x > 0 else "basic" for x in X[:, 0]],
        }
    )
    path = tmp_path_factory.mktemp("seg") / "users.parquet"
    df.write_parquet(path)
    return df, path


def _ari(a: pl.DataFrame, b: pl.DataFrame) -> float:
    j = a.join(b, on="user_id", suffix="_s")
    assert j.height == a.height == b.height
    return float(adjusted_rand_score(j["segment"], j["segment_s"]))


def test_kmeans_mllib_matches_one_machine(spark: Any, users: Any, tmp_path: Path) -> None:
    df, path = users
    ref = run_segmentation(df, algo="kmeans", k=4, seed=1)
    got = run_segmentation_spark(path, algo="kmeans", k=4, seed=1, spark=spark, sample_rows=300)
    assert _ari(ref.assignments, got.assignments) >= 0.99
    assert got.model.feature_names == ref.model.feature_names
    assert got.report["pca"]["n_components"] == ref.report["pca"]["n_components"]
    np.testing.assert_allclose(got.model.preprocessor.center_, ref.model.preprocessor.center_)
    np.testing.assert_allclose(got.model.preprocessor.scale_, ref.model.preprocessor.scale_)
    sizes = sorted(s["size"] for s in got.report["segments"])
    assert sizes == sorted(s["size"] for s in ref.report["segments"])
    assert sum(sizes) == df.height
    # MLlib refined the centres over all 600 users (the driver sample had 300)
    # the artifact: load it back and assign one user exactly as the batch assignment did
    d = got.write(tmp_path / "model")
    model = SegmentModel.load(d)
    feats = ref.features
    assert feats is not None
    row = feats.row(7, named=True)
    one = model.assign_one({n: row[n] for n in model.feature_names})
    batch = got.assignments.filter(pl.col("user_id") == row["user_id"])["segment"][0]
    assert one.segment_id == batch
    assert pl.read_csv(d / "assignments.csv").height == df.height


def test_sample_fitted_algorithm_assigned_at_scale(spark: Any, users: Any) -> None:
    df, path = users
    got = run_segmentation_spark(
        path, algo="hierarchical", k=4, seed=0, spark=spark, sample_rows=300
    )
    assert got.report["engine"]["sample_rows"] <= 300
    assert got.assignments.height == df.height
    # every user assigned by the model's own rule
    ref = run_segmentation(df, algo="kmeans", k=4, seed=0)
    feats = ref.features
    assert feats is not None
    ordered = got.assignments.join(feats, on="user_id", how="left")
    assert (
        ordered["segment"].to_list()
        == got.model.predict(ordered.select(got.model.feature_names)).tolist()
    )


def test_bad_algo_is_a_parameter_error(spark: Any, users: Any) -> None:
    _df, path = users
    with pytest.raises(ParameterError, match="algo"):
        run_segmentation_spark(path, algo="spectral", spark=spark)


def test_bisecting_kmeans_mllib(spark: Any, users: Any, tmp_path: Path) -> None:
    """MLlib's bisecting K-Means over all users (PCA output is centred at the origin, where
    MLlib's split start used to leave one cluster): k segments that agree with the
    one-machine bisecting K-Means, exported as the same centroid artifact.

    Four groups on the corners of a square: MLlib splits every leaf of a level at once (the
    one-machine strategy splits the leaf of largest inertia), so both trees agree only where
    the first split is 2 | 2; elsewhere the two algorithms legitimately differ."""
    X, y = make_blobs(
        800, centers=[[-6, -6, 0], [-6, 6, 0], [6, -6, 0], [6, 6, 0]], cluster_std=1.0,
        random_state=5,
    )  # fmt: skip
    df = pl.DataFrame(
        {"user_id": [f"u{i}" for i in range(len(X))], **{f"f{j}": X[:, j] for j in range(3)}}
    )
    path = tmp_path / "square.parquet"
    df.write_parquet(path)
    ref = run_segmentation(df, algo="bisecting", k=4, seed=0)
    got = run_segmentation_spark(path, algo="bisecting", k=4, seed=0, spark=spark)
    truth = pl.DataFrame({"user_id": df["user_id"], "segment": [str(v) for v in y]})
    assert _ari(truth, got.assignments) >= 0.95
    assert got.report["algorithm"] == ref.report["algorithm"] == "bisecting"
    assert got.report["engine"]["fit_on"] == "all rows (Spark MLlib)"
    assert got.assignments["segment"].n_unique() == 4
    assert _ari(ref.assignments, got.assignments) >= 0.95
    model = SegmentModel.load(got.write(tmp_path / "model"))
    feats = ref.features
    assert feats is not None
    ordered = got.assignments.join(feats, on="user_id", how="left")
    assert (
        ordered["segment"].to_list() == model.predict(ordered.select(model.feature_names)).tolist()
    )


def test_segment_engine_spark_option(spark: Any, users: Any, tmp_path: Path) -> None:
    """`chatpersona segment --engine spark` (the command in docs/OPERATIONS.md) writes the
    same kind of model directory, and every user gets a segment."""
    from typer.testing import CliRunner

    from chatpersona.cli.main import app

    df, path = users
    out = tmp_path / "m1"
    res = CliRunner().invoke(
        app,
        ["segment", str(path), "-o", str(out), "--algo", "kmeans", "--k", "4", "--seed", "0",
         "--engine", "spark", "--spark-master", "local[2]"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    model = SegmentModel.load(out)
    assigned = pl.read_csv(out / "assignments.csv")
    assert assigned.height == df.height
    assert assigned["segment"].n_unique() == 4
    assert model.assign_one(
        dict(zip(model.feature_names, [0.0] * len(model.feature_names), strict=True))
    )


def test_segment_engine_spark_with_events(spark: Any, tmp_path: Path) -> None:
    """`--events` on the Spark engine: event features built per user partition; a spec that
    needs events without an event log is refused with the one-machine error."""
    from typer.testing import CliRunner

    from chatpersona.clean.runner import clean_file, default_paths
    from chatpersona.cli.main import app
    from chatpersona.datagen import generate
    from chatpersona.exceptions import DataError
    from chatpersona.features import FeatureSpec

    generate(400, 2, tmp_path / "gen", events_per_user=6)
    users = tmp_path / "users.parquet"
    clean_file(tmp_path / "gen" / "users.csv", default_paths(users))
    events = tmp_path / "gen" / "events.jsonl"
    out = tmp_path / "m"
    res = CliRunner().invoke(
        app,
        ["segment", str(users), "-o", str(out), "--events", str(events), "--algo", "kmeans",
         "--k", "3", "--engine", "spark", "--spark-master", "local[2]"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    model = SegmentModel.load(out)
    assert "csat_mean" in model.feature_names and "contacts_30d" in model.feature_names
    assert pl.read_csv(out / "assignments.csv").height == pl.read_parquet(users).height
    spec = FeatureSpec.infer(pl.read_parquet(users), events=True)[0]
    with pytest.raises(DataError, match="no event log"):
        run_segmentation_spark(users, spec=spec, algo="kmeans", k=3, spark=spark)


def test_features_command_same_table_on_both_engines(spark: Any, tmp_path: Path) -> None:
    """`chatpersona features` (the feature build alone) writes the same feature table with
    `--engine polars` and `--engine spark`, event features included."""
    from typer.testing import CliRunner

    from chatpersona.clean.runner import clean_file, default_paths
    from chatpersona.cli.main import app
    from chatpersona.datagen import generate

    generate(300, 4, tmp_path / "gen", events_per_user=5)
    users = tmp_path / "users.parquet"
    clean_file(tmp_path / "gen" / "users.csv", default_paths(users))
    events = tmp_path / "gen" / "events.jsonl"
    tables = {}
    for engine in ("polars", "spark"):
        out = tmp_path / f"f_{engine}.parquet"
        res = CliRunner().invoke(
            app,
            ["features", str(users), "-o", str(out), "--events", str(events), "--engine", engine,
             "--spark-master", "local[2]", "--spec-out", str(tmp_path / f"{engine}.json")],
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        tables[engine] = pl.read_parquet(out).sort("user_id")
    a, b = tables["polars"], tables["spark"]
    assert a.columns == b.columns and "csat_mean" in a.columns
    assert a.height == b.height == pl.read_parquet(users).height
    for col in a.columns[1:]:
        np.testing.assert_allclose(a[col].to_numpy(), b[col].to_numpy(), rtol=1e-12, atol=1e-12)
    bad = CliRunner().invoke(app, ["features", str(users), "-o", str(tmp_path / "x.xlsx")])
    assert bad.exit_code != 0

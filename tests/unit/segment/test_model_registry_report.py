"""SegmentModel artifact, the registry's atomic switch and the self-contained report."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.datasets import make_blobs

from chatpersona.exceptions import ConflictError, DataError, NotFoundError
from chatpersona.features import Preprocessor
from chatpersona.segment import (
    HDBSCANSegmenter,
    KMeansSegmenter,
    ModelRegistry,
    SegmentModel,
    run_segmentation,
)

NAMES = ["spend", "contacts", "age"]


def fitted_model(seed: int = 0) -> tuple[SegmentModel, np.ndarray]:
    X, _ = make_blobs(300, centers=3, n_features=3, random_state=seed)
    X = X * [100.0, 1.0, 10.0]
    pre = Preprocessor(pca=0.95).fit(X, NAMES)
    seg = KMeansSegmenter(k=3, seed=0).fit(pre.transform(X))
    return SegmentModel.from_fitted(seg, pre, NAMES), X


def test_save_load_round_trip_keeps_predictions_and_metadata(tmp_path: Path) -> None:
    model, X = fitted_model()
    model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert {"id", "version", "created_at", "feature_names", "rule"} <= set(meta)
    assert (tmp_path / "m" / "arrays.npz").is_file()
    loaded = SegmentModel.load(tmp_path / "m")
    assert loaded.version == model.version and loaded.model_id == model.model_id
    assert list(loaded.predict(X)) == list(model.predict(X))
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{8}", model.version)


def test_segment_ids_are_ordered_by_size() -> None:
    model, X = fitted_model()
    ids, counts = np.unique(model.predict(X), return_counts=True)
    by_id = dict(zip(ids.tolist(), counts.tolist(), strict=True))
    assert by_id["s0"] >= by_id["s1"] >= by_id["s2"]


def test_assign_one_accepts_a_frame_row_and_names_missing_features() -> None:
    model, X = fitted_model()
    frame = pl.DataFrame(X, schema=NAMES)
    assert model.predict(frame)[5] == model.assign_one(frame.row(5, named=True)).segment_id
    with pytest.raises(DataError) as err:
        model.assign_one({"spend": 1.0, "age": 3.0})
    assert err.value.column == "contacts"
    bad = X.copy()
    bad[2, 0] = np.nan
    with pytest.raises(DataError) as err:
        model.predict(bad)
    assert err.value.column == "spend"


def test_core_rule_marks_far_points_unsegmented() -> None:
    X, _ = make_blobs(400, centers=3, n_features=2, cluster_std=0.4, random_state=2)
    pre = Preprocessor(pca=None).fit(X, ["a", "b"])
    seg = HDBSCANSegmenter(seed=0).fit(pre.transform(X))
    model = SegmentModel.from_fitted(seg, pre, ["a", "b"])
    far = {"a": X[:, 0].max() + 50.0, "b": X[:, 1].max() + 50.0}
    a = model.assign_one(far)
    assert a.segment_id == "unsegmented" and a.segment_name == "unsegmented"
    assert model.predict(np.array([[far["a"], far["b"]]]))[0] == "unsegmented"


def test_load_missing_model_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"model\.json is missing"):
        SegmentModel.load(tmp_path)


def test_registry_publish_activate_and_versions(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "reg")
    assert reg.active() is None and reg.active_version() is None
    m1, _ = fitted_model(0)
    m1.save(tmp_path / "m1")
    m2, _ = fitted_model(1)
    m2.save(tmp_path / "m2")
    v1 = reg.publish(tmp_path / "m1", activate=True)
    v2 = reg.publish(tmp_path / "m2")
    assert reg.versions() == sorted([v1, v2])
    assert reg.active_version() == v1
    reg.activate(v2)
    active = reg.active()
    assert active is not None and active.version == v2
    with pytest.raises(ConflictError):
        reg.publish(tmp_path / "m1")
    with pytest.raises(NotFoundError):
        reg.activate("nope")
    assert not [p for p in (tmp_path / "reg").iterdir() if p.name.startswith(".active-")]


def test_registry_switch_is_atomic_for_concurrent_readers(tmp_path: Path) -> None:
    reg = ModelRegistry(tmp_path / "reg")
    versions = []
    for seed in (0, 1):
        m, _ = fitted_model(seed)
        m.save(tmp_path / f"m{seed}")
        versions.append(reg.publish(tmp_path / f"m{seed}"))
    reg.activate(versions[0])
    seen: set[str | None] = set()
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                seen.add(reg.active_version())
            except BaseException as exc:  # a torn ACTIVE file would show up here
                errors.append(exc)

    t = threading.Thread(target=read)
    t.start()
    for i in range(200):
        reg.activate(versions[i % 2])
    stop.set()
    t.join()
    assert not errors
    assert seen <= set(versions)


def test_run_writes_a_complete_model_directory_and_self_contained_html(tmp_path: Path) -> None:
    X, _ = make_blobs(240, centers=3, n_features=3, random_state=4)
    users = pl.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(240)],
            "a": X[:, 0],
            "b": X[:, 1],
            "c": X[:, 2],
            "churn": (X[:, 0] > np.median(X[:, 0])).astype(int),
        }
    )
    result = run_segmentation(users, algo="auto", seed=0)
    out = result.write(tmp_path / "model")
    names = {p.name for p in out.iterdir()}
    assert {"model.json", "arrays.npz", "assignments.csv", "report.json", "report.html"} <= names
    report = json.loads((out / "report.json").read_text())
    assert report["n_segments"] == 3
    assert {r["algorithm"] for r in report["comparison"]} == {
        "kmeans",
        "dbscan",
        "hdbscan",
        "hierarchical",
    }
    seg = report["segments"][0]
    assert {"id", "name", "size", "share", "description", "top_features"} <= set(seg)
    assert "churn" in seg["outcomes"]
    assignments = pl.read_csv(out / "assignments.csv")
    assert assignments.columns == ["user_id", "segment"] and len(assignments) == 240
    model = SegmentModel.load(out)
    row = users.row(7, named=True)
    assert model.assign_one(row).segment_id == assignments["segment"][7]
    html = (out / "report.html").read_text()
    assert html.count("<svg") >= 3 and "<table" in html
    assert not re.search(r"<script|<link|src=\"http|href=\"http", html)


def test_duplicate_user_ids_are_refused() -> None:
    users = pl.DataFrame({"user_id": ["a", "b", "a", "c"], "x": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(DataError) as err:
        run_segmentation(users, algo="kmeans", k=2)
    assert err.value.column == "user_id" and err.value.value == "a"
    assert err.value.code == "duplicate_id"

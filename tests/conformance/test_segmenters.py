"""One conformance suite, parametrized over every registered segmenter (``SEGMENTERS``).

A new algorithm proves itself by passing these checks: the scikit-learn estimator
contract, seeded determinism, the assignment rule (batch == one record at a time via the
model artifact), recovery of well separated groups, bounded fitting and clear bad-input
errors that name the column.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from chatpersona.exceptions import DataError, NotFittedError, ParameterError
from chatpersona.features import Preprocessor
from chatpersona.segment import NOISE, SEGMENTERS, BaseSegmenter, SegmentModel

NAMES = sorted(SEGMENTERS)

# One invalid value per algorithm and the exact message it must produce.
BAD_PARAMS: dict[str, tuple[str, Any, str]] = {
    "kmeans": ("k_min", 1, "an int >= 2"),
    "bisecting": ("k_min", 1, "an int >= 2"),
    "hierarchical": ("linkage", "single", "'ward' or 'average'"),
    "dbscan": ("eps", -1, "a float > 0 or None"),
    "hdbscan": ("min_cluster_size", 1, "an int >= 2 or None"),
}


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_blobs(n_samples=450, centers=3, n_features=4, cluster_std=0.6, random_state=7)
    return X, y


def make(name: str, **params: Any) -> BaseSegmenter:
    return SEGMENTERS[name](**params)


@pytest.mark.parametrize("name", NAMES)
def test_init_only_stores_params(name: str) -> None:
    seg = make(name)
    params = seg.get_params()
    assert params["seed"] == 0
    clone = type(seg)(**params)
    assert clone.get_params() == params
    assert not any(k.endswith("_") for k in vars(seg)), "no learned state before fit"


@pytest.mark.parametrize("name", NAMES)
def test_invalid_param_raises_at_fit_with_fixed_message(name: str, blobs: Any) -> None:
    param, value, constraint = BAD_PARAMS[name]
    seg = make(name, **{param: value})  # accepted at construction
    with pytest.raises(ParameterError) as err:
        seg.fit(blobs[0])
    owner = type(seg).__name__
    assert str(err.value) == (
        f"The {param!r} parameter of {owner} must be {constraint}. Got {value!r} instead."
    )


@pytest.mark.parametrize("name", NAMES)
def test_negative_seed_is_rejected(name: str, blobs: Any) -> None:
    with pytest.raises(ParameterError, match="'seed' parameter"):
        make(name, seed=-1).fit(blobs[0])


@pytest.mark.parametrize("name", NAMES)
def test_predict_before_fit_raises_not_fitted(name: str, blobs: Any) -> None:
    with pytest.raises(NotFittedError, match="not fitted"):
        make(name).predict(blobs[0])


@pytest.mark.parametrize("name", NAMES)
def test_fit_returns_self_and_labels_are_predict(name: str, blobs: Any) -> None:
    X, _ = blobs
    seg = make(name, seed=3)
    assert seg.fit(X) is seg
    assert seg.labels_.shape == (len(X),)
    assert set(seg.labels_.tolist()) <= {NOISE, *range(seg.n_segments_)}
    np.testing.assert_array_equal(seg.predict(X), seg.labels_)
    np.testing.assert_array_equal(make(name, seed=3).fit_predict(X), seg.labels_)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_labels(name: str, blobs: Any) -> None:
    X, _ = blobs
    a = make(name, seed=11).fit(X).labels_
    b = make(name, seed=11).fit(X).labels_
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_recovers_well_separated_groups(name: str, blobs: Any) -> None:
    X, y = blobs
    seg = make(name, seed=0).fit(X)
    assert seg.n_segments_ == 3
    assert adjusted_rand_score(y, seg.labels_) >= 0.9


@pytest.mark.parametrize("name", NAMES)
def test_model_assign_one_equals_batch_predict(name: str, blobs: Any, tmp_path: Path) -> None:
    X, _ = blobs
    names = ["f0", "f1", "f2", "f3"]
    pre = Preprocessor(pca=None).fit(X, names)
    seg = make(name, seed=0).fit(pre.transform(X))
    model = SegmentModel.from_fitted(seg, pre, names)
    model.save(tmp_path)
    loaded = SegmentModel.load(tmp_path)
    # fresh points around and between the groups, not only the training rows
    rng = np.random.default_rng(5)
    probe = np.vstack([X, rng.uniform(X.min(0) - 2, X.max(0) + 2, size=(200, 4))])
    batch = loaded.predict(probe)
    one = [loaded.assign_one(dict(zip(names, row, strict=True))).segment_id for row in probe]
    assert list(batch) == one
    # the model's segments are the segmenter's labels, renamed by size
    mapped = np.where(seg.labels_ == NOISE, "unsegmented", np.asarray(model.label_ids)[seg.labels_])
    assert list(model.predict(X)) == list(mapped)


@pytest.mark.parametrize("name", NAMES)
def test_large_input_fits_on_a_bounded_sample(name: str) -> None:
    X, y = make_blobs(n_samples=3000, centers=3, n_features=3, cluster_std=0.5, random_state=1)
    bound = {
        "kmeans": "sweep_rows",
        "bisecting": "sweep_rows",
        "hierarchical": "max_fit_rows",
        "dbscan": "max_fit_rows",
        "hdbscan": "max_fit_rows",
    }[name]
    seg = make(name, **{bound: 400}, seed=0).fit(X)
    if hasattr(seg, "fit_rows_"):
        assert seg.fit_rows_ == 400
    # every row is still assigned by the rule, and the structure is found
    assert seg.labels_.shape == (3000,)
    assert adjusted_rand_score(y, seg.labels_) >= 0.9


@pytest.mark.parametrize("name", NAMES)
def test_nan_is_named(name: str, blobs: Any) -> None:
    X = blobs[0].copy()
    X[17, 2] = np.nan
    frame = pl.DataFrame(X, schema=["age", "spend", "contacts", "csat"])
    with pytest.raises(DataError) as err:
        make(name).fit(frame)
    assert err.value.column == "contacts" and err.value.row == 17
    assert "NaN" in str(err.value)


@pytest.mark.parametrize("name", NAMES)
def test_non_numeric_column_is_named(name: str, blobs: Any) -> None:
    frame = pl.DataFrame(blobs[0], schema=["a", "b", "c", "d"]).with_columns(plan=pl.lit("basic"))
    with pytest.raises(DataError) as err:
        make(name).fit(frame)
    assert err.value.column == "plan" and err.value.code == "non_numeric"


@pytest.mark.parametrize("name", NAMES)
def test_constant_column_is_named(name: str, blobs: Any) -> None:
    frame = pl.DataFrame(blobs[0], schema=["a", "b", "c", "d"]).with_columns(country=pl.lit(1.0))
    with pytest.raises(DataError) as err:
        make(name).fit(frame)
    assert err.value.column == "country" and err.value.code == "constant_column"


@pytest.mark.parametrize("name", NAMES)
def test_fewer_rows_than_needed_is_a_clear_error(name: str) -> None:
    X = np.arange(8, dtype=float).reshape(4, 2) * np.array([1.0, 2.0])
    params = {
        "kmeans": {"k": 5},
        "bisecting": {"k": 5},
        "hierarchical": {"k": 5},
        "dbscan": {},
        "hdbscan": {},
    }[name]
    with pytest.raises(DataError) as err:
        make(name, **params).fit(X)
    assert err.value.code == "too_few_rows"
    assert "got 4" in str(err.value)

"""The segmenter contract shared by every clustering algorithm (scikit-learn habits).

Every segmenter reduces what it learned to one of two *assignment rules* that a
:class:`~chatpersona.segment.model.SegmentModel` can apply to one record in microseconds:

- ``"centroid"``: the nearest of ``centers_`` (K-Means, hierarchical);
- ``"core"``: the nearest of ``cores_``; if it is farther than that core's
  ``core_radius_``, the point is noise (label ``-1``, segment ``"unsegmented"``)
  (DBSCAN, HDBSCAN).

``labels_`` is defined as ``predict(X)`` on the fitting data, so ``fit_predict``,
``predict`` and the deployed model always agree.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.neighbors import NearestNeighbors

from chatpersona.exceptions import DataError, NotFittedError, ParameterError

__all__ = ["NOISE", "UNSEGMENTED", "BaseSegmenter", "check_matrix", "rule_predict"]

NOISE = -1
UNSEGMENTED = "unsegmented"


def check_matrix(
    X: Any, owner: str, *, min_rows: int = 2, feature_names: Sequence[str] | None = None
) -> tuple[np.ndarray, list[str]]:
    """Validate a numeric feature matrix before any scikit-learn call.

    Accepts a numpy array, a Polars or a pandas DataFrame. Raises :class:`DataError`
    naming the column for non-numeric columns (no encoding), NaN/inf values and
    constant columns, and when there are fewer rows than ``min_rows``.
    """
    names: list[str]
    if hasattr(X, "schema") and hasattr(X, "columns"):  # Polars
        names = list(X.columns)
        for name, dtype in X.schema.items():
            if not (dtype.is_numeric() or str(dtype) == "Boolean"):
                sample = X[name].drop_nulls().head(1).to_list()
                raise DataError(
                    f"column is not numeric (dtype {dtype}) and has no encoding; encode it "
                    "(one-hot or ordinal) in the feature spec",
                    code="non_numeric",
                    column=name,
                    value=sample[0] if sample else None,
                )
        arr = X.cast({n: float for n in names}).to_numpy() if names else np.empty((len(X), 0))
    elif hasattr(X, "dtypes") and hasattr(X, "columns"):  # pandas
        names = [str(c) for c in X.columns]
        for name, dtype in zip(names, X.dtypes, strict=True):
            if not (np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.bool_)):
                raise DataError(
                    f"column is not numeric (dtype {dtype}) and has no encoding; encode it "
                    "(one-hot or ordinal) in the feature spec",
                    code="non_numeric",
                    column=name,
                    value=X[name].dropna().iloc[0] if X[name].notna().any() else None,
                )
        arr = X.to_numpy(dtype=np.float64)
    else:
        raw = np.asarray(X)
        if raw.ndim != 2:
            raise DataError(
                f"{owner} expects a 2-D matrix (rows x features), got {raw.ndim} dimension(s)",
                code="bad_shape",
            )
        names = list(feature_names) if feature_names else [f"x{i}" for i in range(raw.shape[1])]
        if not (np.issubdtype(raw.dtype, np.number) or raw.dtype == np.bool_):
            for j in range(raw.shape[1]):
                try:
                    raw[:, j].astype(np.float64)
                except (TypeError, ValueError):
                    raise DataError(
                        "column is not numeric and has no encoding; encode it (one-hot or "
                        "ordinal) in the feature spec",
                        code="non_numeric",
                        column=names[j],
                        value=raw[0, j],
                    ) from None
        arr = raw.astype(np.float64)
    if arr.shape[1] == 0:
        raise DataError(f"{owner} got no feature column", code="no_features")
    finite = np.isfinite(arr)
    if not finite.all():
        col = int(np.argmax(~finite.all(axis=0)))
        row = int(np.argmax(~finite[:, col]))
        raise DataError(
            "NaN or infinite value left after cleaning; impute or drop it first",
            code="nan",
            column=names[col],
            row=row,
            value=str(arr[row, col]),
        )
    if arr.shape[0] < min_rows:
        raise DataError(
            f"{owner} needs at least {min_rows} rows, got {arr.shape[0]}",
            code="too_few_rows",
            value=arr.shape[0],
        )
    if arr.shape[0] > 1:
        const = np.ptp(arr, axis=0) == 0
        if const.any():
            col = int(np.argmax(const))
            raise DataError(
                "feature column is constant (one value for every row); drop it",
                code="constant_column",
                column=names[col],
                value=float(arr[0, col]),
            )
    return np.ascontiguousarray(arr), names


def rule_predict(
    X: np.ndarray,
    rule: str,
    centers: np.ndarray | None = None,
    cores: np.ndarray | None = None,
    core_labels: np.ndarray | None = None,
    core_radius: np.ndarray | None = None,
) -> np.ndarray:
    """Apply an assignment rule to a matrix (see the module docstring)."""
    if rule == "centroid":
        assert centers is not None
        # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2 ; ||x||^2 does not change the argmin.
        d = -2.0 * (X @ centers.T) + (centers * centers).sum(axis=1)
        return np.asarray(np.argmin(d, axis=1), dtype=np.int64)
    assert cores is not None and core_labels is not None and core_radius is not None
    if len(cores) == 0:
        return np.full(len(X), NOISE, dtype=np.int64)
    nn = NearestNeighbors(n_neighbors=1).fit(cores)
    dist, idx = nn.kneighbors(X)
    idx = idx[:, 0]
    labels = core_labels[idx].astype(np.int64)
    labels[dist[:, 0] > core_radius[idx]] = NOISE
    return labels


class BaseSegmenter:
    """Base class: parameter handling, validation, fitted checks and the assignment rule.

    Subclasses implement ``_validate_params(n_rows)`` and ``_fit(X, rng)`` which must set
    either ``centers_`` (``rule_ = "centroid"``) or ``cores_``, ``core_labels_`` and
    ``core_radius_`` (``rule_ = "core"``).
    """

    #: short name used by the registry, the CLI and reports
    algorithm: str = "base"

    # learned attributes (declared for type checkers; set by fit)
    rule_: str
    centers_: np.ndarray
    cores_: np.ndarray
    core_labels_: np.ndarray
    core_radius_: np.ndarray
    labels_: np.ndarray
    n_segments_: int
    n_features_in_: int
    feature_names_in_: list[str]

    # -- params (the sklearn get_params / set_params protocol) ---------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters as a dict."""
        return {p: getattr(self, p) for p in self._param_names()}

    def set_params(self, **params: Any) -> BaseSegmenter:
        """Set constructor parameters (validated at the next ``fit``)."""
        for k, v in params.items():
            if k not in self._param_names():
                raise ParameterError(type(self).__name__, k, "a known parameter", v)
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- validation helpers --------------------------------------------------------------
    def _param_error(self, name: str, constraint: str) -> ParameterError:
        return ParameterError(type(self).__name__, name, constraint, getattr(self, name))

    def _check_int(self, name: str, low: int, *, allow_none: bool = False) -> None:
        v = getattr(self, name)
        if v is None and allow_none:
            return
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < low:
            raise self._param_error(name, f"an int >= {low}" + (" or None" if allow_none else ""))

    def _check_seed(self) -> None:
        v = getattr(self, "seed", 0)
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 0:
            raise self._param_error("seed", "an int >= 0")

    def _validate_params(self, n_rows: int) -> None:
        raise NotImplementedError

    def _min_rows(self) -> int:
        return 2

    def _fit(self, X: np.ndarray, rng: np.random.Generator) -> None:
        raise NotImplementedError

    # -- public API ----------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> BaseSegmenter:
        """Fit on a numeric matrix (rows x features); returns ``self``."""
        self._check_seed()
        self._validate_params(-1)
        arr, names = check_matrix(X, type(self).__name__, min_rows=self._min_rows())
        self._validate_params(len(arr))
        self.feature_names_in_ = names
        self.n_features_in_ = arr.shape[1]
        rng = np.random.default_rng(int(getattr(self, "seed", 0)))
        with small_threads(len(arr)):
            self._fit(arr, rng)
            self.labels_ = self._predict_array(arr)
        self.n_segments_ = len(set(self.labels_.tolist()) - {NOISE})
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "rule_"):
            raise NotFittedError(type(self).__name__)

    def _predict_array(self, arr: np.ndarray) -> np.ndarray:
        if self.rule_ == "centroid":
            return rule_predict(arr, "centroid", centers=self.centers_)
        return rule_predict(
            arr,
            "core",
            cores=self.cores_,
            core_labels=self.core_labels_,
            core_radius=self.core_radius_,
        )

    def predict(self, X: Any) -> np.ndarray:
        """Segment label per row (``-1`` = noise / unsegmented)."""
        self._check_fitted()
        arr, _ = check_matrix(X, type(self).__name__, min_rows=1)
        if arr.shape[1] != self.n_features_in_:
            raise DataError(
                f"{type(self).__name__} was fitted on {self.n_features_in_} features, "
                f"got {arr.shape[1]}",
                code="bad_shape",
            )
        return self._predict_array(arr)

    def fit_predict(self, X: Any, y: Any = None) -> np.ndarray:
        """``fit(X)`` then the labels of ``X``."""
        return self.fit(X).labels_

    def rule_arrays(self) -> dict[str, np.ndarray]:
        """The arrays of the assignment rule (for the model artifact)."""
        self._check_fitted()
        if self.rule_ == "centroid":
            return {"centers": self.centers_}
        return {
            "cores": self.cores_,
            "core_labels": self.core_labels_,
            "core_radius": self.core_radius_,
        }

    def refit_params(self) -> dict[str, Any]:
        """Parameters that pin what was chosen automatically (k, eps), for stability refits."""
        return {}

    def summary(self) -> dict[str, Any]:
        """JSON-friendly facts about the fit (chosen k, eps, sweep scores ...)."""
        return {}


def small_threads(n_rows: int) -> Any:
    """One BLAS/OpenMP thread for inputs under 200,000 rows.

    On small inputs, thread start-up and oversubscription on a shared machine cost far
    more than they give (K-Means on 3,000 rows: 0.47 s with threads vs 0.03 s without).
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1 if n_rows < 200_000 else None)


def seeded_sample(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted row indices of a seeded sample without replacement (all rows if n <= size)."""
    if n <= size:
        return np.arange(n)
    return np.sort(rng.choice(n, size=size, replace=False))

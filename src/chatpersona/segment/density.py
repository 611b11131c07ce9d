"""Density segmenters: DBSCAN (eps from the k-distance knee) and HDBSCAN.

Both fit on a bounded seeded sample (``max_fit_rows``) and keep the clustered sample points
as *cores* with a radius. Assignment rule (for the rest of the rows and for one record):
the nearest core; if it is farther than that core's radius, the point is noise
("unsegmented"). DBSCAN keeps its core samples with radius ``eps`` (so the rule is
DBSCAN's own reachability); HDBSCAN keeps every clustered sample point with its core
distance (distance to its ``min_samples``-th neighbour) as radius.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.cluster import DBSCAN, HDBSCAN
from sklearn.neighbors import NearestNeighbors

from chatpersona.exceptions import DataError
from chatpersona.segment.base import NOISE, BaseSegmenter, seeded_sample

__all__ = ["DBSCANSegmenter", "HDBSCANSegmenter", "knee_eps"]


def knee_eps(X: np.ndarray, min_samples: int) -> float:
    """eps at the knee of the sorted k-distance curve (k = ``min_samples``).

    The knee is the point of the ascending curve farthest from the straight line joining
    its first and last points (the "kneedle" construction on a normalised curve).
    """
    k = min(min_samples, len(X) - 1)
    dist, _ = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X)
    kd = np.sort(dist[:, k])
    n = len(kd)
    if n < 3 or kd[-1] <= kd[0]:
        return float(max(kd[-1], 1e-9))
    x = np.linspace(0.0, 1.0, n)
    y = (kd - kd[0]) / (kd[-1] - kd[0])
    # the curve is convex increasing: the knee is where x - y is largest
    i = int(np.argmax(x - y))
    return float(max(kd[i], 1e-9))


def _relabel(labels: np.ndarray) -> np.ndarray:
    """Labels 0..m-1 in order of first appearance, noise kept at -1."""
    out = np.full(len(labels), NOISE, dtype=np.int64)
    mapping: dict[int, int] = {}
    for i, lab in enumerate(labels.tolist()):
        if lab == NOISE:
            continue
        out[i] = mapping.setdefault(lab, len(mapping))
    return out


class DBSCANSegmenter(BaseSegmenter):
    """DBSCAN; ``eps=None`` takes eps at the k-distance knee.

    Parameters
    ----------
    eps : float or None
        Neighbourhood radius; ``None`` chooses it with :func:`knee_eps`.
    min_samples : int
        Neighbours (including the point) that make a core point.
    max_fit_rows : int
        The fit runs on a seeded sample of at most this many rows.
    seed : int
        Sampling seed.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> X, _ = make_blobs(400, centers=3, cluster_std=0.5, random_state=1)
    >>> DBSCANSegmenter(seed=0).fit(X).n_segments_
    3
    """

    algorithm = "dbscan"

    def __init__(
        self,
        eps: float | None = None,
        min_samples: int = 10,
        max_fit_rows: int = 10_000,
        seed: int = 0,
    ) -> None:
        self.eps = eps
        self.min_samples = min_samples
        self.max_fit_rows = max_fit_rows
        self.seed = seed

    def _validate_params(self, n_rows: int) -> None:
        if self.eps is not None and (
            isinstance(self.eps, bool) or not isinstance(self.eps, int | float) or self.eps <= 0
        ):
            raise self._param_error("eps", "a float > 0 or None")
        self._check_int("min_samples", 2)
        self._check_int("max_fit_rows", 10)
        if 0 <= n_rows <= self.min_samples:
            raise DataError(
                f"{type(self).__name__} needs more rows than min_samples={self.min_samples}, "
                f"got {n_rows}",
                code="too_few_rows",
                value=n_rows,
            )

    def _fit(self, X: np.ndarray, rng: np.random.Generator) -> None:
        idx = seeded_sample(len(X), self.max_fit_rows, rng)
        Xs = X[idx]
        self.fit_rows_ = len(Xs)
        self.eps_ = float(self.eps) if self.eps is not None else knee_eps(Xs, self.min_samples)
        db = DBSCAN(eps=self.eps_, min_samples=self.min_samples).fit(Xs)
        labels = _relabel(db.labels_)
        core = db.core_sample_indices_
        self.cores_ = np.ascontiguousarray(Xs[core])
        self.core_labels_ = labels[core]
        self.core_radius_ = np.full(len(core), self.eps_)
        self.rule_ = "core"

    def refit_params(self) -> dict[str, Any]:
        return {"eps": float(self.eps_)}

    def summary(self) -> dict[str, Any]:
        return {
            "eps": self.eps_,
            "eps_rule": "k-distance knee" if self.eps is None else "given",
            "min_samples": self.min_samples,
            "fit_rows": self.fit_rows_,
            "n_cores": len(self.cores_),
        }


class HDBSCANSegmenter(BaseSegmenter):
    """HDBSCAN (:class:`sklearn.cluster.HDBSCAN`) on a bounded seeded sample.

    Parameters
    ----------
    min_cluster_size : int or None
        Smallest segment; ``None`` uses 2 % of the fitted rows (at least 10).
    min_samples : int or None
        Density smoothing (also the neighbour giving a core's radius); ``None`` = 10.
    max_fit_rows : int
        The fit runs on a seeded sample of at most this many rows.
    seed : int
        Sampling seed.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> X, _ = make_blobs(400, centers=3, cluster_std=0.5, random_state=1)
    >>> HDBSCANSegmenter(seed=0).fit(X).n_segments_
    3
    """

    algorithm = "hdbscan"

    def __init__(
        self,
        min_cluster_size: int | None = None,
        min_samples: int | None = None,
        max_fit_rows: int = 5_000,
        seed: int = 0,
    ) -> None:
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.max_fit_rows = max_fit_rows
        self.seed = seed

    def _validate_params(self, n_rows: int) -> None:
        self._check_int("min_cluster_size", 2, allow_none=True)
        self._check_int("min_samples", 1, allow_none=True)
        self._check_int("max_fit_rows", 10)
        need = max(self.min_cluster_size or 2, self.min_samples or 10) + 1
        if 0 <= n_rows < need:
            raise DataError(
                f"{type(self).__name__} needs at least {need} rows, got {n_rows}",
                code="too_few_rows",
                value=n_rows,
            )

    def _fit(self, X: np.ndarray, rng: np.random.Generator) -> None:
        idx = seeded_sample(len(X), self.max_fit_rows, rng)
        Xs = X[idx]
        self.fit_rows_ = len(Xs)
        mcs = self.min_cluster_size or max(10, len(Xs) // 50)
        ms = self.min_samples or 10
        ms = min(ms, len(Xs) - 1)
        self.min_cluster_size_ = int(mcs)
        hd = HDBSCAN(min_cluster_size=mcs, min_samples=ms, copy=True).fit(Xs)
        labels = _relabel(hd.labels_)
        clustered = labels != NOISE
        dist, _ = NearestNeighbors(n_neighbors=ms + 1).fit(Xs).kneighbors(Xs[clustered])
        self.cores_ = np.ascontiguousarray(Xs[clustered])
        self.core_labels_ = labels[clustered]
        self.core_radius_ = np.ascontiguousarray(dist[:, ms])
        self.rule_ = "core"

    def refit_params(self) -> dict[str, Any]:
        return {"min_cluster_size": int(self.min_cluster_size_)}

    def summary(self) -> dict[str, Any]:
        return {
            "min_cluster_size": self.min_cluster_size_,
            "fit_rows": self.fit_rows_,
            "n_cores": len(self.cores_),
        }

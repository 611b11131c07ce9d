"""Agglomerative (Ward or average linkage) segmentation on a bounded seeded sample.

The tree is built once (scipy) on at most ``max_fit_rows`` rows and cut at every k of the
sweep; k is chosen by the same rule as K-Means. Assignment rule for every row and for one
record: the nearest centroid of the sample's segments.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

from chatpersona.exceptions import DataError
from chatpersona.segment.base import BaseSegmenter, seeded_sample
from chatpersona.segment.select import choose_k

__all__ = ["HierarchicalSegmenter"]


class HierarchicalSegmenter(BaseSegmenter):
    """Hierarchical clustering with Ward or average linkage.

    Parameters
    ----------
    k : int or None
        Number of segments; ``None`` sweeps ``k_min..k_max``.
    linkage : str
        ``"ward"`` or ``"average"``.
    k_min, k_max : int
        Sweep range (inclusive).
    max_fit_rows : int
        The tree is built on a seeded sample of at most this many rows.
    seed : int
        Sampling seed.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> X, _ = make_blobs(300, centers=3, random_state=2)
    >>> HierarchicalSegmenter(seed=0).fit(X).n_segments_
    3
    """

    algorithm = "hierarchical"

    def __init__(
        self,
        k: int | None = None,
        linkage: str = "ward",
        k_min: int = 2,
        k_max: int = 12,
        max_fit_rows: int = 4_000,
        seed: int = 0,
    ) -> None:
        self.k = k
        self.linkage = linkage
        self.k_min = k_min
        self.k_max = k_max
        self.max_fit_rows = max_fit_rows
        self.seed = seed

    def _validate_params(self, n_rows: int) -> None:
        self._check_int("k", 1, allow_none=True)
        if self.linkage not in ("ward", "average"):
            raise self._param_error("linkage", "'ward' or 'average'")
        self._check_int("k_min", 2)
        self._check_int("k_max", 2)
        if self.k_max < self.k_min:
            raise self._param_error("k_max", f"an int >= k_min ({self.k_min})")
        self._check_int("max_fit_rows", 10)
        k = self.k if self.k is not None else self.k_min
        need = k if self.k is not None else k + 1
        if 0 <= n_rows < need:
            raise DataError(
                f"{type(self).__name__} needs at least {need} rows for k={k}, got {n_rows} row(s)",
                code="too_few_rows",
                value=n_rows,
            )

    def _fit(self, X: np.ndarray, rng: np.random.Generator) -> None:
        idx = seeded_sample(len(X), self.max_fit_rows, rng)
        Xs = X[idx]
        self.fit_rows_ = len(Xs)
        tree = linkage(Xs, method=self.linkage)

        def cut(k: int) -> np.ndarray:
            return np.asarray(fcluster(tree, t=k, criterion="maxclust")) - 1

        if self.k is None:
            rows = []
            for k in range(self.k_min, min(self.k_max, len(Xs) - 1) + 1):
                labels = cut(k)
                if len(np.unique(labels)) < 2:
                    continue
                rows.append(
                    {
                        "k": k,
                        "silhouette": float(silhouette_score(Xs, labels)),
                        "davies_bouldin": float(davies_bouldin_score(Xs, labels)),
                        "calinski_harabasz": float(calinski_harabasz_score(Xs, labels)),
                    }
                )
            self.scores_ = rows
            self.k_ = choose_k(rows)
        else:
            self.scores_ = []
            self.k_ = int(self.k)
        labels = cut(self.k_)
        present = np.unique(labels)
        self.centers_ = np.ascontiguousarray(
            np.stack([Xs[labels == c].mean(axis=0) for c in present])
        )
        self.rule_ = "centroid"

    def refit_params(self) -> dict[str, Any]:
        return {"k": int(self.k_)}

    def summary(self) -> dict[str, Any]:
        return {
            "k": int(self.k_),
            "linkage": self.linkage,
            "fit_rows": self.fit_rows_,
            "sweep": self.scores_,
        }

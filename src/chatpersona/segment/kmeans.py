"""K-Means with an automatic k: sweep, score on a seeded sample, choose by the k rule.

For large inputs the sweep runs on a seeded subsample (``sweep_rows``). Above
``minibatch_rows`` rows the final fit seeds on a seeded sample of that many rows (k-means++,
``n_init`` restarts) and then runs Lloyd iterations over *all* rows from those centres — the
same algorithm as the Spark engine (driver-sample seeding, MLlib Lloyd over every user), so
both engines converge to the same centres. Assignment: nearest centroid.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score

from chatpersona.exceptions import DataError
from chatpersona.segment.base import BaseSegmenter, seeded_sample
from chatpersona.segment.select import choose_k

__all__ = ["BisectingKMeansSegmenter", "KMeansSegmenter", "sweep_k"]


def _kmeans(k: int, n_rows: int, seed: int, n_init: int, minibatch_rows: int) -> Any:
    if n_rows > minibatch_rows:
        return MiniBatchKMeans(
            n_clusters=k, random_state=seed, n_init=n_init, batch_size=4096, max_no_improvement=20
        )
    return KMeans(n_clusters=k, random_state=seed, n_init=n_init)


def sweep_k(
    X: np.ndarray,
    k_values: range | list[int],
    *,
    seed: int = 0,
    n_init: int = 2,
    silhouette_rows: int | None = 5000,
    minibatch_rows: int = 100_000,
) -> list[dict[str, Any]]:
    """Fit K-Means for every k and score it (silhouette, DB, CH on the same seeded sample;
    ``silhouette_rows=None`` scores on all rows: the exact, quadratic baseline)."""
    rng = np.random.default_rng(seed)
    idx = (
        np.arange(len(X))
        if silhouette_rows is None
        else seeded_sample(len(X), silhouette_rows, rng)
    )
    rows = []
    for k in k_values:
        if k >= len(X):
            break
        km = _kmeans(k, len(X), seed, n_init, minibatch_rows).fit(X)
        labels = km.labels_[idx] if silhouette_rows is None else km.predict(X[idx])
        if len(np.unique(labels)) < 2:
            continue
        rows.append(
            {
                "k": int(k),
                "silhouette": float(silhouette_score(X[idx], labels)),
                "davies_bouldin": float(davies_bouldin_score(X[idx], labels)),
                "calinski_harabasz": float(calinski_harabasz_score(X[idx], labels)),
                "inertia": float(km.inertia_),
            }
        )
    return rows


class KMeansSegmenter(BaseSegmenter):
    """K-Means segmenter; ``k=None`` chooses k in ``k_min..k_max`` (see
    :func:`chatpersona.segment.select.choose_k`).

    Parameters
    ----------
    k : int or None
        Number of segments; ``None`` sweeps ``k_min..k_max``.
    k_min, k_max : int
        Sweep range (inclusive).
    n_init : int
        K-Means restarts per fit.
    silhouette_rows : int
        Size of the seeded sample the sweep scores on.
    sweep_rows : int
        Largest number of rows the sweep fits on (a seeded subsample beyond it).
    minibatch_rows : int
        Above this many rows the final fit seeds on a sample of this size and refines over
        all rows (Lloyd), as on Spark.
    seed : int
        The only source of randomness.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> X, _ = make_blobs(300, centers=4, random_state=0)
    >>> KMeansSegmenter(seed=0).fit(X).n_segments_
    4
    """

    algorithm = "kmeans"

    def __init__(
        self,
        k: int | None = None,
        k_min: int = 2,
        k_max: int = 12,
        n_init: int = 4,
        silhouette_rows: int = 2000,
        sweep_rows: int = 50_000,
        minibatch_rows: int = 100_000,
        seed: int = 0,
    ) -> None:
        self.k = k
        self.k_min = k_min
        self.k_max = k_max
        self.n_init = n_init
        self.silhouette_rows = silhouette_rows
        self.sweep_rows = sweep_rows
        self.minibatch_rows = minibatch_rows
        self.seed = seed

    def _validate_params(self, n_rows: int) -> None:
        self._check_int("k", 1, allow_none=True)
        self._check_int("k_min", 2)
        self._check_int("k_max", 2)
        if self.k_max < self.k_min:
            raise self._param_error("k_max", f"an int >= k_min ({self.k_min})")
        self._check_int("n_init", 1)
        self._check_int("silhouette_rows", 10)
        self._check_int("sweep_rows", 10)
        self._check_int("minibatch_rows", 10)
        if n_rows >= 0:
            k = self.k if self.k is not None else self.k_min
            need = k if self.k is not None else k + 1
            if n_rows < need:
                raise DataError(
                    f"{type(self).__name__} needs at least {need} rows for k={k}, "
                    f"got {n_rows} row(s)",
                    code="too_few_rows",
                    value=n_rows,
                )

    def _fit(self, X: np.ndarray, rng: np.random.Generator) -> None:
        self._choose_k(X, rng)
        seed = int(self.seed)
        if len(X) > self.minibatch_rows:
            # seed on a sample, refine over every row (what the Spark engine does)
            idx = seeded_sample(len(X), self.minibatch_rows, rng)
            init = KMeans(n_clusters=self.k_, random_state=seed, n_init=self.n_init).fit(X[idx])
            km = KMeans(
                n_clusters=self.k_, init=init.cluster_centers_, n_init=1, max_iter=100, tol=1e-6
            ).fit(X)
        else:
            km = KMeans(n_clusters=self.k_, random_state=seed, n_init=self.n_init).fit(X)
        self.centers_ = np.ascontiguousarray(km.cluster_centers_)
        self.inertia_ = float(km.inertia_)
        self.minibatch_ = False
        self.sampled_seed_ = len(X) > self.minibatch_rows
        self.rule_ = "centroid"

    def _choose_k(self, X: np.ndarray, rng: np.random.Generator) -> None:
        """``k_`` and ``scores_``: the given k, or the sweep's choice."""
        seed = int(self.seed)
        if self.k is None:
            idx = seeded_sample(len(X), self.sweep_rows, rng)
            Xs = X[idx]
            k_max = min(self.k_max, len(Xs) - 1)
            self.scores_ = sweep_k(
                Xs,
                range(self.k_min, k_max + 1),
                seed=seed,
                n_init=self.n_init,
                silhouette_rows=self.silhouette_rows,
                minibatch_rows=self.minibatch_rows,
            )
            self.k_ = choose_k(self.scores_)
        else:
            self.scores_ = []
            self.k_ = int(self.k)

    def refit_params(self) -> dict[str, Any]:
        return {"k": int(self.k_)}

    def summary(self) -> dict[str, Any]:
        return {
            "k": int(self.k_),
            "sweep": self.scores_,
            "minibatch": bool(self.minibatch_),
            "seeded_on_sample": bool(getattr(self, "sampled_seed_", False)),
            "k_rule": "silhouette within 0.02 of the best, then best mean rank of DB and CH, then silhouette",
        }


class BisectingKMeansSegmenter(KMeansSegmenter):
    """Bisecting K-Means (divisive: split the cluster with the largest inertia in two, until
    k leaves); k chosen as for :class:`KMeansSegmenter` when not given. Assignment: nearest
    leaf centroid (the model's ``centroid`` rule, the same on Spark).

    Cheaper than K-Means for large k and, on Spark, the MLlib algorithm of choice for very
    large inputs; the leaves of both engines' trees become the model's centres.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> X, _ = make_blobs(300, centers=4, random_state=0)
    >>> BisectingKMeansSegmenter(k=4, seed=0).fit(X).n_segments_
    4
    """

    algorithm = "bisecting"

    def _fit(self, X: np.ndarray, rng: np.random.Generator) -> None:
        from sklearn.cluster import BisectingKMeans

        self._choose_k(X, rng)  # the K-Means sweep when k is not given
        k = self.k_
        bkm = BisectingKMeans(
            n_clusters=k,
            random_state=int(self.seed),
            n_init=self.n_init,
            bisecting_strategy="biggest_inertia",
        ).fit(X)
        self.centers_ = np.ascontiguousarray(bkm.cluster_centers_)
        self.inertia_ = float(bkm.inertia_)
        self.minibatch_ = False
        self.rule_ = "centroid"

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "strategy": "biggest_inertia"}

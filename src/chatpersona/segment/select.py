"""Choosing with evidence: internal scores on a seeded sample, the k rule, the algorithm rule.

**k rule** (:func:`choose_k`): every candidate k gets the silhouette (on a seeded sample),
Davies-Bouldin (lower is better) and Calinski-Harabasz (higher is better). Keep the ks
whose silhouette is within ``tol`` (default 0.02) of the best; among them take the best
mean rank of Davies-Bouldin and Calinski-Harabasz; ties go to the higher silhouette,
then to the smaller k.

**algorithm rule** (:func:`choose_algorithm`): a candidate is eligible when it has at
least 2 segments, at most 25 % noise and a stability (mean ARI of seeded bootstrap
refits) of at least 0.75. Among eligible candidates, the highest *adjusted silhouette*
(silhouette of the segmented points x (1 - noise share)) wins; within 0.02 of it, the
more stable one, then the simpler one to deploy (kmeans, hierarchical, hdbscan, dbscan).
With no eligible candidate, the most stable one is chosen.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    adjusted_rand_score,
    calinski_harabasz_score,
    davies_bouldin_score,
    silhouette_score,
)

from chatpersona.segment.base import NOISE, BaseSegmenter, seeded_sample, small_threads

__all__ = [
    "PREFERENCE",
    "choose_algorithm",
    "choose_k",
    "compare_segmenters",
    "internal_scores",
    "stability",
]

PREFERENCE = ("kmeans", "hierarchical", "hdbscan", "dbscan")


def internal_scores(X: np.ndarray, labels: np.ndarray) -> dict[str, float | None]:
    """Silhouette, Davies-Bouldin and Calinski-Harabasz on the non-noise rows
    (``None`` when fewer than 2 segments remain)."""
    keep = labels != NOISE
    Xs, ls = X[keep], labels[keep]
    n_labels = len(np.unique(ls))
    if n_labels < 2 or n_labels >= len(ls):
        return {"silhouette": None, "davies_bouldin": None, "calinski_harabasz": None}
    return {
        "silhouette": float(silhouette_score(Xs, ls)),
        "davies_bouldin": float(davies_bouldin_score(Xs, ls)),
        "calinski_harabasz": float(calinski_harabasz_score(Xs, ls)),
    }


def _ranks(values: Sequence[float], higher_is_better: bool) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    order = np.argsort(-v if higher_is_better else v, kind="stable")
    ranks = np.empty(len(v))
    ranks[order] = np.arange(1, len(v) + 1)
    return ranks


def choose_k(scores: Sequence[Mapping[str, Any]], tol: float = 0.02) -> int:
    """The k picked from a sweep (rows with k, silhouette, davies_bouldin,
    calinski_harabasz) by the rule in the module docstring.

    Examples
    --------
    >>> choose_k([
    ...     {"k": 2, "silhouette": 0.50, "davies_bouldin": 0.9, "calinski_harabasz": 100},
    ...     {"k": 3, "silhouette": 0.71, "davies_bouldin": 0.5, "calinski_harabasz": 300},
    ...     {"k": 4, "silhouette": 0.70, "davies_bouldin": 0.6, "calinski_harabasz": 250},
    ... ])
    3
    """
    rows = [r for r in scores if r.get("silhouette") is not None]
    if not rows:
        raise ValueError("no k could be scored")
    best = max(r["silhouette"] for r in rows)
    near = [r for r in rows if r["silhouette"] >= best - tol]
    db = _ranks([r["davies_bouldin"] for r in near], higher_is_better=False)
    ch = _ranks([r["calinski_harabasz"] for r in near], higher_is_better=True)
    mean_rank = (db + ch) / 2.0
    order = sorted(
        range(len(near)), key=lambda i: (mean_rank[i], -near[i]["silhouette"], near[i]["k"])
    )
    return int(near[order[0]]["k"])


def stability(
    segmenter: BaseSegmenter,
    X: np.ndarray,
    *,
    n_bootstrap: int = 3,
    sample_size: int = 3000,
    seed: int = 0,
) -> float:
    """Mean ARI between the fitted segmenter's labels and those of seeded bootstrap
    refits (with the automatically chosen k / eps pinned), on one seeded sample of X."""
    rng = np.random.default_rng(seed)
    idx = seeded_sample(len(X), sample_size, rng)
    Xe = X[idx]
    ref = segmenter.predict(Xe)
    aris = []
    for b in range(n_bootstrap):
        boot = rng.choice(len(Xe), size=len(Xe), replace=True)
        # duplicated rows would make density estimates lie: keep unique bootstrap rows
        boot = np.unique(boot)
        params = {**segmenter.get_params(), **segmenter.refit_params(), "seed": seed + b + 1}
        model = type(segmenter)(**params)
        model.fit(Xe[boot])
        aris.append(adjusted_rand_score(ref, model.predict(Xe)))
    return float(np.mean(aris))


def compare_segmenters(
    X: np.ndarray,
    candidates: Mapping[str, BaseSegmenter],
    *,
    seed: int = 0,
    sample_size: int = 3000,
    n_bootstrap: int = 3,
    progress: Any = None,
) -> tuple[list[dict[str, Any]], dict[str, BaseSegmenter]]:
    """Fit every candidate on X and score it; returns (table rows, fitted segmenters).

    Scores are computed on the same seeded sample of ``sample_size`` rows for all.
    """
    rng = np.random.default_rng(seed)
    idx = seeded_sample(len(X), sample_size, rng)
    rows: list[dict[str, Any]] = []
    fitted: dict[str, BaseSegmenter] = {}
    for name, seg in candidates.items():
        t0 = time.perf_counter()
        seg.fit(X)
        fit_time = time.perf_counter() - t0
        labels = seg.predict(X[idx])
        with small_threads(len(idx)):
            scores = internal_scores(X[idx], labels)
        noise = float(np.mean(labels == NOISE))
        try:
            stab = stability(seg, X, n_bootstrap=n_bootstrap, sample_size=sample_size, seed=seed)
        except Exception:  # a refit that finds no structure is simply unstable
            stab = 0.0
        rows.append(
            {
                "algorithm": name,
                "n_segments": int(seg.n_segments_),
                **scores,
                "noise_share": noise,
                "stability": stab,
                "fit_time_s": fit_time,
            }
        )
        fitted[name] = seg
        if progress is not None:
            progress(name)
    return rows, fitted


def choose_algorithm(rows: Sequence[Mapping[str, Any]], tol: float = 0.02) -> str:
    """The algorithm picked from :func:`compare_segmenters` rows (module docstring rule)."""

    def adjusted(r: Mapping[str, Any]) -> float:
        s = r.get("silhouette")
        return -1.0 if s is None else float(s) * (1.0 - float(r["noise_share"]))

    def pref(r: Mapping[str, Any]) -> int:
        name = str(r["algorithm"])
        return PREFERENCE.index(name) if name in PREFERENCE else len(PREFERENCE)

    eligible = [
        r
        for r in rows
        if r["n_segments"] >= 2
        and r["noise_share"] <= 0.25
        and r["stability"] >= 0.75
        and r.get("silhouette") is not None
    ]
    if not eligible:
        return str(max(rows, key=lambda r: (r["stability"], -pref(r)))["algorithm"])
    best = max(adjusted(r) for r in eligible)
    near = [r for r in eligible if adjusted(r) >= best - tol]
    near.sort(key=lambda r: (-round(float(r["stability"]), 2), pref(r)))
    return str(near[0]["algorithm"])

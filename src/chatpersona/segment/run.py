"""The whole segmentation run: features -> scaling + PCA -> segmenter(s) -> model + reports.

This is what ``chatpersona segment`` calls; it is importable for notebooks and tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from chatpersona.exceptions import DataError, ParameterError
from chatpersona.features.batch import Preprocessor
from chatpersona.features.spec import FeatureSpec, FittedFeatureSpec, _as_float_bool
from chatpersona.segment.base import NOISE, BaseSegmenter, seeded_sample, small_threads
from chatpersona.segment.density import DBSCANSegmenter, HDBSCANSegmenter
from chatpersona.segment.describe import describe_segments
from chatpersona.segment.hierarchical import HierarchicalSegmenter
from chatpersona.segment.kmeans import BisectingKMeansSegmenter, KMeansSegmenter
from chatpersona.segment.model import SegmentModel
from chatpersona.segment.report import write_reports
from chatpersona.segment.select import (
    __doc__ as SELECT_DOC,
)
from chatpersona.segment.select import (
    choose_algorithm,
    compare_segmenters,
    internal_scores,
)

__all__ = [
    "ALGORITHMS",
    "AUTO_CANDIDATES",
    "SEGMENTERS",
    "SegmentationResult",
    "make_segmenter",
    "run_segmentation",
]

SEGMENTERS: dict[str, type[BaseSegmenter]] = {
    "kmeans": KMeansSegmenter,
    "hierarchical": HierarchicalSegmenter,
    "hdbscan": HDBSCANSegmenter,
    "dbscan": DBSCANSegmenter,
    "bisecting": BisectingKMeansSegmenter,
}
#: the algorithms ``auto`` fits and compares (bisecting K-Means is asked for by name: on one
#: machine it finds what K-Means finds, a little less well; it is there for Spark's scale)
AUTO_CANDIDATES = ("kmeans", "hierarchical", "hdbscan", "dbscan")
ALGORITHMS = ("auto", *SEGMENTERS)
CHOICE_RULE = (
    "Chosen by: at least 2 segments, noise share <= 25 %, stability (mean ARI of 3 seeded "
    "bootstrap refits) >= 0.75; then the highest silhouette x (1 - noise share); within 0.02 "
    "the more stable, then the simpler to deploy (kmeans, hierarchical, hdbscan, dbscan)."
)


def make_segmenter(algo: str, *, k: int | tuple[int, int] | None, seed: int) -> BaseSegmenter:
    """A segmenter of the named algorithm with the k choice applied where it means something."""
    if algo not in SEGMENTERS:
        raise ParameterError("segment", "algo", f"one of {list(ALGORITHMS)}", algo)
    if algo in ("kmeans", "hierarchical", "bisecting"):
        if isinstance(k, tuple):
            return SEGMENTERS[algo](k_min=k[0], k_max=k[1], seed=seed)  # type: ignore[call-arg]
        return SEGMENTERS[algo](k=k, seed=seed)  # type: ignore[call-arg]
    return SEGMENTERS[algo](seed=seed)  # type: ignore[call-arg]


@dataclass
class SegmentationResult:
    """Everything a run produced; :meth:`write` lays it out as a model directory."""

    model: SegmentModel
    assignments: pl.DataFrame
    report: dict[str, Any]
    points: np.ndarray
    point_segments: list[str]
    fitted_segmenters: dict[str, BaseSegmenter] = field(default_factory=dict)
    features: pl.DataFrame | None = None

    def write(self, directory: str | Path) -> Path:
        """model.json + arrays.npz, assignments.csv, report.json, report.html."""
        d = self.model.save(directory)
        self.assignments.write_csv(d / "assignments.csv")
        write_reports(d, self.report, self.points, self.point_segments)
        return d


def _outcome_arrays(
    users: pl.DataFrame, raw: pl.DataFrame, outcomes: Sequence[str]
) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name in outcomes:
        if name not in users.columns:
            raise DataError("an outcome column is not in the input", column=name)
        s = users[name]
        if s.dtype.is_numeric() or s.dtype == pl.Boolean:
            vals = s.cast(pl.Float64).to_numpy()
        else:
            vals = np.array(
                [np.nan if (b := _as_float_bool(v)) is None else b for v in s.to_list()],
                dtype=float,
            )
        out[name] = vals
    for name in ("csat_mean", "nps_last"):
        if name in raw.columns:
            out[name] = raw[name].cast(pl.Float64).fill_null(np.nan).to_numpy()
    return out


def run_segmentation(
    users: pl.DataFrame,
    *,
    events: pl.DataFrame | None = None,
    spec: FeatureSpec | None = None,
    id_column: str = "user_id",
    algo: str = "auto",
    k: int | tuple[int, int] | None = None,
    pca: float | int | str | None = "spec",
    seed: int = 0,
    as_of: datetime | None = None,
    outcomes: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> SegmentationResult:
    """Segment a clean user table (plus, optionally, its event log).

    Parameters
    ----------
    users : clean user table (one row per user).
    events : event log (contract shape) to build behavioral/contextual/feedback features.
    spec : feature spec; ``None`` infers one (every column but the id, encoded by kind).
    algo : ``auto`` (compare all and choose) or one algorithm name.
    k : a fixed k, a ``(k_min, k_max)`` range, or ``None`` (2..12).
    pca : ``"spec"`` (use the spec's), ``None``/0 (no PCA), an int or a variance share.
    outcomes : outcome columns reported per segment (default: columns named like churn).

    Examples
    --------
    >>> import polars as pl
    >>> from sklearn.datasets import make_blobs
    >>> X, _ = make_blobs(300, centers=3, n_features=3, random_state=0)
    >>> users = pl.DataFrame({"user_id": [str(i) for i in range(300)],
    ...     "a": X[:, 0], "b": X[:, 1], "c": X[:, 2]})
    >>> result = run_segmentation(users, algo="kmeans", seed=0)
    >>> result.report["n_segments"]
    3
    """
    say = progress or (lambda _msg: None)
    if algo not in ALGORITHMS:
        raise ParameterError("segment", "algo", f"one of {list(ALGORITHMS)}", algo)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ParameterError("segment", "seed", "an int >= 0", seed)
    excluded: dict[str, str] = {}
    id_col = spec.id_column if spec is not None else id_column
    if id_col in users.columns:
        dup = users.filter(pl.col(id_col).is_duplicated())
        if len(dup):
            raise DataError(
                f"{len(dup)} rows share a user id; clean the table first (e.g. with "
                "--clean: the latest updated_at wins)",
                code="duplicate_id",
                column=id_col,
                value=dup[id_col][0],
            )
    if spec is None:
        spec, excluded = FeatureSpec.infer(
            users, id_column=id_column, events=events is not None, outcomes=outcomes
        )
    elif outcomes is not None:
        spec = FeatureSpec(**{**spec.__dict__, "outcomes": tuple(outcomes)})
    pca_value = spec.pca if pca == "spec" else (None if pca in (None, 0) else pca)
    say("features")
    fitted: FittedFeatureSpec = spec.fit(users, events, as_of)
    as_of_used = fitted.as_of_
    feats = fitted.transform(users, events, as_of_used)
    names = fitted.feature_names_
    X = feats.select(names).to_numpy().astype(np.float64)
    pre = Preprocessor(spec.scaling, pca_value).fit(X, names)  # type: ignore[arg-type]
    Z = pre.transform(X)
    say("segmenters")
    rows: list[dict[str, Any]] = []
    fitted_segs: dict[str, BaseSegmenter] = {}
    if algo == "auto":
        candidates = {name: make_segmenter(name, k=k, seed=seed) for name in AUTO_CANDIDATES}
        rows, fitted_segs = compare_segmenters(Z, candidates, seed=seed, progress=say)
        chosen = choose_algorithm(rows)
        seg = fitted_segs[chosen]
        metrics = next(r for r in rows if r["algorithm"] == chosen)
    else:
        chosen = algo
        seg = make_segmenter(algo, k=k, seed=seed)
        t0 = time.perf_counter()
        seg.fit(Z)
        fit_time = time.perf_counter() - t0
        idx = seeded_sample(len(Z), 3000, np.random.default_rng(seed))
        labels_s = seg.predict(Z[idx])
        with small_threads(len(idx)):
            metrics = {
                "algorithm": algo,
                "n_segments": seg.n_segments_,
                **internal_scores(Z[idx], labels_s),
                "noise_share": float(np.mean(labels_s == NOISE)),
                "fit_time_s": fit_time,
            }
        fitted_segs = {algo: seg}
    say("describe")
    model = SegmentModel.from_fitted(seg, pre, names, feature_spec=fitted)
    labels = model.predict_labels(X)
    raw = fitted._raw_frame(users, events, as_of_used)
    outcome_arrays = _outcome_arrays(users, raw, spec.outcomes)
    segments = describe_segments(X, names, labels, model.label_ids, outcomes=outcome_arrays)
    model.segment_names.update({s["id"]: s["name"] for s in segments})
    ids = model._ids
    seg_of_row = [ids[lab] for lab in labels.tolist()]
    assignments = pl.DataFrame(
        {id_column: feats[id_column].to_list(), "segment": seg_of_row},
        schema={id_column: pl.String, "segment": pl.String},
    )
    # 2-D map: the first two principal axes of the scaled features
    pre2 = Preprocessor(spec.scaling, min(2, len(names))).fit(X, names)
    pidx = seeded_sample(len(X), 3000, np.random.default_rng(seed))
    points = pre2.transform(X[pidx])
    report: dict[str, Any] = {
        "model": {"id": model.model_id, "version": model.version, "created_at": model.created_at},
        "algorithm": chosen,
        "k": int(seg.n_segments_),
        "n_segments": int(seg.n_segments_),
        "n_users": len(X),
        "as_of": as_of_used.isoformat(),
        "seed": seed,
        "features": names,
        "excluded_columns": excluded,
        "dropped_features": fitted.dropped_,
        "outcomes": list(spec.outcomes),
        "pca": {
            "target": pca_value,
            "n_components": int(pre.n_components_),
            "explained_variance_ratio": [float(v) for v in pre.explained_variance_ratio_],
        },
        "metrics": metrics,
        "segmenter": seg.summary(),
        "comparison": rows,
        "choice_rule": CHOICE_RULE if algo == "auto" else f"algorithm fixed by the caller: {algo}",
        "k_rule": (SELECT_DOC or "").split("**algorithm rule**")[0].strip(),
        "segments": segments,
    }
    model.info.update({"algorithm": chosen, "n_users": len(X), "metrics": metrics})
    return SegmentationResult(
        model=model,
        assignments=assignments,
        report=report,
        points=points,
        point_segments=[seg_of_row[i] for i in pidx.tolist()],
        fitted_segmenters=fitted_segs,
        features=feats,
    )

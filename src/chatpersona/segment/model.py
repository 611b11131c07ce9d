"""SegmentModel: the deployable artifact (preprocessing + assignment rule + segment names).

Saved as ``model.json`` (metadata, feature names, segment ids and names, the fitted feature
spec when there is one) plus ``arrays.npz`` (scaling, PCA axes, centroids or cores).
:meth:`SegmentModel.assign_one` applies it to one feature dict with plain numpy on small
vectors (tens of microseconds); :meth:`SegmentModel.predict` applies the same arithmetic to
a matrix, and the parity tests hold the two equal.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from chatpersona.exceptions import DataError, NotFoundError
from chatpersona.features.batch import Preprocessor
from chatpersona.features.spec import FittedFeatureSpec
from chatpersona.segment.base import NOISE, UNSEGMENTED, check_matrix, rule_predict

__all__ = ["MODEL_FORMAT", "Assignment", "SegmentModel"]

MODEL_FORMAT = 1


@dataclass(frozen=True)
class Assignment:
    """The segment of one user under one model version."""

    segment_id: str
    segment_name: str
    model_version: str


class SegmentModel:
    """A fitted segmentation ready to assign users.

    Build one with :meth:`from_fitted` (or the ``chatpersona segment`` command), persist it
    with :meth:`save`, read it back with :meth:`load`.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn.datasets import make_blobs
    >>> from chatpersona.segment import KMeansSegmenter
    >>> X, _ = make_blobs(200, centers=3, n_features=4, random_state=0)
    >>> names = ["a", "b", "c", "d"]
    >>> pre = Preprocessor(pca=None).fit(X, names)
    >>> seg = KMeansSegmenter(k=3, seed=0).fit(pre.transform(X))
    >>> model = SegmentModel.from_fitted(seg, pre, names)
    >>> d = tempfile.mkdtemp()
    >>> _ = model.save(d)
    >>> again = SegmentModel.load(d)
    >>> again.assign_one(dict(zip(names, X[0]))).segment_id == model.predict(X[:1])[0]
    True
    """

    def __init__(
        self,
        *,
        model_id: str,
        created_at: str,
        algorithm: str,
        params: Mapping[str, Any],
        feature_names: Sequence[str],
        preprocessor: Preprocessor,
        rule: str,
        arrays: Mapping[str, np.ndarray],
        label_ids: Sequence[str],
        segment_names: Mapping[str, str],
        feature_spec: FittedFeatureSpec | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> None:
        self.model_id = model_id
        self.created_at = created_at
        self.algorithm = algorithm
        self.params = dict(params)
        self.feature_names = list(feature_names)
        self.preprocessor = preprocessor
        self.rule = rule
        self.arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        self.label_ids = list(label_ids)
        self.segment_names = dict(segment_names)
        self.segment_names.setdefault(UNSEGMENTED, UNSEGMENTED)
        self.feature_spec = feature_spec
        self.info = dict(info or {})
        self._prepare()

    @property
    def version(self) -> str:
        """Sortable version string: creation time + short id (computed once: assign_one
        stamps it on every assignment)."""
        key = (self.created_at, self.model_id)
        cached = self.__dict__.get("_version_cache")
        if cached is None or cached[0] != key:
            ts = datetime.strptime(self.created_at, "%Y-%m-%dT%H:%M:%S.%fZ")
            cached = (key, f"{ts:%Y%m%dT%H%M%S}Z-{self.model_id[:8]}")
            self.__dict__["_version_cache"] = cached
        return cached[1]

    @property
    def segment_ids(self) -> list[str]:
        """Segment ids (``s0`` is the largest), without ``unsegmented``."""
        return list(self.label_ids)

    def _prepare(self) -> None:
        # Everything assign_one needs, precomputed once: one fused affine map from the raw
        # feature vector to PCA coordinates, plus the rule's arrays as Python-friendly views.
        pre = self.preprocessor
        comp = pre.components_  # (p, F)
        self._W = np.ascontiguousarray((comp / pre.scale_).T)  # (F, p)
        self._b = -(((pre.center_ / pre.scale_) + pre.mean_) @ comp.T)  # (p,)
        self._index = {n: i for i, n in enumerate(self.feature_names)}
        if self.rule == "centroid":
            c = self.arrays["centers"]
            self._centers_T = np.ascontiguousarray(c.T)
            self._cc = (c * c).sum(axis=1)
        else:
            self._cores = self.arrays["cores"]
            self._core_labels = self.arrays["core_labels"].astype(np.int64)
            self._core_radius = self.arrays["core_radius"]
            self._core_sq = (self._cores * self._cores).sum(axis=1)
        self._ids = [*self.label_ids, UNSEGMENTED]  # index -1 -> unsegmented

    # -- construction --------------------------------------------------------------------
    @classmethod
    def from_fitted(
        cls,
        segmenter: Any,
        preprocessor: Preprocessor,
        feature_names: Sequence[str],
        *,
        segment_names: Mapping[str, str] | None = None,
        label_order: Sequence[int] | None = None,
        feature_spec: FittedFeatureSpec | None = None,
        info: Mapping[str, Any] | None = None,
        created_at: datetime | None = None,
    ) -> SegmentModel:
        """Wrap a fitted segmenter and preprocessor.

        ``label_order`` lists the segmenter's labels from the first segment id (``s0``) on;
        by default labels are ordered by size in ``segmenter.labels_`` (largest first).
        """
        n = int(segmenter.n_segments_) if segmenter.rule_ == "core" else len(segmenter.centers_)
        if label_order is None:
            counts = np.bincount(segmenter.labels_[segmenter.labels_ != NOISE], minlength=n)
            label_order = sorted(range(n), key=lambda lab: (-counts[lab], lab))
        label_ids = [""] * n
        for rank, lab in enumerate(label_order):
            label_ids[lab] = f"s{rank}"
        created = (created_at or datetime.now(UTC)).astimezone(UTC)
        return cls(
            model_id=uuid.uuid4().hex,
            created_at=created.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            algorithm=segmenter.algorithm,
            params=segmenter.get_params(),
            feature_names=feature_names,
            preprocessor=preprocessor,
            rule=segmenter.rule_,
            arrays=segmenter.rule_arrays(),
            label_ids=label_ids,
            segment_names=dict(segment_names or {i: i for i in label_ids}),
            feature_spec=feature_spec,
            info=info,
        )

    # -- assignment ----------------------------------------------------------------------
    def project(self, X: Any) -> np.ndarray:
        """Rows of raw feature values (columns = :attr:`feature_names`) in PCA space."""
        if hasattr(X, "columns"):
            missing = [n for n in self.feature_names if n not in X.columns]
            if missing:
                raise DataError("a model feature is missing from the input", column=missing[0])
            X = X[self.feature_names] if hasattr(X, "dtypes") else X.select(self.feature_names)
        arr, _ = check_matrix_lenient(X, self.feature_names)
        return np.asarray(arr @ self._W + self._b)

    def predict_labels(self, X: Any) -> np.ndarray:
        """Integer label per row (``-1`` = unsegmented)."""
        P = self.project(X)
        if self.rule == "centroid":
            return rule_predict(P, "centroid", centers=self.arrays["centers"])
        return rule_predict(
            P,
            "core",
            cores=self._cores,
            core_labels=self._core_labels,
            core_radius=self._core_radius,
        )

    def predict(self, X: Any) -> np.ndarray:
        """Segment id per row (``s0`` ... or ``unsegmented``)."""
        ids = np.asarray(self._ids, dtype=object)
        return np.asarray(ids[self.predict_labels(X)])

    def assign_one(self, features: Mapping[str, float]) -> Assignment:
        """The segment of one user from its feature dict (names as :attr:`feature_names`).

        Raises :class:`DataError` naming the first missing feature.
        """
        try:
            x = np.array([features[n] for n in self.feature_names], dtype=np.float64)
        except KeyError as exc:
            raise DataError(
                "a model feature is missing from the record", column=str(exc.args[0])
            ) from None
        p = x @ self._W + self._b
        if self.rule == "centroid":
            lab = int(np.argmin(self._cc - 2.0 * (p @ self._centers_T)))
        else:
            d2 = self._core_sq - 2.0 * (self._cores @ p) + float(p @ p)
            i = int(np.argmin(d2))
            dist = float(np.sqrt(max(d2[i], 0.0)))
            lab = int(self._core_labels[i]) if dist <= self._core_radius[i] else NOISE
        sid = self._ids[lab]
        return Assignment(sid, self.segment_names.get(sid, sid), self.version)

    # -- persistence ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON part of the artifact."""
        return {
            "format": MODEL_FORMAT,
            "id": self.model_id,
            "version": self.version,
            "created_at": self.created_at,
            "algorithm": self.algorithm,
            "params": {k: _plain(v) for k, v in self.params.items()},
            "rule": self.rule,
            "feature_names": self.feature_names,
            "preprocessing": {
                "scaling": self.preprocessor.scaling,
                "pca": self.preprocessor.pca,
                "n_components": int(self.preprocessor.n_components_),
                "explained_variance_ratio": [
                    float(v) for v in self.preprocessor.explained_variance_ratio_
                ],
            },
            "label_ids": self.label_ids,
            "segment_names": self.segment_names,
            "feature_spec": None if self.feature_spec is None else self.feature_spec.to_dict(),
            "info": _plain(self.info),
        }

    def save(self, directory: str | Path) -> Path:
        """Write ``model.json`` and ``arrays.npz`` into ``directory`` (created if needed)."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        arrays = {
            **self.preprocessor.to_arrays(),
            **{f"rule_{k}": v for k, v in self.arrays.items()},
        }
        np.savez(d / "arrays.npz", **arrays)  # type: ignore[arg-type]
        (d / "model.json").write_text(json.dumps(self.to_dict(), indent=2), encoding="utf-8")
        return d

    @classmethod
    def load(cls, directory: str | Path) -> SegmentModel:
        """Read a model written by :meth:`save`."""
        d = Path(directory)
        if not (d / "model.json").is_file():
            raise NotFoundError(f"no segment model in {d} (model.json is missing)", file=str(d))
        meta = json.loads((d / "model.json").read_text(encoding="utf-8"))
        with np.load(d / "arrays.npz") as npz:
            arrays = {k: npz[k] for k in npz.files}
        pre = Preprocessor.from_arrays(arrays, meta["feature_names"], meta["preprocessing"])
        spec = meta.get("feature_spec")
        return cls(
            model_id=meta["id"],
            created_at=meta["created_at"],
            algorithm=meta["algorithm"],
            params=meta["params"],
            feature_names=meta["feature_names"],
            preprocessor=pre,
            rule=meta["rule"],
            arrays={k[5:]: v for k, v in arrays.items() if k.startswith("rule_")},
            label_ids=meta["label_ids"],
            segment_names=meta["segment_names"],
            feature_spec=None if spec is None else FittedFeatureSpec.from_dict(spec),
            info=meta.get("info"),
        )


def check_matrix_lenient(X: Any, names: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Like :func:`check_matrix` for prediction: constant columns are fine, NaN is not."""
    arr = np.asarray(X.to_numpy() if hasattr(X, "to_numpy") else X, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(names):
        raise DataError(
            f"expected a matrix with {len(names)} feature columns, got shape {arr.shape}",
            code="bad_shape",
        )
    if not np.isfinite(arr).all():
        check_matrix(arr, "SegmentModel", min_rows=1, feature_names=names)
    return arr, list(names)


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v

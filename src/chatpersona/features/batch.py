"""Event features for every user at once (Polars), and the fitted scaling + PCA step.

:func:`event_features_frame` is the batch twin of
:func:`chatpersona.features.online.event_features`: the same definitions, vectorized.
:class:`Preprocessor` scales the encoded features (standard or robust) and projects them
with PCA (a component count or a variance target); its arrays travel inside the segment
model so that one record is projected exactly like the batch matrix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from chatpersona.exceptions import DataError, InputError, NotFittedError, ParameterError
from chatpersona.features.online import (
    CATEGORIES,
    CHANNELS,
    DEVICES,
    EVENT_FEATURES,
    REPEAT_LOOKBACK_DAYS,
    TIMES_OF_DAY,
    WINDOWS,
    parse_ts,
)

__all__ = ["EVENT_COLUMNS", "Preprocessor", "event_features_frame", "flatten_events", "read_events"]

EVENT_COLUMNS: dict[str, Any] = {
    "event_id": pl.String,
    "user_id": pl.String,
    "type": pl.String,
    "ts": pl.Datetime("us", "UTC"),
    "channel": pl.String,
    "device": pl.String,
    "category": pl.String,
    "resolved": pl.Boolean,
    "handle_time_s": pl.Float64,
    "csat": pl.Float64,
    "nps": pl.Float64,
}
_PAYLOAD_FIELDS = ("category", "resolved", "handle_time_s", "csat", "nps")


def flatten_events(events: pl.DataFrame | Iterable[Mapping[str, Any]]) -> pl.DataFrame:
    """Events (contract shape, ``payload`` nested or already flat) as the flat frame of
    :data:`EVENT_COLUMNS` with ``ts`` parsed to UTC.

    Examples
    --------
    >>> df = flatten_events([{"event_id": "e1", "user_id": "u1", "type": "feedback",
    ...     "ts": "2026-05-03T14:22:05Z", "channel": "web", "device": "mobile",
    ...     "payload": {"chat_id": "c1", "csat": 4}}])
    >>> df["csat"].to_list()
    [4.0]
    """
    if not isinstance(events, pl.DataFrame):
        rows = []
        for ev in events:
            payload = ev.get("payload") or {}
            row = {k: ev.get(k) for k in ("event_id", "user_id", "type", "ts", "channel", "device")}
            for f in _PAYLOAD_FIELDS:
                row[f] = payload.get(f, ev.get(f))
            if isinstance(row["ts"], datetime):
                row["ts"] = parse_ts(row["ts"]).isoformat()
            rows.append(row)
        schema = {k: (pl.String if k == "ts" else v) for k, v in EVENT_COLUMNS.items()}
        events = pl.DataFrame(rows, schema=schema, strict=False)
    df = events
    if "payload" in df.columns and isinstance(df.schema["payload"], pl.Struct):
        present = {f.name for f in df.schema["payload"].fields}
        df = df.with_columns(
            pl.col("payload").struct.field(f).alias(f)
            for f in _PAYLOAD_FIELDS
            if f in present and f not in df.columns
        ).drop("payload")
    exprs = []
    for name, dtype in EVENT_COLUMNS.items():
        if name not in df.columns:
            if name in ("user_id", "type", "ts"):
                raise InputError("the event log has no column", column=name)
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
        elif name == "ts":
            if df.schema["ts"] == pl.String:
                exprs.append(
                    pl.col("ts")
                    .str.replace(r"Z$", "+00:00")
                    .str.to_datetime(time_unit="us", time_zone="UTC", strict=True)
                )
            else:
                exprs.append(pl.col("ts").cast(dtype))
        else:
            exprs.append(pl.col(name).cast(dtype, strict=False))
    return df.select(exprs)


def read_events(path: str | Path) -> pl.DataFrame:
    """Read an event log (JSON lines, Parquet or CSV) into the flat event frame."""
    p = Path(path)
    if not p.exists():
        raise InputError("event file does not exist", file=str(p))
    if p.suffix in (".parquet", ".pq"):
        raw = pl.read_parquet(p)
    elif p.suffix == ".csv":
        raw = pl.read_csv(p)
    else:
        try:
            raw = pl.read_ndjson(p, infer_schema_length=None)
        except Exception as exc:  # polars raises its own family for bad JSON
            raise InputError(f"cannot read the event log: {exc}", file=str(p)) from exc
    return flatten_events(raw)


def event_features_frame(events: pl.DataFrame, as_of: datetime) -> pl.DataFrame:
    """Raw event features per user (``user_id`` + :data:`EVENT_FEATURES`), nulls meaning
    "no data", from events with ``ts <= as_of`` (same definitions as the online path)."""
    as_of = parse_ts(as_of)
    as_of_day = as_of.date()
    ev = flatten_events(events) if "payload" in events.columns else events
    ev = ev.filter(pl.col("ts") <= as_of)
    users = ev.select("user_id").unique()
    chats = ev.filter(pl.col("type") == "chat_started").with_columns(
        day=pl.col("ts").dt.date(),
        epoch=pl.col("ts").dt.epoch("us").cast(pl.Float64) / 1e6,
    )
    n = pl.len().cast(pl.Float64)
    chat_aggs = [
        n.alias("_n_chats"),
        pl.col("epoch").max().alias("_last"),
        *(
            ((pl.col("device") == d).sum().cast(pl.Float64) / n).alias(f"device_{d}")
            for d in DEVICES
        ),
        *(
            ((pl.col("channel") == c).sum().cast(pl.Float64) / n).alias(f"channel_{c}")
            for c in CHANNELS
        ),
        *(
            ((pl.col("ts").dt.hour() // 6) == i).sum().cast(pl.Float64).truediv(n).alias(f"tod_{t}")
            for i, t in enumerate(TIMES_OF_DAY)
        ),
        ((pl.col("ts").dt.weekday() >= 6).sum().cast(pl.Float64) / n).alias("weekend_share"),
    ]
    per_chat = chats.group_by("user_id").agg(chat_aggs)
    per_day = (
        chats.group_by("user_id", "day")
        .agg(pl.len().alias("c"))
        .sort("user_id", "day")
        .with_columns(
            before=pl.col("c")
            .rolling_sum_by("day", window_size=f"{REPEAT_LOOKBACK_DAYS}d", closed="left")
            .over("user_id"),
            ago=(pl.lit(as_of_day) - pl.col("day")).dt.total_days(),
        )
    )
    win = max(WINDOWS)
    in_win = (pl.col("ago") >= 0) & (pl.col("ago") < win)
    day_aggs = [
        *(
            pl.col("c")
            .filter((pl.col("ago") >= 0) & (pl.col("ago") < w))
            .sum()
            .cast(pl.Float64)
            .alias(f"contacts_{w}d")
            for w in WINDOWS
        ),
        (
            (pl.col("c") - 1 + (pl.col("before").fill_null(0) > 0).cast(pl.Int64))
            .filter(in_win)
            .sum()
            .alias("_repeats")
        ),
        pl.col("c").filter(in_win).sum().alias("_contacts"),
    ]
    per_user_day = per_day.group_by("user_id").agg(day_aggs)
    msgs = ev.filter((pl.col("type") == "message") & pl.col("category").is_in(list(CATEGORIES)))
    nm = pl.len().cast(pl.Float64)
    per_msg = msgs.group_by("user_id").agg(
        ((pl.col("category") == c).sum().cast(pl.Float64) / nm).alias(f"issue_{c.lower()}")
        for c in CATEGORIES
    )
    ended = ev.filter(pl.col("type") == "chat_ended")
    per_end = ended.group_by("user_id").agg(
        (pl.col("handle_time_s").sum() / pl.col("handle_time_s").count()).alias(
            "avg_handle_time_s"
        ),
        (pl.col("resolved").cast(pl.Float64).sum() / pl.col("resolved").count()).alias(
            "resolved_rate"
        ),
    )
    fb = ev.filter(pl.col("type") == "feedback").with_columns(
        epoch=pl.col("ts").dt.epoch("us").cast(pl.Float64) / 1e6
    )
    csat = fb.filter(pl.col("csat").is_not_null())
    per_csat = csat.group_by("user_id").agg(
        (pl.col("csat").sum() / pl.len()).alias("csat_mean"),
        pl.col("csat").sort_by("epoch", "event_id").last().alias("csat_last"),
    )
    per_nps = (
        fb.filter(pl.col("nps").is_not_null())
        .group_by("user_id")
        .agg(pl.col("nps").sort_by("epoch", "event_id").last().alias("nps_last"))
    )
    out = users
    for part in (per_chat, per_user_day, per_msg, per_end, per_csat, per_nps):
        out = out.join(part, on="user_id", how="left")
    as_of_epoch = as_of.timestamp()
    nps = pl.col("nps_last")
    out = out.with_columns(
        *(pl.col(f"contacts_{w}d").fill_null(0.0) for w in WINDOWS),
        recency_days=(pl.lit(as_of_epoch) - pl.col("_last")) / 86400.0,
        repeat_contact_rate=pl.when(pl.col("_contacts") > 0).then(
            pl.col("_repeats").cast(pl.Float64) / pl.col("_contacts").cast(pl.Float64)
        ),
        nps_promoter=(nps >= 9).fill_null(False).cast(pl.Float64),
        nps_passive=((nps >= 7) & (nps < 9)).fill_null(False).cast(pl.Float64),
        nps_detractor=(nps < 7).fill_null(False).cast(pl.Float64),
    )
    zero_when_empty = [
        *(f"device_{d}" for d in DEVICES),
        *(f"channel_{c}" for c in CHANNELS),
        *(f"tod_{t}" for t in TIMES_OF_DAY),
        "weekend_share",
        *(f"issue_{c.lower()}" for c in CATEGORIES),
    ]
    out = out.with_columns(pl.col(c).fill_null(0.0) for c in zero_when_empty)
    return out.select("user_id", *(pl.col(c).cast(pl.Float64) for c in EVENT_FEATURES))


class Preprocessor:
    """Scale encoded features, then project them with PCA.

    Parameters
    ----------
    scaling:
        ``"standard"`` (mean / standard deviation) or ``"robust"`` (median / IQR, falling
        back to the standard deviation when the IQR is 0).
    pca:
        ``None`` (no projection), an int (number of components) or a float in (0, 1]
        (smallest number of components explaining that share of the variance).

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(100, 3))
    >>> pre = Preprocessor(pca=2).fit(X, ["a", "b", "c"])
    >>> pre.transform(X).shape
    (100, 2)
    """

    def __init__(self, scaling: str = "standard", pca: float | int | None = 0.9) -> None:
        self.scaling = scaling
        self.pca = pca

    def _validate(self, n_features: int) -> None:
        owner = type(self).__name__
        if self.scaling not in ("standard", "robust"):
            raise ParameterError(owner, "scaling", "'standard' or 'robust'", self.scaling)
        p = self.pca
        if p is None:
            return
        if isinstance(p, bool) or not isinstance(p, int | float):
            raise ParameterError(owner, "pca", "None, an int >= 1 or a float in (0, 1]", p)
        if isinstance(p, int) and not 1 <= p <= n_features:
            raise ParameterError(owner, "pca", f"an int in [1, {n_features}]", p)
        if isinstance(p, float) and not 0.0 < p <= 1.0:
            raise ParameterError(owner, "pca", "a float in (0, 1]", p)

    def fit(self, X: np.ndarray, feature_names: Sequence[str]) -> Preprocessor:
        """Learn centres, scales and principal axes from ``X`` (rows x features)."""
        X = np.asarray(X, dtype=np.float64)
        self._validate(X.shape[1])
        names = list(feature_names)
        bad = np.isnan(X).any(axis=0)
        if bad.any():
            col = names[int(np.argmax(bad))]
            raise DataError("NaN left in a feature column after cleaning", column=col)
        if self.scaling == "standard":
            center = X.mean(axis=0)
            scale = X.std(axis=0)
        else:
            center = np.median(X, axis=0)
            q75, q25 = np.percentile(X, [75, 25], axis=0)
            scale = q75 - q25
            std = X.std(axis=0)
            scale = np.where(scale > 0, scale, std)
        const = ~(scale > 1e-12)
        if const.any():
            col = names[int(np.argmax(const))]
            raise DataError(
                "feature column is constant (one value for every row); drop it from the spec",
                code="constant_column",
                column=col,
                value=float(X[0, int(np.argmax(const))]),
            )
        self.feature_names_in_ = names
        self.center_ = center
        self.scale_ = scale
        # Moments of the scaled matrix Z = (X - center) / scale without materializing Z:
        # its mean follows from X's, its covariance is accumulated over row chunks of the
        # centred X (bounded temporaries, one BLAS pass; 1M x 20 in well under a second).
        x_mean = X.mean(axis=0)
        self.mean_ = (x_mean - center) / scale
        acc = np.zeros((X.shape[1], X.shape[1]))
        for start in range(0, len(X), 65_536):
            chunk = X[start : start + 65_536] - x_mean
            acc += chunk.T @ chunk
        cov = acc / np.outer(scale, scale) / max(len(X) - 1, 1)
        evals, evecs = np.linalg.eigh(cov)
        order = np.argsort(evals)[::-1]
        evals = np.clip(evals[order], 0.0, None)
        evecs = evecs[:, order]
        # Deterministic signs: the largest-magnitude loading of each axis is positive.
        signs = np.sign(evecs[np.argmax(np.abs(evecs), axis=0), np.arange(evecs.shape[1])])
        evecs = evecs * np.where(signs == 0, 1.0, signs)
        ratio = evals / evals.sum() if evals.sum() > 0 else np.zeros_like(evals)
        if self.pca is None:
            k = X.shape[1]
            components = np.eye(X.shape[1])
            self.mean_ = np.zeros(X.shape[1])
        else:
            if isinstance(self.pca, int):
                k = self.pca
            else:
                k = int(np.searchsorted(np.cumsum(ratio), self.pca - 1e-12) + 1)
                k = min(max(k, 1), X.shape[1])
            components = evecs[:, :k].T
        self.components_ = np.ascontiguousarray(components)
        self.n_components_ = k
        self.explained_variance_ratio_ = ratio[:k] if self.pca is not None else ratio
        self.all_explained_variance_ratio_ = ratio
        return self

    def _check(self) -> None:
        if not hasattr(self, "components_"):
            raise NotFittedError(type(self).__name__)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Scaled, projected matrix (rows x components)."""
        self._check()
        X = np.asarray(X, dtype=np.float64)
        # one fused affine map: ((X - c) / s - m) @ C.T == X @ W + b
        W = (self.components_ / self.scale_).T
        b = -((self.center_ / self.scale_ + self.mean_) @ self.components_.T)
        return np.asarray(X @ W + b)

    def scale(self, X: np.ndarray) -> np.ndarray:
        """Scaled (not projected) matrix."""
        self._check()
        return np.asarray((np.asarray(X, dtype=np.float64) - self.center_) / self.scale_)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Fitted arrays for an ``.npz`` artifact."""
        self._check()
        return {
            "pre_center": self.center_,
            "pre_scale": self.scale_,
            "pre_mean": self.mean_,
            "pre_components": self.components_,
            "pre_evr": self.all_explained_variance_ratio_,
        }

    @classmethod
    def from_arrays(
        cls,
        arrays: Mapping[str, np.ndarray],
        feature_names: Sequence[str],
        params: Mapping[str, Any],
    ) -> Preprocessor:
        """Rebuild a fitted preprocessor from :meth:`to_arrays` output."""
        pre = cls(scaling=params.get("scaling", "standard"), pca=params.get("pca", 0.9))
        pre.feature_names_in_ = list(feature_names)
        pre.center_ = np.asarray(arrays["pre_center"])
        pre.scale_ = np.asarray(arrays["pre_scale"])
        pre.mean_ = np.asarray(arrays["pre_mean"])
        pre.components_ = np.ascontiguousarray(arrays["pre_components"])
        pre.n_components_ = int(pre.components_.shape[0])
        pre.all_explained_variance_ratio_ = np.asarray(arrays["pre_evr"])
        pre.explained_variance_ratio_ = pre.all_explained_variance_ratio_[: pre.n_components_]
        return pre

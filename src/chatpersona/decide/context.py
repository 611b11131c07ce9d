"""Context featurization: one decision context (a plain dict) -> one numeric vector.

The decide stage sits after segmentation: its context is the user's segment, the chat's
intent and channel, and numeric profile features. Every policy sees the same vector
layout, so a logged context can be re-scored by any candidate policy offline.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["UNKNOWN", "ContextSchema", "Featurizer"]

_sum = np.add.reduce

UNKNOWN = "__unknown__"
"""The one-hot slot used for a category the schema does not list (never an error)."""


@dataclass(frozen=True)
class ContextSchema:
    """What a decision context contains and how it becomes a vector.

    Layout: ``[bias, segment one-hot (+unknown), intent one-hot (+unknown), channel one-hot
    (+unknown), numeric features, segment x intent crosses (if cross)]``. Numeric features
    are read from ``context["features"][name]`` (then ``context[name]``); booleans and
    numeric strings count as numbers; missing, non-numeric or non-finite values become 0.

    Examples
    --------
    >>> s = ContextSchema(segments=("a", "b"), intents=("x",), channels=("web",), numeric=("n",))
    >>> s.dim
    9
    """

    segments: tuple[str, ...] = ()
    intents: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    numeric: tuple[str, ...] = ()
    cross: bool = False

    @property
    def dim(self) -> int:
        """Length of the feature vector."""
        n = 1 + len(self.segments) + 1 + len(self.intents) + 1 + len(self.channels) + 1
        n += len(self.numeric)
        if self.cross:
            n += (len(self.segments) + 1) * (len(self.intents) + 1)
        return n

    def feature_names(self) -> list[str]:
        """Human-readable name of every vector position (used in explanations)."""
        names = ["bias"]
        segs = [*self.segments, UNKNOWN]
        ints = [*self.intents, UNKNOWN]
        names += [f"segment={s}" for s in segs]
        names += [f"intent={i}" for i in ints]
        names += [f"channel={c}" for c in [*self.channels, UNKNOWN]]
        names += [f"features.{n}" for n in self.numeric]
        if self.cross:
            names += [f"segment={s}&intent={i}" for s in segs for i in ints]
        return names

    def to_dict(self) -> dict[str, Any]:
        """A JSON/YAML-friendly dict (the inverse of :meth:`from_dict`)."""
        return {
            "segments": list(self.segments),
            "intents": list(self.intents),
            "channels": list(self.channels),
            "numeric": list(self.numeric),
            "cross": self.cross,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ContextSchema:
        """Build a schema from a mapping such as the ``context:`` block of a YAML file."""
        from chatpersona.exceptions import PlanError

        unknown = sorted(set(data) - {"segments", "intents", "channels", "numeric", "cross"})
        if unknown:
            raise PlanError(
                f"Unknown key(s) {', '.join(unknown)} in the context schema. Known: "
                "segments, intents, channels, numeric, cross.",
                keys=unknown,
            )
        return cls(
            segments=tuple(str(v) for v in data.get("segments") or ()),
            intents=tuple(str(v) for v in data.get("intents") or ()),
            channels=tuple(str(v) for v in data.get("channels") or ()),
            numeric=tuple(str(v) for v in data.get("numeric") or ()),
            cross=bool(data.get("cross", False)),
        )

    @classmethod
    def infer(cls, contexts: Iterable[Mapping[str, Any]], *, cross: bool = True) -> ContextSchema:
        """The schema that covers every value seen in ``contexts`` (sorted, deterministic)."""
        segs: set[str] = set()
        ints: set[str] = set()
        chans: set[str] = set()
        nums: set[str] = set()
        for c in contexts:
            if c.get("segment") is not None:
                segs.add(str(c["segment"]))
            if c.get("intent") is not None:
                ints.add(str(c["intent"]))
            if c.get("channel") is not None:
                chans.add(str(c["channel"]))
            feats = c.get("features")
            if not isinstance(feats, Mapping):
                continue
            nums.update(k for k, v in feats.items() if isinstance(v, int | float))
        return cls(
            segments=tuple(sorted(segs)),
            intents=tuple(sorted(ints)),
            channels=tuple(sorted(chans)),
            numeric=tuple(sorted(nums)),
            cross=cross,
        )


def _number(value: Any) -> float:
    """A feature value as a float: numbers, booleans and numeric strings; else 0."""
    if value is None:
        return 0.0
    if isinstance(value, bool | int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return 0.0
    return 0.0


@dataclass
class Featurizer:
    """Turns one context dict (or many) into the vector described by a :class:`ContextSchema`.

    Examples
    --------
    >>> f = Featurizer(ContextSchema(segments=("a",), intents=("x",), channels=("web",)))
    >>> f.transform_one({"segment": "a", "intent": "zzz", "channel": "web"}).tolist()
    [1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0]
    """

    schema: ContextSchema
    _seg: dict[str, int] = field(init=False, repr=False)
    _int: dict[str, int] = field(init=False, repr=False)
    _chan: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        s = self.schema
        self._seg = {v: i for i, v in enumerate(s.segments)}
        self._int = {v: i for i, v in enumerate(s.intents)}
        self._chan = {v: i for i, v in enumerate(s.channels)}
        self._n_seg = len(s.segments) + 1
        self._n_int = len(s.intents) + 1
        self._o_seg = 1
        self._o_int = self._o_seg + self._n_seg
        self._o_chan = self._o_int + self._n_int
        self._o_num = self._o_chan + len(s.channels) + 1
        self._o_cross = self._o_num + len(s.numeric)
        self.dim = s.dim
        self._one_hot: dict[tuple[int, int, int], tuple[list[float], list[float]]] = {}

    def _indices(self, context: Mapping[str, Any]) -> tuple[int, int, int]:
        seg = self._seg.get(str(context.get("segment")), self._n_seg - 1)
        intent = self._int.get(str(context.get("intent")), self._n_int - 1)
        chan = self._chan.get(str(context.get("channel")), len(self._chan))
        return seg, intent, chan

    def transform_one(
        self, context: Mapping[str, Any], out: np.ndarray | None = None
    ) -> np.ndarray:
        """The feature vector of one context (written into ``out`` when given)."""
        if out is None and self.schema.numeric:
            x = self._transform_one_list(context)
            if x is not None:
                return x
        x = np.zeros(self.dim) if out is None else out
        if out is not None:
            x[:] = 0.0
        seg, intent, chan = self._indices(context)
        x[0] = 1.0
        x[self._o_seg + seg] = 1.0
        x[self._o_int + intent] = 1.0
        x[self._o_chan + chan] = 1.0
        if self.schema.numeric:
            x[self._o_num : self._o_cross] = self._numeric(context)
        if self.schema.cross:
            x[self._o_cross + seg * self._n_int + intent] = 1.0
        return x

    def _transform_one_list(self, context: Mapping[str, Any]) -> np.ndarray | None:
        """The common case in one numpy call: all numeric features are numbers (or
        booleans) and finite; ``None`` otherwise (the general path handles the rest)."""
        feats = context.get("features")
        if not isinstance(feats, Mapping):
            return None
        vals = list(map(feats.get, self.schema.numeric))
        try:
            if not math.isfinite(math.fsum(vals)):  # type: ignore[arg-type]  # raises on None, str
                return None
        except (TypeError, ValueError, OverflowError):
            return None
        seg, intent, chan = self._indices(context)
        key = (seg, intent, chan)
        parts = self._one_hot.get(key)
        if parts is None:
            head = [0.0] * self._o_num
            head[0] = 1.0
            head[self._o_seg + seg] = 1.0
            head[self._o_int + intent] = 1.0
            head[self._o_chan + chan] = 1.0
            tail = [0.0] * (self.dim - self._o_cross)
            if self.schema.cross:
                tail[seg * self._n_int + intent] = 1.0
            parts = self._one_hot[key] = (head, tail)
        return np.array(parts[0] + vals + parts[1], dtype=float)

    def transform(self, contexts: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The feature matrix of many contexts, one row each (equal to ``transform_one``
        row by row)."""
        n = len(contexts)
        X = np.zeros((n, self.dim))
        if n == 0:
            return X
        idx = np.array([self._indices(c) for c in contexts], dtype=np.intp).reshape(n, 3)
        rows = np.arange(n)
        X[:, 0] = 1.0
        X[rows, self._o_seg + idx[:, 0]] = 1.0
        X[rows, self._o_int + idx[:, 1]] = 1.0
        X[rows, self._o_chan + idx[:, 2]] = 1.0
        if self.schema.cross:
            X[rows, self._o_cross + idx[:, 0] * self._n_int + idx[:, 1]] = 1.0
        if self.schema.numeric:
            o, end = self._o_num, self._o_cross
            for i, c in enumerate(contexts):
                X[i, o:end] = self._numeric(c)
        return X

    def _numeric(self, context: Mapping[str, Any]) -> np.ndarray:
        """The numeric block: ``features[name]``, else ``context[name]``; 0 when missing,
        non-numeric or non-finite."""
        feats = context.get("features")
        if not isinstance(feats, Mapping):
            feats = {}
        vals = list(map(feats.get, self.schema.numeric))
        try:  # fast path: numbers, booleans, numeric strings; None becomes NaN
            arr = np.array(vals, dtype=float)
        except (TypeError, ValueError):
            arr = np.array([np.nan if v is None else _number(v) for v in vals], dtype=float)
        if math.isfinite(_sum(arr)):  # one reduction instead of isfinite + any
            return arr
        bad = ~np.isfinite(arr)
        if bad.any():
            for j in np.flatnonzero(bad).tolist():
                value = 0.0
                if vals[j] is None:  # not among the features: try the top-level key
                    value = _number(context.get(self.schema.numeric[j]))
                arr[j] = value if math.isfinite(value) else 0.0
        return arr

"""FeatureSpec: what each feature means (declarative, YAML), fitted once, applied two ways.

A spec lists the user-table columns to use (with their kind and encoding), the event
families to build from the interaction log (behavioral, contextual, feedback), the
scaling and the PCA target. :meth:`FeatureSpec.fit` learns imputation values and
category lists; the :class:`FittedFeatureSpec` then builds the same numeric feature row
in batch (:meth:`~FittedFeatureSpec.transform`, Polars) and for one user from the stream
worker's aggregates (:meth:`~FittedFeatureSpec.transform_one`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from chatpersona.exceptions import DataError, NotFittedError, PlanError
from chatpersona.features.batch import event_features_frame, flatten_events
from chatpersona.features.online import FAMILIES, event_features, new_aggregates, parse_ts

__all__ = ["KINDS", "ColumnSpec", "FeatureSpec", "FittedFeatureSpec"]

KINDS = ("numeric", "boolean", "categorical", "date")
ENCODINGS = ("onehot", "ordinal")
OUTCOME_NAMES = ("churn", "churned", "exited", "attrition")
_TRUE = {"true", "yes", "y", "1", "t"}
_FALSE = {"false", "no", "n", "0", "f"}


@dataclass(frozen=True)
class ColumnSpec:
    """One user-table column used as a feature.

    ``kind`` is numeric, boolean, categorical or date (days before ``as_of``);
    categorical columns take ``encoding`` onehot (default) or ordinal with ``order``.
    """

    kind: str = "numeric"
    encoding: str = "onehot"
    order: tuple[str, ...] = ()


@dataclass(frozen=True)
class FeatureSpec:
    """Declarative feature definition.

    Examples
    --------
    >>> spec = FeatureSpec.from_yaml('''
    ... id_column: user_id
    ... columns:
    ...   age: {kind: numeric}
    ...   gender: {kind: categorical}
    ... events: [behavioral, feedback]
    ... pca: 0.9
    ... ''')
    >>> spec.columns["gender"].kind, spec.events
    ('categorical', ('behavioral', 'feedback'))
    """

    id_column: str = "user_id"
    columns: Mapping[str, ColumnSpec] = field(default_factory=dict)
    events: tuple[str, ...] = ()
    scaling: str = "standard"
    pca: float | int | None = 0.9
    max_categories: int = 30
    outcomes: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    # -- (de)serialization -------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        """Build a spec from a parsed YAML/JSON mapping; unknown keys raise PlanError."""
        allowed = {
            "id_column",
            "columns",
            "events",
            "scaling",
            "pca",
            "max_categories",
            "outcomes",
            "exclude",
        }
        unknown = set(data) - allowed
        if unknown:
            raise PlanError(
                f"unknown key(s) in the feature spec: {sorted(unknown)}; allowed: {sorted(allowed)}",
                code="unknown_key",
            )
        cols: dict[str, ColumnSpec] = {}
        for name, raw in (data.get("columns") or {}).items():
            raw = raw or {}
            if isinstance(raw, str):
                raw = {"kind": raw}
            kind = raw.get("kind", "numeric")
            if kind not in KINDS:
                raise PlanError(
                    f"column {name!r}: kind must be one of {list(KINDS)}, got {kind!r}",
                    code="bad_kind",
                    column=name,
                )
            enc = raw.get("encoding", "onehot")
            if enc not in ENCODINGS:
                raise PlanError(
                    f"column {name!r}: encoding must be one of {list(ENCODINGS)}, got {enc!r}",
                    code="bad_encoding",
                    column=name,
                )
            order = tuple(str(v) for v in raw.get("order", ()))
            if enc == "ordinal" and not order:
                raise PlanError(
                    f"column {name!r}: an ordinal encoding needs 'order: [...]'", column=name
                )
            cols[str(name)] = ColumnSpec(kind=kind, encoding=enc, order=order)
        events = tuple(data.get("events") or ())
        for fam in events:
            if fam not in FAMILIES:
                raise PlanError(
                    f"unknown event family {fam!r}; known: {list(FAMILIES)}", code="bad_family"
                )
        return cls(
            id_column=str(data.get("id_column", "user_id")),
            columns=cols,
            events=events,
            scaling=str(data.get("scaling", "standard")),
            pca=data.get("pca", 0.9),
            max_categories=int(data.get("max_categories", 30)),
            outcomes=tuple(data.get("outcomes") or ()),
            exclude=tuple(data.get("exclude") or ()),
        )

    @classmethod
    def from_yaml(cls, text_or_path: str | Path) -> FeatureSpec:
        """Parse YAML text, or read it from a path."""
        text = str(text_or_path)
        if isinstance(text_or_path, Path) or ("\n" not in text and Path(text).exists()):
            text = Path(text_or_path).read_text(encoding="utf-8")
        data = yaml.safe_load(text) or {}
        if not isinstance(data, dict):
            raise PlanError("a feature spec must be a YAML mapping")
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (YAML/JSON friendly)."""
        return {
            "id_column": self.id_column,
            "columns": {
                k: {kk: (list(vv) if isinstance(vv, tuple) else vv) for kk, vv in asdict(v).items()}
                for k, v in self.columns.items()
            },
            "events": list(self.events),
            "scaling": self.scaling,
            "pca": self.pca,
            "max_categories": self.max_categories,
            "outcomes": list(self.outcomes),
            "exclude": list(self.exclude),
        }

    def to_yaml(self) -> str:
        """The spec as YAML (round-trips through :meth:`from_yaml`)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    # -- inference ---------------------------------------------------------------------
    @classmethod
    def infer(
        cls,
        users: pl.DataFrame,
        *,
        id_column: str = "user_id",
        events: bool = False,
        pca: float | int | None = 0.9,
        max_categories: int = 30,
        outcomes: Sequence[str] | None = None,
    ) -> tuple[FeatureSpec, dict[str, str]]:
        """Every column but the id (and outcomes) as a feature, encoded by its kind.

        Returns the spec and ``excluded``: columns left out with the reason (free text
        with too many distinct values, outcome columns). Outcome columns default to the
        ones named like churn/churned/exited.
        """
        if id_column not in users.columns:
            raise DataError("the id column is not in the input", column=id_column)
        outs = (
            list(outcomes)
            if outcomes is not None
            else [c for c in users.columns if c.lower() in OUTCOME_NAMES]
        )
        cols: dict[str, ColumnSpec] = {}
        excluded: dict[str, str] = {}
        for name, dtype in users.schema.items():
            if name == id_column:
                continue
            if name in outs:
                excluded[name] = "outcome (reported per segment, not a feature)"
                continue
            if dtype.is_numeric():
                cols[name] = ColumnSpec("numeric")
            elif dtype == pl.Boolean:
                cols[name] = ColumnSpec("boolean")
            elif dtype in (pl.Date, pl.Datetime) or isinstance(dtype, pl.Datetime):
                cols[name] = ColumnSpec("date")
            else:
                n = users[name].drop_nulls().n_unique()
                if n <= max_categories:
                    cols[name] = ColumnSpec("categorical")
                else:
                    excluded[name] = (
                        f"text with {n} distinct values (> max_categories={max_categories}); "
                        "declare an encoding in a feature spec to use it"
                    )
        spec = cls(
            id_column=id_column,
            columns=cols,
            events=tuple(FAMILIES) if events else (),
            pca=pca,
            max_categories=max_categories,
            outcomes=tuple(outs),
        )
        return spec, excluded

    # -- fitting -----------------------------------------------------------------------
    def fit(
        self,
        users: pl.DataFrame,
        events: pl.DataFrame | None = None,
        as_of: datetime | None = None,
        *,
        event_features: pl.DataFrame | None = None,
    ) -> FittedFeatureSpec:
        """Learn imputation values and category lists; see :class:`FittedFeatureSpec`."""
        return FittedFeatureSpec(self).fit(users, events, as_of, event_features=event_features)


def _as_float_bool(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return 1.0 if value else 0.0
    s = str(value).strip().lower()
    if s in _TRUE:
        return 1.0
    if s in _FALSE:
        return 0.0
    return None


def _as_date(value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo is None else value.astimezone(UTC)).date()
    if isinstance(value, date):
        return value
    s = str(value).strip()
    if not s:
        return None
    try:
        return parse_ts(s).date() if "T" in s or " " in s else date.fromisoformat(s)
    except Exception:
        return None


class FittedFeatureSpec:
    """A :class:`FeatureSpec` with its learned state: one definition, two speeds.

    Attributes (after fit)
    ----------------------
    feature_names_ : list[str]
        Output columns, in order.
    categories_ : dict[str, list[str]]
        One-hot categories per categorical column.
    impute_ : dict[str, float]
        Median used for every feature when a value is missing.
    dropped_ : dict[str, str]
        Event features dropped at fit (constant over the fitting data) with the reason.
    """

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec

    # -- helpers -----------------------------------------------------------------------
    def _check(self) -> None:
        if not hasattr(self, "feature_names_"):
            raise NotFittedError(type(self).__name__)

    def _user_frame(self, users: pl.DataFrame, as_of: datetime) -> pl.DataFrame:
        spec = self.spec
        exprs: list[pl.Expr] = [pl.col(spec.id_column).cast(pl.String)]
        as_of_day = parse_ts(as_of).date()
        for name, col in spec.columns.items():
            if name not in users.columns:
                raise DataError("a column of the feature spec is not in the input", column=name)
            dtype = users.schema[name]
            c = pl.col(name)
            if col.kind == "numeric":
                if not dtype.is_numeric() and dtype != pl.Boolean:
                    sample = users[name].drop_nulls().head(1).to_list()
                    raise DataError(
                        f"column is not numeric (dtype {dtype}) and has no encoding; declare "
                        "kind: categorical (onehot/ordinal) in the feature spec or clean it first",
                        code="non_numeric",
                        column=name,
                        value=sample[0] if sample else None,
                    )
                exprs.append(c.cast(pl.Float64).alias(name))
            elif col.kind == "boolean":
                if dtype == pl.Boolean or dtype.is_numeric():
                    exprs.append((c.cast(pl.Float64) != 0).cast(pl.Float64).alias(name))
                else:
                    s = c.cast(pl.String).str.strip_chars().str.to_lowercase()
                    exprs.append(
                        pl.when(s.is_in(list(_TRUE)))
                        .then(1.0)
                        .when(s.is_in(list(_FALSE)))
                        .then(0.0)
                        .otherwise(None)
                        .alias(name)
                    )
            elif col.kind == "date":
                if dtype == pl.Date:
                    d = c
                elif isinstance(dtype, pl.Datetime):
                    d = (c.dt.convert_time_zone("UTC") if dtype.time_zone else c).dt.date()
                else:
                    d = c.map_elements(_as_date, return_dtype=pl.Date)
                exprs.append(
                    (pl.lit(as_of_day) - d)
                    .dt.total_days()
                    .cast(pl.Float64)
                    .alias(f"{name}_days_ago")
                )
            elif col.encoding == "ordinal":
                s = c.cast(pl.String)
                mapping = {v: float(i) for i, v in enumerate(col.order)}
                exprs.append(
                    s.replace_strict(mapping, default=None, return_dtype=pl.Float64).alias(name)
                )
            else:
                s = c.cast(pl.String)
                cats = self.categories_.get(name) if hasattr(self, "categories_") else None
                if cats is None:
                    exprs.append(s.alias(name))
                else:
                    exprs.extend(
                        (s == v).fill_null(False).cast(pl.Float64).alias(f"{name}={v}")
                        for v in cats
                    )
        return users.select(exprs)

    def _raw_frame(
        self,
        users: pl.DataFrame,
        events: pl.DataFrame | None,
        as_of: datetime,
        event_features: pl.DataFrame | None = None,
    ) -> pl.DataFrame:
        spec = self.spec
        if spec.id_column not in users.columns:
            raise DataError("the id column is not in the input", column=spec.id_column)
        frame = self._user_frame(users, as_of)
        if spec.events:
            if event_features is not None:
                # already aggregated (``event_features_frame`` of the same events and
                # ``as_of``), e.g. per user partition on Spark
                ev = event_features
            elif events is None:
                raise DataError(
                    "the feature spec builds event features but no event log was given",
                    code="missing_events",
                )
            else:
                ev = event_features_frame(
                    flatten_events(events) if "payload" in events.columns else events, as_of
                )
            keep = [n for fam in spec.events for n in FAMILIES[fam]]
            ev = ev.select(pl.col("user_id").alias(spec.id_column), *keep)
            frame = frame.join(ev, on=spec.id_column, how="left", maintain_order="left")
            zero = [n for n in keep if not _nullable_event_feature(n)]
            frame = frame.with_columns(pl.col(n).fill_null(0.0) for n in zero)
        return frame

    # -- public ------------------------------------------------------------------------
    def fit(
        self,
        users: pl.DataFrame,
        events: pl.DataFrame | None = None,
        as_of: datetime | None = None,
        *,
        event_features: pl.DataFrame | None = None,
    ) -> FittedFeatureSpec:
        """Learn categories (most frequent ``max_categories``) and medians for imputation.

        ``event_features``: the users' event features already aggregated by
        :func:`~chatpersona.features.batch.event_features_frame` (then ``as_of`` is required
        and ``events`` is not read).
        """
        spec = self.spec
        if event_features is not None and as_of is None:
            raise DataError("event features given without their as_of", code="missing_as_of")
        as_of = parse_ts(as_of) if as_of is not None else _default_as_of(events)
        self.as_of_ = as_of
        cats: dict[str, list[str]] = {}
        for name, col in spec.columns.items():
            if col.kind == "categorical" and col.encoding == "onehot":
                if name not in users.columns:
                    raise DataError("a column of the feature spec is not in the input", column=name)
                vc = (
                    users.select(pl.col(name).cast(pl.String))
                    .drop_nulls()
                    .group_by(name)
                    .len()
                    .sort(["len", name], descending=[True, False])
                )
                cats[name] = sorted(vc[name].head(spec.max_categories).to_list())
        self.categories_ = cats
        raw = self._raw_frame(users, events, as_of, event_features)
        names = [c for c in raw.columns if c != spec.id_column]
        impute: dict[str, float] = {}
        dropped: dict[str, str] = {}
        event_names = {n for fam in spec.events for n in FAMILIES[fam]}
        for n in names:
            s = raw[n]
            med = s.median()
            if n in event_names and (s.drop_nulls().n_unique() <= 1):
                dropped[n] = "constant over the fitting data"
                continue
            if med is None:
                raise DataError("feature column has no value at all", code="all_missing", column=n)
            impute[n] = float(med)  # type: ignore[arg-type]
        self.dropped_ = dropped
        self.impute_ = impute
        self.feature_names_ = [n for n in names if n not in dropped]
        return self

    def transform(
        self,
        users: pl.DataFrame,
        events: pl.DataFrame | None = None,
        as_of: datetime | None = None,
        *,
        event_features: pl.DataFrame | None = None,
    ) -> pl.DataFrame:
        """Feature rows (id column + :attr:`feature_names_`, Float64, no nulls) for every user.

        ``event_features`` as in :meth:`fit` (aggregated at the same ``as_of``)."""
        self._check()
        as_of = parse_ts(as_of) if as_of is not None else self.as_of_
        raw = self._raw_frame(users, events, as_of, event_features)
        return raw.select(
            self.spec.id_column,
            *(pl.col(n).fill_null(self.impute_[n]).alias(n) for n in self.feature_names_),
        )

    def transform_one(
        self, user_row: Mapping[str, Any], aggregates: Mapping[str, Any] | None, as_of: datetime
    ) -> dict[str, float]:
        """One user's feature row from a cleaned user record and the event aggregates.

        Equal (to float rounding) to that user's row of :meth:`transform` with the same
        ``as_of``, when ``aggregates`` hold the user's events up to ``as_of``.
        """
        self._check()
        spec = self.spec
        as_of = parse_ts(as_of)
        raw: dict[str, float | None] = {}
        for name, col in spec.columns.items():
            v = user_row.get(name)
            if col.kind == "numeric":
                try:
                    raw[name] = None if v is None else float(v)
                except (TypeError, ValueError):
                    raise DataError(
                        "value is not numeric", code="non_numeric", column=name, value=v
                    ) from None
            elif col.kind == "boolean":
                raw[name] = _as_float_bool(v)
            elif col.kind == "date":
                d = _as_date(v)
                raw[f"{name}_days_ago"] = None if d is None else float((as_of.date() - d).days)
            elif col.encoding == "ordinal":
                idx = {o: float(i) for i, o in enumerate(col.order)}
                raw[name] = None if v is None else idx.get(str(v))
            else:
                sv = None if v is None else str(v)
                for cat in self.categories_[name]:
                    raw[f"{name}={cat}"] = 1.0 if sv == cat else 0.0
        if spec.events:
            raw.update(event_features(aggregates or new_aggregates(), as_of))
        out: dict[str, float] = {}
        for n in self.feature_names_:
            v = raw.get(n)
            out[n] = self.impute_[n] if v is None else float(v)
        return out

    # -- artifact ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly fitted state (spec + categories + imputation)."""
        self._check()
        return {
            "spec": self.spec.to_dict(),
            "as_of": self.as_of_.isoformat(),
            "categories": self.categories_,
            "impute": self.impute_,
            "dropped": self.dropped_,
            "feature_names": self.feature_names_,
        }

    def to_json(self) -> str:
        """The fitted spec as JSON text."""
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FittedFeatureSpec:
        """Rebuild from :meth:`to_dict` output."""
        fitted = cls(FeatureSpec.from_dict(data["spec"]))
        fitted.as_of_ = parse_ts(data["as_of"])
        fitted.categories_ = {k: list(v) for k, v in data["categories"].items()}
        fitted.impute_ = {k: float(v) for k, v in data["impute"].items()}
        fitted.dropped_ = dict(data.get("dropped", {}))
        fitted.feature_names_ = list(data["feature_names"])
        return fitted

    @classmethod
    def from_json(cls, text: str) -> FittedFeatureSpec:
        """Rebuild from :meth:`to_json` text."""
        return cls.from_dict(json.loads(text))


def _nullable_event_feature(name: str) -> bool:
    return name in {
        "recency_days",
        "repeat_contact_rate",
        "avg_handle_time_s",
        "resolved_rate",
        "csat_mean",
        "csat_last",
        "nps_last",
    }


def _default_as_of(events: pl.DataFrame | None) -> datetime:
    if events is not None and len(events):
        ev = flatten_events(events) if "payload" in events.columns else events
        if "ts" in ev.columns and ev.schema["ts"] != pl.String:
            last = ev["ts"].max()
            if isinstance(last, datetime):
                return parse_ts(last)
    return datetime(2000, 1, 1, tzinfo=UTC) if events is not None else datetime.now(UTC)

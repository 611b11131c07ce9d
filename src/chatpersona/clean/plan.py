"""Declarative cleaning plans: per-column rules, loaded from and saved to YAML.

A :class:`CleaningPlan` is the *definition*; :meth:`CleaningPlan.fit` learns every statistic
(medians, modes, bounds, label maps) into a :class:`~chatpersona.clean.fitted.FittedPlan`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from chatpersona.exceptions import PlanError

if TYPE_CHECKING:
    from chatpersona.clean.fitted import FittedPlan

__all__ = [
    "BOOLEAN_FALSE",
    "BOOLEAN_TRUE",
    "KINDS",
    "CleaningPlan",
    "ColumnRule",
    "DuplicateRule",
    "Normalization",
    "OutlierRule",
]

KINDS = (
    "id",
    "numeric",
    "integer",
    "boolean",
    "categorical",
    "date",
    "datetime",
    "currency",
    "text",
)
MISSING_STRATEGIES = ("none", "mean", "median", "mode", "constant", "unknown", "quarantine")
ALLOWED_MISSING: dict[str, tuple[str, ...]] = {
    "id": ("quarantine",),
    "numeric": ("none", "mean", "median", "mode", "constant", "quarantine"),
    "integer": ("none", "mean", "median", "mode", "constant", "quarantine"),
    "currency": ("none", "mean", "median", "mode", "constant", "quarantine"),
    "boolean": ("none", "mode", "constant", "quarantine"),
    "categorical": ("none", "mode", "constant", "unknown", "quarantine"),
    "text": ("none", "constant", "unknown", "quarantine"),
    "date": ("none", "constant", "quarantine"),
    "datetime": ("none", "constant", "quarantine"),
}
ON_INVALID = ("quarantine", "error", "null")
OUTLIER_METHODS = ("none", "zscore", "iqr", "mad")
OUTLIER_ACTIONS = ("quarantine", "clip", "flag")
DEFAULT_THRESHOLDS = {"zscore": 3.0, "iqr": 1.5, "mad": 3.5}
NUMERIC_KINDS = ("numeric", "integer", "currency")
BOOLEAN_TRUE = ("true", "t", "yes", "y", "1", "on")
BOOLEAN_FALSE = ("false", "f", "no", "n", "0", "off")
DEFAULT_MISSING_VALUES = ("", "na", "n/a", "null", "none", "nan")


def _check_keys(where: str, data: Any, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise PlanError(
            f"{where} must be a mapping. Got {type(data).__name__}: {data!r}.", where=where
        )
    unknown = sorted(set(map(str, data)) - allowed)
    if unknown:
        raise PlanError(
            f"Unknown key(s) {unknown} in {where}. Allowed keys: {sorted(allowed)}.",
            code="unknown_key",
            where=where,
            keys=unknown,
        )
    return data


def _choice(where: str, key: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise PlanError(
            f"{where}: {key} must be one of {list(choices)}. Got {value!r}.",
            where=where,
            key=key,
            value=value,
        )
    return str(value)


def _bool(where: str, key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise PlanError(f"{where}: {key} must be true or false. Got {value!r}.", where=where)
    return value


@dataclass(frozen=True)
class Normalization:
    """Text normalization steps, applied in this order: NFKC, remove special characters,
    collapse whitespace, trim, lowercase."""

    nfkc: bool = True
    strip_special: bool = False
    collapse: bool = True
    trim: bool = True
    lower: bool = True

    def to_dict(self) -> dict[str, bool]:
        """The steps as a plain dict."""
        return {
            "nfkc": self.nfkc,
            "strip_special": self.strip_special,
            "collapse": self.collapse,
            "trim": self.trim,
            "lower": self.lower,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Normalization:
        """Build from a plan mapping; unknown keys are a :class:`PlanError`."""
        d = _check_keys(where, data, set(cls().to_dict()))
        return cls(**{k: _bool(where, k, v) for k, v in d.items()})


@dataclass(frozen=True)
class OutlierRule:
    """Outlier detection: ``method`` (zscore, iqr, mad), its ``threshold`` and the
    ``action`` on values outside the fitted bounds (quarantine, clip, flag)."""

    method: str = "none"
    threshold: float | None = None
    action: str = "quarantine"

    @property
    def effective_threshold(self) -> float:
        """The threshold, or the method's default (zscore 3, iqr 1.5, mad 3.5)."""
        if self.threshold is not None:
            return float(self.threshold)
        return DEFAULT_THRESHOLDS.get(self.method, 0.0)

    def to_dict(self) -> dict[str, Any]:
        """The rule as a plain dict."""
        out: dict[str, Any] = {"method": self.method, "action": self.action}
        if self.threshold is not None:
            out["threshold"] = self.threshold
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str) -> OutlierRule:
        """Build from a plan mapping (a bare string is taken as the method)."""
        if isinstance(data, str):
            data = {"method": data}
        d = _check_keys(where, data, {"method", "threshold", "action"})
        method = _choice(where, "method", d.get("method", "none"), OUTLIER_METHODS)
        action = _choice(where, "action", d.get("action", "quarantine"), OUTLIER_ACTIONS)
        thr = d.get("threshold")
        if thr is not None and (
            isinstance(thr, bool) or not isinstance(thr, int | float) or thr <= 0
        ):
            raise PlanError(f"{where}: threshold must be a number > 0. Got {thr!r}.")
        return cls(method=method, threshold=None if thr is None else float(thr), action=action)


@dataclass(frozen=True)
class ColumnRule:
    """How one column is cleaned.

    Parameters
    ----------
    name:
        The input column.
    kind:
        One of id, numeric, integer, boolean, categorical, date, datetime, currency, text.
    missing:
        none, mean, median, mode, constant (``fill_value``), unknown (``unknown_label``) or
        quarantine (the row goes to quarantine with ``missing_required``).
    on_invalid:
        What to do with a value the kind cannot parse: quarantine (default, reason
        ``unparseable_<kind>``), error (strict: raise an :class:`InputError`) or null (treat as
        missing).
    normalize:
        Text steps for categorical/text columns (booleans are always trimmed and lowercased).
    synonyms:
        Label map applied after normalization (keys are normalized the same way).
    fuzzy_threshold:
        If set, near-duplicate labels (similarity >= threshold) are *reported* for review.
    true_values, false_values:
        Boolean vocabulary (defaults: y/yes/true/t/1/on and n/no/false/f/0/off).
    dayfirst:
        For numeric dates like ``05/03/2024``: day first (True) or month first (False).
    epoch_unit:
        ``s`` or ``ms`` for all-digit epoch timestamps.
    default_currency:
        Currency code for amounts without a symbol or code.
    outliers:
        An :class:`OutlierRule` for numeric, integer and currency columns.
    inferred:
        True when :func:`infer_plan` proposed this rule (shown in the report).
    """

    name: str
    kind: str
    missing: str = "none"
    fill_value: Any = None
    unknown_label: str = "Unknown"
    on_invalid: str = "quarantine"
    normalize: Normalization = field(default_factory=Normalization)
    synonyms: dict[str, str] = field(default_factory=dict)
    fuzzy_threshold: float | None = None
    true_values: tuple[str, ...] = BOOLEAN_TRUE
    false_values: tuple[str, ...] = BOOLEAN_FALSE
    dayfirst: bool = True
    epoch_unit: str = "s"
    default_currency: str | None = None
    outliers: OutlierRule = field(default_factory=OutlierRule)
    inferred: bool = False
    note: str | None = None

    _KEYS = (
        "kind",
        "missing",
        "fill_value",
        "unknown_label",
        "on_invalid",
        "normalize",
        "synonyms",
        "fuzzy_threshold",
        "true_values",
        "false_values",
        "dayfirst",
        "epoch_unit",
        "default_currency",
        "outliers",
        "inferred",
        "note",
    )

    def to_dict(self) -> dict[str, Any]:
        """The rule as a YAML-friendly dict (defaults left out where harmless)."""
        out: dict[str, Any] = {"kind": self.kind, "missing": self.missing}
        if self.fill_value is not None:
            out["fill_value"] = self.fill_value
        if self.missing == "unknown":
            out["unknown_label"] = self.unknown_label
        out["on_invalid"] = self.on_invalid
        if self.kind in ("categorical", "text"):
            out["normalize"] = self.normalize.to_dict()
        if self.synonyms:
            out["synonyms"] = dict(self.synonyms)
        if self.fuzzy_threshold is not None:
            out["fuzzy_threshold"] = self.fuzzy_threshold
        if self.kind == "boolean":
            if self.true_values != BOOLEAN_TRUE:
                out["true_values"] = list(self.true_values)
            if self.false_values != BOOLEAN_FALSE:
                out["false_values"] = list(self.false_values)
        if self.kind in ("date", "datetime"):
            out["dayfirst"] = self.dayfirst
            out["epoch_unit"] = self.epoch_unit
        if self.kind == "currency":
            out["default_currency"] = self.default_currency
        if self.kind in NUMERIC_KINDS:
            out["outliers"] = self.outliers.to_dict()
        if self.inferred:
            out["inferred"] = True
        if self.note:
            out["note"] = self.note
        return out

    @classmethod
    def from_dict(cls, name: str, data: Any) -> ColumnRule:
        """Build and validate a rule; any problem is a :class:`PlanError` naming the column."""
        where = f"columns.{name}"
        if isinstance(data, str):
            data = {"kind": data}
        d = _check_keys(where, data, set(cls._KEYS))
        if "kind" not in d:
            raise PlanError(f"{where}: 'kind' is required.", column=name)
        kind = _choice(where, "kind", d["kind"], KINDS)
        default_missing = "quarantine" if kind == "id" else "none"
        missing = _choice(where, "missing", d.get("missing", default_missing), MISSING_STRATEGIES)
        if missing not in ALLOWED_MISSING[kind]:
            raise PlanError(
                f"{where}: missing strategy {missing!r} does not apply to kind {kind!r}; "
                f"use one of {list(ALLOWED_MISSING[kind])}.",
                column=name,
                value=missing,
            )
        if missing == "constant" and d.get("fill_value") is None:
            raise PlanError(f"{where}: missing: constant needs a fill_value.", column=name)
        on_invalid = _choice(where, "on_invalid", d.get("on_invalid", "quarantine"), ON_INVALID)
        norm = Normalization.from_dict(d.get("normalize", {}), f"{where}.normalize")
        if kind == "text" and "normalize" not in d:
            norm = Normalization(lower=False)
        synonyms = d.get("synonyms") or {}
        if not isinstance(synonyms, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in synonyms.items()
        ):
            raise PlanError(f"{where}: synonyms must map text to text. Got {synonyms!r}.")
        fuzzy = d.get("fuzzy_threshold")
        if fuzzy is not None and not (isinstance(fuzzy, int | float) and 0 < fuzzy <= 1):
            raise PlanError(f"{where}: fuzzy_threshold must be in (0, 1]. Got {fuzzy!r}.")

        def _vocab(key: str, default: tuple[str, ...]) -> tuple[str, ...]:
            vals = d.get(key, list(default))
            if not isinstance(vals, list | tuple) or not vals:
                raise PlanError(f"{where}: {key} must be a non-empty list. Got {vals!r}.")
            return tuple(str(v).strip().lower() for v in vals)

        true_values = _vocab("true_values", BOOLEAN_TRUE)
        false_values = _vocab("false_values", BOOLEAN_FALSE)
        both = sorted(set(true_values) & set(false_values))
        if both:
            raise PlanError(f"{where}: {both} are in both true_values and false_values.")
        epoch_unit = _choice(where, "epoch_unit", d.get("epoch_unit", "s"), ("s", "ms"))
        cur = d.get("default_currency")
        if cur is not None and not (isinstance(cur, str) and len(cur) == 3 and cur.isalpha()):
            raise PlanError(f"{where}: default_currency must be a 3-letter code. Got {cur!r}.")
        outliers = OutlierRule.from_dict(d.get("outliers", {}), f"{where}.outliers")
        if outliers.method != "none" and kind not in NUMERIC_KINDS:
            raise PlanError(
                f"{where}: outliers apply to numeric, integer and currency columns, not {kind!r}.",
                column=name,
            )
        return cls(
            name=name,
            kind=kind,
            missing=missing,
            fill_value=d.get("fill_value"),
            unknown_label=str(d.get("unknown_label", "Unknown")),
            on_invalid=on_invalid,
            normalize=norm,
            synonyms={str(k): str(v) for k, v in synonyms.items()},
            fuzzy_threshold=None if fuzzy is None else float(fuzzy),
            true_values=true_values,
            false_values=false_values,
            dayfirst=_bool(where, "dayfirst", d.get("dayfirst", True)),
            epoch_unit=epoch_unit,
            default_currency=None if cur is None else cur.upper(),
            outliers=outliers,
            inferred=_bool(where, "inferred", d.get("inferred", False)),
            note=None if d.get("note") is None else str(d.get("note")),
        )


@dataclass(frozen=True)
class DuplicateRule:
    """Duplicate handling: ``exact_rows`` drops later copies of an identical cleaned row;
    ``id_column`` keeps one row per id — the latest by ``latest_by`` if given, else the first."""

    exact_rows: bool = True
    id_column: str | None = None
    latest_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The rule as a plain dict."""
        return {
            "exact_rows": self.exact_rows,
            "id_column": self.id_column,
            "latest_by": self.latest_by,
        }

    @classmethod
    def from_dict(cls, data: Any) -> DuplicateRule:
        """Build from a plan mapping; unknown keys are a :class:`PlanError`."""
        d = _check_keys("duplicates", data, {"exact_rows", "id_column", "latest_by"})
        return cls(
            exact_rows=_bool("duplicates", "exact_rows", d.get("exact_rows", True)),
            id_column=d.get("id_column"),
            latest_by=d.get("latest_by"),
        )


class CleaningPlan:
    """Per-column cleaning rules plus duplicate handling.

    Parameters
    ----------
    columns:
        Rules, keyed by column name (a list of :class:`ColumnRule` is accepted too).
    duplicates:
        A :class:`DuplicateRule`.
    missing_values:
        Texts that mean "missing" (compared after trimming and lowercasing).
    unplanned:
        ``keep`` (pass columns without a rule through unchanged) or ``drop``.

    Examples
    --------
    >>> plan = CleaningPlan.from_dict({"columns": {"age": {"kind": "integer", "missing": "median"}}})
    >>> plan.columns["age"].kind
    'integer'
    >>> CleaningPlan.from_dict({"columns": {"age": {"kind": "integer", "mising": "median"}}})
    Traceback (most recent call last):
    ...
    chatpersona.exceptions.PlanError: Unknown key(s) ['mising'] in columns.age. Allowed keys: ...
    """

    def __init__(
        self,
        columns: dict[str, ColumnRule] | list[ColumnRule],
        duplicates: DuplicateRule | None = None,
        missing_values: tuple[str, ...] = DEFAULT_MISSING_VALUES,
        unplanned: str = "keep",
    ) -> None:
        if isinstance(columns, list):
            columns = {c.name: c for c in columns}
        self.columns: dict[str, ColumnRule] = dict(columns)
        self.duplicates = duplicates or DuplicateRule()
        self.missing_values = tuple(str(v).strip().lower() for v in missing_values)
        self.unplanned = unplanned
        self._validate()

    def _validate(self) -> None:
        _choice("plan", "unplanned", self.unplanned, ("keep", "drop"))
        for ref, key in (
            (self.duplicates.id_column, "id_column"),
            (self.duplicates.latest_by, "latest_by"),
        ):
            if ref is not None and ref not in self.columns:
                raise PlanError(
                    f"duplicates.{key} names column {ref!r}, which has no rule in the plan. "
                    f"Planned columns: {sorted(self.columns)}.",
                    code="unknown_column",
                    column=ref,
                )
        if self.duplicates.latest_by is not None:
            kind = self.columns[self.duplicates.latest_by].kind
            if kind not in ("date", "datetime", "numeric", "integer"):
                raise PlanError(
                    f"duplicates.latest_by column {self.duplicates.latest_by!r} must be a date, "
                    f"datetime or number, not {kind!r}."
                )

    def __repr__(self) -> str:
        return f"CleaningPlan(columns={list(self.columns)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CleaningPlan) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """The plan as a plain, YAML-friendly dict."""
        return {
            "version": 1,
            "missing_values": list(self.missing_values),
            "unplanned": self.unplanned,
            "duplicates": self.duplicates.to_dict(),
            "columns": {name: rule.to_dict() for name, rule in self.columns.items()},
        }

    @classmethod
    def from_dict(cls, data: Any) -> CleaningPlan:
        """Build and validate a plan; unknown keys are a :class:`PlanError` naming them."""
        d = _check_keys(
            "plan", data, {"version", "missing_values", "unplanned", "duplicates", "columns"}
        )
        if d.get("version", 1) != 1:
            raise PlanError(f"plan: unsupported version {d.get('version')!r} (expected 1).")
        cols = d.get("columns")
        if not isinstance(cols, dict) or not cols:
            raise PlanError("plan: 'columns' must be a non-empty mapping of column -> rule.")
        rules = {str(name): ColumnRule.from_dict(str(name), r) for name, r in cols.items()}
        mv = d.get("missing_values", list(DEFAULT_MISSING_VALUES))
        if not isinstance(mv, list):
            raise PlanError(f"plan: missing_values must be a list. Got {mv!r}.")
        return cls(
            rules,
            duplicates=DuplicateRule.from_dict(d.get("duplicates", {}) or {}),
            missing_values=tuple("" if v is None else str(v) for v in mv),
            unplanned=str(d.get("unplanned", "keep")),
        )

    def to_yaml(self, path: str | Path | None = None) -> str:
        """The plan as YAML text; also written to ``path`` when given."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True)
        if path is not None:
            from chatpersona.clean.io import atomic_write_text

            atomic_write_text(Path(path), text)
        return text

    @classmethod
    def from_yaml(cls, source: str | Path) -> CleaningPlan:
        """Load a plan from a YAML file path or YAML text."""
        text: str
        where = "<text>"
        if isinstance(source, Path) or (
            isinstance(source, str) and "\n" not in source and source.endswith((".yaml", ".yml"))
        ):
            path = Path(source)
            where = str(path)
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise PlanError(f"Cannot read plan file {path}: {exc}.", file=str(path)) from exc
        else:
            text = str(source)
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise PlanError(f"Plan {where} is not valid YAML: {exc}", file=where) from exc
        return cls.from_dict(data)

    def fit(self, table: Any, *, source: str | None = None) -> FittedPlan:
        """Learn every statistic the rules need from ``table`` (a Polars or pandas DataFrame).

        Raises
        ------
        PlanError
            If a planned column is not in the table.
        """
        from chatpersona.clean.fitted import FittedPlan

        return FittedPlan(self).fit(table, source=source)

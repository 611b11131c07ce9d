"""A fitted cleaning plan: learned statistics applied to a whole table (Polars) or to one
record (plain Python) with identical results."""

from __future__ import annotations

import difflib
import itertools
import json
import linecache
import math
import os
import sys
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from chatpersona.clean.formats import (
    _FAST_ISO_SHAPE,
    _NUMERIC_DATE,
    UTC_ZONE,
    WS,
    normalize_text,
    parse_bool,
    parse_currency,
    parse_datetime,
    parse_number,
    to_text,
)
from chatpersona.clean.plan import NUMERIC_KINDS, CleaningPlan, ColumnRule
from chatpersona.clean.polars_engine import (
    MAX_INT,
    REASON_BY_KIND,
    as_text_frame,
    norm_synonyms,
    parse_frame,
)
from chatpersona.exceptions import DataError, InputError, NotFittedError, PlanError

if TYPE_CHECKING:
    import numpy as np

__all__ = ["CleanResult", "FittedPlan", "RecordResult", "to_polars"]

TEXT_KINDS = ("id", "categorical", "text")
_Fast = Callable[[str], tuple[Any, dict[str, Any] | None, str | None]]
MEMO_SIZE = 32768  # per column: bounded memory in a long-running worker
MAX_KEY_ORDERS = 64  # compiled record functions per fitted plan (one per key order seen)
# A column whose memo misses on more than MEMO_MAX_MISSES of the MEMO_PROBE records that
# follow the first MEMO_PROBE (the values seen first are all new) stops memoizing: a miss
# costs a lookup and an insertion, and in a large memo (up to MEMO_SIZE values) both stall
# on cache misses, so a value that hardly repeats is cheaper parsed each time.
MEMO_PROBE = 4096
MEMO_MAX_MISSES = 0.8


@dataclass
class RecordResult:
    """The outcome of cleaning one record.

    ``ok`` is True when the record is accepted; then ``record`` holds the cleaned values
    (identical to the batch row). Otherwise ``reason`` and ``column`` say why.
    """

    ok: bool
    record: dict[str, Any] | None
    reason: str | None = None
    column: str | None = None


@dataclass
class CleanResult:
    """The outcome of cleaning a table: every input row is in exactly one of ``accepted``,
    ``duplicates`` or ``quarantine``; ``report`` holds the accounting and per-column facts."""

    accepted: pl.DataFrame
    quarantine: pl.DataFrame
    duplicates: pl.DataFrame
    report: dict[str, Any] = field(default_factory=dict)


def to_polars(table: Any) -> pl.DataFrame:
    """A Polars DataFrame from a Polars or pandas DataFrame (or a LazyFrame)."""
    if isinstance(table, pl.DataFrame):
        return table
    if isinstance(table, pl.LazyFrame):
        return table.collect()
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is optional
        pd = None
    if pd is not None and isinstance(table, pd.DataFrame):
        return pl.from_pandas(table)
    raise InputError(
        f"Expected a Polars or pandas DataFrame, got {type(table).__name__}.",
        code="bad_table",
    )


def _json_value(v: Any) -> Any:
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if type(v).__module__ == "numpy":  # only statistics computed by numpy can be numpy's
        import numpy as np

        if isinstance(v, np.generic):
            return v.item()
    return v


def _decode(kind: str, v: Any) -> Any:
    if v is None:
        return None
    if kind == "date":
        return date.fromisoformat(v) if isinstance(v, str) else v
    if kind == "datetime":
        dt = datetime.fromisoformat(v) if isinstance(v, str) else v
        return dt.astimezone(UTC_ZONE)
    if kind == "integer":
        return int(v)
    if kind in ("numeric", "currency"):
        return float(v)
    return v


def _mode(s: pl.Series) -> Any:
    if s.len() == 0:
        return None
    return _mode_from_counts(s.rename("value").value_counts(name="n"))


def _merge_counts(parts: list[pl.DataFrame]) -> pl.DataFrame:
    if not parts:
        return pl.DataFrame({"value": [], "n": []}, schema={"value": pl.Utf8, "n": pl.UInt32})
    return pl.concat(parts).group_by("value").agg(pl.col("n").sum())


def _mode_from_counts(vc: pl.DataFrame) -> Any:
    """The most frequent value; ties go to the smallest value (deterministic)."""
    if vc.height == 0:
        return None
    return vc.sort(["n", "value"], descending=[True, False])["value"][0]


def order_stats(values: np.ndarray, counts: np.ndarray) -> tuple[float, float, float, float]:
    """The median, first and third quartiles and median absolute deviation that numpy
    computes (``np.median``, ``np.quantile`` linear) on ``values`` each repeated ``counts``
    times, from the counts alone: the order statistics numpy would pick are looked up, and
    numpy's own median and interpolation are applied to them, so the floats are the same.
    ``values`` finite, in any order; ``counts`` positive."""
    import numpy as np

    order = np.argsort(values, kind="stable")
    values = np.asarray(values, dtype=np.float64)[order]
    counts = np.asarray(counts, dtype=np.int64)[order]

    def median(sorted_values: np.ndarray, ends: np.ndarray) -> float:
        n = int(ends[-1])
        ks = [n // 2 - 1, n // 2] if n % 2 == 0 else [n // 2]
        window = sorted_values[np.searchsorted(ends, ks, side="right")]
        return float(np.median(window))

    ends = np.cumsum(counts)
    n = int(ends[-1])
    med = median(values, ends)
    quartiles: list[float] = []
    for v in (n - 1) * np.asarray([0.25, 0.75]):  # numpy's virtual index
        if v >= n - 1:
            quartiles.append(float(values[-1]))
            continue
        lo = np.floor(v)
        pair = values[np.searchsorted(ends, [int(lo), int(lo) + 1], side="right")]
        # Two values at the virtual index v - lo: numpy's interpolation between them.
        quartiles.append(float(np.quantile(pair, np.asarray([v - lo]))[0]))
    deviations = np.abs(values - med)
    order = np.argsort(deviations, kind="stable")
    mad = median(deviations[order], np.cumsum(counts[order]))
    return med, quartiles[0], quartiles[1], mad


class FittedPlan:
    """A :class:`CleaningPlan` with its learned statistics.

    Parameters
    ----------
    plan:
        The plan to fit.

    Attributes
    ----------
    stats_ : dict
        Per column: counts, fill value, mean/std/median/quartiles/MAD, outlier bounds,
        currency mode, fuzzy label suggestions.
    columns_in_ : list of str
        The columns of the table the plan was fitted on.

    Examples
    --------
    >>> import polars as pl
    >>> plan = CleaningPlan.from_dict({"columns": {"age": {"kind": "integer", "missing": "median"}}})
    >>> fitted = plan.fit(pl.DataFrame({"age": ["30", "", "40", "35"]}))
    >>> fitted.transform_record({"age": " "}).record
    {'age': 35}
    """

    def __init__(self, plan: CleaningPlan) -> None:
        self.plan = plan

    # ------------------------------------------------------------------ fit
    def _check_columns(self, df: pl.DataFrame, source: str | None) -> None:
        absent = [c for c in self.plan.columns if c not in df.columns]
        if absent:
            raise PlanError(
                f"The plan names column(s) {absent} that the table does not have"
                + (f" ({source})" if source else "")
                + f". Table columns: {df.columns}.",
                code="unknown_column",
                column=absent[0],
                columns=absent,
                file=source,
            )

    _keep_parsed = False

    def fit(self, table: Any, *, source: str | None = None) -> FittedPlan:
        """Learn the statistics of every planned column from ``table``; returns ``self``."""
        return self.fit_batches([to_polars(table)], source=source)

    def fit_batches(
        self, batches: Iterable[pl.DataFrame], *, source: str | None = None
    ) -> FittedPlan:
        """Learn the statistics from consecutive batches of one table (a streamed pass: only
        parsed numbers and label counts are kept, never the raw rows); returns ``self``."""
        names = list(self.plan.columns)
        self._parsed: pl.DataFrame | None = None
        # parse_frame keeps only what transform needs (raw text only where the report
        # compares it), so temporary parse columns are freed at once.
        n_rows = 0
        counts: dict[str, dict[str, int]] = {n: {"n_missing": 0, "n_invalid": 0} for n in names}
        numbers: dict[str, list[pl.Series]] = {n: [] for n in names}
        labels: dict[str, list[pl.DataFrame]] = {n: [] for n in names}
        codes: dict[str, list[pl.DataFrame]] = {n: [] for n in names}
        columns_in: list[str] | None = None
        for df in batches:
            self._check_columns(df, source)
            if columns_in is None:
                columns_in = list(df.columns)
            n_rows += df.height
            text = as_text_frame(df.select(names), names)
            parsed = parse_frame(text, self.plan, keep_raw=TEXT_KINDS)
            for i, (name, rule) in enumerate(self.plan.columns.items()):
                counts[name]["n_missing"] += int(parsed[f"__m{i}"].sum())
                if rule.kind in REASON_BY_KIND:  # invalid: present but not parsed
                    pv, pm = parsed[f"__p{i}"], parsed[f"__m{i}"]
                    counts[name]["n_invalid"] += int((pv.is_null() & ~pm).sum())
                values = parsed[f"__p{i}"].drop_nulls().rename("value")
                if rule.kind in NUMERIC_KINDS:
                    numbers[name].append(values.cast(pl.Float64))
                elif rule.kind in ("categorical", "boolean"):
                    labels[name].append(values.value_counts(name="n"))
                else:
                    numbers[name].append(pl.Series("value", [values.len()], dtype=pl.Int64))
                if rule.kind == "currency":
                    codes[name].append(
                        parsed[f"__k{i}"].drop_nulls().rename("value").value_counts(name="n")
                    )
            if self._keep_parsed:
                self._parsed = parsed
        if columns_in is None:
            raise DataError("Cannot fit a cleaning plan on no data.", file=source)
        return self._finish_fit(n_rows, counts, numbers, labels, codes, columns_in)

    def _finish_fit(
        self,
        n_rows: int,
        counts: dict[str, dict[str, int]],
        numbers: Mapping[str, Sequence[pl.Series] | Callable[[], pl.Series]],
        labels: dict[str, list[pl.DataFrame]],
        codes: dict[str, list[pl.DataFrame]],
        columns_in: list[str],
        tallies: Mapping[str, Callable[[], tuple[np.ndarray, np.ndarray]]] | None = None,
        meanwhile: Callable[[], None] | None = None,
    ) -> FittedPlan:
        """The statistics from what a pass over the table kept: per column the counts, the
        parsed numbers (numeric kinds, in row order) or a one-item count of valid values
        (other kinds), and label / currency-code counts (``value``, ``n``); ``tallies``: a
        loader of a numeric column's distinct values and their counts, where a pass counted
        them (its order statistics are then read from the counts). ``meanwhile`` runs on
        this thread while the numeric statistics are computed (it may still fill ``counts``
        and ``labels``)."""
        stats: dict[str, dict[str, Any]] = {}

        def numeric_facts(name: str) -> dict[str, Any]:
            """The statistics of one numeric column; its values are loaded here (a callable
            loads them from a spool) and freed when it returns."""
            rule = self.plan.columns[name]
            held = numbers[name]
            if callable(held):
                values = held()
            elif held:
                values = pl.concat(held)
            else:
                values = pl.Series("value", [], dtype=pl.Float64)
            counted = tallies[name]() if tallies is not None and name in tallies else None
            facts = {"n_valid": values.len(), **self._numeric_stats(rule, values, counted)}
            if rule.missing == "mode":
                facts["mode"] = _mode(values.cast(pl.Int64) if rule.kind == "integer" else values)
            return facts

        numeric = [name for name, rule in self.plan.columns.items() if rule.kind in NUMERIC_KINDS]
        # numpy releases the GIL in its partitions (medians, quantiles): columns in parallel,
        # the costly ones first (partitioned, not read from counts), so that the two threads
        # end together (at 1M rows: ~50 against ~10-30 ms a column).
        costly = [n for n in numeric if tallies is None or n not in tallies]
        order = costly + [n for n in numeric if n not in costly]
        with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
            results = pool.map(numeric_facts, order)  # submitted now
            if meanwhile is not None:
                meanwhile()
            numeric_stats = dict(zip(order, results, strict=True))
        for name, rule in self.plan.columns.items():
            st: dict[str, Any] = {"n": n_rows, **counts[name]}
            if rule.kind in NUMERIC_KINDS:
                st.update(numeric_stats[name])
            elif rule.kind in ("categorical", "boolean"):
                vc = _merge_counts(labels[name])
                st["n_valid"] = int(vc["n"].sum()) if vc.height else 0
                st["mode"] = _mode_from_counts(vc)
                st["n_labels"] = vc.height
                if rule.kind == "categorical" and rule.fuzzy_threshold is not None:
                    st["fuzzy_suggestions"] = self._fuzzy(vc, rule.fuzzy_threshold)
            else:
                held = numbers[name]
                assert not callable(held)
                st["n_valid"] = int(sum(int(s.sum()) for s in held))
            if rule.kind == "currency":
                st["currency_mode"] = (
                    _mode_from_counts(_merge_counts(codes[name])) or rule.default_currency
                )
            st["fill"] = self._fill(rule, st)
            stats[name] = {k: _json_value(v) for k, v in st.items()}
        self.stats_ = stats
        self.columns_in_ = columns_in
        self._compile()
        return self

    @staticmethod
    def _numeric_stats(
        rule: ColumnRule,
        values: pl.Series,
        counted: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> dict[str, Any]:
        """Mean, deviations, quartiles, bounds of ``values``; ``counted``: its distinct values
        and their counts, from which the order statistics are taken when they are finite and
        account for every value (the same floats as numpy's partitions of the values)."""
        import numpy as np  # imported on first use: the clean command loads it beside pass 1

        arr = values.cast(pl.Float64).to_numpy()
        st: dict[str, Any] = {}
        if arr.size == 0:
            return {"lo": None, "hi": None}
        st["mean"] = float(arr.mean())
        st["std"] = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
        if (
            counted is not None
            and int(counted[1].sum()) == arr.size
            and bool(np.isfinite(counted[0]).all())
        ):
            st["median"], st["q1"], st["q3"], st["mad"] = order_stats(*counted)
        else:
            # Order statistics on one working copy, partitioned in place (the second
            # partition starts from the first one's order): the same values as on fresh copies.
            work = np.array(arr, dtype=np.float64, copy=True)
            st["median"] = float(np.median(work, overwrite_input=True))
            quartiles = np.quantile(work, [0.25, 0.75], overwrite_input=True)
            st["q1"], st["q3"] = (float(q) for q in quartiles)
            del work
            st["mad"] = float(np.median(np.abs(arr - st["median"]), overwrite_input=True))
        st["min"], st["max"] = float(arr.min()), float(arr.max())
        method, t = rule.outliers.method, rule.outliers.effective_threshold
        lo = hi = None
        if method == "zscore" and st["std"] > 0:
            lo, hi = st["mean"] - t * st["std"], st["mean"] + t * st["std"]
        elif method == "iqr":
            iqr = st["q3"] - st["q1"]
            lo, hi = st["q1"] - t * iqr, st["q3"] + t * iqr
        elif method == "mad" and st["mad"] > 0:
            half = t * st["mad"] / 0.6745
            lo, hi = st["median"] - half, st["median"] + half
        st["lo"], st["hi"] = lo, hi
        return st

    @staticmethod
    def _fuzzy(counts: pl.DataFrame, threshold: float) -> list[dict[str, Any]]:
        vc = counts.sort(["n", "value"], descending=[True, False]).head(200)
        labels = [(str(v), int(n)) for v, n in vc.iter_rows()]
        out: list[dict[str, Any]] = []
        for j, (rare, n_rare) in enumerate(labels):
            for common, n_common in labels[:j]:
                score = difflib.SequenceMatcher(None, rare, common).ratio()
                if score >= threshold:
                    out.append(
                        {
                            "label": rare,
                            "count": n_rare,
                            "suggest": common,
                            "suggest_count": n_common,
                            "score": round(score, 4),
                        }
                    )
                    break
        return out

    def _fill(self, rule: ColumnRule, st: dict[str, Any]) -> Any:
        strategy = rule.missing
        if strategy in ("none", "quarantine"):
            return None
        if strategy in ("unknown", "constant"):
            # Fill values are cleaned like data, so re-cleaning a clean table is a no-op.
            given = rule.unknown_label if strategy == "unknown" else rule.fill_value
            parsed = _ColumnCleaner(rule, (), {"fill": None}).parse(given)
            if parsed[0] is None:
                raise PlanError(
                    f"columns.{rule.name}: fill value {given!r} is not a valid {rule.kind} value.",
                    column=rule.name,
                    value=given,
                )
            return parsed[0]
        if st["n_valid"] == 0:
            raise DataError(
                f"Cannot learn the {strategy} of column {rule.name!r}: it has no valid values.",
                column=rule.name,
            )
        if strategy == "mode":
            return st["mode"]
        key = "mean" if strategy == "mean" else "median"
        x = st[key]
        return round(x) if rule.kind == "integer" else float(x)

    # ------------------------------------------------------------ helpers
    def _check_fitted(self) -> None:
        if not hasattr(self, "stats_"):
            raise NotFittedError("FittedPlan")

    def _compile(self) -> None:
        mv = self.plan.missing_values
        self._cleaners = {
            name: _ColumnCleaner(rule, mv, self.stats_[name])
            for name, rule in self.plan.columns.items()
        }
        self._order = {name: i for i, name in enumerate(self.plan.columns)}
        self._set_entries()
        self._keep = self.plan.unplanned == "keep"
        # Records seen by the compiled functions until the memos are reviewed.
        self._probing, self._seen = True, itertools.count(1)
        self._memo_marks: dict[str, int] | None = None

    def _set_entries(self) -> None:
        # Per column: memo, compiled text path, cleaner, plan order, and the (pure) result
        # for a null value, computed once.
        self._entries = {
            name: (c._memo if c.memoize else None, c._fast, c, self._order[name], c._clean(None))
            for name, c in self._cleaners.items()
        }
        # Per key order of the incoming records: the specialized record function.
        self._by_order: dict[tuple[Any, ...], Callable[[dict[str, Any]], RecordResult]] = {}

    def _review_memos(self) -> None:
        """Called by the compiled functions at their MEMO_PROBE-th record, twice: first the
        memo sizes are marked and the count starts again; then the columns whose memo grew by
        more than MEMO_MAX_MISSES of the records since (it hit on fewer than 20% of its
        lookups: the records bound them) stop memoizing. The record functions are compiled
        again each time (with the new count, then without probe and those memos)."""
        marks = self._memo_marks
        if marks is None:
            self._memo_marks = {name: len(c._memo) for name, c in self._cleaners.items()}
            self._seen = itertools.count(1)
        else:
            self._probing = False
            for name, cleaner in self._cleaners.items():
                misses = len(cleaner._memo) - marks[name]
                if cleaner.memoize and misses > MEMO_MAX_MISSES * MEMO_PROBE:
                    cleaner.memoize, cleaner._memo = False, {}
        self._set_entries()

    def _record_function(self, keys: tuple[Any, ...]) -> Callable[[dict[str, Any]], RecordResult]:
        """The record function for rows with exactly these keys in this order, compiled once
        and cached (at most MAX_KEY_ORDERS of them; beyond, the generic loop)."""
        if len(self._by_order) >= MAX_KEY_ORDERS:
            return self._transform_record_generic
        probe = (self._seen, self._review_memos) if self._probing else None
        fn = _compile_record(keys, self._entries, self._keep, probe)
        if fn is None:
            fn = self._transform_record_generic
        self._by_order[keys] = fn
        return fn

    # ------------------------------------------------------------ one record
    def transform_record(self, row: dict[str, Any]) -> RecordResult:
        """Clean one record (plain Python); duplicates are not judged on one record.

        Returns a :class:`RecordResult`; the cleaned record equals the batch row.

        Raises
        ------
        InputError
            For a value that cannot be parsed under a rule with ``on_invalid: error``.
        """
        by_order = getattr(self, "_by_order", None)
        if by_order is None:
            raise NotFittedError("FittedPlan")
        keys = tuple(row)
        fn = by_order.get(keys)
        if fn is None:
            fn = self._record_function(keys)
        return fn(row)

    def _transform_record_generic(self, row: dict[str, Any]) -> RecordResult:
        """``transform_record`` for any record: one loop over its keys (the compiled record
        functions must give exactly its results)."""
        entries = getattr(self, "_entries", None)
        if entries is None:
            raise NotFittedError("FittedPlan")
        out: dict[str, Any] = {}
        reason: str | None = None
        column: str | None = None
        rank = len(entries)
        keep = self._keep
        # Hot path for the stream worker: memo lookups inlined, no per-column method call
        # when the raw text was seen before; builtins and globals bound to locals.
        get, text, size, limit = entries.get, str, len, MEMO_SIZE
        for key, raw in row.items():
            entry = get(key)
            if entry is None:
                if keep:
                    out[key] = raw
                continue
            if raw.__class__ is text:
                memo = entry[0]
                if memo is None:
                    hit = entry[1](raw)
                else:
                    hit = memo.get(raw)
                    if hit is None:
                        hit = entry[1](raw)
                        if size(memo) < limit:
                            memo[raw] = hit
            elif raw is None:
                hit = entry[4]
            else:
                hit = entry[2]._clean(raw)
            out[key] = hit[0]
            if hit[1] is not None:
                out.update(hit[1])
            if hit[2] is not None and entry[3] < rank:
                rank, reason, column = entry[3], hit[2], key
        if not entries.keys() <= row.keys():
            # Planned columns absent from the record count as missing.
            for key, (_memo, _fast, _cleaner, order, none_hit) in entries.items():
                if key in row:
                    continue
                value, extras, why = none_hit
                out[key] = value
                if extras is not None:
                    out.update(extras)
                if why is not None and order < rank:
                    rank, reason, column = order, why, key
        if reason is not None:
            return RecordResult(False, None, reason, column)
        return RecordResult(True, out)  # positional: measurably cheaper per record

    # ------------------------------------------------------------ batch
    def transform(self, table: Any, *, source: str | None = None) -> CleanResult:
        """Clean a whole table (Polars, vectorized).

        Parameters
        ----------
        table:
            A Polars or pandas DataFrame with (at least) the planned columns.
        source:
            A file name to put in error messages.

        Returns
        -------
        CleanResult
        """
        from chatpersona.clean.polars_engine import transform_frame

        self._check_fitted()
        df = to_polars(table)
        self._check_columns(df, source)
        return transform_frame(self, df, source=source)

    def fit_transform(self, table: Any, *, source: str | None = None) -> CleanResult:
        """``fit`` then ``transform`` on the same table, parsing it only once."""
        from chatpersona.clean.polars_engine import transform_frame

        df = to_polars(table)
        self._keep_parsed = True
        try:
            self.fit(df, source=source)
            holder: list[pl.DataFrame] = [] if self._parsed is None else [self._parsed]
            self._parsed = None
        finally:
            self._keep_parsed = False
        return transform_frame(self, df, source=source, parsed=holder)

    # ------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        """Plan and statistics as a JSON-friendly dict."""
        self._check_fitted()
        return {
            "version": 1,
            "plan": self.plan.to_dict(),
            "columns_in": self.columns_in_,
            "stats": self.stats_,
        }

    def to_json(self, path: str | Path | None = None) -> str:
        """The fitted plan as JSON text; also written (atomically) to ``path`` if given."""
        text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False)
        if path is not None:
            from chatpersona.clean.io import atomic_write_text

            atomic_write_text(Path(path), text)
        return text

    @classmethod
    def from_json(cls, source: str | Path) -> FittedPlan:
        """Load a fitted plan from JSON text or a ``.json`` file path."""
        if isinstance(source, Path) or (
            isinstance(source, str) and not source.lstrip().startswith("{")
        ):
            source = Path(source).read_text(encoding="utf-8")
        try:
            data = json.loads(source)
        except json.JSONDecodeError as exc:
            raise PlanError(f"Fitted plan is not valid JSON: {exc}") from exc
        if not isinstance(data, dict) or set(data) != {"version", "plan", "columns_in", "stats"}:
            raise PlanError("Fitted plan JSON must have keys version, plan, columns_in, stats.")
        fitted = cls(CleaningPlan.from_dict(data["plan"]))
        fitted.columns_in_ = list(data["columns_in"])
        fitted.stats_ = data["stats"]
        fitted._compile()
        return fitted

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FittedPlan) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


_SOURCES = itertools.count(1)


def _can_quarantine(c: _ColumnCleaner) -> bool:
    """Whether the column's rule can give a record a quarantine reason (else no check)."""
    return (
        c.quarantine_missing
        or (c.invalid_reason is not None and c.on_invalid == "quarantine")
        or (c.bounds is not None and c.out_action == "quarantine")
    )


def _compile_record(
    keys: tuple[Any, ...],
    entries: dict[str, tuple[Any, ...]],
    keep: bool,
    probe: tuple[Iterator[int], Callable[[], None]] | None = None,
) -> Callable[[dict[str, Any]], RecordResult] | None:
    """A record function for rows with exactly ``keys`` in this order, or None when the keys
    are unusual (not all str, or an extra column's name clashes with another key).

    Generated Python source: the loop over the columns unrolled, each column's memo, parser
    and constants bound as globals, the values unpacked in one step, reason checks only for
    columns whose rule can quarantine, in plan order (the reason of the lowest plan order
    wins), after every value is cleaned (as the loop does: memos fill, errors raise alike).
    ``probe``: a record counter and the review it calls at the MEMO_PROBE-th record.
    """
    if any(k.__class__ is not str for k in keys):
        return None
    names: list[str] = []  # every output key, to detect clashes
    ns: dict[str, Any] = {"S": str, "L": MEMO_SIZE, "len": len, "R": RecordResult}
    head: list[str] = []
    if probe is not None:
        ns["N"], ns["review"], ns["P"] = probe[0], probe[1], MEMO_PROBE
        head = ["  if next(N) == P: review()"]
    body: list[str] = []
    items: list[str] = []  # the output dict display, in output order
    present = set(keys)
    for i, key in enumerate(keys):
        entry = entries.get(key)
        if entry is None:
            if keep:
                names.append(key)
                items.append(f"{key!r}: v{i}")
            continue
        memo, fast, cleaner, _order, none_hit = entry
        ns[f"f{i}"], ns[f"c{i}"], ns[f"n{i}"] = fast, cleaner._clean, none_hit
        if memo is None:
            lookup = [f"    h{i} = f{i}(v{i})"]
        else:
            ns[f"m{i}"] = memo
            lookup = [
                f"    h{i} = m{i}.get(v{i})",
                f"    if h{i} is None:",
                f"      h{i} = f{i}(v{i})",
                f"      if len(m{i}) < L: m{i}[v{i}] = h{i}",
            ]
        body += [
            f"  if v{i}.__class__ is S:",
            *lookup,
            f"  elif v{i} is None: h{i} = n{i}",
            f"  else: h{i} = c{i}(v{i})",
        ]
        names.append(key)
        items.append(f"{key!r}: h{i}[0]")
        extra = [n for n in (cleaner.code_name, cleaner.flag_name) if n is not None]
        if extra:  # then every result of the column carries these extras, in this order
            names += extra
            items += [f"{n!r}: h{i}[1][{n!r}]" for n in extra]
    checks: list[str] = []
    for key, (_memo, _fast, cleaner, _order, none_hit) in entries.items():
        if key in present:
            if _can_quarantine(cleaner):
                i = keys.index(key)
                checks += [f"  if h{i}[2] is not None: return R(False, None, h{i}[2], {key!r})"]
            continue
        # Absent from the record: missing, with a result known now.
        for n, x in {key: none_hit[0], **(none_hit[1] or {})}.items():
            ns[f"a{len(names)}"] = x
            items.append(f"{n!r}: a{len(names)}")
            names.append(n)
        why = none_hit[2]
        if why is not None:
            checks += [f"  return R(False, None, {why!r}, {key!r})"]
            break
    if len(set(names)) != len(names):
        return None
    values = "".join(f"v{i}, " for i in range(len(keys)))
    source = "\n".join(
        [
            "def record(row):",
            *head,
            f"  {values}= row.values()" if keys else "  pass",
            *body,
            *checks,
            "  return R(True, {" + ", ".join(items) + "})",
        ]
    )
    # Registered with linecache (as attrs does) so that tracebacks show the generated lines,
    # for as long as the function lives (plans may be reloaded in a long-running worker).
    filename = f"<chatpersona record function {next(_SOURCES)}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), ns)
    fn: Callable[[dict[str, Any]], RecordResult] = ns["record"]
    weakref.finalize(fn, linecache.cache.pop, filename, None)
    return fn


class _ColumnCleaner:
    """The one-record implementation of one column's rule (mirrors ``polars_engine``)."""

    def __init__(self, rule: ColumnRule, missing_values: tuple[str, ...], st: dict[str, Any]):
        self.rule = rule
        self.name = rule.name
        self.kind = rule.kind
        self.missing_values = frozenset(missing_values)
        self.fill = _decode(rule.kind, st.get("fill"))
        self.fill_code = st.get("currency_mode")
        self.quarantine_missing = rule.missing == "quarantine"
        self.invalid_reason = REASON_BY_KIND.get(rule.kind)
        self.on_invalid = rule.on_invalid
        lo, hi = st.get("lo"), st.get("hi")
        self.bounds = None if lo is None or hi is None else (float(lo), float(hi))
        self.out_action = rule.outliers.action
        self.out_reason = f"outlier_{rule.outliers.method}"
        self.flag_name = f"{rule.name}_outlier" if rule.outliers.action == "flag" else None
        self.code_name = f"{rule.name}_currency" if rule.kind == "currency" else None
        self._parse = self._build_parser()
        self._memo: dict[str, tuple[Any, dict[str, Any] | None, str | None]] = {}
        self.memoize = rule.kind != "id"  # ids are unique: memoizing them only costs memory
        self._fast = self._build_fast()

    def _build_fast(self) -> Callable[[str], tuple[Any, dict[str, Any] | None, str | None]]:
        """``_clean`` for a text value, compiled for the common case (present, valid, within
        bounds); anything else takes the general ``_clean`` so the rules live in one place."""
        mv, parse, slow = self.missing_values, self._parse, self._clean
        lo, hi = self.bounds if self.bounds is not None else (None, None)
        # A raw value that parses cannot be a missing token unless some token parses itself
        # (in any case: parsers ignore surrounding spaces); then the token test comes first.
        check_mv = self.kind in ("categorical", "text", "boolean") or any(
            parse(v) is not None for m in mv for v in (m, m.upper(), m.title())
        )
        code_name = self.code_name
        if self.flag_name is not None:
            return slow
        if self.kind == "id":

            def fast_id(raw: str) -> tuple[Any, dict[str, Any] | None, str | None]:
                t = raw.strip(WS)
                if t.lower() in mv:
                    return slow(raw)
                return t, None, None

            return fast_id
        if code_name is not None:
            # The parser without its wrapper: one call less per value.
            currency, default = parse_currency.__wrapped__, self.rule.default_currency

            def fast_currency(raw: str) -> tuple[Any, dict[str, Any] | None, str | None]:
                if check_mv and raw.strip(WS).lower() in mv:
                    return slow(raw)
                parsed = currency(raw, default)
                if parsed is None:
                    return slow(raw)
                v, code = parsed
                if lo is not None and hi is not None and (v < lo or v > hi):
                    return slow(raw)
                return v, {code_name: code}, None

            return fast_currency

        def fast(raw: str) -> tuple[Any, dict[str, Any] | None, str | None]:
            if check_mv and raw.strip(WS).lower() in mv:
                return slow(raw)
            v = parse(raw)
            if v is None or (lo is not None and (v < lo or v > hi)):
                return slow(raw)
            return v, None, None

        if check_mv:
            return fast
        # The common shapes of the kinds whose values hardly repeat, tested here without the
        # calls to the parser (the same shortcuts as parse_number and to_datetime).
        if self.kind == "numeric":
            top = sys.float_info.max
            lo_n, hi_n = self.bounds if self.bounds is not None else (-top, top)

            def fast_number(raw: str) -> tuple[Any, dict[str, Any] | None, str | None]:
                s = raw.strip(WS)
                if s.isascii() and s.replace(".", "", 1).isdigit():
                    v = float(s)
                    if lo_n <= v <= hi_n:  # not for inf: digits beyond 1e308
                        return v, None, None
                return fast(raw)

            return fast_number
        if self.kind == "datetime":
            iso, from_iso = _FAST_ISO_SHAPE.fullmatch, datetime.fromisoformat
            combine = datetime.combine

            def fast_datetime(raw: str) -> tuple[Any, dict[str, Any] | None, str | None]:
                if iso(raw) is not None:
                    try:
                        dt = from_iso(raw)
                    except ValueError:
                        return slow(raw)
                    return combine(dt, dt.time(), UTC_ZONE), None, None
                return fast(raw)

            return fast_datetime
        if self.kind == "date":
            return self._fast_date(fast)
        return fast

    def _fast_date(self, fast: _Fast) -> _Fast:
        """``fast`` for a date column, with parse_datetime's three plain shapes tested first:
        ISO (a time ignored, as .date() drops it), day and month by numbers, epoch digits."""
        slow, dayfirst = self._clean, self.rule.dayfirst
        iso, from_iso = _FAST_ISO_SHAPE.fullmatch, datetime.fromisoformat
        numeric, make = _NUMERIC_DATE.fullmatch, date
        epoch_lengths = (9, 10) if self.rule.epoch_unit == "s" else (12, 13)
        per_day = 86400 if self.rule.epoch_unit == "s" else 86_400_000
        day0 = date(1970, 1, 1).toordinal()
        from_ordinal = date.fromordinal

        def fast_date(raw: str) -> tuple[Any, dict[str, Any] | None, str | None]:
            m = numeric(raw)
            try:
                if m is not None:
                    a, b, y = m.groups()
                    day, month = (a, b) if dayfirst else (b, a)
                    return make(int(y), int(month), int(day)), None, None
                if iso(raw) is not None:
                    return from_iso(raw).date(), None, None
            except ValueError:
                return slow(raw)
            if len(raw) in epoch_lengths and raw.isdigit() and raw.isascii():
                return from_ordinal(day0 + int(raw) // per_day), None, None
            return fast(raw)

        return fast_date

    def _build_parser(self) -> Callable[[str], Any]:
        rule = self.rule
        kind = self.kind
        syn = norm_synonyms(rule)
        if kind == "id":
            return lambda s: s.strip(WS)
        if kind in ("categorical", "text"):
            steps = rule.normalize.to_dict()

            @lru_cache(maxsize=8192)
            def label(s: str) -> str:
                t = normalize_text(s, **steps)
                return syn.get(t, t)

            return label
        if kind == "boolean":
            tv, fv = frozenset(rule.true_values), frozenset(rule.false_values)

            @lru_cache(maxsize=1024)
            def boolean(s: str) -> bool | None:
                t = s.strip(WS).lower()
                return parse_bool(syn.get(t, t), tv, fv)

            return boolean
        if kind == "numeric":
            return parse_number
        if kind == "integer":

            def integer(s: str) -> int | None:
                x = parse_number(s)
                if x is None or x != math.floor(x) or abs(x) > MAX_INT:
                    return None
                return int(x)

            return integer
        if kind == "currency":
            default = rule.default_currency
            # The per-column memo caches results; the function's own LRU would only add cost.
            uncached = parse_currency.__wrapped__

            def currency(s: str) -> tuple[float, str | None] | None:
                return uncached(s, default)

            return currency
        dayfirst, unit = rule.dayfirst, rule.epoch_unit
        iso = _FAST_ISO_SHAPE.fullmatch
        from_iso, combine = datetime.fromisoformat, datetime.combine
        if kind == "date":

            def to_date(s: str) -> date | None:
                dt = parse_datetime(s, dayfirst, unit)
                return None if dt is None else dt.date()

            return to_date

        def to_datetime(s: str) -> datetime | None:
            # Fixed-width ISO (the "iso" shape without offset or fraction, 'Z' or none): the
            # C parser gives the same fields; a date or time out of range raises, as in
            # parse_datetime. combine() attaches the zone: 3-4x cheaper than replace().
            if iso(s) is not None:
                try:
                    dt = from_iso(s)
                except ValueError:
                    return None
            else:
                parsed = parse_datetime(s, dayfirst, unit)
                if parsed is None:
                    return None
                dt = parsed
            return combine(dt, dt.time(), UTC_ZONE)

        return to_datetime

    def parse(self, raw: Any) -> tuple[Any, str | None, bool, bool]:
        """``(value, currency code, missing, invalid)`` for one raw value."""
        text = raw if isinstance(raw, str) else to_text(raw)
        if text is None or text.strip(WS).lower() in self.missing_values:
            return None, None, True, False
        value = self._parse(text)
        code = None
        if self.kind == "currency" and value is not None:
            value, code = value
        invalid = value is None and self.invalid_reason is not None
        return value, code, False, invalid

    def clean(self, raw: Any) -> tuple[Any, dict[str, Any] | None, str | None]:
        """``(cleaned value, extra columns, reason or None)`` for one raw value.

        Results for text inputs are memoized per column (the mapping is pure), which is what
        makes repeated labels, dates and small integers cost one dict lookup."""
        if type(raw) is str:
            hit = self._memo.get(raw)
            if hit is not None:
                return hit
            result = self._clean(raw)
            if self.memoize and len(self._memo) < MEMO_SIZE:
                self._memo[raw] = result
            return result
        return self._clean(raw)

    def _clean(self, raw: Any) -> tuple[Any, dict[str, Any] | None, str | None]:
        value, code, missing, invalid = self.parse(raw)
        reason: str | None = None
        if missing and self.quarantine_missing:
            reason = "missing_required"
        elif invalid:
            if self.on_invalid == "quarantine":
                reason = self.invalid_reason
            elif self.on_invalid == "error":
                raise InputError(f"Cannot parse a {self.kind} value", column=self.name, value=raw)
        nullified = missing or (invalid and self.on_invalid == "null")
        extras: dict[str, Any] | None = None
        outlier = False
        if self.bounds is not None and value is not None:
            lo, hi = self.bounds
            outlier = value < lo or value > hi
            if outlier:
                if self.out_action == "quarantine":
                    reason = reason or self.out_reason
                elif self.out_action == "clip":
                    if self.kind == "integer":
                        value = math.ceil(lo) if value < lo else math.floor(hi)
                    else:
                        value = lo if value < lo else hi
        if nullified and self.fill is not None:
            value = self.fill
            if self.code_name is not None:
                code = self.fill_code
        if self.code_name is not None:
            extras = {self.code_name: code}
        if self.flag_name is not None:
            extras = extras or {}
            extras[self.flag_name] = outlier
        return value, extras, reason

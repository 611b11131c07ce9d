"""Propose a :class:`CleaningPlan` from raw data; a person then reviews the YAML.

The inferred defaults already do what a typical pandas cleaning script does: continuous
numbers get median imputation and Z-score (3) quarantine; labels are trimmed, case-folded and
unified with mode or "Unknown" for missing ones; Yes/No-style columns become booleans; date
columns are parsed to UTC; currency strings become an amount plus a code column.
"""

from __future__ import annotations

import re
from typing import Any

import polars as pl

from chatpersona.clean.fitted import to_polars
from chatpersona.clean.formats import (
    DATE_PATTERNS,
    WS,
    parse_currency,
    parse_datetime,
    parse_number,
)
from chatpersona.clean.plan import (
    BOOLEAN_FALSE,
    BOOLEAN_TRUE,
    DEFAULT_MISSING_VALUES,
    CleaningPlan,
    ColumnRule,
    DuplicateRule,
    Normalization,
    OutlierRule,
)
from chatpersona.clean.polars_engine import as_text_frame
from chatpersona.exceptions import ParameterError

__all__ = ["infer_plan"]

_ID_NAME = re.compile(r"(^id$|_id$|id$|uuid|^key$)", re.IGNORECASE)
_DATE_NAME = re.compile(r"(date|time|_at$|^ts$|day)", re.IGNORECASE)
_TS_NAME = re.compile(r"(updated|modified|changed|_at$|timestamp|^ts$)", re.IGNORECASE)
_NUMERIC_DATE = re.compile(DATE_PATTERNS[1][1])
_TIME_PART = re.compile(r"[0-9]:[0-5][0-9]")
_CURRENCY_MARK = re.compile(r"[$€£¥₹]|[A-Za-z]{3}")
_NO_PHRASE = re.compile(r"^no [a-z ]+$")


def _share(values: list[str], pred: Any) -> float:
    return sum(1 for v in values if pred(v)) / len(values) if values else 0.0


def _dayfirst(values: list[str]) -> tuple[bool, str]:
    first_gt, second_gt = 0, 0
    for v in values:
        m = _NUMERIC_DATE.match(v)
        if m:
            first_gt += int(m.group("a")) > 12
            second_gt += int(m.group("b")) > 12
    if second_gt > first_gt:
        return False, f"month-first: {second_gt} values have a day > 12 in second place"
    if first_gt:
        return True, f"day-first: {first_gt} values have a day > 12 in first place"
    return True, "day-first assumed (no value proves the order); check it"


def _abbreviations(labels: set[str]) -> dict[str, str]:
    """``f -> female`` when a one-letter label starts exactly one longer label."""
    out: dict[str, str] = {}
    for short in sorted(v for v in labels if len(v) == 1 and v.isalpha()):
        longer = [v for v in labels if len(v) > 1 and v.startswith(short)]
        if len(longer) == 1:
            out[short] = longer[0]
    return out


def _infer_column(
    name: str, raw: pl.Series, n_rows: int, missing_values: tuple[str, ...]
) -> ColumnRule:
    mv = set(missing_values)
    present = [v for v in raw.to_list() if v is not None and v.strip(WS).lower() not in mv]
    n_missing = n_rows - len(present)
    missing_share = n_missing / n_rows if n_rows else 0.0
    distinct = list(dict.fromkeys(present))
    lowered = {v.strip(WS).lower() for v in distinct}
    if not present:
        return ColumnRule(name=name, kind="text", inferred=True, note="no values seen")
    unique_ratio = len(distinct) / len(present)

    if _ID_NAME.search(name) and unique_ratio >= 0.5:
        return ColumnRule(
            name=name, kind="id", missing="quarantine", inferred=True, note="id-like name"
        )

    vocab = set(BOOLEAN_TRUE) | set(BOOLEAN_FALSE)
    extra_false = sorted(v for v in lowered - vocab if _NO_PHRASE.match(v))
    if lowered and lowered - set(extra_false) <= vocab and len(extra_false) <= 3:
        has_true = bool(lowered & set(BOOLEAN_TRUE))
        has_false = bool(lowered & set(BOOLEAN_FALSE)) or bool(extra_false)
        if has_true and has_false and not (lowered <= {"0", "1"} and len(distinct) > 2):
            note = "Yes/No-style labels"
            if extra_false:
                note += f"; {extra_false} unified to false"
            return ColumnRule(
                name=name,
                kind="boolean",
                missing="mode",
                false_values=(*BOOLEAN_FALSE, *extra_false),
                inferred=True,
                note=note,
            )

    sample = distinct[:5000]
    if _share(sample, lambda v: parse_number(v) is not None) >= 0.95:
        numbers = [x for x in (parse_number(v) for v in sample) if x is not None]
        integral = all(x.is_integer() for x in numbers)
        continuous = len(distinct) > 20
        return ColumnRule(
            name=name,
            kind="integer" if integral else "numeric",
            missing="median",
            outliers=OutlierRule(method="zscore" if continuous else "none"),
            inferred=True,
            note="numbers stored as text" if raw.dtype == pl.Utf8 else "numbers",
        )

    date_share = max(
        _share(sample, lambda v, f=first: parse_datetime(v, f, "s") is not None)
        for first in (True, False)
    )
    date_named = _DATE_NAME.search(name) is not None
    if date_share >= 0.9 or (date_share >= 0.5 and date_named):
        dayfirst, why = _dayfirst(sample)
        has_time = any(_TIME_PART.search(v) for v in sample[:2000])
        kind = "datetime" if has_time and not name.lower().endswith("date") else "date"
        return ColumnRule(
            name=name,
            kind=kind,
            missing="none",
            dayfirst=dayfirst,
            inferred=True,
            note=f"dates in mixed formats; {why}",
        )

    if (
        _share(sample, lambda v: parse_currency(v, None) is not None) >= 0.9
        and _share(sample, lambda v: _CURRENCY_MARK.search(v) is not None) >= 0.1
    ):
        return ColumnRule(
            name=name,
            kind="currency",
            missing="median",
            outliers=OutlierRule(method="zscore"),
            inferred=True,
            note="currency strings; amounts without a symbol get no code (set default_currency)",
        )

    labels = {" ".join(v.split()).lower() for v in distinct}
    avg_len = sum(len(v) for v in sample) / len(sample)
    avg_words = sum(len(v.split()) for v in sample) / len(sample)
    # Sentences (3+ words on average) are free text even when few distinct ones occur.
    if len(labels) <= max(50, int(0.01 * len(present))) and avg_len <= 40 and avg_words < 3:
        missing = "mode" if missing_share <= 0.01 else "unknown"
        synonyms = _abbreviations(labels)
        note = f"{len(labels)} labels after trimming and case-folding"
        if synonyms:
            note += f"; one-letter labels expanded: {synonyms}"
        return ColumnRule(
            name=name,
            kind="categorical",
            missing=missing,
            normalize=Normalization(),
            synonyms=synonyms,
            fuzzy_threshold=0.85,
            inferred=True,
            note=note,
        )
    return ColumnRule(
        name=name,
        kind="text",
        missing="none",
        normalize=Normalization(lower=False),
        inferred=True,
        note="free text",
    )


def infer_plan(
    table: Any, *, sample_rows: int = 200_000, missing_values: tuple[str, ...] | None = None
) -> CleaningPlan:
    """Propose a plan for ``table`` (a Polars or pandas DataFrame).

    Parameters
    ----------
    table:
        Raw data; non-text columns are looked at as text, as a CSV would give them.
    sample_rows:
        Look at most at this many rows (the first ones).
    missing_values:
        Texts that mean missing (default: blank, na, n/a, null, none, nan).

    Returns
    -------
    CleaningPlan
        Every rule has ``inferred: true`` and a ``note`` saying why.

    Examples
    --------
    >>> import polars as pl
    >>> df = pl.DataFrame({"vip": ["Y", "no", " yes", "N"], "age": ["30", "", "41", "38"]})
    >>> plan = infer_plan(df)
    >>> plan.columns["vip"].kind, plan.columns["age"].kind, plan.columns["age"].missing
    ('boolean', 'integer', 'median')
    """
    if not isinstance(sample_rows, int) or sample_rows < 1:
        raise ParameterError("infer_plan", "sample_rows", "an int >= 1", sample_rows)
    mv = tuple(missing_values) if missing_values is not None else DEFAULT_MISSING_VALUES
    mv = tuple(v.strip().lower() for v in mv)
    df = to_polars(table).head(sample_rows)
    # Nested columns (lists, structs such as an event payload) have no cleaning kind: they
    # are left unplanned and pass through unchanged.
    flat = [c for c, dtype in df.schema.items() if not dtype.is_nested()]
    text = as_text_frame(df.select(flat), flat)
    rules = {c: _infer_column(c, text[c], df.height, mv) for c in flat}
    ids = [c for c, r in rules.items() if r.kind == "id"]
    id_col = ids[0] if len(ids) == 1 else None
    latest = None
    if id_col is not None:
        stamps = [c for c, r in rules.items() if r.kind in ("date", "datetime")]
        named = [c for c in stamps if _TS_NAME.search(c)]
        latest = named[0] if named else None
    return CleaningPlan(
        rules,
        duplicates=DuplicateRule(exact_rows=True, id_column=id_col, latest_by=latest),
        missing_values=mv,
    )

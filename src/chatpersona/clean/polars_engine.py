"""The vectorized engine: Polars expressions for parsing and cleaning each column.

Each builder mirrors a function of :mod:`chatpersona.clean.formats` (the one-record path);
the parity tests hold them to identical results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import polars.selectors as cs

from chatpersona.clean.formats import (
    CURRENCY_RE,
    CURRENCY_SYMBOLS,
    DATE_PATTERNS,
    EPOCH_RE,
    MONTHS,
    SPECIAL_RE,
    WS,
    WS_RE,
    normalize_text,
)
from chatpersona.clean.plan import ColumnRule

__all__ = ["Parsed", "parse_column", "parse_frame"]

UTC_DT = pl.Datetime("us", "UTC")
_SYM = "[" + "".join(CURRENCY_SYMBOLS) + "]"
REASON_BY_KIND = {
    "numeric": "unparseable_number",
    "integer": "unparseable_integer",
    "boolean": "unparseable_boolean",
    "date": "unparseable_date",
    "datetime": "unparseable_date",
    "currency": "unparseable_currency",
}
MAX_INT = 2**53
HELPER_PREFIXES = (
    "__v",
    "__r",
    "__m",
    "__x",
    "__n",
    "__u",
    "__s",
    "__c",
    "__o",
    "_reason",
    "_column",
)


@dataclass
class Parsed:
    """Expressions for one column: the typed value (null when missing or invalid), whether
    the input was missing, whether it was present but unparseable, and the currency code."""

    value: pl.Expr
    missing: pl.Expr
    invalid: pl.Expr
    code: pl.Expr | None = None
    stages: list[list[Any]] = field(default_factory=list)


def normalize_expr(e: pl.Expr, rule: ColumnRule) -> pl.Expr:
    """Text steps in the plan's fixed order (see :func:`formats.normalize_text`)."""
    n = rule.normalize
    if n.nfkc:
        e = e.str.normalize("NFKC")
    if n.strip_special:
        e = e.str.replace_all(SPECIAL_RE, "")
    if n.collapse:
        e = e.str.replace_all(WS_RE + "+", " ")
    if n.trim:
        e = e.str.strip_chars(WS)
    if n.lower:
        e = e.str.to_lowercase()
    return e


def norm_synonyms(rule: ColumnRule) -> dict[str, str]:
    """Synonym keys and values normalized like the column's labels."""
    if rule.kind == "boolean":
        return {k.strip(WS).lower(): v.strip(WS).lower() for k, v in rule.synonyms.items()}
    n = rule.normalize.to_dict()
    return {normalize_text(k, **n): normalize_text(v, **n) for k, v in rule.synonyms.items()}


def _number(t: pl.Expr) -> pl.Expr:
    """The number in trimmed text ``t``. Polars' float parser accepts exactly NUMBER_RE once
    non-finite results are dropped (checked by the parity tests): no regex pass is needed."""
    x = t.cast(pl.Float64, strict=False)
    return pl.when(x.is_finite()).then(x)


class DropColumns(str):
    """A stage item that drops a temporary column instead of adding one."""


Stages = list[list[Any]]


@dataclass(frozen=True)
class WhenAny:
    """A stage item: ``stages`` that change only the rows where ``column`` is not null; where
    no row has a value there, the columns they leave (``outputs``: name, dtype) are all null.
    :func:`apply_stages` always runs them; :func:`apply_stages_skipping` looks first."""

    column: str
    stages: Stages
    outputs: tuple[tuple[str, Any], ...]


_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _currency(t: pl.Expr, default: str | None, tag: str) -> tuple[pl.Expr, pl.Expr, Stages]:
    # ``t``: the trimmed text. Validate the whole shape with one match, then take the pieces
    # with cheap operations that are equivalent once the shape is known (only valid rows
    # matter: the others get a null amount and code). Costly steps run on a masked input
    # (null where they do not apply), because a when/then evaluates every branch on every row.
    # Intermediate results are materialized as named columns (stages) so no sub-expression
    # is evaluated twice.
    stage_v = [pl.when(t.str.contains(CURRENCY_RE)).then(t).alias(f"{tag}_tv")]
    tv = pl.col(f"{tag}_tv")
    # In a valid string everything around the number is sign, spaces, letters or symbols.
    stage_a = [
        tv.str.strip_chars(" -" + _LETTERS + "".join(CURRENCY_SYMBOLS)).alias(f"{tag}_num"),
        tv.str.contains("-", literal=True).alias(f"{tag}_neg"),
        # The symbol or code: the first one (the prefix when both a prefix and a suffix are
        # present). In a valid string no other letters or symbols occur.
        tv.str.extract(r"[A-Za-z]{3}|" + _SYM, 0).alias(f"{tag}_sym"),
    ]
    num = pl.col(f"{tag}_num")
    # The separators: with both marks the last one is the decimal mark; a single comma followed
    # by one or two digits is one; otherwise they group thousands. The number starts and ends
    # with a digit, so once the grouping marks are gone it is valid exactly when at most one
    # "." is left, which is when the float parse succeeds (no pattern check needed).
    stage_b = [
        num.str.count_matches(".", literal=True).alias(f"{tag}_nd"),
        num.str.count_matches(",", literal=True).alias(f"{tag}_nc"),
    ]
    nd, nc = pl.col(f"{tag}_nd"), pl.col(f"{tag}_nc")
    both = (nd > 0) & (nc > 0)
    comma_last = pl.when(both).then(num).str.contains(r",[0-9]+$")
    one_comma = (nd == 0) & (nc == 1)
    digits_after = num.str.len_bytes() - pl.when(one_comma).then(num).str.find(",", literal=True)
    stage_c = [
        (comma_last.fill_null(False) | (digits_after <= 3).fill_null(False)).alias(f"{tag}_dec")
    ]
    dec = pl.col(f"{tag}_dec")
    fixed = pl.coalesce(
        pl.when(dec).then(num).str.replace_many([".", ","], ["", "."]),
        pl.when(~dec & (nc > 0)).then(num).str.replace_all(",", "", literal=True),
        pl.when(~dec & (nc == 0) & (nd > 1)).then(num).str.replace_all(".", "", literal=True),
        num,
    )
    stage_d = [fixed.cast(pl.Float64, strict=False).alias(f"{tag}_amt")]
    amt = pl.col(f"{tag}_amt")
    finite = pl.when(amt.is_finite()).then(amt)
    amount = pl.when(pl.col(f"{tag}_neg")).then(-finite).otherwise(finite)
    symc = pl.col(f"{tag}_sym")
    # Symbols to codes by a when/then chain (a replace() would make Polars' streaming engine
    # hold the whole column).
    named = symc
    for symbol, iso in CURRENCY_SYMBOLS.items():
        named = pl.when(symc == symbol).then(pl.lit(iso)).otherwise(named)
    code = (
        pl.when(symc.is_null())
        .then(pl.lit(default, dtype=pl.Utf8))
        .otherwise(named.str.to_uppercase())
    )
    code = pl.when(amt.is_finite()).then(code)
    return amount, code, [stage_v, stage_a, stage_b, stage_c, stage_d]


_YMD = r"^[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}"
_HMS = r"[0-9]{2}:[0-5][0-9]:[0-5][0-9]"
# The fixed-width ISO shapes read by strptime, by their length in bytes (a string of any of
# them is ASCII); the two of 19 bytes differ in their 11th character, which each format
# requires, so each string is read by its own format only.
FAST_ISO = (
    (10, "%Y-%m-%d"),
    (20, "%Y-%m-%dT%H:%M:%SZ"),
    (19, "%Y-%m-%dT%H:%M:%S"),
    (19, "%Y-%m-%d %H:%M:%S"),
)
FAST_ISO_SHAPE = _YMD + "(?:T" + _HMS + "Z?| " + _HMS + ")?$"


def _datetime(t: pl.Expr, dayfirst: bool, epoch_unit: str, tag: str) -> tuple[pl.Expr, Stages]:
    """The UTC timestamp in trimmed text ``t``, and the stages it needs."""
    stage_a = [t.alias(f"{tag}_t")]
    tt = pl.col(f"{tag}_t")
    epoch = pl.when(tt.str.contains(EPOCH_RE[epoch_unit])).then(
        pl.from_epoch(
            tt.cast(pl.Int64, strict=False), time_unit="s" if epoch_unit == "s" else "ms"
        ).cast(pl.Datetime("us"))
    )
    # Fast path: the common fixed-width ISO shapes are read by strptime on only the rows of
    # that exact shape (every such string is also matched by the "iso" pattern below, which
    # gives the same result, valid or not); the capture patterns see only the other rows.
    # One pattern tells whether a row has one of the shapes; its length tells which.
    n = pl.when(tt.str.contains(FAST_ISO_SHAPE)).then(tt.str.len_bytes()).alias(f"{tag}_n")
    fast = [
        pl.when(pl.col(f"{tag}_n") == size)
        .then(tt)
        .str.strptime(pl.Datetime("us"), fmt, strict=False)
        for size, fmt in FAST_ISO
    ]
    stages: Stages = [
        stage_a,
        [n],
        [epoch.alias(f"{tag}_e"), pl.coalesce(fast).alias(f"{tag}_f"), DropColumns(f"{tag}_n")],
    ]
    stages.append(
        [
            pl.when(pl.col(f"{tag}_f").is_null() & pl.col(f"{tag}_e").is_null())
            .then(tt)
            .alias(f"{tag}_t")
        ]
    )
    months = {k: str(v) for k, v in MONTHS.items()}
    # One pattern at a time: its capture struct is materialized, reduced to a datetime and
    # dropped before the next one, so at most one struct per column is alive (memory). They
    # only see the rows the fast paths left: a batch with none skips them (WhenAny).
    patterns: Stages = []
    for k, (name, pattern) in enumerate(DATE_PATTERNS):
        patterns.append([tt.str.extract_groups(pattern).alias(f"{tag}_g{k}")])
        g = pl.col(f"{tag}_g{k}")
        f = g.struct.field
        if name == "numeric":
            day, month = (f("a"), f("b")) if dayfirst else (f("b"), f("a"))
        elif name == "iso":
            day, month = f("d"), f("m")
        else:
            day = f("d")
            month = f("mon").str.slice(0, 3).str.to_lowercase().replace_strict(months, default=None)
        stamp = pl.concat_str(
            [
                f("y"),
                pl.lit("-"),
                month.str.zfill(2),
                pl.lit("-"),
                day.str.zfill(2),
                pl.lit(" "),
                f("H").fill_null("0").str.zfill(2),
                pl.lit(":"),
                f("M").fill_null("00"),
                pl.lit(":"),
                f("S").fill_null("00"),
            ]
        )
        dt = stamp.str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S", strict=False)
        micros = f("f").str.pad_end(6, "0").cast(pl.Int64, strict=False).fill_null(0)
        tz = f("tz").str.to_uppercase()
        digits = tz.str.slice(1).str.replace(":", "", literal=True)
        minutes = digits.str.slice(0, 2).cast(pl.Int64, strict=False) * 60 + digits.str.slice(
            2, 2
        ).cast(pl.Int64, strict=False)
        offset = (
            pl.when(tz.is_null() | tz.is_in(["Z", "UTC"]))
            .then(pl.lit(0, dtype=pl.Int64))
            .when(tz.str.starts_with("-"))
            .then(-minutes)
            .otherwise(minutes)
        )
        patterns.append(
            [
                pl.when(f("y").is_not_null())
                .then(dt + pl.duration(microseconds=micros) - pl.duration(minutes=offset))
                .alias(f"{tag}_d{k}")
            ]
        )
        patterns.append([DropColumns(f"{tag}_g{k}")])
    outputs = tuple((f"{tag}_d{k}", pl.Datetime("us")) for k in range(len(DATE_PATTERNS)))
    stages.append([WhenAny(f"{tag}_t", patterns, outputs)])
    parts = [pl.col(f"{tag}_e"), pl.col(f"{tag}_f")]
    parts += [pl.col(f"{tag}_d{k}") for k in range(len(DATE_PATTERNS))]
    return pl.coalesce(parts).dt.replace_time_zone("UTC"), stages


def _is_missing_text(
    raw: pl.Expr, missing_values: tuple[str, ...], trimmed: pl.Expr | None = None
) -> pl.Expr:
    """Trimmed, lowercased text in ``missing_values`` (``trimmed``: ``raw`` already trimmed).
    Lowercasing never reduces the number of characters, so only values no longer than the
    longest missing value are lowercased."""
    if not missing_values:
        return pl.lit(False)
    t = raw.str.strip_chars(WS) if trimmed is None else trimmed
    longest = max(len(v) for v in missing_values)
    short = pl.when(t.str.len_chars() <= longest).then(t)
    return short.str.to_lowercase().is_in(list(missing_values)).fill_null(False)


# Kinds whose parse starts by trimming the text (shared with the missing-value check).
TRIMMED_KINDS = ("id", "numeric", "integer", "currency", "date", "datetime")


def parse_column(
    rule: ColumnRule, raw: pl.Expr, missing_values: tuple[str, ...], tag: str = "__t"
) -> Parsed:
    """Parse one raw text column (Utf8 expression) according to ``rule``; ``stages`` must be
    added (in order, with ``with_columns``) before the value expressions are evaluated."""
    # Sub-results used more than once are materialized as stage columns: inside one
    # expression Polars may evaluate a repeated sub-expression each time. The kinds whose
    # parse starts by trimming the text trim it once, for it and the missing-value check.
    kind = rule.kind
    trimmed = pl.col(f"{tag}_ws") if kind in TRIMMED_KINDS else None
    stages: Stages = [[raw.str.strip_chars(WS).alias(f"{tag}_ws")]] if trimmed is not None else []
    missing_check = raw.is_null() | _is_missing_text(raw, missing_values, trimmed)
    stages.append([missing_check.alias(f"{tag}_mi")])
    missing = pl.col(f"{tag}_mi")
    code: pl.Expr | None = None
    t = trimmed if trimmed is not None else raw
    if kind == "id":
        value = t
    elif kind in ("categorical", "text"):
        value = normalize_expr(raw, rule)
        syn = norm_synonyms(rule)
        if syn:
            value = value.replace(syn)
    elif kind == "boolean":
        t = raw.str.strip_chars(WS).str.to_lowercase()
        syn = norm_synonyms(rule)
        if syn:
            t = t.replace(syn)
        vocab = {v: True for v in rule.true_values} | {v: False for v in rule.false_values}
        value = t.replace_strict(vocab, default=None, return_dtype=pl.Boolean)
    elif kind == "numeric":
        value = _number(t)
    elif kind == "integer":
        stages[-1].append(_number(t).alias(f"{tag}_x"))  # beside the missing check
        x = pl.col(f"{tag}_x")
        value = pl.when((x == x.floor()) & (x.abs() <= MAX_INT)).then(x).cast(pl.Int64)
    elif kind == "currency":
        value, code, more = _currency(t, rule.default_currency, tag)
        stages[-1] += more[0]  # the shape check, beside the missing check
        stages += more[1:]
    elif kind in ("date", "datetime"):
        value, more = _datetime(t, rule.dayfirst, rule.epoch_unit, tag)
        stages[-1] += more[0]
        stages += more[1:]
        if kind == "date":
            value = value.dt.date()
    else:  # pragma: no cover - kinds are validated by the plan
        raise AssertionError(kind)
    value = pl.when(~missing).then(value)
    invalid = (~missing & value.is_null()) if kind in REASON_BY_KIND else pl.lit(False)
    if code is not None:
        code = pl.when(~missing).then(code)
    return Parsed(value=value, missing=missing, invalid=invalid, code=code, stages=stages)


def as_text_frame(df: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """Cast the planned columns to text so both engines see the same raw values."""
    casts = text_casts(df.schema, columns)
    return df.with_columns(casts) if casts else df


def text_casts(schema: Any, columns: list[str]) -> list[pl.Expr]:
    """The casts of :func:`as_text_frame` for a table of ``schema`` (a name -> dtype
    mapping); columns that already are text need none."""
    casts: list[Any] = []
    for c in columns:
        dtype = schema[c]
        if dtype == pl.Utf8:
            continue
        if dtype == pl.Boolean:
            casts.append(
                pl.when(pl.col(c).is_null())
                .then(pl.lit(None, dtype=pl.Utf8))
                .when(pl.col(c))
                .then(pl.lit("true"))
                .otherwise(pl.lit("false"))
                .alias(c)
            )
        elif dtype.is_float():
            casts.append(
                pl.when(pl.col(c).is_nan()).then(None).otherwise(pl.col(c)).cast(pl.Utf8).alias(c)
            )
        else:
            casts.append(pl.col(c).cast(pl.Utf8).alias(c))
    return casts


def parse_stage(rule: ColumnRule, i: int, missing_values: tuple[str, ...]) -> Stages:
    """The parse of column ``i`` as stages ending with ``__p{i}`` (value), ``__m{i}``
    (missing) and ``__k{i}`` (currency code); later steps refer to them by name."""
    parsed = parse_column(rule, pl.col(rule.name), missing_values, tag=f"__t{i}")
    final = [parsed.value.alias(f"__p{i}"), parsed.missing.alias(f"__m{i}")]
    if parsed.code is not None:
        final.append(parsed.code.alias(f"__k{i}"))
    return [*parsed.stages, final]


DEDUP_MIN_ROWS = 2048
DEDUP_SAMPLE = 20_000


EXPENSIVE_KINDS = ("date", "datetime", "currency", "text", "categorical")


def _few_distinct(s: pl.Series, kind: str) -> bool:
    """Whether a column repeats its values enough that parsing only the distinct values and
    joining them back (two hash passes) is cheaper than parsing every row, judged on a leading
    sample (which understates repetition in a larger column); costly parses need less."""
    head = s.head(DEDUP_SAMPLE)
    share = 0.75 if kind in EXPENSIVE_KINDS else 0.5
    return head.n_unique() <= share * head.len()


def parse_frame(text: pl.DataFrame, plan: Any, keep_raw: tuple[str, ...] = ()) -> pl.DataFrame:
    """The stage-1 parse of every planned column of ``text`` (planned columns as Utf8):
    ``__p{i}``, ``__m{i}`` (and ``__k{i}`` for currency) in plan order, plus the raw column of
    every rule whose kind is in ``keep_raw``.

    Every parse is elementwise, so a column with many repeated values (labels, booleans,
    dates) is parsed on its distinct values only and joined back: the same expressions, the
    same results, a fraction of the work. Other columns are parsed row by row in one pass.
    """
    mv = plan.missing_values
    rules = list(plan.columns.values())
    parts: dict[int, pl.DataFrame] = {}
    for i, rule in enumerate(rules):
        outs = [f"__p{i}", f"__m{i}", *([f"__k{i}"] if rule.kind == "currency" else [])]
        s = text[rule.name]
        if text.height >= DEDUP_MIN_ROWS and rule.kind != "id" and _few_distinct(s, rule.kind):
            uniq = s.unique().drop_nulls().to_frame()
            table = apply_stages(uniq.lazy(), parse_stage(rule, i, mv)).select(rule.name, *outs)
            joined = (
                s.to_frame()
                .lazy()
                .join(table, on=rule.name, how="left", maintain_order="left")
                # null raw values have no partner: they are missing, with null value and code
                .with_columns(pl.col(f"__m{i}").fill_null(True))
                .select(outs)
                .collect()
            )
            parts[i] = joined
        else:
            # One column at a time: only that column's temporary stage columns are alive.
            lf = apply_stages_skipping(s.to_frame().lazy(), parse_stage(rule, i, mv))
            parts[i] = lf.select(outs).collect()
    columns: list[pl.Series] = []
    for i, rule in enumerate(rules):
        src = parts[i]
        columns += [src[f"__p{i}"], src[f"__m{i}"]]
        if rule.kind == "currency":
            columns.append(src[f"__k{i}"])
        if rule.kind in keep_raw:
            columns.append(text[rule.name])
    return pl.DataFrame(columns)


def merge_stages(per_column: list[Stages]) -> Stages:
    """Stage ``k`` of every column together, so each column's stage runs in one pass."""
    depth = max((len(s) for s in per_column), default=0)
    # Align on the last stage (the final parse) so every column's value lands together.
    merged: Stages = [[] for _ in range(depth)]
    for stages in per_column:
        offset = depth - len(stages)
        for k, stage in enumerate(stages):
            merged[offset + k].extend(stage)
    return merged


def apply_stages(lf: pl.LazyFrame, stages: Stages) -> pl.LazyFrame:
    """Add each stage's columns in turn (and drop the temporary ones it names)."""
    for stage in stages:
        drops = [c for c in stage if isinstance(c, DropColumns)]
        nested = [c for c in stage if isinstance(c, WhenAny)]
        exprs = [e for e in stage if not isinstance(e, (DropColumns, WhenAny))]
        if exprs:
            lf = lf.with_columns(exprs)
        for item in nested:
            lf = apply_stages(lf, item.stages)
        if drops:
            lf = lf.drop(drops)
    return lf


def apply_stages_skipping(lf: pl.LazyFrame, stages: Stages) -> pl.LazyFrame:
    """:func:`apply_stages`, except that the nested stages of a :class:`WhenAny` whose column
    holds no value are replaced by their all-null outputs (the same frame). The query up to
    such a stage is collected to look; worth it where the nested stages are costly (a date
    column's format patterns cost ~12 ms per 40,000 rows even when every row is null)."""
    for k, stage in enumerate(stages):
        nested = [c for c in stage if isinstance(c, WhenAny)]
        if not nested:
            continue
        df = apply_stages(lf, stages[:k]).collect()
        plain = [c for c in stage if not isinstance(c, WhenAny)]
        kept: Stages = []
        for item in nested:
            if df.get_column(item.column).null_count() < df.height:
                kept += item.stages
            else:
                plain += [pl.lit(None, dtype=dtype).alias(name) for name, dtype in item.outputs]
        return apply_stages_skipping(df.lazy(), [plain, *kept, *stages[k + 1 :]])
    return apply_stages(lf, stages)


def parsed_refs(rule: ColumnRule, i: int) -> Parsed:
    """References to the stage-1 columns of column ``i``."""
    pv, pm = pl.col(f"__p{i}"), pl.col(f"__m{i}")
    invalid = (~pm & pv.is_null()) if rule.kind in REASON_BY_KIND else pl.lit(False)
    code = pl.col(f"__k{i}") if rule.kind == "currency" else None
    return Parsed(value=pv, missing=pm, invalid=invalid, code=code)


REASON_CODES = (
    "missing_required",
    *sorted(set(REASON_BY_KIND.values())),
    "outlier_zscore",
    "outlier_iqr",
    "outlier_mad",
)


def _code(reason: str) -> pl.Expr:
    return pl.lit(REASON_CODES.index(reason), dtype=pl.Int8)


def _lit(value: Any, dtype: pl.DataType) -> pl.Expr:
    return pl.lit(value, dtype=dtype)


def _out_dtype(rule: ColumnRule) -> pl.DataType:
    return {
        "id": pl.Utf8(),
        "categorical": pl.Utf8(),
        "text": pl.Utf8(),
        "boolean": pl.Boolean(),
        "numeric": pl.Float64(),
        "currency": pl.Float64(),
        "integer": pl.Int64(),
        "date": pl.Date(),
        "datetime": UTC_DT,
    }[rule.kind]


def column_exprs(
    rule: ColumnRule, i: int, st: dict[str, Any], missing_values: tuple[str, ...], fill: Any
) -> tuple[Stages, list[pl.Expr], list[tuple[str, str]]]:
    """Helper columns for column ``i`` (two stages): value ``v{i}`` (+ ``c{i}`` code, ``o{i}`` flag),
    reason ``r{i}``, and bookkeeping ``m{i}`` missing, ``x{i}`` invalid, ``n{i}`` nullified,
    ``u{i}`` outlier, ``s{i}`` standardized. Returns the expressions and (helper, output name)
    pairs in output order."""
    raw = pl.col(rule.name)
    stage1 = parse_stage(rule, i, missing_values)
    p = parsed_refs(rule, i)
    dtype = _out_dtype(rule)
    value = p.value
    reason: pl.Expr = pl.lit(None, dtype=pl.Int8)
    outlier: pl.Expr = pl.lit(False)
    lo, hi = st.get("lo"), st.get("hi")
    if lo is not None and hi is not None:
        outlier = (value < lo) | (value > hi)
        outlier = outlier.fill_null(False)
        action = rule.outliers.action
        if action == "quarantine":
            reason = pl.when(outlier).then(_code(f"outlier_{rule.outliers.method}"))
        elif action == "clip":
            if rule.kind == "integer":
                lo_v: Any = math.ceil(lo)
                hi_v: Any = math.floor(hi)
            else:
                lo_v, hi_v = lo, hi
            value = (
                pl.when(value < lo)
                .then(_lit(lo_v, dtype))
                .when(value > hi)
                .then(_lit(hi_v, dtype))
                .otherwise(value)
            )
    invalid_reason = REASON_BY_KIND.get(rule.kind)
    if invalid_reason is not None and rule.on_invalid == "quarantine":
        reason = pl.when(p.invalid).then(_code(invalid_reason)).otherwise(reason)
    if rule.missing == "quarantine":
        reason = pl.when(p.missing).then(_code("missing_required")).otherwise(reason)
    nullified = p.missing | p.invalid if rule.on_invalid == "null" else p.missing
    code = p.code
    if fill is not None:
        value = pl.when(nullified).then(_lit(fill, dtype)).otherwise(value)
        if code is not None:
            code = pl.when(nullified).then(_lit(st.get("currency_mode"), pl.Utf8())).otherwise(code)
    if rule.kind in ("id", "categorical", "text"):
        standardized = (~p.missing & (p.value != raw)).fill_null(False)
    else:
        standardized = ~p.missing & ~p.invalid
    exprs = [
        value.cast(dtype).alias(f"__v{i}"),
        reason.alias(f"__r{i}"),
        p.invalid.alias(f"__x{i}"),
        nullified.alias(f"__n{i}"),
        outlier.alias(f"__u{i}"),
        standardized.alias(f"__s{i}"),
    ]
    outputs = [(f"__v{i}", rule.name)]
    if code is not None:
        exprs.append(code.alias(f"__c{i}"))
        outputs.append((f"__c{i}", f"{rule.name}_currency"))
    if rule.outliers.action == "flag" and rule.outliers.method != "none":
        exprs.append(outlier.alias(f"__o{i}"))
        outputs.append((f"__o{i}", f"{rule.name}_outlier"))
    return stage1, exprs, outputs


def duplicate_reason(keys: pl.DataFrame, id_col: str | None, ts_col: str | None) -> pl.Expr:
    """The ``_dup`` reason of each row of ``keys`` (columns ``_row``, ``_exact`` and, when
    given, the id ``id_col`` and timestamp ``ts_col``): ``duplicate_row`` for an exact copy
    of an earlier row, ``duplicate_id`` for every row of an id but its winner (the latest
    by ``ts_col``, else the first), else null. One rule for every path that decides
    duplicates."""
    dup_id = pl.lit(False)
    if id_col is not None and keys.height:
        rest = keys.filter(~pl.col("_exact"))
        if ts_col is not None:
            rest = rest.sort([ts_col, "_row"], descending=[True, False], nulls_last=True)
        winners = rest.unique(subset=[id_col], keep="first", maintain_order=True)["_row"]
        dup_id = ~pl.col("_exact") & ~pl.col("_row").is_in(winners.implode())
    return (
        pl.when(pl.col("_exact"))
        .then(pl.lit("duplicate_row"))
        .when(dup_id)
        .then(pl.lit("duplicate_id"))
        .alias("_dup")
    )


def transform_frame(
    fitted: Any,
    df: pl.DataFrame,
    *,
    source: str | None,
    parsed: pl.DataFrame | list[pl.DataFrame] | None = None,
) -> Any:
    """The batch transform behind :meth:`FittedPlan.transform`; ``parsed`` is the stage-1
    frame already computed by ``fit`` on the same table (``fit_transform`` parses once). Given
    as a one-item list, it is taken out of the list so that its memory is freed as soon as
    the helper columns are computed."""
    if isinstance(parsed, list):
        parsed = parsed.pop() if parsed else None
    from chatpersona.clean.fitted import CleanResult, _decode
    from chatpersona.clean.report import build_report
    from chatpersona.exceptions import InputError

    plan = fitted.plan
    names = list(plan.columns)
    text = as_text_frame(df.select(names), names)
    exprs: list[pl.Expr] = []
    stage1: list[Stages] = []
    out_map: dict[str, list[tuple[str, str]]] = {}
    for i, (name, rule) in enumerate(plan.columns.items()):
        st = fitted.stats_[name]
        s1, e, outs = column_exprs(
            rule, i, st, plan.missing_values, _decode(rule.kind, st.get("fill"))
        )
        stage1.append(s1)
        exprs += e
        out_map[name] = outs
    idx = range(len(names))
    # Reasons are small integer codes while computing (a text column per input column would
    # cost 16 bytes a row each); they become text only on the quarantined rows.
    exprs.append(pl.coalesce([pl.col(f"__r{i}") for i in idx]).alias("_reason"))
    reason_col = pl.coalesce(
        [pl.when(pl.col(f"__r{i}").is_not_null()).then(pl.lit(i, dtype=pl.Int16)) for i in idx]
    ).alias("_column")
    if parsed is None:
        parsed = parse_frame(text, plan, keep_raw=("id", "categorical", "text"))
    start = parsed.lazy()
    del parsed
    helpers = (
        start.with_columns(exprs[:-1])
        .with_columns(exprs[-1], reason_col)
        .select(cs.starts_with(*HELPER_PREFIXES))
        .collect()
    )
    del start

    for i, (name, rule) in enumerate(plan.columns.items()):
        if rule.on_invalid != "error":
            continue
        bad = helpers.select(pl.arg_where(pl.col(f"__x{i}")).first()).item()
        if bad is not None:
            raise InputError(
                f"Cannot parse a {rule.kind} value",
                code=REASON_BY_KIND.get(rule.kind),
                file=source,
                column=name,
                row=int(bad) + 1,
                value=df[name][int(bad)],
            )

    frame = pl.concat([df, helpers], how="horizontal").with_row_index("_row", offset=1)
    out_pairs: list[tuple[str, str]] = []
    for c in df.columns:
        if c in out_map:
            out_pairs += out_map[c]
        elif plan.unplanned == "keep":
            out_pairs.append((c, c))
    helper_cols = [h for h, _ in out_pairs]
    quarantined = pl.col("_reason").is_not_null()

    id_col = plan.duplicates.id_column
    dup_full = pl.repeat(None, frame.height, dtype=pl.Utf8, eager=True).alias("_dup")
    if plan.duplicates.exact_rows or id_col is not None:
        cand = frame.lazy().filter(~quarantined).select(["_row", *helper_cols]).collect()
        if cand.height:
            exact = (
                ~pl.struct(helper_cols).is_first_distinct()
                if plan.duplicates.exact_rows
                else pl.lit(False)
            )
            cand = cand.with_columns(exact.alias("_exact"))
            ts = plan.duplicates.latest_by
            id_h = out_map[id_col][0][0] if id_col is not None else None
            ts_h = out_map[ts][0][0] if ts is not None else None
            tags = cand.select(
                (pl.col("_row").cast(pl.Int64) - 1).alias("_at"),
                duplicate_reason(cand, id_h, ts_h),
            ).filter(pl.col("_dup").is_not_null())
            del cand
            if tags.height:
                # Put the tags in place (no join: that would copy every column of the frame).
                dup_full = dup_full.scatter(tags["_at"], tags["_dup"])
    frame = frame.with_columns(dup_full)

    acc_mask = ~quarantined & pl.col("_dup").is_null()
    # Lazy, so only the selected columns are filtered (an eager filter copies every column).
    lazy = frame.lazy()
    accepted = lazy.filter(acc_mask).select([pl.col(h).alias(o) for h, o in out_pairs]).collect()
    duplicates = (
        lazy.filter(pl.col("_dup").is_not_null())
        .select(
            ["_row", *[pl.col(h).alias(o) for h, o in out_pairs], pl.col("_dup").alias("_reason")]
        )
        .collect()
    )
    quarantine = (
        lazy.filter(quarantined)
        .select(
            "_row",
            *df.columns,
            pl.col("_reason").replace_strict(dict(enumerate(REASON_CODES)), return_dtype=pl.Utf8),
            pl.col("_column").replace_strict(dict(enumerate(names)), return_dtype=pl.Utf8),
        )
        .collect()
    )
    report = build_report(fitted, frame, text, accepted, out_map, acc_mask)
    return CleanResult(
        accepted=accepted, quarantine=quarantine, duplicates=duplicates, report=report
    )

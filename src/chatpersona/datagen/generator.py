"""Seeded generator of messy customer-support data with known latent segments.

The first step of the demo flow: it writes the raw inputs of ``clean`` and ``segment``
(``users.csv``, ``events.jsonl``) plus ``truth.csv``, the hidden segment of every user, so that
segmentation quality can be scored. Everything is vectorized (numpy + Polars); one seed gives
byte-identical files.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from chatpersona.datagen.segments import (
    CATEGORIES,
    CHANNELS,
    COUNTRIES,
    DEVICES,
    EVENT_TYPES,
    GENDERS,
    PLANS,
    REGIONS,
    SEGMENT_NAMES,
    SEGMENTS,
    SegmentProfile,
)
from chatpersona.exceptions import DataError, ParameterError

__all__ = [
    "DEFAULT_END",
    "DEFAULT_MONTHS",
    "EVENTS_SCHEMA",
    "MESS_RATES",
    "USER_COLUMNS",
    "GenerationResult",
    "ProgressCallback",
    "expected_events_per_user",
    "generate",
    "generate_events",
    "generate_truth",
    "generate_users",
    "load_utterances",
    "read_events",
]

#: Exclusive end of the default event window (fixed, so a seed always means the same data).
DEFAULT_END = date(2026, 11, 1)
#: Default window length in months, counted back from the end.
DEFAULT_MONTHS = 6

#: Columns of ``users.csv``, in order.
USER_COLUMNS: tuple[str, ...] = (
    "user_id",
    "signup_date",
    "age",
    "gender",
    "region",
    "country",
    "language",
    "is_vip",
    "newsletter",
    "monthly_spend",
    "plan",
    "email",
    "notes",
    "updated_at",
)

#: Target rates of the deliberate mess in ``users.csv`` (fractions of written rows, except
#: ``duplicate_ids``: extra rows as a fraction of users). The exact counts of one run are in
#: :attr:`GenerationResult.mess`.
MESS_RATES: Mapping[str, float] = {
    "duplicate_ids": 0.015,
    "missing_age": 0.05,
    "age_outliers": 0.01,
    "blank_gender": 0.03,
    "blank_is_vip": 0.03,
    "blank_newsletter": 0.03,
    "blank_monthly_spend": 0.04,
    "spend_outliers": 0.005,
    "blank_notes": 0.35,
    "date_iso": 0.40,
    "date_dmy": 0.25,
    "date_mon": 0.20,
    "date_epoch": 0.15,
}

#: Schema of the events frame (and of ``events.jsonl`` read back with :func:`read_events`).
#: Payload fields that do not belong to an event's type are null.
EVENTS_SCHEMA: Mapping[str, pl.DataType] = {
    "event_id": pl.String(),
    "user_id": pl.String(),
    "type": pl.String(),
    "ts": pl.String(),
    "channel": pl.String(),
    "device": pl.String(),
    "payload": pl.Struct(
        {
            "chat_id": pl.String(),
            "text": pl.String(),
            "intent": pl.String(),
            "category": pl.String(),
            "resolved": pl.Boolean(),
            "handle_time_s": pl.Float64(),
            "csat": pl.Int64(),
            "nps": pl.Int64(),
        }
    ),
}

#: ``progress(stage, done, total)``; called as each stage advances.
ProgressCallback = Callable[[str, int, int], None]

_AGE_OUTLIERS = np.array([420, -3, 999, 150, -1, 0, 207], dtype=np.int64)
_SECONDS_PER_DAY = 86_400
_EVENT_CHUNK = 1_000_000
_EN_COUNTRIES = 4  # COUNTRIES[:4] speak English
_EURO_SHARE = 0.25  # monthly_spend rows written in a euro format

_GENDER_VARIANTS = (
    ("F", "female", " Female ", "FEMALE"),
    ("M", "male", "MALE", " Male"),
    ("Non-binary", "non-binary", "NB"),
)
_BOOL_TRUE = ("Y", "Yes", "true", "1")
_BOOL_FALSE = ("N", "No", "false", "0")
_LANGUAGE_VARIANTS = (("en", "EN", "English", " english"), ("es", "ES", "Spanish", " Spanish"))
_PLAN_VARIANTS = (
    ("basic", "Basic ", "BASIC"),
    ("Pro", "pro", " PRO"),
    ("PREMIUM", "premium", "Premium "),
)
_FIRST_EN = (
    "james",
    "mary",
    "john",
    "linda",
    "michael",
    "sarah",
    "david",
    "emma",
    "chris",
    "olivia",
)
_FIRST_ES = ("jose", "maria", "carlos", "lucia", "juan", "sofia", "luis", "carmen", "diego", "ana")
_LAST_EN = ("smith", "johnson", "brown", "taylor", "wilson", "clark", "lewis", "walker", "young")
_LAST_ES = ("garcia", "martinez", "lopez", "sanchez", "perez", "gomez", "diaz", "torres", "ruiz")
_DOMAINS = ("example.com", "mail.example.org", "correo.example.es", "inbox.example.net")
# Free text that needs normalization: case, runs of spaces, NBSP, full-width letters, tabs.
# Agents write notes about what a customer is like, so most notes follow the segment.
_NOTES = (
    "Prefers  EMAIL contact",
    "  called re: invoice!!  ",
    "VIP \u2013 handle with care",
    "Cliente habla espa\u00f1ol",
    "\uff36\uff29\uff30 customer",
    "asked\u00a0for a call back",
    "Complained about   delivery delay",
    "likes the NEW app\t",
    'said "thanks" after refund',
    "do NOT send promos",
    "Moved from basic to pro plan",
    "  multiple accounts?? check  ",
    "orders via app, asks about TRACKING",
    "first  order\u00a0pending",
    "disputes  every Invoice",
)
#: Notes typical of each segment (indices into _NOTES, in SEGMENTS order).
_SEGMENT_NOTES: tuple[tuple[int, ...], ...] = (
    (1, 8, 14),  # billing_focused
    (7, 12),  # mobile_shopper
    (0, 2, 4),  # loyal_premium
    (5, 6, 9),  # at_risk_complainer
    (10, 11, 13),  # new_explorer
)
_SEGMENT_NOTE_SHARE = 0.75


# --------------------------------------------------------------------------------------
# Bundled utterances
# --------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _utterances_cached() -> pl.DataFrame:
    source = resources.files("chatpersona").joinpath("data", "support_utterances.csv")
    try:
        with resources.as_file(source) as path:
            frame = pl.read_csv(path, infer_schema=False)
    except FileNotFoundError as exc:  # a broken install, not a user error
        raise DataError(
            "The bundled support utterances are missing; reinstall chatpersona.",
            file=str(source),
        ) from exc
    return frame


def load_utterances() -> pl.DataFrame:
    """Load the bundled real support utterances (Bitext subset, CDLA-Sharing-1.0).

    Returns
    -------
    polars.DataFrame
        Columns ``text``, ``intent``, ``category`` (chatpersona category names) and
        ``bitext_category`` (the source's name), 30 utterances for each of 27 intents.

    Examples
    --------
    >>> df = load_utterances()
    >>> df.columns
    ['text', 'intent', 'category', 'bitext_category']
    >>> sorted(df["category"].unique())[:3]
    ['ACCOUNT', 'CANCEL', 'CONTACT']
    """
    return _utterances_cached().clone()


@dataclass(frozen=True)
class _IntentTable:
    intents: tuple[str, ...]
    intent_category: tuple[str, ...]
    utt_offset: np.ndarray  # first utterance row of each intent
    utt_count: np.ndarray
    texts_json: tuple[str, ...]  # each utterance JSON-encoded (with quotes)
    texts: tuple[str, ...]
    probs: np.ndarray  # (n_segments, n_intents)


@lru_cache(maxsize=1)
def _intent_table() -> _IntentTable:
    utt = _utterances_cached().sort("intent", maintain_order=True)
    counts = utt.group_by("intent", maintain_order=True).agg(
        pl.len().alias("n"), pl.col("category").first()
    )
    intents = tuple(counts["intent"].to_list())
    cats = tuple(counts["category"].to_list())
    unknown = set(cats) - set(CATEGORIES)
    if unknown:
        raise DataError(f"Bundled utterances use unknown categories {sorted(unknown)}.")
    n = counts["n"].to_numpy().astype(np.int64)
    offset = np.concatenate([[0], np.cumsum(n)[:-1]])
    texts = tuple(utt["text"].to_list())
    probs = np.zeros((len(SEGMENTS), len(intents)))
    for s, seg in enumerate(SEGMENTS):
        cat_w = {c: max(float(seg.category_weights.get(c, 0.0)), 1.0) for c in CATEGORIES}
        for c in CATEGORIES:
            members = [i for i, ic in enumerate(cats) if ic == c]
            mult = np.array([seg.intent_weights.get(intents[i], 1.0) for i in members])
            probs[s, members] = cat_w[c] * mult / mult.sum()
        probs[s] /= probs[s].sum()
    return _IntentTable(
        intents=intents,
        intent_category=cats,
        utt_offset=offset,
        utt_count=n,
        texts_json=tuple(json.dumps(t, ensure_ascii=False) for t in texts),
        texts=texts,
        probs=probs,
    )


# --------------------------------------------------------------------------------------
# Parameters, window and randomness
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Window:
    start_day: int  # days since epoch, inclusive
    end_day: int  # exclusive

    @property
    def start(self) -> date:
        return date(1970, 1, 1) + timedelta(days=self.start_day)

    @property
    def end(self) -> date:
        return date(1970, 1, 1) + timedelta(days=self.end_day)


def _months_before(end: date, months: int) -> date:
    year, month = divmod(end.year * 12 + end.month - 1 - months, 12)
    return date(year, month + 1, min(end.day, 28))


def _resolve_window(start: date | None, end: date | None, months: int | None) -> _Window:
    owner = "generate"
    if months is not None and (not isinstance(months, int) or months < 1 or months > 120):
        raise ParameterError(owner, "months", "an int in 1..120", months)
    if start is not None and months is not None:
        raise ParameterError(owner, "months", "None when 'start' is given", months)
    end = end or DEFAULT_END
    if start is None:
        start = _months_before(end, months or DEFAULT_MONTHS)
    if (end - start).days < 28:
        raise ParameterError(owner, "end", f"at least 28 days after start {start}", str(end))
    epoch = date(1970, 1, 1)
    return _Window((start - epoch).days, (end - epoch).days)


def _check_common(n_users: Any, seed: Any) -> None:
    if isinstance(n_users, bool) or not isinstance(n_users, int | np.integer) or n_users < 1:
        raise ParameterError("generate", "n_users", "an int >= 1", n_users)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ParameterError("generate", "seed", "an int >= 0", seed)


def _streams(seed: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    # Independent child streams: population, users.csv mess, events. generate_users and
    # generate_events can then run alone and still agree with generate().
    children = np.random.SeedSequence(int(seed)).spawn(3)
    pop, mess, events = (np.random.default_rng(c) for c in children)
    return pop, mess, events


def _weights(seg: SegmentProfile, attr: str, labels: Sequence[str]) -> np.ndarray:
    mapping: Mapping[str, float] = getattr(seg, attr)
    w = np.array([float(mapping.get(label, 0.0)) for label in labels])
    return w / w.sum()


def _draw(rng: np.random.Generator, seg: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """One categorical draw per row, with the row's segment's probabilities."""
    n = int(seg.shape[0])
    u: np.ndarray = rng.random(n)
    out = np.empty(n, dtype=np.int64)
    cdf = np.cumsum(probs, axis=1)
    cdf[:, -1] = 1.0
    for s in range(probs.shape[0]):
        mask = seg == s
        out[mask] = np.searchsorted(cdf[s], u[mask], side="right")
    return np.minimum(out, probs.shape[1] - 1)


def _seg_matrix(attr: str, labels: Sequence[str]) -> np.ndarray:
    return np.stack([_weights(s, attr, labels) for s in SEGMENTS])


def _seg_vector(attr: str) -> np.ndarray:
    return np.array([float(getattr(s, attr)) for s in SEGMENTS])


def _pick(vocab: Sequence[str], idx: np.ndarray) -> pl.Series:
    return pl.Series(list(vocab), dtype=pl.String).gather(pl.Series(idx, dtype=pl.UInt32))


def _user_ids(n_users: int) -> pl.Series:
    width = max(7, len(str(n_users)))
    numbers = pl.Series(np.arange(1, n_users + 1, dtype=np.int64)).cast(pl.String)
    return (
        pl.select(pl.concat_str(pl.lit("U"), numbers.str.zfill(width))).to_series().alias("user_id")
    )


# --------------------------------------------------------------------------------------
# Latent population
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Population:
    window: _Window
    segment: np.ndarray
    age: np.ndarray
    gender: np.ndarray
    region: np.ndarray
    country: np.ndarray
    vip: np.ndarray
    newsletter: np.ndarray
    plan: np.ndarray
    spend_cents: np.ndarray
    signup_day: np.ndarray

    @property
    def n(self) -> int:
        return int(self.segment.shape[0])


def _population(n: int, rng: np.random.Generator, window: _Window) -> _Population:
    shares = _seg_vector("share")
    seg = rng.choice(len(SEGMENTS), size=n, p=shares / shares.sum()).astype(np.int64)
    age = np.rint(rng.normal(_seg_vector("age_mean")[seg], _seg_vector("age_sd")[seg]))
    age = np.clip(age, 18, 90).astype(np.int64)
    gender = _draw(rng, seg, _seg_matrix("gender_weights", GENDERS))
    region = _draw(rng, seg, _seg_matrix("region_weights", REGIONS))
    country = _draw(rng, seg, _seg_matrix("country_weights", COUNTRIES))
    vip = rng.random(n) < _seg_vector("vip_rate")[seg]
    newsletter = rng.random(n) < _seg_vector("newsletter_rate")[seg]
    plan = _draw(rng, seg, _seg_matrix("plan_weights", PLANS))
    spend = np.exp(rng.normal(np.log(_seg_vector("spend_median")[seg]), 0.45))
    spend_cents = np.maximum(np.rint(spend * 100), 100).astype(np.int64)
    recent = np.array([s.recent_signup for s in SEGMENTS])[seg]
    u = rng.random(n)
    recent_span = window.end_day - 14 - window.start_day
    signup = np.where(
        recent,
        window.start_day + np.floor(u * recent_span),
        window.start_day - 1 - np.floor(u * 3 * 365),
    ).astype(np.int64)
    return _Population(
        window, seg, age, gender, region, country, vip, newsletter, plan, spend_cents, signup
    )


def _make_population(n_users: int, seed: int, window: _Window) -> _Population:
    return _population(int(n_users), _streams(seed)[0], window)


# --------------------------------------------------------------------------------------
# users.csv: the latent attributes, written with deliberate mess
# --------------------------------------------------------------------------------------


def _variant(
    rng: np.random.Generator, label: np.ndarray, variants: Sequence[Sequence[str]]
) -> tuple[list[str], np.ndarray]:
    """Pick a spelling variant of each label; returns (flat vocabulary, index into it)."""
    flat = [v for group in variants for v in group]
    sizes = np.array([len(g) for g in variants])
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    pick = np.floor(rng.random(label.shape[0]) * sizes[label]).astype(np.int64)
    return flat, offsets[label] + pick


def _weighted_variant(
    rng: np.random.Generator, label: np.ndarray, names: Sequence[str], weights: Sequence[float]
) -> pl.Series:
    """Spelling variants by fixed weights: canonical, `lower `, UPPER, ` Title`."""
    w = np.asarray(weights, dtype=float)
    kind = np.searchsorted(np.cumsum(w / w.sum()), rng.random(label.shape[0]), side="right")
    kind = np.minimum(kind, len(w) - 1)
    vocab = [v for name in names for v in (name, f"{name.lower()} ", name.upper(), f" {name}")]
    return _pick(vocab, label * 4 + kind)


def _format_amount(whole: pl.Expr, cents: pl.Expr, thousands: str, decimal: str) -> pl.Expr:
    millions = whole // 1_000_000
    thou = (whole // 1000) % 1000
    units = whole % 1000
    u3 = units.cast(pl.String).str.zfill(3)
    t3 = thou.cast(pl.String).str.zfill(3)
    body = (
        pl.when(millions > 0)
        .then(pl.concat_str(millions.cast(pl.String), pl.lit(thousands), t3, pl.lit(thousands), u3))
        .when(thou > 0)
        .then(pl.concat_str(thou.cast(pl.String), pl.lit(thousands), u3))
        .otherwise(units.cast(pl.String))
    )
    return pl.concat_str(body, pl.lit(decimal), cents.cast(pl.String).str.zfill(2))


def _signup_strings(day: np.ndarray, kind: np.ndarray, epoch_sec: np.ndarray) -> pl.Series:
    """Signup dates in four formats, from per-day vocabularies (few distinct days)."""
    first = int(day.min())
    days = pl.from_epoch(
        pl.Series(np.arange(first, int(day.max()) + 1, dtype=np.int64)), time_unit="d"
    )
    n_days = days.len()
    vocab = pl.concat(
        [days.dt.strftime(f) for f in ("%Y-%m-%d", "%d/%m/%Y", "%b %-d %Y")]
        + [pl.Series([""], dtype=pl.String)]
    )
    idx = np.where(kind < 3, kind * n_days + (day - first), 3 * n_days)
    text = vocab.gather(pl.Series(idx, dtype=pl.UInt32))
    epoch = pl.Series(epoch_sec).cast(pl.String)
    return pl.select(pl.when(pl.Series(kind == 3)).then(epoch).otherwise(text)).to_series()


def _iso_seconds(seconds: np.ndarray) -> pl.Series:
    """``YYYY-MM-DDTHH:MM:SSZ`` for epoch seconds, assembled as fixed-width bytes."""
    day = seconds // _SECONDS_PER_DAY
    first = int(day.min())
    days = pl.from_epoch(
        pl.Series(np.arange(first, int(day.max()) + 1, dtype=np.int64)), time_unit="d"
    )
    out = np.empty((seconds.shape[0], 20), dtype=np.uint8)
    out[:, :11] = _take_rows(_ascii_rows(days.dt.strftime("%Y-%m-%dT").to_list()), day - first)
    out[:, 11:] = _take_rows(_clock_rows(), seconds % _SECONDS_PER_DAY)
    return _fixed_width(out)


@lru_cache(maxsize=1)
def _clock_rows() -> np.ndarray:
    """``HH:MM:SSZ`` for every second of a day, as a ``(86400, 9)`` byte array."""
    clock = np.arange(_SECONDS_PER_DAY, dtype=np.int64)
    text = pl.from_epoch(pl.Series(clock), time_unit="s").dt.strftime("%H:%M:%SZ")
    return _ascii_rows(text.to_list())


def _users_frame(pop: _Population, rng: np.random.Generator) -> tuple[pl.DataFrame, dict[str, int]]:
    n = pop.n
    window = pop.window
    n_dup = round(n * MESS_RATES["duplicate_ids"])
    dup_src = np.sort(rng.choice(n, size=n_dup, replace=False)) if n_dup else np.zeros(0, int)
    row_user = np.concatenate([np.arange(n), dup_src]).astype(np.int64)
    stale = np.concatenate([np.zeros(n, bool), np.ones(n_dup, bool)])
    rows = int(row_user.shape[0])

    # updated_at: the current row is the latest; a stale duplicate is older and carries
    # out-of-date plan / spend / newsletter values.
    lo = (pop.signup_day[row_user] + 1) * _SECONDS_PER_DAY
    hi = window.end_day * _SECONDS_PER_DAY
    current_upd = lo + np.floor(rng.random(rows) * (hi - lo)).astype(np.int64)
    base = pop.signup_day[row_user] * _SECONDS_PER_DAY
    stale_upd = base + np.floor(rng.random(rows) * (current_upd - 3600 - base)).astype(np.int64)
    updated = np.where(stale, stale_upd, current_upd)
    plan = np.where(stale, rng.integers(0, len(PLANS), rows), pop.plan[row_user])
    spend_cents = np.where(
        stale,
        np.rint(pop.spend_cents[row_user] * rng.uniform(0.5, 1.5, rows)).astype(np.int64),
        pop.spend_cents[row_user],
    )
    newsletter = np.where(
        stale & (rng.random(rows) < 0.5), ~pop.newsletter[row_user], pop.newsletter[row_user]
    )

    mess: dict[str, int] = {"duplicate_rows": int(n_dup)}

    # signup_date in four formats
    date_kinds = ("date_iso", "date_dmy", "date_mon", "date_epoch")
    date_p = np.array([MESS_RATES[k] for k in date_kinds])
    date_kind = np.minimum(
        np.searchsorted(np.cumsum(date_p / date_p.sum()), rng.random(rows), side="right"), 3
    )
    for i, k in enumerate(date_kinds):
        mess[k] = int((date_kind == i).sum())
    signup_sec = pop.signup_day[row_user] * _SECONDS_PER_DAY
    epoch_sec = signup_sec + rng.integers(0, 24, rows) * 3600

    # age: missing, outlier or the latent value
    u_age = rng.random(rows)
    age_missing = u_age < MESS_RATES["missing_age"]
    age_outlier = ~age_missing & (u_age < MESS_RATES["missing_age"] + MESS_RATES["age_outliers"])
    age_val = np.where(
        age_outlier, _AGE_OUTLIERS[rng.integers(0, len(_AGE_OUTLIERS), rows)], pop.age[row_user]
    )
    mess["missing_age"] = int(age_missing.sum())
    mess["age_outliers"] = int(age_outlier.sum())

    gender_vocab, gender_idx = _variant(rng, pop.gender[row_user], _GENDER_VARIANTS)
    gender_blank = rng.random(rows) < MESS_RATES["blank_gender"]
    mess["blank_gender"] = int(gender_blank.sum())

    country_idx = pop.country[row_user]
    language = (country_idx >= _EN_COUNTRIES).astype(np.int64)
    lang_vocab, lang_idx = _variant(rng, language, _LANGUAGE_VARIANTS)

    def messy_bool(value: np.ndarray, key: str) -> tuple[pl.Series, np.ndarray]:
        vocab = list(_BOOL_FALSE) + list(_BOOL_TRUE)
        idx = value.astype(np.int64) * 4 + rng.integers(0, 4, rows)
        blank = rng.random(rows) < MESS_RATES[key]
        mess[key] = int(blank.sum())
        return _pick(vocab, idx), blank

    vip_s, vip_blank = messy_bool(pop.vip[row_user], "blank_is_vip")
    news_s, news_blank = messy_bool(newsletter, "blank_newsletter")

    u_spend = rng.random(rows)
    spend_blank = u_spend < MESS_RATES["blank_monthly_spend"]
    spend_outlier = ~spend_blank & (
        u_spend < MESS_RATES["blank_monthly_spend"] + MESS_RATES["spend_outliers"]
    )
    spend_cents = np.where(spend_outlier, spend_cents * 100, spend_cents)
    mess["blank_monthly_spend"] = int(spend_blank.sum())
    mess["spend_outliers"] = int(spend_outlier.sum())
    # The billing system's export format, not the customer's country, decides the currency
    # string (tying it to country would add a demographic cluster unrelated to behaviour).
    u_cur = rng.random(rows)
    euro = rng.random(rows) < _EURO_SHARE
    # 0 `$1,234.50`, 1 `USD 1234.50` / `USD 12`, 2 `1.234,50 €`, 3 `€ 45,00`
    currency_kind = np.where(euro, np.where(u_cur < 0.5, 2, 3), np.where(u_cur < 0.7, 0, 1))
    for i, k in enumerate(
        ("currency_dollar", "currency_usd_code", "currency_eur_suffix", "currency_eur_prefix")
    ):
        mess[k] = int(((currency_kind == i) & ~spend_blank).sum())

    plan_vocab, plan_idx = _variant(rng, plan, _PLAN_VARIANTS)

    english = country_idx < _EN_COUNTRIES
    first_idx = rng.integers(0, 10, rows) + np.where(english, 0, 10)
    last_idx = rng.integers(0, 9, rows) + np.where(english, 0, 9)
    email_num = rng.integers(1, 1000, rows)
    domain_idx = rng.integers(0, len(_DOMAINS), rows)
    u_email = rng.random(rows)
    email_kind = np.where(u_email < 0.05, 1, np.where(u_email < 0.08, 2, 0))
    mess["email_upper"] = int((email_kind == 1).sum())
    mess["email_padded"] = int((email_kind == 2).sum())

    notes_blank = rng.random(rows) < MESS_RATES["blank_notes"]
    seg_notes = [np.array(_SEGMENT_NOTES[g]) for g in range(len(SEGMENTS))]
    row_seg = pop.segment[row_user]
    typical = np.empty(rows, dtype=np.int64)
    u_note = rng.random(rows)
    for g, choices in enumerate(seg_notes):
        mask = row_seg == g
        typical[mask] = choices[(u_note[mask] * len(choices)).astype(np.int64)]
    notes_idx = np.where(
        rng.random(rows) < _SEGMENT_NOTE_SHARE, typical, rng.integers(0, len(_NOTES), rows)
    )
    mess["blank_notes"] = int(notes_blank.sum())

    region_s = _weighted_variant(rng, pop.region[row_user], REGIONS, (0.55, 0.15, 0.15, 0.15))
    country_lower = rng.random(rows) < 0.03
    mess["country_lowercase"] = int(country_lower.sum())

    frame = pl.DataFrame(
        {
            "user_id": _user_ids(n).gather(pl.Series(row_user, dtype=pl.UInt32)),
            "signup_date": _signup_strings(pop.signup_day[row_user], date_kind, epoch_sec),
            "_age": pl.Series(age_val),
            "_age_missing": pl.Series(age_missing),
            "_gender": _pick(gender_vocab, gender_idx),
            "_gender_blank": pl.Series(gender_blank),
            "region": region_s,
            "_country": _pick(COUNTRIES, country_idx),
            "_country_lower": pl.Series(country_lower),
            "language": _pick(lang_vocab, lang_idx),
            "_vip": vip_s,
            "_vip_blank": pl.Series(vip_blank),
            "_news": news_s,
            "_news_blank": pl.Series(news_blank),
            "_whole": pl.Series(spend_cents // 100),
            "_cents": pl.Series(spend_cents % 100),
            "_cur_kind": pl.Series(currency_kind, dtype=pl.Int8),
            "_spend_blank": pl.Series(spend_blank),
            "plan": _pick(plan_vocab, plan_idx),
            "_first": _pick(_FIRST_EN + _FIRST_ES, first_idx),
            "_last": _pick(_LAST_EN + _LAST_ES, last_idx),
            "_num": pl.Series(email_num),
            "_domain": _pick(_DOMAINS, domain_idx),
            "_email_kind": pl.Series(email_kind, dtype=pl.Int8),
            "_notes": _pick(_NOTES, notes_idx),
            "_notes_blank": pl.Series(notes_blank),
            "updated_at": _iso_seconds(updated),
        }
    )
    c = pl.col
    whole, cents = c("_whole"), c("_cents")
    email = pl.concat_str(
        c("_first"), pl.lit("."), c("_last"), c("_num").cast(pl.String), pl.lit("@"), c("_domain")
    )
    frame = frame.select(
        "user_id",
        "signup_date",
        age=pl.when(c("_age_missing")).then(None).otherwise(c("_age").cast(pl.String)),
        gender=pl.when(c("_gender_blank")).then(None).otherwise(c("_gender")),
        region=c("region"),
        country=pl.when(c("_country_lower"))
        .then(pl.concat_str(c("_country").str.to_lowercase(), pl.lit(" ")))
        .otherwise(c("_country")),
        language=c("language"),
        is_vip=pl.when(c("_vip_blank")).then(None).otherwise(c("_vip")),
        newsletter=pl.when(c("_news_blank")).then(None).otherwise(c("_news")),
        monthly_spend=pl.when(c("_spend_blank"))
        .then(None)
        .when(c("_cur_kind") == 0)
        .then(pl.concat_str(pl.lit("$"), _format_amount(whole, cents, ",", ".")))
        .when(c("_cur_kind") == 1)
        .then(
            pl.when(cents == 0)
            .then(pl.concat_str(pl.lit("USD "), whole.cast(pl.String)))
            .otherwise(
                pl.concat_str(
                    pl.lit("USD "),
                    whole.cast(pl.String),
                    pl.lit("."),
                    cents.cast(pl.String).str.zfill(2),
                )
            )
        )
        .when(c("_cur_kind") == 2)
        .then(pl.concat_str(_format_amount(whole, cents, ".", ","), pl.lit(" €")))
        .otherwise(pl.concat_str(pl.lit("€ "), _format_amount(whole, cents, ".", ","))),
        plan=c("plan"),
        email=pl.when(c("_email_kind") == 1)
        .then(email.str.to_uppercase())
        .when(c("_email_kind") == 2)
        .then(pl.concat_str(pl.lit("  "), email, pl.lit(" ")))
        .otherwise(email),
        notes=pl.when(c("_notes_blank")).then(None).otherwise(c("_notes")),
        updated_at=c("updated_at"),
    )
    perm = rng.permutation(rows)
    return frame[perm], mess


# --------------------------------------------------------------------------------------
# events.jsonl: chats simulated per latent segment
# --------------------------------------------------------------------------------------


def _events_per_chat(seg: SegmentProfile) -> float:
    # chat_started + chat_ended + first message + extra messages + feedback
    return 3.0 + seg.message_rate + seg.feedback_rate


def _rate_scale(events_per_user: float | None) -> float:
    fixed = sum(s.share * _events_per_chat(s) for s in SEGMENTS)
    per_rate = sum(s.share * s.chat_rate * _events_per_chat(s) for s in SEGMENTS)
    total = sum(s.share for s in SEGMENTS)
    fixed, per_rate = fixed / total, per_rate / total
    if events_per_user is None:
        return 1.0
    if (
        isinstance(events_per_user, bool)
        or not isinstance(events_per_user, int | float)
        or not np.isfinite(events_per_user)
        or events_per_user < fixed
        or events_per_user > 1000
    ):
        raise ParameterError(
            "generate",
            "events_per_user",
            f"a number in {fixed:.2f}..1000 (every user has at least one chat)",
            events_per_user,
        )
    return (float(events_per_user) - fixed) / per_rate


def expected_events_per_user(events_per_user: float | None = None) -> float:
    """Expected mean number of events per user for a given ``events_per_user`` setting."""
    scale = _rate_scale(events_per_user)
    total = sum(s.share for s in SEGMENTS)
    return sum(s.share * (1 + s.chat_rate * scale) * _events_per_chat(s) for s in SEGMENTS) / total


def _argsort_stable(values: np.ndarray) -> np.ndarray:
    """Stable argsort of int64 values, by a (multithreaded) Polars sort of unique keys.

    Ties are broken by position inside the key itself, so the result does not depend on
    the sort algorithm or the number of threads.
    """
    n = int(values.shape[0])
    low = int(values.min()) if n else 0
    span = (int(values.max()) - low + 1) if n else 1
    shift = max(n - 1, 1).bit_length()
    if span.bit_length() + shift > 62:
        return np.argsort(values, kind="stable")
    key = ((values - low) << np.int64(shift)) | np.arange(n, dtype=np.int64)
    return pl.Series(key).arg_sort().to_numpy()


@dataclass(frozen=True)
class _Events:
    # per chat (ordered by user, then start time)
    chat_user: np.ndarray
    chat_rank: np.ndarray  # 1-based rank of the chat within its user
    channel: np.ndarray
    device: np.ndarray
    intent: np.ndarray
    resolved: np.ndarray
    handle_tenths: np.ndarray
    csat: np.ndarray
    nps: np.ndarray  # -1: no NPS
    # per event, sorted by ts
    ev_chat: np.ndarray
    ev_type: np.ndarray
    ev_ts: np.ndarray
    ev_utt: np.ndarray
    salt: int

    @property
    def n_events(self) -> int:
        return int(self.ev_ts.shape[0])

    @property
    def n_chats(self) -> int:
        return int(self.chat_user.shape[0])


def _simulate(pop: _Population, rng: np.random.Generator, events_per_user: float | None) -> _Events:
    window = pop.window
    table = _intent_table()
    seg = pop.segment
    scale = _rate_scale(events_per_user)
    per_user = 1 + rng.poisson(_seg_vector("chat_rate")[seg] * scale)
    chat_user = np.repeat(np.arange(pop.n, dtype=np.int64), per_user)
    n_chats = int(chat_user.shape[0])
    cseg = seg[chat_user]

    # Day: weekend or weekday by the segment's weekend share, never before signup.
    days = np.arange(window.start_day, window.end_day, dtype=np.int64)
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    lists = (days[weekday < 5], days[weekday >= 5])
    weekend = rng.random(n_chats) < _seg_vector("weekend_share")[cseg]
    signup = pop.signup_day[chat_user]
    u_day = rng.random(n_chats)
    day = np.empty(n_chats, dtype=np.int64)
    for flag, pool in ((False, lists[0]), (True, lists[1])):
        mask = weekend == flag
        lb = np.searchsorted(pool, signup[mask], side="left")
        lb = np.minimum(lb, pool.shape[0] - 1)
        day[mask] = pool[lb + np.floor(u_day[mask] * (pool.shape[0] - lb)).astype(np.int64)]
    hour = np.mod(rng.normal(_seg_vector("hour_mean")[cseg], _seg_vector("hour_sd")[cseg]), 24.0)
    second = np.clip(np.floor(hour * 3600), 0, _SECONDS_PER_DAY - 1).astype(np.int64)
    start_ts = day * _SECONDS_PER_DAY + second

    order = np.lexsort((start_ts, chat_user))
    start_ts = start_ts[order]  # chat_user is already sorted; cseg follows it
    first_chat = np.concatenate([[0], np.cumsum(per_user)[:-1]])
    chat_rank = np.arange(n_chats) - np.repeat(first_chat, per_user) + 1

    channel = _draw(rng, cseg, _seg_matrix("channel_weights", CHANNELS))
    device = _draw(rng, cseg, _seg_matrix("device_weights", DEVICES))
    # An app chat does not come from a desktop.
    device = np.where(
        (channel == CHANNELS.index("mobile_app")) & (device == DEVICES.index("desktop")),
        DEVICES.index("mobile"),
        device,
    )
    intent = _draw(rng, cseg, table.probs)
    n_msg = 1 + np.minimum(rng.poisson(_seg_vector("message_rate")[cseg]), 5)
    resolved = rng.random(n_chats) < _seg_vector("resolution_rate")[cseg]
    mean_ht = _seg_vector("handle_time_s")[cseg]
    handle = np.exp(rng.normal(np.log(mean_ht) - 0.125, 0.5))
    has_fb = rng.random(n_chats) < _seg_vector("feedback_rate")[cseg]
    csat = 1 + _draw(rng, cseg, np.array([s.csat_probs for s in SEGMENTS]))
    csat = np.where(~resolved & (rng.random(n_chats) < 0.6), np.maximum(csat - 1, 1), csat)
    has_nps = has_fb & (rng.random(n_chats) < _seg_vector("nps_rate")[cseg])
    nps_val = np.rint(2 * csat - 1 + rng.normal(0, 1.3, n_chats) + _seg_vector("nps_shift")[cseg])
    nps = np.where(has_nps, np.clip(nps_val, 0, 10), -1).astype(np.int64)

    # Events of each chat: started, n_msg messages, ended, optional feedback. Work on the
    # few per-chat positions (scatter) rather than comparing every event.
    k = 2 + n_msg + has_fb.astype(np.int64)
    n_events = int(k.sum())
    first = np.cumsum(k) - k
    ended = first + n_msg + 1
    fb_idx = ended[has_fb] + 1
    ev_type = np.ones(n_events, dtype=np.int8)  # message unless set below
    ev_type[first] = 0
    ev_type[ended] = 2
    ev_type[fb_idx] = 3
    # Seconds since the chat's previous event: first message 2..30, later ones 10..120,
    # chat_ended completes the handling time, feedback 5..900 after the end.
    u_gap = rng.random(n_events)
    gap = (10 + u_gap * 111).astype(np.int64)
    gap[first + 1] = (2 + u_gap[first + 1] * 29).astype(np.int64)
    gap[first] = 0
    gap[ended] = 0
    gap[fb_idx] = 0
    last_msg = np.add.reduceat(gap, first)
    end_gap = np.maximum(5, np.rint(handle).astype(np.int64) - last_msg)
    gap[ended] = end_gap
    fb_gap = np.zeros(n_chats, dtype=np.int64)
    fb_gap[has_fb] = (5 + u_gap[fb_idx] * 896).astype(np.int64)
    gap[fb_idx] = fb_gap[has_fb]
    # One cumulative sum gives absolute times: each chat's first event jumps to its start.
    chat_end = start_ts + last_msg + end_gap + fb_gap
    gap[first] = start_ts - np.concatenate([[0], chat_end[:-1]])
    ts = np.cumsum(gap)
    handle_tenths = (last_msg + end_gap) * 10 + rng.integers(0, 10, n_chats)
    ev_chat = np.repeat(np.arange(n_chats, dtype=np.int64), k)
    ev_utt = table.utt_offset[intent][ev_chat] + (
        rng.random(n_events) * table.utt_count[intent][ev_chat]
    ).astype(np.int64)
    salt = int(rng.integers(0, 2**63))
    by_ts = _argsort_stable(ts)
    return _Events(
        chat_user=chat_user,
        chat_rank=chat_rank,
        channel=channel,
        device=device,
        intent=intent,
        resolved=resolved,
        handle_tenths=handle_tenths,
        csat=csat.astype(np.int64),
        nps=nps,
        ev_chat=ev_chat[by_ts],
        ev_type=ev_type[by_ts],
        ev_ts=ts[by_ts],
        ev_utt=ev_utt[by_ts],
        salt=salt,
    )


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
# Byte -> its two hex characters, as one native uint16 (so a gather yields both at once).
_HEX2 = (
    np.stack([_HEX[np.arange(256) >> 4], _HEX[np.arange(256) & 15]], axis=1)
    .copy()
    .view(np.uint16)[:, 0]
)


def _mix64(x: np.ndarray) -> np.ndarray:
    # splitmix64 finalizer: a bijection on uint64, so distinct inputs give distinct outputs.
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _uuid_like(start: int, stop: int, salt: int) -> pl.Series:
    """UUID-shaped ids, unique because the first 64 bits are a bijection of the index."""
    return _fixed_width(_uuid_rows(start, stop, salt)).alias("event_id")


def _uuid_rows(start: int, stop: int, salt: int) -> np.ndarray:
    n = stop - start
    with np.errstate(over="ignore"):
        x = np.arange(start, stop, dtype=np.uint64) + np.uint64(salt)
    hi = _mix64(x)
    lo = _mix64(hi ^ np.uint64(0x5DEECE66D))
    raw = np.empty((n, 16), dtype=np.uint8)
    raw[:, :8] = hi.astype(">u8").view(np.uint8).reshape(n, 8)
    raw[:, 8:] = lo.astype(">u8").view(np.uint8).reshape(n, 8)
    hexd = _HEX2[raw].view(np.uint8)  # (n, 32)
    out = np.empty((n, 36), dtype=np.uint8)
    out[:, [8, 13, 18, 23]] = ord("-")
    out[:, 0:8] = hexd[:, 0:8]
    out[:, 9:13] = hexd[:, 8:12]
    out[:, 14:18] = hexd[:, 12:16]
    out[:, 19:23] = hexd[:, 16:20]
    out[:, 24:36] = hexd[:, 20:32]
    return out


def _event_columns(ev: _Events, user_ids: pl.Series, start: int, stop: int) -> pl.DataFrame:
    table = _intent_table()
    chat = ev.ev_chat[start:stop]
    user = ev.chat_user[chat]
    intent = ev.intent[chat]
    tenths = ev.handle_tenths[chat]
    return pl.DataFrame(
        {
            "event_id": _uuid_like(start, stop, ev.salt),
            "user_id": user_ids.gather(pl.Series(user, dtype=pl.UInt32)),
            "_rank": pl.Series(ev.chat_rank[chat]),
            "_type": pl.Series(ev.ev_type[start:stop], dtype=pl.Int8),
            "type": _pick(EVENT_TYPES, ev.ev_type[start:stop]),
            "ts": pl.from_epoch(pl.Series(ev.ev_ts[start:stop]), time_unit="s").dt.strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
            "channel": _pick(CHANNELS, ev.channel[chat]),
            "device": _pick(DEVICES, ev.device[chat]),
            "_utt": pl.Series(ev.ev_utt[start:stop]),
            "_intent": _pick(table.intents, intent),
            "_category": _pick(table.intent_category, intent),
            "_resolved": pl.Series(ev.resolved[chat]),
            "_tenths": pl.Series(tenths),
            # numpy divides exactly (Polars multiplies by 0.1), so 1066 -> 106.6 as in JSON
            "_handle": pl.Series(tenths / 10.0),
            "_csat": pl.Series(ev.csat[chat]),
            "_nps": pl.Series(ev.nps[chat]),
        }
    ).with_columns(
        _chat_id=pl.concat_str(pl.col("user_id"), pl.lit("-"), pl.col("_rank").cast(pl.String))
    )


def _events_frame_chunk(ev: _Events, user_ids: pl.Series, start: int, stop: int) -> pl.DataFrame:
    table = _intent_table()
    cols = _event_columns(ev, user_ids, start, stop)
    c = pl.col
    t = c("_type")
    texts = _pick(table.texts, ev.ev_utt[start:stop])
    return cols.with_columns(_text=texts).select(
        "event_id",
        "user_id",
        "type",
        "ts",
        "channel",
        "device",
        payload=pl.struct(
            chat_id=c("_chat_id"),
            text=pl.when(t == 1).then(c("_text")),
            intent=pl.when(t == 1).then(c("_intent")),
            category=pl.when(t == 1).then(c("_category")),
            resolved=pl.when(t == 2).then(c("_resolved")),
            handle_time_s=pl.when(t == 2).then(c("_handle")),
            csat=pl.when(t == 3).then(c("_csat")),
            nps=pl.when((t == 3) & (c("_nps") >= 0)).then(c("_nps")),
        ),
    )


@lru_cache(maxsize=1)
def _rest_fragments() -> tuple[pl.Series, int, int]:
    """Payload tails after ``chat_id``: one per utterance (message), per CSAT x NPS (feedback).

    Returns the fragments, the index of the first feedback fragment and of the empty one.
    """
    table = _intent_table()
    frags = [
        f',"text":{text},"intent":"{table.intents[i]}","category":"{table.intent_category[i]}"'
        for i in range(len(table.intents))
        for text in table.texts_json[table.utt_offset[i] : table.utt_offset[i] + table.utt_count[i]]
    ]
    feedback_at = len(frags)
    for csat in range(1, 6):
        frags.append(f',"csat":{csat}')
        frags.extend(f',"csat":{csat},"nps":{nps}' for nps in range(11))
    frags.append("")
    return pl.Series(frags, dtype=pl.String), feedback_at, len(frags) - 1


def _fixed_width(rows: np.ndarray) -> pl.Series:
    """A ``(n, width)`` uint8 array of ASCII bytes as a Polars string column."""
    n, width = rows.shape
    offsets = np.arange(n + 1, dtype=np.int64) * width
    arr = pa.LargeStringArray.from_buffers(
        n, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(rows).reshape(-1))
    )
    series = pl.from_arrow(arr)
    assert isinstance(series, pl.Series)
    return series


def _take_rows(rows: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``rows[idx]`` for a ``(n, width)`` uint8 array, one memcpy-sized item per row."""
    width = rows.shape[1]
    items = np.ascontiguousarray(rows).view(np.dtype((np.void, width))).reshape(-1)
    return items[idx].view(np.uint8).reshape(-1, width)


def _ascii_rows(values: Sequence[str]) -> np.ndarray:
    """Equal-length ASCII strings as a ``(n, width)`` uint8 array."""
    width = len(values[0]) if values else 0
    return np.frombuffer("".join(values).encode("ascii"), dtype=np.uint8).reshape(-1, width)


class _LineWriter:
    """Writes ``events.jsonl`` without building JSON objects.

    A line is cut at six of its double quotes into columns, and Polars' CSV writer joins them
    with ``"`` as the separator and no quoting. The fixed-width parts (event id, user id,
    timestamp) are assembled as bytes in numpy; the rest comes from small vocabularies
    (type, channel x device, utterance, CSAT x NPS) and per-chat strings built once:

    ``{"event_id":"<uuid>","user_id":"<uid>`` " ``,"type":"<t>","ts":`` " ``<ts>`` "
    ``,"channel":"<c>","device":"<d>","payload":{"chat_id":`` " ``<chat_id>`` " ``<rest>}}``
    """

    def __init__(self, ev: _Events, user_ids: pl.Series) -> None:
        self.ev = ev
        self.uid_rows = _ascii_rows(user_ids.to_list())
        chat_uid = user_ids.gather(pl.Series(ev.chat_user, dtype=pl.UInt32))
        chats = pl.DataFrame(
            {
                "uid": chat_uid,
                "rank": pl.Series(ev.chat_rank),
                "resolved": pl.Series(ev.resolved),
                "whole": pl.Series(ev.handle_tenths // 10),
                "frac": pl.Series(ev.handle_tenths % 10),
            }
        )
        c = pl.col
        per_chat = chats.select(
            chat_id=pl.concat_str(c("uid"), pl.lit("-"), c("rank").cast(pl.String)),
            tail=pl.concat_str(
                pl.when(c("resolved"))
                .then(pl.lit(',"resolved":true,"handle_time_s":'))
                .otherwise(pl.lit(',"resolved":false,"handle_time_s":')),
                c("whole").cast(pl.String),
                pl.lit("."),
                c("frac").cast(pl.String),
                pl.lit("}}"),
            ),
        )
        self.chat_ids = per_chat["chat_id"]
        frags, self.feedback_at, self.empty_at = _rest_fragments()
        self.rest_vocab = pl.concat([frags + "}}", per_chat["tail"]])
        self.type_vocab = pl.Series([f',"type":"{t}","ts":' for t in EVENT_TYPES])
        self.chdev_vocab = pl.Series(
            [
                f',"channel":"{c}","device":"{d}","payload":{{"chat_id":'
                for c in CHANNELS
                for d in DEVICES
            ]
        )
        self.clock_rows = _clock_rows()

    def chunk(self, start: int, stop: int) -> pl.DataFrame:
        ev = self.ev
        n = stop - start
        chat = ev.ev_chat[start:stop]
        etype = ev.ev_type[start:stop]
        ts = ev.ev_ts[start:stop]

        # event id + user id, fixed width
        head_a = np.frombuffer(b'{"event_id":"', dtype=np.uint8)
        head_b = np.frombuffer(b'","user_id":"', dtype=np.uint8)
        width_u = self.uid_rows.shape[1]
        head = np.empty((n, 13 + 36 + 13 + width_u), dtype=np.uint8)
        head[:, :13] = head_a
        head[:, 13:49] = _uuid_rows(start, stop, ev.salt)
        head[:, 49:62] = head_b
        head[:, 62:] = _take_rows(self.uid_rows, ev.chat_user[chat])

        day = ts // _SECONDS_PER_DAY
        first_day = int(day.min())
        days = np.arange(first_day, int(day.max()) + 1, dtype=np.int64)
        day_rows = _ascii_rows(
            pl.from_epoch(pl.Series(days), time_unit="d").dt.strftime("%Y-%m-%dT").to_list()
        )
        stamp = np.empty((n, 20), dtype=np.uint8)
        stamp[:, :11] = _take_rows(day_rows, day - first_day)
        stamp[:, 11:] = _take_rows(self.clock_rows, ts % _SECONDS_PER_DAY)

        csat = ev.csat[chat]
        nps = ev.nps[chat]
        rest = np.where(
            etype == 1,
            ev.ev_utt[start:stop],
            np.where(
                etype == 3,
                self.feedback_at + (csat - 1) * 12 + (nps + 1),
                np.where(etype == 2, self.empty_at + 1 + chat, self.empty_at),
            ),
        )
        chat_idx = pl.Series(chat, dtype=pl.UInt32)
        return pl.DataFrame(
            {
                "a": _fixed_width(head),
                "b": self.type_vocab.gather(pl.Series(etype, dtype=pl.UInt32)),
                "c": _fixed_width(stamp),
                "d": self.chdev_vocab.gather(
                    pl.Series(ev.channel[chat] * len(DEVICES) + ev.device[chat], dtype=pl.UInt32)
                ),
                "e": self.chat_ids.gather(chat_idx),
                "f": self.rest_vocab.gather(pl.Series(rest, dtype=pl.UInt32)),
            }
        )

    def write(self, fh: Any, start: int, stop: int) -> None:
        self.chunk(start, stop).write_csv(
            fh, include_header=False, separator='"', quote_char="'", quote_style="never"
        )


# --------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------


def _truth_frame(pop: _Population) -> pl.DataFrame:
    return pl.DataFrame({"user_id": _user_ids(pop.n), "segment": _pick(SEGMENT_NAMES, pop.segment)})


def generate_users(
    n_users: int,
    seed: int,
    *,
    start: date | None = None,
    end: date | None = None,
    months: int | None = None,
) -> pl.DataFrame:
    """The messy user table exactly as written to ``users.csv`` (all columns strings).

    Parameters
    ----------
    n_users:
        Number of distinct users (the table has about 1.5% more rows: duplicate ids).
    seed:
        Seed of all randomness; the same seed gives the same table.
    start, end, months:
        The event window (``end`` exclusive, default 2026-11-01; ``months`` back from
        ``end``, default 6). New customers sign up inside it.

    Returns
    -------
    polars.DataFrame
        Columns :data:`USER_COLUMNS`; missing values are null.

    Examples
    --------
    >>> users = generate_users(200, seed=1)
    >>> users.columns[:4]
    ['user_id', 'signup_date', 'age', 'gender']
    >>> users["user_id"].n_unique()
    200
    """
    _check_common(n_users, seed)
    window = _resolve_window(start, end, months)
    pop_rng, mess_rng, _ = _streams(seed)
    frame, _mess = _users_frame(_population(int(n_users), pop_rng, window), mess_rng)
    return frame


def generate_events(
    n_users: int,
    seed: int,
    *,
    events_per_user: float | None = None,
    start: date | None = None,
    end: date | None = None,
    months: int | None = None,
) -> pl.DataFrame:
    """The event log of ``events.jsonl`` as a Polars frame, sorted by ``ts``.

    Columns follow :data:`EVENTS_SCHEMA`: ``event_id``, ``user_id``, ``type``, ``ts`` (ISO-8601
    UTC text, as in the file), ``channel``, ``device`` and a ``payload`` struct whose fields that
    do not belong to an event's type are null. It equals ``read_events(events.jsonl)`` of
    :func:`generate` with the same arguments.

    Parameters
    ----------
    n_users, seed, start, end, months:
        As in :func:`generate_users`.
    events_per_user:
        Target mean number of events per user (default: the segments' natural rates,
        about 13). Scales the number of chats; every user keeps at least one chat.

    Examples
    --------
    >>> events = generate_events(50, seed=1)
    >>> events["type"].unique().sort().to_list()
    ['chat_ended', 'chat_started', 'feedback', 'message']
    >>> events["user_id"].n_unique()
    50
    """
    _check_common(n_users, seed)
    window = _resolve_window(start, end, months)
    pop_rng, _, ev_rng = _streams(seed)
    pop = _population(int(n_users), pop_rng, window)
    ev = _simulate(pop, ev_rng, events_per_user)
    ids = _user_ids(pop.n)
    chunks = [
        _events_frame_chunk(ev, ids, a, min(a + _EVENT_CHUNK, ev.n_events))
        for a in range(0, ev.n_events, _EVENT_CHUNK)
    ]
    return pl.concat(chunks) if len(chunks) > 1 else chunks[0]


def generate_truth(
    n_users: int,
    seed: int,
    *,
    start: date | None = None,
    end: date | None = None,
    months: int | None = None,
) -> pl.DataFrame:
    """The latent segment of every user (``user_id``, ``segment``), as in ``truth.csv``.

    Examples
    --------
    >>> generate_truth(3, seed=1)["segment"].is_in(list(SEGMENT_NAMES)).all()
    True
    """
    _check_common(n_users, seed)
    window = _resolve_window(start, end, months)
    return _truth_frame(_make_population(int(n_users), seed, window))


def read_events(path: str | Path) -> pl.DataFrame:
    """Read an ``events.jsonl`` written by :func:`generate` with the exact event schema.

    Examples
    --------
    >>> import tempfile
    >>> out = generate(20, seed=3, out_dir=tempfile.mkdtemp())
    >>> read_events(out.events_path).height == out.n_events
    True
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("Events file not found.", file=str(path))
    return pl.read_ndjson(path, schema=dict(EVENTS_SCHEMA))


@dataclass(frozen=True)
class GenerationResult:
    """What :func:`generate` wrote, with the exact counts of every kind of mess.

    Attributes
    ----------
    out_dir, users_path, events_path, truth_path:
        Where the three files are.
    seed, n_users, start, end:
        The inputs (``end`` exclusive).
    n_user_rows:
        Rows in ``users.csv`` (``n_users`` plus duplicate-id rows).
    n_chats, n_events:
        Chats simulated and lines in ``events.jsonl``.
    segment_counts:
        Users per latent segment.
    event_counts:
        Events per type.
    mess:
        Exact counts of deliberate mess in ``users.csv`` (keys of :data:`MESS_RATES`, with
        ``duplicate_rows`` for duplicate ids, plus currency-format and e-mail counts).
    seconds:
        Wall time of the run.
    """

    out_dir: Path
    users_path: Path
    events_path: Path
    truth_path: Path
    seed: int
    n_users: int
    n_user_rows: int
    n_chats: int
    n_events: int
    start: date
    end: date
    segment_counts: dict[str, int] = field(default_factory=dict)
    event_counts: dict[str, int] = field(default_factory=dict)
    mess: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict of the result."""
        return {
            "out_dir": str(self.out_dir),
            "users_path": str(self.users_path),
            "events_path": str(self.events_path),
            "truth_path": str(self.truth_path),
            "seed": self.seed,
            "n_users": self.n_users,
            "n_user_rows": self.n_user_rows,
            "n_chats": self.n_chats,
            "n_events": self.n_events,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "segment_counts": dict(self.segment_counts),
            "event_counts": dict(self.event_counts),
            "mess": dict(self.mess),
            "seconds": self.seconds,
        }


def _noop(stage: str, done: int, total: int) -> None:
    return None


def generate(
    n_users: int,
    seed: int,
    out_dir: str | Path,
    *,
    events_per_user: float | None = None,
    start: date | None = None,
    end: date | None = None,
    months: int | None = None,
    progress: ProgressCallback | None = None,
) -> GenerationResult:
    """Write ``users.csv``, ``events.jsonl`` and ``truth.csv`` into ``out_dir``.

    Each file is written to a temporary name and renamed, so a failed run leaves no
    half-written file.

    Parameters
    ----------
    n_users:
        Number of distinct users (>= 1).
    seed:
        Seed of all randomness (>= 0); the same arguments give byte-identical files.
    out_dir:
        Output directory (created if missing).
    events_per_user:
        Target mean events per user (default: the segments' natural rates, about 13).
    start, end, months:
        The event window: ``end`` exclusive (default 2026-11-01), ``start`` or ``months``
        back from ``end`` (default 6).
    progress:
        Optional ``progress(stage, done, total)`` callback (the CLI draws a progress bar).

    Returns
    -------
    GenerationResult

    Examples
    --------
    >>> import tempfile
    >>> result = generate(100, seed=7, out_dir=tempfile.mkdtemp())
    >>> result.n_users, result.n_user_rows >= 100, sum(result.segment_counts.values())
    (100, True, 100)
    """
    import time

    t0 = time.perf_counter()
    _check_common(n_users, seed)
    window = _resolve_window(start, end, months)
    _rate_scale(events_per_user)  # validate before any work
    report = progress or _noop
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / name for name in ("users.csv", "events.jsonl", "truth.csv")}

    report("population", 0, 1)
    pop_rng, mess_rng, ev_rng = _streams(seed)
    pop = _population(int(n_users), pop_rng, window)
    ids = _user_ids(pop.n)
    report("population", 1, 1)

    report("users.csv", 0, 1)
    users, mess = _users_frame(pop, mess_rng)
    tmp = paths["users.csv"].with_name(".users.csv.tmp")
    users.write_csv(tmp)
    tmp.replace(paths["users.csv"])
    report("users.csv", 1, 1)

    report("chats", 0, 1)
    ev = _simulate(pop, ev_rng, events_per_user)
    report("chats", 1, 1)

    report("events.jsonl", 0, ev.n_events)
    tmp = paths["events.jsonl"].with_name(".events.jsonl.tmp")
    writer = _LineWriter(ev, ids)
    with tmp.open("wb") as fh:
        for a in range(0, ev.n_events, _EVENT_CHUNK):
            b = min(a + _EVENT_CHUNK, ev.n_events)
            writer.write(fh, a, b)
            report("events.jsonl", b, ev.n_events)
    tmp.replace(paths["events.jsonl"])

    report("truth.csv", 0, 1)
    truth = _truth_frame(pop)
    tmp = paths["truth.csv"].with_name(".truth.csv.tmp")
    truth.write_csv(tmp)
    tmp.replace(paths["truth.csv"])
    report("truth.csv", 1, 1)

    seg_counts = np.bincount(pop.segment, minlength=len(SEGMENTS))
    type_counts = np.bincount(ev.ev_type, minlength=len(EVENT_TYPES))
    return GenerationResult(
        out_dir=out,
        users_path=paths["users.csv"],
        events_path=paths["events.jsonl"],
        truth_path=paths["truth.csv"],
        seed=int(seed),
        n_users=pop.n,
        n_user_rows=users.height,
        n_chats=ev.n_chats,
        n_events=ev.n_events,
        start=window.start,
        end=window.end,
        segment_counts={name: int(c) for name, c in zip(SEGMENT_NAMES, seg_counts, strict=True)},
        event_counts={name: int(c) for name, c in zip(EVENT_TYPES, type_counts, strict=True)},
        mess=mess,
        seconds=time.perf_counter() - t0,
    )

"""Event features for one user, online: a small JSON dict of aggregates updated event by event.

The stream worker keeps exactly the dict from :func:`new_aggregates` per user, feeds every
event to :func:`update_aggregates`, and asks :meth:`FittedFeatureSpec.transform_one` for the
feature vector. :func:`event_features` computes the same raw values as the Polars batch path
(:func:`chatpersona.features.batch.event_features_frame`); the parity tests hold them equal.

State is bounded: lifetime counters plus per-day chat counts for the last
:data:`KEEP_DAYS` days (enough for the 90-day window and the 7-day repeat look-back).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from chatpersona.exceptions import ValidationError

__all__ = [
    "CATEGORIES",
    "CHANNELS",
    "DEVICES",
    "EVENT_FEATURES",
    "FAMILIES",
    "KEEP_DAYS",
    "TIMES_OF_DAY",
    "WINDOWS",
    "event_features",
    "new_aggregates",
    "parse_ts",
    "time_of_day",
    "update_aggregates",
]

CATEGORIES: tuple[str, ...] = (
    "ACCOUNT",
    "ORDER",
    "REFUND",
    "INVOICE",
    "PAYMENT",
    "SHIPPING",
    "DELIVERY",
    "CANCEL",
    "CONTACT",
    "FEEDBACK",
    "SUBSCRIPTION",
)
CHANNELS: tuple[str, ...] = ("web", "mobile_app", "email", "whatsapp", "phone")
DEVICES: tuple[str, ...] = ("desktop", "mobile", "tablet")
TIMES_OF_DAY: tuple[str, ...] = ("night", "morning", "afternoon", "evening")
WINDOWS: tuple[int, ...] = (7, 30, 90)
REPEAT_LOOKBACK_DAYS = 7
KEEP_DAYS = 120

FAMILIES: dict[str, tuple[str, ...]] = {
    "behavioral": (
        *(f"contacts_{w}d" for w in WINDOWS),
        "recency_days",
        "repeat_contact_rate",
        "avg_handle_time_s",
        "resolved_rate",
        *(f"issue_{c.lower()}" for c in CATEGORIES),
    ),
    "contextual": (
        *(f"device_{d}" for d in DEVICES),
        *(f"channel_{c}" for c in CHANNELS),
        *(f"tod_{t}" for t in TIMES_OF_DAY),
        "weekend_share",
    ),
    "feedback": (
        "csat_mean",
        "csat_last",
        "nps_last",
        "nps_promoter",
        "nps_passive",
        "nps_detractor",
    ),
}
EVENT_FEATURES: tuple[str, ...] = tuple(n for fam in FAMILIES.values() for n in fam)


def parse_ts(value: Any) -> datetime:
    """An event timestamp (ISO-8601 string, ``Z`` allowed, or datetime) as an aware UTC datetime."""
    if isinstance(value, datetime):
        if value.tzinfo is UTC:
            return value  # already an aware UTC datetime (the validated events' case)
        ts = value
    elif isinstance(value, str):
        try:
            ts = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValidationError(
                f"event 'ts' is not an ISO-8601 timestamp: {value!r}", code="bad_ts", value=value
            ) from exc
    else:
        raise ValidationError(f"event 'ts' is missing or not a string: {value!r}", code="bad_ts")
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC)


def time_of_day(hour: int) -> str:
    """Bucket of a UTC hour: night [0, 6), morning [6, 12), afternoon [12, 18), evening [18, 24)."""
    return TIMES_OF_DAY[hour // 6]


def new_aggregates() -> dict[str, Any]:
    """An empty aggregate state for one user (a JSON-serializable dict).

    Examples
    --------
    >>> agg = new_aggregates()
    >>> update_aggregates(agg, {"event_id": "e1", "user_id": "u1", "type": "chat_started",
    ...     "ts": "2026-05-03T14:22:05Z", "channel": "web", "device": "mobile", "payload": {}})
    >>> agg["n_chats"], agg["days"]
    (1, {'2026-05-03': 1})
    """
    return {
        "v": 1,
        "n_chats": 0,
        "last_chat_ts": None,
        "days": {},
        "device": {},
        "channel": {},
        "tod": {},
        "weekend": 0,
        "n_cat": 0,
        "cat": {},
        "n_handle": 0,
        "handle_sum": 0.0,
        "n_resolved_known": 0,
        "n_resolved": 0,
        "n_csat": 0,
        "csat_sum": 0.0,
        "csat_last": None,
        "nps_last": None,
    }


_CHAT_TYPES = ("chat_started", "message", "chat_ended", "feedback")


def _later(current: list[Any] | None, ts: float, event_id: str) -> bool:
    # "last" is the max of (ts, event_id): independent of the order events arrive in.
    return current is None or (ts, event_id) > (current[0], current[1])


def update_aggregates(agg: dict[str, Any], event: Mapping[str, Any] | Any) -> None:
    """Fold one event (contract shape: type, ts, channel, device, payload) into ``agg``.

    Commutative: any arrival order gives the same state. Duplicates are not detected
    here (the stream worker de-duplicates by ``event_id`` before calling this).
    Unknown event types are ignored; a bad ``ts`` raises :class:`ValidationError`.
    """
    if isinstance(getattr(event, "ts", None), datetime):
        # A validated event object (the stream worker's): its fields, without a dump.
        obj: Any = event
        etype = obj.type
        if etype not in _CHAT_TYPES:
            return
        ts = parse_ts(obj.ts)
        payload = obj.payload or {}
        event_id = str(obj.event_id)
        device, channel = obj.device, obj.channel
    elif isinstance(event, Mapping):
        etype = event.get("type")
        if etype not in _CHAT_TYPES:
            return
        ts = parse_ts(event.get("ts"))
        payload = event.get("payload") or {}
        event_id = str(event.get("event_id", ""))
        device, channel = event.get("device"), event.get("channel")
    else:
        dump = getattr(event, "model_dump", None)
        if dump is None:
            raise ValidationError(f"event must be a dict, got {type(event).__name__}")
        update_aggregates(agg, dump(mode="json"))
        return
    epoch = ts.timestamp()
    if etype == "chat_started":
        agg["n_chats"] += 1
        if agg["last_chat_ts"] is None or epoch > agg["last_chat_ts"]:
            agg["last_chat_ts"] = epoch
        days: dict[str, int] = agg["days"]
        day = ts.date().isoformat()
        days[day] = days.get(day, 0) + 1
        newest = date.fromisoformat(max(days))
        cutoff = (newest - timedelta(days=KEEP_DAYS)).isoformat()
        for old in [d for d in days if d <= cutoff]:
            del days[old]
        for key, value in (("device", device), ("channel", channel)):
            if value is not None:
                agg[key][str(value)] = agg[key].get(str(value), 0) + 1
        tod = time_of_day(ts.hour)
        agg["tod"][tod] = agg["tod"].get(tod, 0) + 1
        if ts.weekday() >= 5:
            agg["weekend"] += 1
    elif etype == "message":
        cat = payload.get("category")
        if cat in CATEGORIES:
            agg["n_cat"] += 1
            agg["cat"][cat] = agg["cat"].get(cat, 0) + 1
    elif etype == "chat_ended":
        handle = payload.get("handle_time_s")
        if handle is not None:
            agg["n_handle"] += 1
            agg["handle_sum"] += float(handle)
        resolved = payload.get("resolved")
        if resolved is not None:
            agg["n_resolved_known"] += 1
            agg["n_resolved"] += int(bool(resolved))
    else:  # feedback
        csat = payload.get("csat")
        if csat is not None:
            agg["n_csat"] += 1
            agg["csat_sum"] += float(csat)
            if _later(agg["csat_last"], epoch, event_id):
                agg["csat_last"] = [epoch, event_id, float(csat)]
        nps = payload.get("nps")
        if nps is not None and _later(agg["nps_last"], epoch, event_id):
            agg["nps_last"] = [epoch, event_id, float(nps)]


_ISSUE_NAMES = tuple((f"issue_{cat.lower()}", cat) for cat in CATEGORIES)
_SHARE_NAMES = tuple(
    (family, tuple((f"{family}_{v}", v) for v in values))
    for family, values in (("device", DEVICES), ("channel", CHANNELS), ("tod", TIMES_OF_DAY))
)


def nps_category(nps: float | None) -> str | None:
    """Promoter (9-10), passive (7-8) or detractor (0-6); ``None`` without a score."""
    if nps is None:
        return None
    if nps >= 9:
        return "promoter"
    if nps >= 7:
        return "passive"
    return "detractor"


def event_features(agg: Mapping[str, Any], as_of: datetime) -> dict[str, float | None]:
    """Raw (not yet imputed) event features from aggregates, as of ``as_of``.

    ``None`` means "no data" (no chats, no feedback ...); the fitted spec imputes it.
    Windows are whole UTC days: the N-day window holds days ``as_of.date() - N < day <=
    as_of.date()``. The aggregates must only hold events up to ``as_of`` (the batch path
    filters ``ts <= as_of``).
    """
    as_of = parse_ts(as_of)
    today = as_of.date().toordinal()
    n_chats = int(agg["n_chats"])
    # Days as ordinals (whole-day integer arithmetic, the same as date differences).
    days = {date.fromisoformat(d).toordinal(): int(c) for d, c in agg["days"].items()}
    out: dict[str, float | None] = {}
    for w in WINDOWS:
        out[f"contacts_{w}d"] = float(sum(c for d, c in days.items() if 0 <= today - d < w))
    last = agg["last_chat_ts"]
    out["recency_days"] = None if last is None else (as_of.timestamp() - float(last)) / 86400.0
    window = max(WINDOWS)
    repeats = 0
    contacts = 0
    for d, c in days.items():
        if c <= 0 or not 0 <= today - d < window:
            continue
        contacts += c
        before = sum(days.get(d - k, 0) for k in range(1, REPEAT_LOOKBACK_DAYS + 1))
        repeats += (c - 1) + (1 if before > 0 else 0)
    out["repeat_contact_rate"] = repeats / contacts if contacts else None
    out["avg_handle_time_s"] = agg["handle_sum"] / agg["n_handle"] if agg["n_handle"] else None
    out["resolved_rate"] = (
        agg["n_resolved"] / agg["n_resolved_known"] if agg["n_resolved_known"] else None
    )
    n_cat = int(agg["n_cat"])
    cats = agg["cat"]
    for name, cat in _ISSUE_NAMES:
        out[name] = cats.get(cat, 0) / n_cat if n_cat else 0.0
    for family, names in _SHARE_NAMES:
        counts = agg[family]
        for name, value in names:
            out[name] = counts.get(value, 0) / n_chats if n_chats else 0.0
    out["weekend_share"] = agg["weekend"] / n_chats if n_chats else 0.0
    out["csat_mean"] = agg["csat_sum"] / agg["n_csat"] if agg["n_csat"] else None
    out["csat_last"] = None if agg["csat_last"] is None else float(agg["csat_last"][2])
    nps_last = None if agg["nps_last"] is None else float(agg["nps_last"][2])
    out["nps_last"] = nps_last
    nps_cat = nps_category(nps_last)
    for name in ("promoter", "passive", "detractor"):
        out[f"nps_{name}"] = 1.0 if nps_cat == name else 0.0
    return out

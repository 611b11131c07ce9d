"""Windowed per-user state kept by the stream worker: sliding counts, sessions, last values.

Everything is event-time based and order-insensitive: applying the same accepted events
in any order gives the same state, so redeliveries and shuffles within the allowed
lateness cannot change the outcome. An event older than ``max_ts - lateness`` is *late*
and is not applied (the pipeline dead-letters it with reason ``too_late``).

Sliding counts use hourly buckets: ``events_24h`` counts the events in the 24 hourly
buckets ending with the bucket of the user's newest event (so the window is 23-24 h wide).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chatpersona.exceptions import ParameterError

__all__ = [
    "WindowConfig",
    "apply_event",
    "is_late",
    "new_window_state",
    "prune_state",
    "window_features",
    "window_summary",
]

HOUR = 3600.0
DAY = 86400.0
WINDOWS = {"24h": 24, "7d": 24 * 7, "30d": 24 * 30}


@dataclass(frozen=True)
class WindowConfig:
    """Event-time knobs.

    Parameters
    ----------
    allowed_lateness_s:
        How far behind a user's newest event an event may be and still count.
    session_gap_s:
        Inactivity that closes a session.
    horizon_s:
        How much history the longest window keeps (30 days).
    """

    allowed_lateness_s: float = 3600.0
    session_gap_s: float = 1800.0
    horizon_s: float = 30 * DAY

    def __post_init__(self) -> None:
        for name in ("allowed_lateness_s", "session_gap_s", "horizon_s"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0:
                raise ParameterError("WindowConfig", name, "a number >= 0", value)


def new_window_state() -> dict[str, Any]:
    """An empty, JSON-serializable window state."""
    return {
        "max_ts": None,
        "events": 0,
        "by_type": {},
        "hours": {},
        "sessions": [],
        "chats": {},
        "last": {},
        "csat": [0, 0],
        "nps": [0, 0],
        "resolved": [0, 0],
    }


def is_late(state: dict[str, Any], ts: float, config: WindowConfig) -> bool:
    """``True`` when ``ts`` is behind the user's newest event by more than the lateness."""
    max_ts = state.get("max_ts")
    return max_ts is not None and ts < max_ts - config.allowed_lateness_s


def _set_last(last: dict[str, Any], name: str, ts: float, eid: str, value: Any) -> None:
    current = last.get(name)
    # Ties on event time are broken by event id so that any arrival order agrees.
    if current is None or ts > current[0] or (ts == current[0] and eid > current[1]):
        last[name] = [ts, eid, value]


def apply_event(
    state: dict[str, Any],
    *,
    event_id: str,
    type: str,
    ts: float,
    channel: str | None,
    device: str | None,
    payload: dict[str, Any],
    config: WindowConfig,
    prune: bool = True,
) -> None:
    """Fold one (deduplicated, not late) event into ``state`` in place.

    ``prune=False`` leaves dropping expired buckets to a later :func:`prune_state` call
    (the pipeline prunes once per user per batch; the result is the same)."""
    # Per event on the worker's hot path: locals, no per-event containers.
    state["events"] += 1
    by_type = state["by_type"]
    by_type[type] = by_type.get(type, 0) + 1
    hour = str(int(ts // HOUR))
    hours = state["hours"]
    hours[hour] = hours.get(hour, 0) + 1

    # Sessions: the connected components of event times closer than the gap.
    gap = config.session_gap_s
    sessions = state["sessions"]
    last_s = sessions[-1] if sessions else None
    if (
        last_s is not None
        and last_s[0] - gap <= ts <= last_s[1] + gap
        and (len(sessions) == 1 or ts > sessions[-2][1] + gap)
    ):
        # The common case, an event in (or just after) the newest session.
        if ts < last_s[0]:
            last_s[0] = ts
        elif ts > last_s[1]:
            last_s[1] = ts
    else:
        lo, hi = ts, ts
        kept = []
        for start, end in sessions:
            if start - gap <= ts <= end + gap:
                lo, hi = min(lo, start), max(hi, end)
            else:
                kept.append([start, end])
        kept.append([lo, hi])
        kept.sort()
        state["sessions"] = kept

    last = state["last"]
    if channel is not None:
        _set_last(last, "channel", ts, event_id, channel)
    if device is not None:
        _set_last(last, "device", ts, event_id, device)
    if payload:
        intent = payload.get("intent")
        if intent is not None:
            _set_last(last, "intent", ts, event_id, intent)
        category = payload.get("category")
        if category is not None:
            _set_last(last, "category", ts, event_id, category)
        chat_id = payload.get("chat_id")
        if isinstance(chat_id, str):
            chats = state["chats"]
            seen = chats.get(chat_id)
            if seen is None or ts > seen:
                chats[chat_id] = ts
        if type == "feedback":
            for name in ("csat", "nps"):
                value = payload.get(name)
                if value is not None:
                    running = state[name]
                    running[0] += value
                    running[1] += 1
                    _set_last(last, name, ts, event_id, value)
        elif type == "chat_ended":
            state["resolved"][1] += 1
            if payload.get("resolved") is True:
                state["resolved"][0] += 1
    elif type == "chat_ended":
        state["resolved"][1] += 1

    max_ts = state["max_ts"]
    if max_ts is None or ts > max_ts:
        state["max_ts"] = ts
    if prune:
        prune_state(state, config)


def prune_state(state: dict[str, Any], config: WindowConfig) -> None:
    """Drop buckets, sessions and chats older than the horizon plus the lateness."""
    if state["max_ts"] is None:
        return
    cutoff = state["max_ts"] - config.horizon_s - config.allowed_lateness_s
    cut_hour = int(cutoff // HOUR)
    hours = state["hours"]
    for h in [h for h in hours if int(h) < cut_hour]:
        del hours[h]
    state["sessions"] = [s for s in state["sessions"] if s[1] >= cutoff]
    chats = state["chats"]
    for c in [c for c, t in chats.items() if t < cutoff]:
        del chats[c]


def window_summary(state: dict[str, Any]) -> dict[str, Any]:
    """Sliding counts, sessions, last values and running feedback of one user.

    Examples
    --------
    >>> s = new_window_state()
    >>> apply_event(s, event_id="e1", type="feedback", ts=7200.0, channel="web",
    ...     device="mobile", payload={"chat_id": "c1", "csat": 4}, config=WindowConfig())
    >>> summary = window_summary(s)
    >>> summary["events_24h"], summary["csat_mean"], summary["last_channel"]
    (1, 4.0, 'web')
    """
    max_ts = state["max_ts"]
    out: dict[str, Any] = {"events_total": state["events"]}
    if max_ts is None:
        out.update({f"events_{w}": 0 for w in WINDOWS})
        out.update(sessions_30d=0, chats_30d=0)
    else:
        top = int(max_ts // HOUR)
        for name, width in WINDOWS.items():
            out[f"events_{name}"] = sum(
                n for h, n in state["hours"].items() if top - width < int(h) <= top
            )
        since = max_ts - 30 * DAY
        out["sessions_30d"] = sum(1 for s in state["sessions"] if s[1] >= since)
        out["chats_30d"] = sum(1 for t in state["chats"].values() if t >= since)
        current = state["sessions"][-1] if state["sessions"] else None
        out["session_length_s"] = (current[1] - current[0]) if current else 0.0
    for name in ("channel", "device", "intent", "category", "csat", "nps"):
        value = state["last"].get(name)
        out[f"last_{name}"] = value[2] if value else None
    for name in ("csat", "nps"):
        total, count = state[name]
        out[f"{name}_count"] = count
        out[f"{name}_mean"] = total / count if count else None
    ok, ended = state["resolved"]
    out["resolution_rate"] = ok / ended if ended else None
    out["max_ts"] = max_ts
    return out


def window_features(state: dict[str, Any]) -> dict[str, float]:
    """Numeric features from the window state alone (used when no fitted feature spec is
    configured): counts, sessions, running CSAT/NPS (``-1`` when unknown)."""
    s = window_summary(state)
    keys = ("events_24h", "events_7d", "events_30d", "sessions_30d", "chats_30d")
    out = {k: float(s.get(k) or 0) for k in keys}
    for k in ("csat_mean", "nps_mean", "resolution_rate"):
        out[k] = float(s[k]) if s[k] is not None else -1.0
    return out

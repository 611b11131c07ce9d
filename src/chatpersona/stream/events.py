"""The typed interaction event: what every transport carries and the pipeline consumes.

An event arrives as bytes (a transport) or a dict (the HTTP API); :func:`parse_event`
turns either into an :class:`Event` or raises :class:`EventRejected` with a reason code,
so the caller can put the original bytes in a dead-letter place.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import pydantic
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from chatpersona.exceptions import ValidationError

__all__ = [
    "EVENT_TYPES",
    "MAX_EVENT_BYTES",
    "Event",
    "EventRejected",
    "parse_event",
]

MAX_EVENT_BYTES = 32 * 1024
"""An event's JSON encoding may not exceed this many bytes."""

EVENT_TYPES = ("chat_started", "message", "chat_ended", "feedback", "profile_update")
"""The event types the pipeline knows; anything else is dead-lettered as ``unknown_type``."""

EventType = Literal["chat_started", "message", "chat_ended", "feedback", "profile_update"]
UserId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@-]+$")
]
Text128 = Annotated[str, StringConstraints(min_length=1, max_length=128)]
_CHAT_TYPES = ("chat_started", "message", "chat_ended", "feedback")


class EventRejected(ValidationError):
    """An event failed validation; ``code`` is the reason (``too_large``, ``not_json``,
    ``unknown_type``, ``invalid_field``) and ``field`` names the offending field."""

    default_code = "invalid_event"


class Event(BaseModel):
    """One interaction event.

    Parameters
    ----------
    event_id:
        Unique id; the pipeline remembers it to drop duplicates.
    tenant:
        The tenant; ``"default"`` when absent (the API sets it from the caller's key).
    user_id, type, ts, channel, device, payload:
        Who, what, when (event time, stored in UTC), where, and the type's details:
        ``chat_id`` for chat events, ``csat`` 1-5 / ``nps`` 0-10 for feedback, the raw
        user columns for ``profile_update``.

    Examples
    --------
    >>> e = Event.model_validate({"event_id": "e1", "user_id": "u1", "type": "feedback",
    ...     "ts": "2026-05-03T14:22:05Z", "payload": {"chat_id": "c1", "csat": 5}})
    >>> e.tenant, e.ts.isoformat()
    ('default', '2026-05-03T14:22:05+00:00')
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: Text128
    tenant: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "default"
    user_id: UserId
    type: EventType
    ts: datetime
    channel: Annotated[str, StringConstraints(max_length=64)] | None = None
    device: Annotated[str, StringConstraints(max_length=64)] | None = None
    payload: dict[str, Any] = Field(default_factory=dict)

    @field_validator("ts")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    @pydantic.model_validator(mode="after")
    def _payload_by_type(self) -> Event:
        p = self.payload
        if self.type in _CHAT_TYPES:
            chat_id = p.get("chat_id")
            if not isinstance(chat_id, str) or not chat_id or len(chat_id) > 128:
                raise ValueError("payload.chat_id must be a non-empty string (max 128)")
        if self.type == "feedback":
            csat, nps = p.get("csat"), p.get("nps")
            if csat is not None and (not _is_int(csat) or not 1 <= csat <= 5):
                raise ValueError(f"payload.csat must be an integer 1..5, got {csat!r}")
            if nps is not None and (not _is_int(nps) or not 0 <= nps <= 10):
                raise ValueError(f"payload.nps must be an integer 0..10, got {nps!r}")
            if csat is None and nps is None:
                raise ValueError("a feedback event needs payload.csat or payload.nps")
        return self

    @property
    def epoch(self) -> float:
        """Event time as UNIX seconds."""
        return self.ts.timestamp()

    def to_bytes(self) -> bytes:
        """Compact JSON, the wire format of every transport."""
        return self.model_dump_json(exclude_none=True).encode()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_event(raw: bytes | str | dict[str, Any] | Event) -> Event:
    """Validate ``raw`` into an :class:`Event`.

    Raises
    ------
    EventRejected
        With ``code`` ``too_large`` (over :data:`MAX_EVENT_BYTES`), ``not_json``,
        ``unknown_type`` or ``invalid_field`` (``field`` names it).

    Examples
    --------
    >>> try:
    ...     parse_event(b'{"event_id": "e", "user_id": "u", "type": "nope", "ts": "2026-01-01"}')
    ... except EventRejected as exc:
    ...     print(exc.code, exc.fields["field"])
    unknown_type type
    """
    if isinstance(raw, Event):
        return raw
    if isinstance(raw, bytes | str):
        size = len(raw.encode() if isinstance(raw, str) else raw)
        if size > MAX_EVENT_BYTES:
            raise EventRejected(
                f"event is {size} bytes; the limit is {MAX_EVENT_BYTES}",
                code="too_large",
                value=size,
            )
        try:
            # Fast path: pydantic parses and validates the JSON in one go; any failure
            # takes the slow path below, which names the precise reason.
            return Event.model_validate_json(raw)
        except (pydantic.ValidationError, ValueError):
            pass
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise EventRejected(f"event is not valid JSON: {exc}", code="not_json") from exc
    else:
        data = raw
        size = len(json.dumps(data, default=str))
        if size > MAX_EVENT_BYTES:
            raise EventRejected(
                f"event is {size} bytes; the limit is {MAX_EVENT_BYTES}",
                code="too_large",
                value=size,
            )
    if not isinstance(data, dict):
        raise EventRejected("event must be a JSON object", code="not_json")
    kind = data.get("type")
    if kind not in EVENT_TYPES:
        raise EventRejected(
            f"unknown event type {kind!r}; known: {', '.join(EVENT_TYPES)}",
            code="unknown_type",
            field="type",
            value=kind,
        )
    try:
        return Event.model_validate(data)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "payload"
        value = first.get("input")
        shown = value if isinstance(value, str | int | float | bool) or value is None else None
        raise EventRejected(
            f"invalid event field {field!r}: {first['msg']}",
            code="invalid_field",
            field=field,
            value=shown,
        ) from exc

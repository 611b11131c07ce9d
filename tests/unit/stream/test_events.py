"""The typed event: defaults, bounds, and a reason code for every rejection."""

from __future__ import annotations

import json

import pytest

from chatpersona.stream import MAX_EVENT_BYTES, Event, EventRejected, parse_event

GOOD = {
    "event_id": "e1",
    "user_id": "u1",
    "type": "message",
    "ts": "2026-05-03T14:22:05Z",
    "channel": "web",
    "device": "mobile",
    "payload": {"chat_id": "c1", "text": "hi", "intent": "track_order"},
}


def test_tenant_defaults_and_ts_is_utc() -> None:
    e = parse_event(json.dumps(GOOD).encode())
    assert e.tenant == "default"
    assert e.ts.utcoffset() is not None and e.ts.utcoffset().total_seconds() == 0
    assert parse_event(e.to_bytes()) == e


def test_naive_and_offset_times_become_utc() -> None:
    e = parse_event({**GOOD, "ts": "2026-05-03T16:22:05+02:00"})
    assert e.ts.hour == 14
    assert parse_event({**GOOD, "ts": "2026-05-03T14:22:05"}).ts.hour == 14


@pytest.mark.parametrize(
    ("raw", "code", "field"),
    [
        pytest.param(b"{not json", "not_json", None, id="not-json"),
        pytest.param(b"[1, 2]", "not_json", None, id="not-an-object"),
        pytest.param({**GOOD, "type": "purchase"}, "unknown_type", "type", id="unknown-type"),
        pytest.param({**GOOD, "user_id": "a b"}, "invalid_field", "user_id", id="bad-user"),
        pytest.param({**GOOD, "ts": "yesterday"}, "invalid_field", "ts", id="bad-ts"),
        pytest.param({**GOOD, "extra": 1}, "invalid_field", "extra", id="unknown-field"),
        pytest.param({**GOOD, "payload": {}}, "invalid_field", "payload", id="no-chat-id"),
        pytest.param(
            {**GOOD, "type": "feedback", "payload": {"chat_id": "c", "csat": 9}},
            "invalid_field",
            None,
            id="csat-out-of-range",
        ),
        pytest.param(
            {**GOOD, "type": "feedback", "payload": {"chat_id": "c", "nps": 11}},
            "invalid_field",
            None,
            id="nps-out-of-range",
        ),
    ],
)
def test_rejections_carry_a_reason(raw: object, code: str, field: str | None) -> None:
    with pytest.raises(EventRejected) as info:
        parse_event(raw)  # type: ignore[arg-type]
    assert info.value.code == code
    if field is not None:
        assert info.value.fields["field"] == field


def test_size_bound() -> None:
    big = {**GOOD, "payload": {"chat_id": "c1", "text": "x" * MAX_EVENT_BYTES}}
    with pytest.raises(EventRejected) as info:
        parse_event(json.dumps(big).encode())
    assert info.value.code == "too_large"
    with pytest.raises(EventRejected):
        parse_event(big)
    ok = {**GOOD, "payload": {"chat_id": "c1", "text": "x" * (MAX_EVENT_BYTES - 400)}}
    assert isinstance(parse_event(json.dumps(ok).encode()), Event)


def test_events_are_immutable() -> None:
    e = parse_event(GOOD)
    with pytest.raises(Exception):  # noqa: B017 - pydantic frozen model
        e.user_id = "other"  # type: ignore[misc]

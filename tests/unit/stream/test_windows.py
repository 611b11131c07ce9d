"""Window state: event-time counts/sessions/last values, order-insensitive within lateness."""

from __future__ import annotations

import random
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatpersona.exceptions import ParameterError
from chatpersona.stream import WindowConfig, apply_event, is_late, new_window_state, window_summary

from .helpers import make_events, oracle


def fold(events: list[dict], config: WindowConfig) -> dict[str, dict]:
    states: dict[str, dict] = {}
    for e in events:
        s = states.setdefault(e["user_id"], new_window_state())
        ts = datetime.fromisoformat(e["ts"]).timestamp()
        assert not is_late(s, ts, config)
        apply_event(
            s,
            event_id=e["event_id"],
            type=e["type"],
            ts=ts,
            channel=e["channel"],
            device=e["device"],
            payload=e["payload"],
            config=config,
        )
    return states


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), shuffle_seed=st.integers(0, 10_000))
def test_any_order_gives_the_oracle_summary(seed: int, shuffle_seed: int) -> None:
    events = make_events(seed, span_h=24 * 10)
    config = WindowConfig(allowed_lateness_s=24 * 11 * 3600)
    shuffled = list(events)
    random.Random(shuffle_seed).shuffle(shuffled)
    a, b = fold(events, config), fold(shuffled, config)
    assert a == b
    for uid, want in oracle(events).items():
        got = window_summary(a[uid])
        for name in ("events_total", "events_24h", "events_7d", "sessions_30d", "csat_count"):
            assert got[name] == want[name], name
        assert got["last_channel"] == want["last_channel"]
        assert set(a[uid]["chats"]) == want["chats"]


def test_late_event_is_detected() -> None:
    config = WindowConfig(allowed_lateness_s=60)
    s = new_window_state()
    apply_event(
        s,
        event_id="a",
        type="message",
        ts=10_000.0,
        channel=None,
        device=None,
        payload={"chat_id": "c"},
        config=config,
    )
    assert is_late(s, 10_000.0 - 61, config)
    assert not is_late(s, 10_000.0 - 60, config)


def test_old_buckets_are_pruned() -> None:
    config = WindowConfig(allowed_lateness_s=0)
    s = new_window_state()
    for i, ts in enumerate([0.0, 40 * 86400.0]):
        apply_event(
            s,
            event_id=str(i),
            type="chat_started",
            ts=ts,
            channel="web",
            device=None,
            payload={"chat_id": f"c{i}"},
            config=config,
        )
    assert list(s["hours"]) == [str(40 * 86400 // 3600)]
    assert list(s["chats"]) == ["c1"] and len(s["sessions"]) == 1
    assert window_summary(s)["events_total"] == 2  # lifetime total keeps counting


def test_config_is_validated() -> None:
    with pytest.raises(ParameterError, match="'session_gap_s' parameter of WindowConfig"):
        WindowConfig(session_gap_s=-1)

"""Batch feature rows equal the one-user rows built from streamed aggregates."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatpersona.features import (
    EVENT_FEATURES,
    FeatureSpec,
    event_features,
    event_features_frame,
    flatten_events,
    new_aggregates,
    update_aggregates,
)
from chatpersona.features.online import CATEGORIES, CHANNELS, DEVICES

AS_OF = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def random_events(rng: random.Random, n_users: int, n_chats: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for i in range(n_chats):
        user = f"u{rng.randrange(n_users)}"
        start = AS_OF - timedelta(seconds=rng.randrange(0, 150 * 86400))
        chat = f"c{i}"
        channel = rng.choice((*CHANNELS, "fax"))
        device = rng.choice(DEVICES)
        base = {"user_id": user, "channel": channel, "device": device}
        events.append(
            {
                **base,
                "event_id": f"{chat}-s",
                "type": "chat_started",
                "ts": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "payload": {"chat_id": chat},
            }
        )
        for m in range(rng.randrange(0, 3)):
            events.append(
                {
                    **base,
                    "event_id": f"{chat}-m{m}",
                    "type": "message",
                    "ts": (start + timedelta(seconds=10 + m)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "payload": {
                        "chat_id": chat,
                        "text": "hi",
                        "intent": "x",
                        "category": rng.choice((*CATEGORIES, "OTHER")),
                    },
                }
            )
        if rng.random() < 0.8:
            events.append(
                {
                    **base,
                    "event_id": f"{chat}-e",
                    "type": "chat_ended",
                    "ts": (start + timedelta(seconds=60)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "payload": {
                        "chat_id": chat,
                        "resolved": rng.random() < 0.6,
                        "handle_time_s": round(rng.uniform(10, 900), 3),
                    },
                }
            )
        if rng.random() < 0.5:
            payload: dict[str, Any] = {"chat_id": chat, "csat": rng.randint(1, 5)}
            if rng.random() < 0.5:
                payload["nps"] = rng.randint(0, 10)
            # same second as another feedback sometimes: "last" must break ties by event_id
            events.append(
                {
                    **base,
                    "event_id": f"{chat}-f",
                    "type": "feedback",
                    "ts": (start + timedelta(seconds=61)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "payload": payload,
                }
            )
    return events


def online_rows(events: list[dict[str, Any]], shuffle_seed: int) -> dict[str, dict[str, Any]]:
    aggs: dict[str, dict[str, Any]] = {}
    order = list(events)
    random.Random(shuffle_seed).shuffle(order)
    for ev in order:
        update_aggregates(aggs.setdefault(ev["user_id"], new_aggregates()), ev)
    return {u: event_features(a, AS_OF) for u, a in aggs.items()}


def assert_close(a: Any, b: Any, where: str) -> None:
    if a is None or b is None:
        assert a is None and b is None, where
    else:
        assert abs(a - b) <= 1e-9 * max(1.0, abs(a)), where


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_event_features_batch_equals_online_any_order(seed: int) -> None:
    rng = random.Random(seed)
    events = random_events(rng, n_users=15, n_chats=300)
    batch = event_features_frame(flatten_events(events), AS_OF)
    online = online_rows(events, shuffle_seed=seed + 100)
    assert set(batch["user_id"].to_list()) == set(online)
    for row in batch.iter_rows(named=True):
        for name in EVENT_FEATURES:
            assert_close(row[name], online[row["user_id"]][name], f"{row['user_id']} {name}")


@pytest.mark.parametrize("seed", [3, 4])
def test_validated_event_objects_fold_like_dicts(seed: int) -> None:
    # The stream worker hands update_aggregates its validated Event objects.
    from chatpersona.stream.events import Event

    events = random_events(random.Random(seed), n_users=5, n_chats=120)
    from_dicts: dict[str, dict[str, Any]] = {}
    from_events: dict[str, dict[str, Any]] = {}
    for e in events:
        update_aggregates(from_dicts.setdefault(e["user_id"], new_aggregates()), e)
        ev = Event.model_validate(e)
        update_aggregates(from_events.setdefault(e["user_id"], new_aggregates()), ev)
    assert from_events == from_dicts
    assert sum(a["n_chats"] for a in from_events.values()) == 120


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 40))
def test_event_parity_property(seed: int, n_chats: int) -> None:
    events = random_events(random.Random(seed), n_users=3, n_chats=n_chats)
    batch = event_features_frame(flatten_events(events), AS_OF)
    online = online_rows(events, shuffle_seed=seed)
    for row in batch.iter_rows(named=True):
        for name in EVENT_FEATURES:
            assert_close(row[name], online[row["user_id"]][name], name)


def test_fitted_spec_transform_one_equals_transform_row() -> None:
    rng = random.Random(7)
    events = random_events(rng, n_users=25, n_chats=400)
    users = pl.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(30)],  # u25..u29 have no events at all
            "age": [None if i % 7 == 0 else 18.0 + i for i in range(30)],
            "gender": [["F", "M", None, "Non-binary"][i % 4] for i in range(30)],
            "plan": [["basic", "pro", "premium", "weird"][i % 4] for i in range(30)],
            "is_vip": [i % 3 == 0 for i in range(30)],
            "signup_date": [datetime(2024, 1, 1 + i % 28).date() for i in range(30)],
        }
    )
    spec = FeatureSpec.from_dict(
        {
            "columns": {
                "age": "numeric",
                "gender": "categorical",
                "is_vip": "boolean",
                "signup_date": "date",
                "plan": {
                    "kind": "categorical",
                    "encoding": "ordinal",
                    "order": ["basic", "pro", "premium"],
                },
            },
            "events": ["behavioral", "contextual", "feedback"],
        }
    )
    ev = flatten_events(events)
    fitted = spec.fit(users, ev, AS_OF)
    batch = fitted.transform(users, ev, AS_OF)
    aggs: dict[str, dict[str, Any]] = {}
    for e in events:
        update_aggregates(aggs.setdefault(e["user_id"], new_aggregates()), e)
    assert batch.null_count().sum_horizontal().item() == 0
    for row in batch.iter_rows(named=True):
        user = users.filter(pl.col("user_id") == row["user_id"]).row(0, named=True)
        one = fitted.transform_one(user, aggs.get(row["user_id"]), AS_OF)
        assert list(one) == fitted.feature_names_
        for name in fitted.feature_names_:
            assert_close(row[name], one[name], f"{row['user_id']} {name}")

"""The pipeline core with stand-ins: run_one, dedupe, clean, late events, idempotent
effects under replay / duplicates / shuffles (Hypothesis vs an oracle), crash safety,
model hot switch and segment_changed."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatpersona.pipeline import Pipeline, StaticModel, StepError
from chatpersona.pipeline.steps import STEP_NAMES
from chatpersona.profiles import open_store
from chatpersona.profiles.base import ProfileStore
from chatpersona.stream import MemoryStateStore, WindowConfig, window_summary

from .helpers import AgeCleaner, ThresholdModel, make_events, oracle

WIDE = WindowConfig(allowed_lateness_s=30 * 86400)


def pipeline(**kw: Any) -> Pipeline:
    kw.setdefault("state", MemoryStateStore())
    kw.setdefault("store", open_store("memory://"))
    kw.setdefault("windows", WIDE)
    return Pipeline(**kw)


def stable(profile: Any) -> dict[str, Any]:
    """A profile without what depends on wall time or arrival order."""
    d = profile.model_dump(exclude={"created_at", "updated_at", "version"})
    d["interaction_history"] = sorted(d["interaction_history"])
    if d["segment"]:
        d["segment"].pop("assigned_at")
    d["feedback"].pop("csat_last")
    d["feedback"].pop("nps_last")
    d["feedback"]["csat_mean"] = round(d["feedback"]["csat_mean"] or 0, 9)
    return d


def test_steps_are_declared_with_names() -> None:
    assert pipeline().step_names == list(STEP_NAMES)


def test_run_one_without_any_server() -> None:
    p = pipeline(models=ThresholdModel(k=1))
    ev = make_events(1, users=1, chats=1)[0]
    r = p.run_one(ev)
    assert (r.status, r.segment, r.segment_changed) == ("processed", "1", True)
    assert r.features is not None and r.features["events_24h"] == 1.0
    assert p.run_one(json.dumps(ev).encode()).status == "duplicate"
    prof = p.ctx.store.get("default", ev["user_id"])  # type: ignore[union-attr]
    assert prof is not None and prof.interaction_history == [ev["payload"]["chat_id"]]
    assert prof.segment is not None and prof.segment.model_version == "v1"


def test_invalid_and_late_events_are_rejected_with_reasons() -> None:
    p = pipeline(windows=WindowConfig(allowed_lateness_s=60))
    evs = make_events(2, users=1, chats=2, span_h=48)
    results = p.process([b"nope", {**evs[0], "type": "refund"}, evs[-1], evs[0]])
    assert [r.status for r in results] == ["rejected", "rejected", "processed", "rejected"]
    assert [r.reason for r in results] == ["not_json", "unknown_type", None, "too_late"]
    assert p.metrics.events == {"rejected": 3, "processed": 1}


def test_profile_update_is_cleaned_or_rejected() -> None:
    p = pipeline(cleaner=AgeCleaner())
    base = {"user_id": "u9", "type": "profile_update", "ts": "2026-05-01T00:00:00Z"}
    ok = p.run_one({**base, "event_id": "p1", "payload": {"age": " 42 ", "region": "North"}})
    bad = p.run_one({**base, "event_id": "p2", "payload": {"age": "420"}})
    assert ok.status == "processed"
    assert (bad.status, bad.reason) == ("rejected", "clean:outlier")
    assert "age" in (bad.detail or "")
    prof = p.ctx.store.get("default", "u9")  # type: ignore[union-attr]
    assert prof is not None and prof.attributes == {"age": 42, "region": "North"}


def final(p: Pipeline, users: list[str]) -> tuple[dict, dict]:
    states = p.ctx.state.load([f"default:{u}" for u in users])
    store = p.ctx.store
    assert isinstance(store, ProfileStore)
    profiles = {u: stable(store.get("default", u)) for u in users}
    return states, profiles


@settings(max_examples=20, deadline=None)
@given(
    seed=st.integers(0, 100_000),
    order=st.integers(0, 100_000),
    dup_share=st.floats(0, 0.5),
    batch=st.integers(1, 40),
)
def test_replay_duplicates_and_shuffles_give_the_same_result(
    seed: int, order: int, dup_share: float, batch: int
) -> None:
    events = make_events(seed, users=4, chats=12, span_h=96)
    rng = random.Random(order)
    messy = events + [e for e in events if rng.random() < dup_share]
    rng.shuffle(messy)
    users = sorted({e["user_id"] for e in events})

    clean_run = pipeline(models=ThresholdModel(k=6))
    clean_run.process(events)
    messy_run = pipeline(models=ThresholdModel(k=6))
    for i in range(0, len(messy), batch):
        messy_run.process(messy[i : i + batch])
    messy_run.process(events)  # a second full replay changes nothing

    assert final(clean_run, users) == final(messy_run, users)
    states, profiles = final(messy_run, users)
    for uid, want in oracle(events).items():
        summary = window_summary(states[f"default:{uid}"]["w"])
        assert summary["events_total"] == want["events_total"]
        assert summary["events_24h"] == want["events_24h"]
        assert summary["sessions_30d"] == want["sessions_30d"]
        prof = profiles[uid]
        assert set(prof["interaction_history"]) == want["chats"]
        assert prof["interaction_count"] == len(want["chats"])
        assert prof["feedback"]["csat_count"] == want["csat_count"]
        if want["csat_count"]:
            mean = want["csat_sum"] / want["csat_count"]
            assert prof["feedback"]["csat_mean"] == pytest.approx(mean)
    assert messy_run.metrics.events["duplicate"] == len(messy) - len(events) + len(events)


class CrashOnce(MemoryStateStore):
    """A state store that dies on its n-th commit (1: the feedback marker before the
    profile write; 2: the state commit after it)."""

    def __init__(self, nth: int) -> None:
        super().__init__()
        self.nth = nth

    def commit(self, states: Any, event_ids: Any) -> None:
        self.nth -= 1
        if self.nth == 0:
            raise ConnectionError("state store went away")
        super().commit(states, event_ids)


@pytest.mark.parametrize(("nth", "step"), [(1, "profile"), (2, "commit")])
def test_a_crash_around_the_profile_write_doubles_nothing(nth: int, step: str) -> None:
    events = [
        e for e in make_events(5, users=1, chats=6) if e["type"] in ("feedback", "chat_started")
    ]
    assert sum(e["type"] == "feedback" for e in events) >= 2
    p = pipeline(state=CrashOnce(nth))
    with pytest.raises(StepError) as info:
        p.process(events)
    assert info.value.step == step
    p.process(events)  # the redelivery
    ref = pipeline()
    ref.process(events)
    uid = events[0]["user_id"]
    assert final(p, [uid]) == final(ref, [uid])


def test_model_hot_switch_and_segment_changed() -> None:
    emitted: list[dict] = []
    source = StaticModel(ThresholdModel(k=100, version="v1"))
    p = pipeline(models=source, emit=emitted.append)
    evs = make_events(7, users=1, chats=3)
    assert p.run_one(evs[0]).segment == "0"
    source.set(ThresholdModel(k=1, version="v2"))  # no restart
    r = p.run_one(evs[1])
    assert (r.segment, r.segment_changed) == ("1", True)
    assert [(e["from"], e["to"], e["model_version"]) for e in emitted] == [
        (None, "0", "v1"),
        ("0", "1", "v2"),
    ]
    assert p.run_one(evs[2]).segment_changed is False
    prof = p.ctx.store.get("default", evs[0]["user_id"])  # type: ignore[union-attr]
    assert prof is not None and prof.segment is not None and prof.segment.model_version == "v2"
    p.set_model(None)
    assert p.run_one(evs[3]).segment is None


def test_per_step_latency_is_recorded() -> None:
    p = pipeline()
    events = make_events(3, users=2, chats=2)
    p.process(events, published_at=[datetime.now(UTC).timestamp() - 0.002] * len(events))
    snap = p.metrics.snapshot()
    assert sum(p.metrics.latency_counts) == len(events)
    assert p.metrics.latency_sum >= 0.002 * len(events)
    assert set(snap["step_events"]) == set(STEP_NAMES)
    assert "chatpersona_stream_step_seconds_total" in p.metrics.render()

"""Stream/batch parity: after a replay, each user's features and segment computed from the
worker's state equal what the batch path (``run_segmentation``) computed from the same
events, with the real FittedFeatureSpec, features.online aggregates and SegmentModel."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import polars as pl
import pytest

from chatpersona.datagen.generator import generate_events
from chatpersona.pipeline import Pipeline
from chatpersona.profiles import ProfilePatch, open_store
from chatpersona.segment.run import run_segmentation
from chatpersona.stream import MemoryStateStore, WindowConfig


def test_features_and_segments_match_the_batch_path() -> None:
    events = generate_events(80, 3, events_per_user=15)
    ids = sorted(events["user_id"].unique().to_list())
    rng = random.Random(0)
    users = pl.DataFrame(
        {
            "user_id": ids,
            "age": [float(rng.randint(18, 80)) for _ in ids],
            "plan": [rng.choice(["basic", "premium", "pro"]) for _ in ids],
        }
    )
    as_of = datetime.fromisoformat(events["ts"].max().replace("Z", "+00:00"))
    batch = run_segmentation(users, events=events, algo="kmeans", k=3, seed=0, as_of=as_of)
    model = batch.model
    assert model.feature_spec is not None and batch.features is not None

    store = open_store("memory://")
    for row in users.iter_rows(named=True):  # the cleaned users, loaded in batch
        store.merge("default", row["user_id"], ProfilePatch(attributes=row))
    state = MemoryStateStore()
    pipeline = Pipeline(state=state, store=store, models=model, windows=WindowConfig())
    rows = []
    for r in events.iter_rows(named=True):
        r["payload"] = {k: v for k, v in (r["payload"] or {}).items() if v is not None}
        rows.append({k: v for k, v in r.items() if v is not None})
    for i in range(0, len(rows), 97):
        results = pipeline.process(rows[i : i + 97])
        assert {r.status for r in results} == {"processed"}

    want_features = {r["user_id"]: r for r in batch.features.iter_rows(named=True)}
    want_segment = dict(batch.assignments.iter_rows())
    docs = state.load([f"default:{u}" for u in ids])
    for uid in ids:
        doc = docs[f"default:{uid}"]
        got = model.feature_spec.transform_one(doc["user"], doc["agg"], as_of)
        for name, value in got.items():
            assert value == pytest.approx(want_features[uid][name], abs=1e-9), (uid, name)
        assert model.assign_one(got).segment_id == want_segment[uid]
        # the profile carries the stream's own view: features as of the user's last event
        prof = store.get("default", uid)
        assert prof is not None and prof.segment is not None
        last = datetime.fromtimestamp(doc["w"]["max_ts"], UTC)
        own = model.feature_spec.transform_one(doc["user"], doc["agg"], last)
        assert prof.features == pytest.approx(own)
        assert prof.segment.id == model.assign_one(own).segment_id
        assert prof.segment.model_version == model.version


def test_registry_activation_switches_the_running_pipeline(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from chatpersona.pipeline import RegistryModels
    from chatpersona.segment import ModelRegistry

    events = generate_events(40, 5, events_per_user=10)
    ids = sorted(events["user_id"].unique().to_list())
    users = pl.DataFrame({"user_id": ids, "age": [float(20 + i % 50) for i in range(len(ids))]})
    registry = ModelRegistry(tmp_path / "registry")
    versions = []
    for k in (2, 3):
        result = run_segmentation(users, events=events, algo="kmeans", k=k, seed=0)
        versions.append(registry.publish(result.write(tmp_path / f"m{k}")))
    assert versions[0] != versions[1]
    registry.activate(versions[0])
    store = open_store("memory://")
    pipeline = Pipeline(store=store, models=RegistryModels(registry, check_interval_s=0))
    rows = []
    for r in events.head(2).iter_rows(named=True):
        r["payload"] = {k: v for k, v in (r["payload"] or {}).items() if v is not None}
        rows.append({k: v for k, v in r.items() if v is not None})
    pipeline.run_one(rows[0])
    seg = store.get("default", rows[0]["user_id"]).segment  # type: ignore[union-attr]
    assert seg is not None and seg.model_version == versions[0]
    registry.activate(versions[1])  # while the pipeline runs
    pipeline.run_one(rows[1])
    seg = store.get("default", rows[1]["user_id"]).segment  # type: ignore[union-attr]
    assert seg is not None and seg.model_version == versions[1]

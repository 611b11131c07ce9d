"""The hot-path shortcuts give exactly what the general code gives."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from chatpersona.decide import ContextSchema, Featurizer, Guardrails, LinUCB
from chatpersona.decide.log import _ENCODER, _fast_encode

SCHEMA = ContextSchema(
    segments=("a", "vip"),
    intents=("cancel", "x"),
    channels=("web",),
    numeric=("n0", "n1"),
    cross=True,
)
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(-1e6, 1e6),
    st.sampled_from([math.inf, -math.inf, math.nan]),
    st.sampled_from(["2.5", "nan", "x", "true", ""]),
)
contexts = st.fixed_dictionaries(
    {
        "segment": st.sampled_from(["a", "vip", "VIP gold", "zz", None, 1, True]),
        "intent": st.sampled_from(["cancel", "x", "Cancel_order", "y", None, 0]),
        "channel": st.sampled_from(["web", "app", None]),
        "features": st.one_of(
            st.none(), st.dictionaries(st.sampled_from(["n0", "n1", "n9"]), values)
        ),
        "consent": st.one_of(
            st.none(), st.fixed_dictionaries({"personalization": st.one_of(values)})
        ),
    },
    optional={"n1": values, "attributes": st.fixed_dictionaries({"is_vip": values})},
)


def _general(f: Featurizer, ctx: dict[str, Any]) -> np.ndarray:
    return f.transform_one(ctx, out=np.empty(f.dim))  # ``out`` takes the general path


@settings(max_examples=300, deadline=None)
@given(contexts)
def test_featurizer_fast_path_equals_general_path(ctx: dict[str, Any]) -> None:
    f = Featurizer(SCHEMA)
    fast, general = f.transform_one(ctx), _general(f, ctx)
    assert fast.tolist() == general.tolist()
    assert f.transform([ctx])[0].tolist() == general.tolist()


@settings(max_examples=300, deadline=None)
@given(st.lists(contexts, min_size=1, max_size=6))
def test_memoized_no_explore_equals_direct_evaluation(ctxs: list[dict[str, Any]]) -> None:
    g = Guardrails.standard()
    for ctx in ctxs + ctxs:  # the second pass answers from the memo
        direct = [name for name, cond in g.no_explore if cond(ctx)]
        assert g.no_explore_reasons(ctx) == direct


def test_no_explore_memo_distinguishes_types_and_follows_changes() -> None:
    g = Guardrails.from_dict({"no_explore": [{"name": "t", "when": {"flag": "1"}}]})
    assert g.no_explore_reasons({"flag": "1"}) == ["t"]
    assert g.no_explore_reasons({"flag": True}) == []  # str(True) is "True", not "1"
    assert g.no_explore_reasons({"flag": 1}) == ["t"]
    g.no_explore = Guardrails.from_dict(
        {"no_explore": [{"name": "u", "when": {"flag": "2"}}]}
    ).no_explore
    assert g.no_explore_reasons({"flag": "1"}) == []
    reasons = g.no_explore_reasons({"flag": "2"})
    reasons.append("mutated")  # the caller's list is its own
    assert g.no_explore_reasons({"flag": "2"}) == ["u"]


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_fast_encode_equals_the_encoder(value: Any) -> None:
    assert _fast_encode(value) == _ENCODER.encode(value)


@settings(max_examples=60, deadline=None)
@given(st.lists(contexts, min_size=1, max_size=5), st.integers(0, 50))
def test_decision_json_line_equals_encoded_record(ctxs: list[dict[str, Any]], seed: int) -> None:
    p = LinUCB(
        ["a", "b", "c"],
        schema=SCHEMA,
        exploration_floor=0.01,
        seed=seed,
        guardrails=Guardrails.standard(),
    )
    for i, ctx in enumerate(ctxs):
        d = p.decide(ctx, user_id=None if i % 2 else "u\u00e9", ts=1.8e9 + i)
        line = d.to_json(_fast_encode)
        assert line == _ENCODER.encode(d.to_record())
        assert json.loads(line)["propensity"] == d.propensity
        p.update_decision(d, 0.5)
    assert all(math.isfinite(v) for v in p.theta_.ravel().tolist())


def _top_reference(p: LinUCB, contrib: np.ndarray) -> list[dict[str, Any]]:
    top = np.argpartition(np.abs(contrib), -3)[-3:]
    ranked = sorted(zip(top.tolist(), contrib[top].tolist(), strict=True), key=lambda t: -abs(t[1]))
    return [
        {"feature": p.feature_names_[t], "contribution": round(v, 6)} for t, v in ranked if v != 0.0
    ]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(st.sampled_from([0.0, 1.0, -1.0, 0.5, -0.5]), st.floats(-10, 10)),
        min_size=SCHEMA.dim,
        max_size=SCHEMA.dim,
    )
)
def test_top_features_shortcut_equals_argpartition(vals: list[float]) -> None:
    p = LinUCB(["a"], schema=SCHEMA)
    contrib = np.array(vals)
    assert p._top_features(contrib) == _top_reference(p, contrib)


def test_jsonl_subclass_overriding_write_still_sees_every_decision(tmp_path: Any) -> None:
    from chatpersona.decide import JsonlDecisionLog

    class Tagged(JsonlDecisionLog):
        def write(self, record: dict[str, Any]) -> None:
            super().write({**record, "tag": "t"})

    with Tagged(tmp_path / "t.jsonl") as log, JsonlDecisionLog(tmp_path / "p.jsonl") as plain:
        for sink in (log, plain):
            p = LinUCB(["a", "b"], schema=SCHEMA, seed=4, sink=sink)
            p.decide({"segment": "a", "features": {"n0": 1.5}}, decision_id="d", ts=1.9e9)
    tagged = json.loads((tmp_path / "t.jsonl").read_text())
    assert tagged.pop("tag") == "t"
    assert tagged == json.loads((tmp_path / "p.jsonl").read_text())

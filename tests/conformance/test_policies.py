"""One conformance suite over every registered policy (``chatpersona.decide.POLICIES``).

A new policy proves itself by passing these: valid distributions, honest propensities,
guardrails obeyed, seeded reproducibility, learning never breaking the contract.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatpersona.decide import POLICIES, ContextSchema, Guardrails, MemoryDecisionLog, make_policy

ACTIONS = ["a1", "a2", "a3", "a4"]
SCHEMA = ContextSchema(
    segments=("s1", "s2", "s3"), intents=("i1", "i2"), channels=("web",), numeric=("f",), cross=True
)
SPECS: dict[str, dict[str, Any]] = {
    "rules": {
        "type": "rules",
        "rules": [{"name": "s2", "when": {"segment": "s2"}, "action": "a3"}],
        "fallback": "a2",
    },
    "fixed": {"type": "fixed", "action": "a4"},
}


def spec_of(kind: str, **extra: Any) -> dict[str, Any]:
    return {**SPECS.get(kind, {"type": kind}), **extra}


contexts = st.fixed_dictionaries(
    {
        "segment": st.sampled_from(["s1", "s2", "s3", "other"]),
        "intent": st.sampled_from(["i1", "i2", "cancel_order"]),
        "channel": st.sampled_from(["web", "phone"]),
        "features": st.fixed_dictionaries({"f": st.floats(-5, 5, allow_nan=False)}),
    }
)

KINDS = sorted(POLICIES)


def warmed(kind: str, seed: int = 0, **extra: Any):  # type: ignore[no-untyped-def]
    p = make_policy(spec_of(kind, **extra), ACTIONS, schema=SCHEMA, seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(30):
        ctx = {"segment": str(rng.choice(["s1", "s2"])), "intent": "i1", "features": {"f": 1.0}}
        d = p.decide(ctx)
        p.update_decision(d, float(rng.random()))
    return p


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(context=contexts)
def test_distribution_is_valid_and_propensity_honest(kind: str, context: dict) -> None:
    p = warmed(kind, exploration_floor=0.02)
    d = p.decide(context)
    probs = np.asarray(d.probabilities)
    assert probs.shape == (len(d.candidates),)
    assert (probs >= 0).all() and probs.sum() == pytest.approx(1.0)
    assert d.action in d.candidates
    assert d.propensity == pytest.approx(probs[d.candidates.index(d.action)])
    assert d.propensity > 0
    # with a floor every candidate keeps at least the floor
    assert probs.min() >= 0.02 - 1e-12


@pytest.mark.parametrize("kind", KINDS)
def test_guardrails_disable_exploration(kind: str) -> None:
    p = make_policy(
        spec_of(kind, exploration_floor=0.1),
        ACTIONS,
        schema=SCHEMA,
        guardrails=Guardrails.standard(),
    )
    for ctx in (
        {"intent": "cancel_order"},
        {"segment": "vip"},
        {"consent": {"personalization": False}},
    ):
        d = p.decide(ctx)
        assert d.propensity == 1.0 and not d.explore_allowed and not d.exploration


@pytest.mark.parametrize("kind", KINDS)
def test_forbidden_actions_never_chosen(kind: str) -> None:
    g = Guardrails.from_dict({"forbid": [{"when": {"segment": "s1"}, "actions": ["a3", "a4"]}]})
    p = make_policy(spec_of(kind, exploration_floor=0.05), ACTIONS, schema=SCHEMA, guardrails=g)
    chosen = {p.decide({"segment": "s1"}).action for _ in range(60)}
    assert chosen <= {"a1", "a2"}


@pytest.mark.parametrize("kind", KINDS)
def test_seeded_runs_are_identical(kind: str) -> None:
    def run(seed: int) -> list[tuple[str, float]]:
        p = make_policy(spec_of(kind, exploration_floor=0.05), ACTIONS, schema=SCHEMA, seed=seed)
        out = []
        for t in range(50):
            d = p.decide({"segment": ["s1", "s2", "s3"][t % 3], "intent": "i2"})
            p.update_decision(d, float(t % 2))
            out.append((d.action, d.propensity))
        return out

    assert run(5) == run(5)


@pytest.mark.parametrize("kind", KINDS)
def test_probabilities_match_decide(kind: str) -> None:
    p = warmed(kind, seed=2)
    if kind == "thompson":  # Monte Carlo distribution: compare with a tolerance
        p.draws = 4000
    ctx = {"segment": "s2", "intent": "i1"}
    expected = p.probabilities(ctx)
    d = p.decide(ctx)
    got = dict(zip(d.candidates, d.probabilities, strict=True))
    tol = 0.05 if kind == "thompson" else 1e-12
    for a in ACTIONS:
        assert got[a] == pytest.approx(expected[a], abs=tol)


@pytest.mark.parametrize("kind", KINDS)
def test_log_record_is_json_and_complete(kind: str) -> None:
    log = MemoryDecisionLog()
    p = make_policy(spec_of(kind), ACTIONS, schema=SCHEMA, sink=log, decision_point="dp")
    d = p.decide({"segment": "s1", "intent": "i1", "user_id": "u"})
    (rec,) = log.records
    assert json.loads(json.dumps(rec)) == rec
    for key in (
        "decision_id",
        "ts",
        "context",
        "candidates",
        "action",
        "propensity",
        "policy",
        "policy_version",
        "explanation",
    ):
        assert key in rec
    assert rec["policy"] == kind == p.name and rec["action"] == d.action


@pytest.mark.parametrize("kind", KINDS)
def test_candidates_subset_respected(kind: str) -> None:
    p = warmed(kind, seed=3)
    for _ in range(20):
        d = p.decide({"segment": "s2"}, candidates=["a1", "a3"])
        assert d.action in ("a1", "a3") and d.candidates == ["a1", "a3"]


@pytest.mark.parametrize("kind", [k for k in KINDS if POLICIES[k].learns])
def test_learning_policies_prefer_the_rewarded_action(kind: str) -> None:
    p = make_policy(spec_of(kind), ACTIONS, schema=SCHEMA, seed=0)
    for _ in range(300):
        d = p.decide({"segment": "s1"})
        p.update_decision(d, 1.0 if d.action == "a2" else 0.0)
    probs = p.probabilities({"segment": "s1"})
    assert max(probs, key=probs.__getitem__) == "a2"


@pytest.mark.parametrize("kind", KINDS)
def test_state_round_trip_continues_identically(kind: str) -> None:
    p = warmed(kind, seed=4, exploration_floor=0.05)
    meta, arrays = p.get_state()
    assert json.loads(json.dumps(meta)) == meta
    q = make_policy(spec_of(kind, exploration_floor=0.05), ACTIONS, schema=SCHEMA, seed=99)
    q.set_state(meta, arrays)
    for t in range(20):
        ctx = {"segment": ["s1", "s2"][t % 2], "intent": "i1"}
        a, b = p.decide(ctx), q.decide(ctx)
        assert (a.action, a.propensity) == (b.action, b.propensity)
        p.update_decision(a, 0.3)
        q.update_decision(b, 0.3)

"""Policy base behaviour: guardrails, exploration floor, propensities, learning, rules."""

from __future__ import annotations

import numpy as np
import pytest

from chatpersona.decide import (
    ContextSchema,
    EpsilonGreedy,
    FixedPolicy,
    Guardrails,
    LinearThompson,
    LinUCB,
    MemoryDecisionLog,
    RulePolicy,
    make_policy,
)
from chatpersona.exceptions import ParameterError, PlanError, ValidationError

ACTIONS = ["a", "b", "c"]
SCHEMA = ContextSchema(segments=("s1", "s2"), intents=("i1", "i2"), cross=True)


def test_linucb_sherman_morrison_matches_direct_inverse() -> None:
    rng = np.random.default_rng(0)
    p = LinUCB(ACTIONS, schema=SCHEMA, ridge=2.0)
    d = p.featurizer_.dim
    A = np.eye(d) * 2.0
    b = np.zeros(d)
    for _ in range(50):
        ctx = {"segment": rng.choice(["s1", "s2"]), "intent": rng.choice(["i1", "i2"])}
        r = float(rng.random())
        p.update(ctx, "b", r)
        x = p.featurizer_.transform_one(ctx)
        A += np.outer(x, x)
        b += r * x
    np.testing.assert_allclose(p.A_inv_[1], np.linalg.inv(A), atol=1e-9)
    np.testing.assert_allclose(p.theta_[1], np.linalg.solve(A, b), atol=1e-9)
    assert p.counts_.tolist() == [0, 50, 0]


def test_linucb_learns_the_best_action_per_segment() -> None:
    p = LinUCB(ACTIONS, schema=SCHEMA, alpha=0.3, seed=1)
    best = {"s1": "a", "s2": "c"}
    rng = np.random.default_rng(1)
    for _ in range(600):
        seg = str(rng.choice(["s1", "s2"]))
        d = p.decide({"segment": seg, "intent": "i1"})
        p.update_decision(d, 1.0 if d.action == best[seg] else 0.0)
    for seg, action in best.items():
        assert p.probabilities({"segment": seg, "intent": "i1"})[action] == 1.0


def test_epsilon_greedy_distribution_and_floor() -> None:
    p = EpsilonGreedy(ACTIONS, epsilon=0.3, seed=0)
    p.update({}, "b", 1.0)
    probs = p.probabilities({})
    assert probs == pytest.approx({"a": 0.1, "b": 0.8, "c": 0.1})
    floored = EpsilonGreedy(ACTIONS, epsilon=0.0, exploration_floor=0.05)
    floored.update({}, "b", 1.0)
    assert floored.probabilities({}) == pytest.approx({"a": 0.05, "b": 0.9, "c": 0.05})


def test_thompson_propensity_is_the_sampling_distribution() -> None:
    p = LinearThompson(ACTIONS, draws=64, seed=3)
    for _ in range(20):
        p.update({}, "a", 1.0)
        p.update({}, "c", 0.0)
    d = p.decide({})
    assert d.propensity == pytest.approx(d.probabilities[d.candidates.index(d.action)])
    assert sum(d.probabilities) == pytest.approx(1.0)
    # the well-rewarded arm dominates, the unknown arm keeps some mass
    probs = p.probabilities({})
    assert probs["a"] > probs["c"]


def test_seeded_decisions_repeat_exactly() -> None:
    def run(seed: int) -> list[str]:
        p = LinearThompson(ACTIONS, schema=SCHEMA, seed=seed)
        out = []
        for t in range(40):
            d = p.decide({"segment": "s1", "intent": "i2"})
            p.update_decision(d, float(t % 3 == 0))
            out.append(d.action)
        return out

    assert run(7) == run(7)
    assert run(7) != run(8)


def test_guardrails_no_exploration_for_sensitive_contexts() -> None:
    g = Guardrails.standard()
    p = EpsilonGreedy(ACTIONS, epsilon=1.0, exploration_floor=0.1, guardrails=g, seed=0)
    p.update({"intent": "cancel_order"}, "c", 1.0)
    for ctx, reason in [
        ({"intent": "cancel_order"}, "sensitive_intent"),
        ({"intent": "complaint"}, "sensitive_intent"),
        ({"segment": "vip_business"}, "vip_segment"),
        ({"attributes": {"is_vip": True}}, "vip_attribute"),
        ({"consent": {"personalization": False}}, "no_consent"),
    ]:
        d = p.decide(ctx)
        assert d.propensity == 1.0 and not d.explore_allowed
        assert reason in d.explanation["no_explore"]
        assert max(d.probabilities) == 1.0
    d = p.decide({"intent": "track_order"})
    assert d.explore_allowed and d.propensity == pytest.approx(1 / 3)


def test_forbid_and_caps() -> None:
    g = Guardrails.from_dict(
        {
            "forbid": [{"when": {"consent.marketing": False}, "actions": ["c"]}],
            "caps": {"a": {"per_user": 2, "window_hours": 1}},
        }
    )
    p = FixedPolicy(ACTIONS, action="a", guardrails=g)
    shown = [p.decide({"user_id": "u1"}, ts=1000.0 + i).action for i in range(4)]
    assert shown == ["a", "a", "b", "b"]  # capped after 2 showings, falls back
    assert "capped:a" in p.decide({"user_id": "u1"}, ts=1004.0).explanation["guardrails"]
    assert p.decide({"user_id": "u1"}, ts=1000.0 + 3601).action == "a"  # window passed
    assert p.decide({"user_id": "u2"}, ts=1000.0).action == "a"  # per user
    r = RulePolicy(ACTIONS, rules=[{"when": {}, "action": "c"}], fallback="b", guardrails=g)
    d = r.decide({"consent": {"marketing": False}})
    assert d.action == "b" and "c" not in d.candidates


def test_everything_forbidden_is_a_clear_error() -> None:
    g = Guardrails.from_dict({"forbid": [{"when": {}, "actions": ACTIONS}]})
    p = FixedPolicy(ACTIONS, guardrails=g, decision_point="content")
    with pytest.raises(ValidationError, match="No action is allowed at decision point 'content'"):
        p.decide({})


def test_decide_logs_record_with_propensity_and_explanation() -> None:
    log = MemoryDecisionLog()
    p = LinUCB(ACTIONS, schema=SCHEMA, sink=log, version="7", decision_point="tone")
    p.update({"segment": "s1"}, "a", 1.0)
    d = p.decide({"segment": "s1", "intent": "i1"}, user_id="u9")
    (rec,) = log.records
    assert rec["decision_id"] == d.decision_id and rec["type"] == "decision"
    assert rec["policy"] == "linucb" and rec["policy_version"] == "7"
    assert rec["decision_point"] == "tone" and rec["user_id"] == "u9"
    assert rec["candidates"] == ACTIONS and rec["action"] == d.action
    assert 0 < rec["propensity"] <= 1 and rec["ts"].endswith("Z")
    assert "exploration" in rec["explanation"] and "top_features" in rec["explanation"]
    top = rec["explanation"]["top_features"]
    assert all(t["feature"] in p.feature_names_ for t in top)


def test_rules_first_match_wins_with_fallback() -> None:
    p = RulePolicy(
        ACTIONS,
        rules=[
            {"name": "vip", "when": {"segment": "vip"}, "action": "c"},
            {"name": "night", "when": {"hour": {"between": [22, 6]}}, "action": "b"},
            {"name": "vip_night", "when": {"segment": "vip", "hour": 23}, "action": "a"},
        ],
        fallback="a",
    )
    assert p.decide({"segment": "vip", "hour": 23}).explanation["rule"] == "vip"
    assert p.decide({"segment": "x", "hour": 23}).action == "b"
    d = p.decide({"segment": "x", "hour": 12})
    assert (d.action, d.explanation["rule"], d.propensity) == ("a", "fallback", 1.0)


def test_update_rejects_bad_rewards_and_actions() -> None:
    p = LinUCB(ACTIONS)
    with pytest.raises(ValidationError, match=r"A reward must be a number in \[0, 1\]. Got 1.5"):
        p.update({}, "a", 1.5)
    with pytest.raises(ValidationError, match="Unknown action 'z'"):
        p.update({}, "z", 1.0)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "linucb", "alpha": -1}, "The 'alpha' parameter of LinUCB must be a float >= 0"),
        ({"type": "epsilon_greedy", "epsilon": 2}, "The 'epsilon' parameter of EpsilonGreedy"),
        ({"type": "linucb", "exploration_floor": 0.5}, "The 'exploration_floor' parameter"),
        ({"type": "fixed", "action": "zz"}, "The 'action' parameter of FixedPolicy"),
    ],
)
def test_parameter_errors(spec: dict, message: str) -> None:
    with pytest.raises(ParameterError) as info:
        make_policy(spec, ACTIONS)
    assert str(info.value).startswith(message)


def test_make_policy_rejects_unknown_type_and_params() -> None:
    with pytest.raises(PlanError, match="Unknown policy type 'ucb'"):
        make_policy({"type": "ucb"}, ACTIONS)
    with pytest.raises(PlanError, match=r"Unknown parameter.*alhpa.*for policy 'linucb'"):
        make_policy({"type": "linucb", "alhpa": 1}, ACTIONS)
    with pytest.raises(PlanError, match="picks unknown action 'q'"):
        make_policy({"type": "rules", "rules": [{"when": {}, "action": "q"}]}, ACTIONS)


def test_batch_matches_single_decisions_for_linucb() -> None:
    p = LinUCB(ACTIONS, schema=SCHEMA, alpha=0.4, seed=0, exploration_floor=0.01)
    rng = np.random.default_rng(0)
    ctxs = [
        {"segment": str(rng.choice(["s1", "s2"])), "intent": str(rng.choice(["i1", "i2"]))}
        for _ in range(100)
    ]
    for c in ctxs:
        p.update(c, str(rng.choice(ACTIONS)), float(rng.random()))
    batch = p.decide_batch(ctxs)
    for i, c in enumerate(ctxs):
        probs = p.probabilities(c)
        assert batch.probabilities[i] == pytest.approx([probs[a] for a in ACTIONS])
        assert batch.propensities[i] == pytest.approx(probs[batch.actions[i]])


def test_duplicate_candidates_rejected_and_policy_file_guardrails() -> None:
    p = LinUCB(ACTIONS)
    with pytest.raises(ValidationError, match="Candidate actions must be distinct"):
        p.decide({}, candidates=["a", "a"])
    q = make_policy(
        {
            "type": "epsilon_greedy",
            "epsilon": 1.0,
            "guardrails": {"no_explore": [{"name": "vip", "when": {"segment": "vip"}}]},
        },
        ACTIONS,
    )
    assert q.decide({"segment": "vip"}).explanation["no_explore"] == ["vip"]
    assert q.decide({"segment": "other"}).explore_allowed


def test_context_cannot_override_the_user_id() -> None:
    from chatpersona.decide import build_context

    ctx = build_context("u1", {"user_id": "someone_else", "intent": "x"}, None, now=0.0)
    assert ctx["user_id"] == "u1" and ctx["intent"] == "x"


def test_batch_applies_no_explore_guardrails_per_row() -> None:
    p = LinUCB(ACTIONS, alpha=1.0, exploration_floor=0.1, guardrails=Guardrails.standard())
    rows = [{"intent": "cancel_order"}, {"intent": "track_order"}]
    res = p.decide_batch(rows)
    assert res.probabilities[0].max() == 1.0  # greedy, no floor
    assert res.probabilities[1].min() == pytest.approx(0.1 + (1 - 0.3) / 3)  # 3-way tie
    with pytest.raises(ValidationError, match="needs the contexts"):
        p.decide_batch([], X=p.featurizer_.transform(rows))

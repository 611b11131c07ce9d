"""Decision points YAML, the engine (decide -> reward -> learn), rewards, the log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from chatpersona.decide import (
    DecisionConfig,
    DecisionEngine,
    JsonlDecisionLog,
    MemoryDecisionLog,
    RewardRule,
    read_decision_log,
)
from chatpersona.exceptions import (
    ConflictError,
    InputError,
    NotFoundError,
    PlanError,
    ValidationError,
)
from chatpersona.profiles import Profile


class Clock:
    def __init__(self, t: float = 1_780_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_packaged_decision_points_load_and_build() -> None:
    config = DecisionConfig.load()
    assert set(config.points) == {"greeting", "tone", "content", "routing"}
    engine = DecisionEngine(config)
    kinds = {p: engine.policy(p).name for p in engine.decision_points}
    assert kinds == {
        "greeting": "linucb",
        "tone": "thompson",
        "content": "epsilon_greedy",
        "routing": "rules",
    }
    assert config.points["content"].guardrails.caps["discount_offer"].per_user == 2


def test_engine_decide_reward_learn_and_log() -> None:
    log = MemoryDecisionLog()
    engine = DecisionEngine(sink=log, seed=3, clock=Clock())
    profile = Profile(user_id="u1", features={"csat_mean": 4.5}, attributes={"plan": "pro"})
    d = engine.decide("u1", "greeting", {"intent": "track_order", "channel": "web"}, profile)
    assert d.params["template"].startswith("greeting_")
    assert d.context["features"]["csat_mean"] == 4.5 and d.context["user_id"] == "u1"
    policy = engine.policy("greeting")
    before = policy.n_updates_
    res = engine.reward(d.decision_id, outcomes={"csat": 4, "resolved": True})
    assert res.source == "outcomes" and res.reward == pytest.approx((0.5 * 0.75 + 0.3) / 0.8)
    assert policy.n_updates_ == before + 1
    assert [r["type"] for r in log.records] == ["decision", "reward"]
    assert log.records[1]["outcomes"] == {"csat": 4, "resolved": True}
    with pytest.raises(ConflictError, match="already has its reward"):
        engine.reward(d.decision_id, reward=1.0)
    with pytest.raises(NotFoundError, match="No pending decision 'nope'"):
        engine.reward("nope", reward=1.0)


def test_engine_routing_rules_explain_and_vip_guardrail() -> None:
    engine = DecisionEngine(seed=0, clock=Clock())
    d = engine.decide("u1", "routing", {"intent": "complaint"}, {"attributes": {"is_vip": True}})
    assert d.action == "human_priority"
    assert d.explanation["rule"] == "vip_to_priority_agent"
    assert "vip_attribute" in d.explanation["no_explore"]
    assert d.params == {"queue": "agents", "priority": "high"}
    t = engine.decide("u2", "tone", {"intent": "cancel_order"})
    assert t.propensity == 1.0 and t.explanation["no_explore"] == ["sensitive_intent"]


def test_engine_rejects_bad_rewards_and_points() -> None:
    engine = DecisionEngine(seed=0, clock=Clock())
    d = engine.decide("u1", "tone", {})
    with pytest.raises(ValidationError, match="exactly one of 'reward'"):
        engine.reward(d.decision_id)
    with pytest.raises(ValidationError, match=r"must be a number in \[0, 1\]. Got 2"):
        engine.reward(d.decision_id, reward=2)
    with pytest.raises(ValidationError, match="Outcome 'csat' must be a number in"):
        engine.reward(d.decision_id, outcomes={"csat": 9})
    with pytest.raises(NotFoundError, match="Unknown decision point 'nope'"):
        engine.decide("u1", "nope", {})
    assert engine.pending() == 1  # the failed rewards did not consume the decision


def test_timeout_gives_the_default_reward_logged_as_such() -> None:
    clock = Clock()
    log = MemoryDecisionLog()
    engine = DecisionEngine(sink=log, clock=clock)
    old = engine.decide("u1", "tone", {})
    clock.t += 10
    fresh = engine.decide("u2", "tone", {})
    clock.t += engine.config.reward.timeout_seconds - 5
    expired = engine.expire()
    assert [e.decision_id for e in expired] == [old.decision_id]
    assert (
        expired[0].source == "timeout" and expired[0].reward == engine.config.reward.default_reward
    )
    assert engine.pending() == 1 and engine.reward(fresh.decision_id, reward=1).reward == 1.0
    sources = [r["source"] for r in log.records if r["type"] == "reward"]
    assert sources == ["timeout", "explicit"]


def test_max_pending_expires_the_oldest() -> None:
    engine = DecisionEngine(clock=Clock(), max_pending=3)
    ids = [engine.decide(f"u{i}", "tone", {}).decision_id for i in range(5)]
    assert engine.pending() == 3
    with pytest.raises(ConflictError, match=r"already has its reward \(timeout\)"):
        engine.reward(ids[0], reward=1.0)


def test_reward_rule_documented_mapping() -> None:
    rule = RewardRule()
    assert rule.from_outcomes({"csat": 5, "resolved": True, "recontact_7d": False}) == 1.0
    assert rule.from_outcomes({"csat": 1, "resolved": False, "recontact_7d": True}) == 0.0
    assert rule.from_outcomes({"recontact_7d": True}) == 0.0
    custom = RewardRule.from_dict({"weights": {"csat": 0, "resolved": 1, "recontact_7d": 0}})
    assert custom.from_outcomes({"csat": 5, "resolved": False}) == 0.0
    with pytest.raises(ValidationError, match="Unknown outcome"):
        rule.from_outcomes({"happiness": 1})
    with pytest.raises(PlanError, match="Unknown reward key"):
        RewardRule.from_dict({"timeout": 3})


@given(
    csat=st.none() | st.integers(1, 5),
    resolved=st.none() | st.booleans(),
    recontact=st.none() | st.booleans(),
    nps=st.none() | st.integers(0, 10),
)
def test_reward_always_in_unit_interval(csat, resolved, recontact, nps) -> None:  # type: ignore[no-untyped-def]
    outcomes = {"csat": csat, "resolved": resolved, "recontact_7d": recontact, "nps": nps}
    present = {k: v for k, v in outcomes.items() if v is not None and k != "nps"}
    if not present:
        with pytest.raises(ValidationError):
            RewardRule().from_outcomes(outcomes)
        return
    assert 0.0 <= RewardRule().from_outcomes(outcomes) <= 1.0


def test_yaml_validation_names_the_problem(tmp_path: Path) -> None:
    data = yaml.safe_load(DecisionConfig.default_path().read_text())
    data["decision_points"]["tone"]["polcy"] = {}
    path = tmp_path / "points.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(PlanError, match=r"Unknown key\(s\) polcy in decision point 'tone'"):
        DecisionConfig.load(path)
    data["decision_points"]["tone"].pop("polcy")
    data["decision_points"]["tone"]["policy"] = {"type": "linucb", "alpah": 1}
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(PlanError, match="alpah"):
        DecisionEngine(DecisionConfig.load(path))


def test_jsonl_log_round_trip_and_propensity_refusal(tmp_path: Path) -> None:
    path = tmp_path / "log.jsonl"
    with JsonlDecisionLog(path) as log:
        engine = DecisionEngine(sink=log, clock=Clock())
        ids = [
            engine.decide(f"u{i}", "greeting", {"intent": "get_refund"}).decision_id
            for i in range(3)
        ]
        engine.reward(ids[0], reward=0.25)
    records = read_decision_log(path)
    assert [r.record["decision_id"] for r in records] == ids
    assert records[0].reward == 0.25 and records[0].reward_source == "explicit"
    assert records[1].reward is None
    lines = path.read_text().splitlines()
    bad = json.loads(lines[1])
    del bad["propensity"]
    lines[1] = json.dumps(bad)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as info:
        read_decision_log(path)
    assert info.value.row == 2 and info.value.column == "propensity"
    assert "Line 2 of the decision log has no propensity" in str(info.value)
    path.write_text("{not json\n")
    with pytest.raises(InputError, match="not valid JSON"):
        read_decision_log(path)


def test_engine_state_survives_a_restart(tmp_path: Path) -> None:
    engine = DecisionEngine(seed=5, clock=Clock())
    for i in range(40):
        d = engine.decide(f"u{i}", "greeting", {"intent": "track_order", "channel": "web"})
        engine.reward(d.decision_id, reward=float(d.action == "quick_start"))
    engine.save_state(tmp_path / "state")
    restored = DecisionEngine(seed=0, clock=Clock())
    restored.load_state(tmp_path / "state")
    ctx = {"intent": "track_order", "channel": "web", "hour": 3, "weekday": 1}
    for name in engine.decision_points:
        assert restored.policy(name).n_updates_ == engine.policy(name).n_updates_
        assert restored.policy(name).probabilities(ctx) == engine.policy(name).probabilities(ctx)
    assert engine.policy("greeting").n_updates_ == 40
    # a changed decision point refuses the old state instead of mis-reading it
    data = yaml.safe_load(DecisionConfig.default_path().read_text())
    data["decision_points"]["greeting"]["actions"].append({"id": "new_one"})
    changed = DecisionEngine(DecisionConfig.from_dict(data))
    with pytest.raises(PlanError, match="does not fit this policy: actions"):
        changed.load_state(tmp_path / "state")
    with pytest.raises(InputError, match="Cannot read decision state"):
        changed.load_state(tmp_path / "nowhere")

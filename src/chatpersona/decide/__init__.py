"""chatpersona.decide: rules, contextual bandits, rewards and offline policy evaluation.

The core of the decide stage is pure (no network, no environment): decision points come
from YAML, policies share one :class:`Policy` base, every decision is logged with its
propensity, and logs can be replayed to estimate a candidate policy's value offline.
"""

from chatpersona.decide.bandits import (
    EpsilonGreedy,
    FixedPolicy,
    LinearThompson,
    LinUCB,
    UniformRandom,
)
from chatpersona.decide.base import (
    BatchDecisions,
    Cap,
    Decision,
    DecisionSink,
    Guardrails,
    Policy,
    Scores,
)
from chatpersona.decide.conditions import Condition
from chatpersona.decide.context import ContextSchema, Featurizer
from chatpersona.decide.engine import DecisionEngine, RewardResult, build_context
from chatpersona.decide.evaluate import Estimate, EvaluationResult, RewardModel, evaluate_policy
from chatpersona.decide.log import (
    JsonlDecisionLog,
    LoggedDecision,
    MemoryDecisionLog,
    read_decision_log,
)
from chatpersona.decide.points import (
    POLICIES,
    Action,
    DecisionConfig,
    DecisionPoint,
    load_policy_spec,
    make_policy,
)
from chatpersona.decide.report import render_simulation_html, write_simulation_html
from chatpersona.decide.rewards import RewardRule
from chatpersona.decide.rules import Rule, RulePolicy
from chatpersona.decide.simulate import SimulationResult, Simulator, World, default_world

__all__ = [
    "POLICIES",
    "Action",
    "BatchDecisions",
    "Cap",
    "Condition",
    "ContextSchema",
    "Decision",
    "DecisionConfig",
    "DecisionEngine",
    "DecisionPoint",
    "DecisionSink",
    "EpsilonGreedy",
    "Estimate",
    "EvaluationResult",
    "Featurizer",
    "FixedPolicy",
    "Guardrails",
    "JsonlDecisionLog",
    "LinUCB",
    "LinearThompson",
    "LoggedDecision",
    "MemoryDecisionLog",
    "Policy",
    "RewardModel",
    "RewardResult",
    "RewardRule",
    "Rule",
    "RulePolicy",
    "Scores",
    "SimulationResult",
    "Simulator",
    "UniformRandom",
    "World",
    "build_context",
    "default_world",
    "evaluate_policy",
    "load_policy_spec",
    "make_policy",
    "read_decision_log",
    "render_simulation_html",
    "write_simulation_html",
]

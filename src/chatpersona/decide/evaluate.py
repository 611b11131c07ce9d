"""Offline policy evaluation: what would a candidate policy have earned on a logged period?

From a decision log (each decision with the probability its action was chosen with) and
its rewards, three estimators of the candidate's value:

- IPS: ``mean(w_i * r_i)`` with ``w_i = pi(a_i | x_i) / p_i`` (unbiased, can be noisy);
- SNIPS: ``sum(w_i * r_i) / sum(w_i)`` (self-normalized: a little bias, less variance);
- DR (doubly robust): ``mean(sum_a pi(a | x_i) rhat(x_i, a) + w_i (r_i - rhat(x_i, a_i)))``
  with ``rhat`` a shrunken mean reward per (segment, intent, action) cell.

Intervals are normal approximations (SNIPS by the delta method) or, with
``bootstrap > 0``, percentile bootstrap intervals. A learning candidate (a bandit) is
cross-fitted: it learns on the other folds of the log and is scored on the held-out one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from chatpersona.decide.base import Policy
from chatpersona.decide.context import ContextSchema
from chatpersona.decide.log import LoggedDecision, read_decision_log
from chatpersona.decide.points import DecisionConfig, make_policy
from chatpersona.exceptions import DataError, ParameterError, PlanError

__all__ = ["Estimate", "EvaluationResult", "RewardModel", "evaluate_policy"]


@dataclass(frozen=True)
class Estimate:
    """A value estimate with its confidence interval."""

    estimate: float
    ci_low: float
    ci_high: float
    se: float

    def to_dict(self) -> dict[str, float]:
        """``{"estimate", "ci_low", "ci_high", "se"}``."""
        return {
            "estimate": self.estimate,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "se": self.se,
        }


@dataclass
class EvaluationResult:
    """Estimates of one candidate policy's value on one decision point's log."""

    policy: str
    decision_point: str | None
    n_decisions: int
    n_rewarded: int
    n_unrewarded: int
    logged_value: float
    ips: Estimate
    snips: Estimate
    dr: Estimate
    effective_sample_size: float
    max_weight: float
    unsupported_mass: float
    confidence: float
    interval: str

    def to_dict(self) -> dict[str, Any]:
        """What ``evaluate-policy --json`` prints."""
        return {
            "policy": self.policy,
            "decision_point": self.decision_point,
            "n_decisions": self.n_decisions,
            "n_rewarded": self.n_rewarded,
            "n_unrewarded": self.n_unrewarded,
            "logged_value": self.logged_value,
            "ips": self.ips.to_dict(),
            "snips": self.snips.to_dict(),
            "dr": self.dr.to_dict(),
            "effective_sample_size": self.effective_sample_size,
            "max_weight": self.max_weight,
            "unsupported_mass": self.unsupported_mass,
            "confidence": self.confidence,
            "interval": self.interval,
        }


class RewardModel:
    """Mean reward per (segment, intent, action), shrunk toward the action's mean and
    the global mean (``strength`` pseudo-observations each): the DR estimator's ``rhat``."""

    def __init__(self, strength: float = 5.0) -> None:
        self.strength = strength

    def fit(self, records: Sequence[LoggedDecision]) -> RewardModel:
        """Learn the cell means from rewarded records."""
        cell: dict[tuple[str, str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
        act: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        total = 0.0
        for rec in records:
            r = float(rec.reward) if rec.reward is not None else 0.0
            key = (str(rec.context.get("segment")), str(rec.context.get("intent")), rec.action)
            cell[key][0] += r
            cell[key][1] += 1
            act[rec.action][0] += r
            act[rec.action][1] += 1
            total += r
        self.global_mean_ = total / max(1, len(records))
        k = self.strength
        self.action_mean_ = {a: (s + k * self.global_mean_) / (n + k) for a, (s, n) in act.items()}
        self.cell_mean_ = {
            key: (s + k * self.action_mean_[key[2]]) / (n + k) for key, (s, n) in cell.items()
        }
        return self

    def predict(self, context: Mapping[str, Any], action: str) -> float:
        """``rhat(x, a)``."""
        key = (str(context.get("segment")), str(context.get("intent")), action)
        if key in self.cell_mean_:
            return self.cell_mean_[key]
        return self.action_mean_.get(action, self.global_mean_)


def _normal(terms: np.ndarray, z: float) -> Estimate:
    m = float(terms.mean())
    se = float(terms.std(ddof=1) / np.sqrt(len(terms))) if len(terms) > 1 else 0.0
    return Estimate(m, m - z * se, m + z * se, se)


def evaluate_policy(
    log: str | Path | Sequence[LoggedDecision],
    policy: Mapping[str, Any] | str | Policy,
    *,
    decision_point: str | None = None,
    confidence: float = 0.95,
    folds: int = 2,
    bootstrap: int = 0,
    seed: int = 0,
    config: DecisionConfig | None = None,
) -> EvaluationResult:
    """Estimate a candidate policy's value from a decision log.

    Parameters
    ----------
    log:
        A JSONL decision log path, or records from :func:`read_decision_log`.
    policy:
        A spec (``{type: rules, rules: [...]}``, optionally with ``context`` and
        ``actions``), a registry name, or a :class:`Policy` (used as is, not cross-fitted).
    decision_point:
        Which point to evaluate (required when the log holds several).
    confidence:
        Level of the intervals.
    folds:
        Cross-fitting folds for learning candidates (>= 2).
    bootstrap:
        Number of bootstrap resamples for percentile intervals (0: normal intervals).
    seed:
        Seeds the candidate policy and the bootstrap.
    config:
        Decision points the log came from: the candidate then uses their context schema
        and the decision point's guardrails, as it would in production (a ``context``
        in the candidate's spec still wins). Without it the schema is inferred from the
        logged contexts and no guardrails apply.
    """
    if not 0 < confidence < 1:
        raise ParameterError("evaluate_policy", "confidence", "a float in (0, 1)", confidence)
    if not isinstance(folds, int) or folds < 2:
        raise ParameterError("evaluate_policy", "folds", "an int >= 2", folds)
    if not isinstance(bootstrap, int) or bootstrap < 0:
        raise ParameterError("evaluate_policy", "bootstrap", "an int >= 0", bootstrap)
    records = read_decision_log(log) if isinstance(log, str | Path) else list(log)
    points = sorted({str(r.record.get("decision_point")) for r in records})
    if decision_point is None and len(points) > 1:
        raise PlanError(
            f"The log holds several decision points ({', '.join(points)}); choose one.",
            code="ambiguous_decision_point",
            value=points,
        )
    if decision_point is not None:
        records = [r for r in records if r.record.get("decision_point") == decision_point]
    else:
        decision_point = points[0] if points else None
    n_all = len(records)
    rewarded = [r for r in records if r.reward is not None]
    if not rewarded:
        raise DataError(
            "The decision log has no rewarded decisions to evaluate on.",
            code="no_rewards",
            value=decision_point,
        )
    actions: list[str] = []
    seen: set[str] = set()
    for r in rewarded:
        for a in r.candidates:
            if a not in seen:
                seen.add(a)
                actions.append(a)
    n = len(rewarded)
    pi_all = np.zeros((n, len(actions)))
    col = {a: j for j, a in enumerate(actions)}
    if isinstance(policy, Policy):
        name = policy.name
        for i, rec in enumerate(rewarded):
            for a, p in policy.probabilities(rec.context, rec.candidates).items():
                pi_all[i, col[a]] = p
    else:
        spec: dict[str, Any] = {"type": policy} if isinstance(policy, str) else dict(policy)
        spec_actions = spec.pop("actions", None)
        if spec_actions:
            missing = [a for a in actions if a not in spec_actions]
            if missing:
                raise PlanError(
                    f"The policy's actions lack logged action(s) {missing}.", value=missing
                )
            actions_for_policy = list(spec_actions)
        else:
            actions_for_policy = actions
        ctx_spec = spec.pop("context", None)
        guardrails = None
        if config is not None and decision_point in config.points:
            guardrails = config.points[decision_point].guardrails
        if ctx_spec:
            schema = ContextSchema.from_dict(ctx_spec)
        elif config is not None:
            schema = config.schema
        else:
            schema = ContextSchema.infer(r.context for r in rewarded)
        name = str(spec.get("type"))
        probe = make_policy(
            spec, actions_for_policy, schema=schema, guardrails=guardrails, seed=seed
        )
        groups = (
            [np.arange(n)] if not probe.learns else [np.arange(f, n, folds) for f in range(folds)]
        )
        for g, idx in enumerate(groups):
            pol = (
                probe
                if len(groups) == 1
                else make_policy(
                    spec, actions_for_policy, schema=schema, guardrails=guardrails, seed=seed + g
                )
            )
            if len(groups) > 1:
                held = set(idx.tolist())
                for i, rec in enumerate(rewarded):
                    if i not in held:
                        assert rec.reward is not None
                        pol.update(rec.context, rec.action, rec.reward)
            for j in idx.tolist():
                rec = rewarded[j]
                for a, p in pol.probabilities(rec.context, rec.candidates).items():
                    pi_all[j, col[a]] = p
    rew = np.array([float(rec.reward) for rec in rewarded if rec.reward is not None])
    p_log = np.array([rec.propensity for rec in rewarded])
    a_idx = np.array([col[rec.action] for rec in rewarded])
    w = pi_all[np.arange(n), a_idx] / p_log
    # Mass the candidate puts on actions the logging policy could not choose: no
    # estimator sees those outcomes, so a large value means the log cannot judge it.
    unsupported = 0.0
    for i, rec in enumerate(rewarded):
        probs = rec.record.get("probabilities")
        if isinstance(probs, list) and len(probs) == len(rec.candidates):
            for a, q in zip(rec.candidates, probs, strict=True):
                if not q:
                    unsupported += pi_all[i, col[a]]
    model = RewardModel().fit(rewarded)
    rhat = np.array([[model.predict(rec.context, a) for a in actions] for rec in rewarded])
    ips_terms = w * rew
    dr_terms = (pi_all * rhat).sum(axis=1) + w * (rew - rhat[np.arange(n), a_idx])
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    sw = float(w.sum())
    snips_value = float((w * rew).sum() / sw) if sw > 0 else 0.0
    if bootstrap:
        rng = np.random.default_rng(seed)
        bs = np.empty((bootstrap, 3))
        for b in range(bootstrap):
            k = rng.integers(0, n, n)
            wk = w[k]
            bs[b] = (
                ips_terms[k].mean(),
                (wk * rew[k]).sum() / max(wk.sum(), 1e-12),
                dr_terms[k].mean(),
            )
        lo, hi = np.quantile(bs, [0.5 - confidence / 2, 0.5 + confidence / 2], axis=0)
        sds = bs.std(axis=0, ddof=1)
        ips = Estimate(float(ips_terms.mean()), float(lo[0]), float(hi[0]), float(sds[0]))
        snips = Estimate(snips_value, float(lo[1]), float(hi[1]), float(sds[1]))
        dr = Estimate(float(dr_terms.mean()), float(lo[2]), float(hi[2]), float(sds[2]))
        interval = "bootstrap"
    else:
        ips = _normal(ips_terms, z)
        dr = _normal(dr_terms, z)
        mw = float(w.mean())
        lin = w * (rew - snips_value) / mw if mw > 0 else np.zeros(n)
        se = float(lin.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
        snips = Estimate(snips_value, snips_value - z * se, snips_value + z * se, se)
        interval = "normal"
    return EvaluationResult(
        policy=name,
        decision_point=decision_point,
        n_decisions=n_all,
        n_rewarded=n,
        n_unrewarded=n_all - n,
        logged_value=float(rew.mean()),
        ips=ips,
        snips=snips,
        dr=dr,
        effective_sample_size=float(sw**2 / float((w**2).sum())) if sw > 0 else 0.0,
        max_weight=float(w.max()),
        unsupported_mass=unsupported / n,
        confidence=confidence,
        interval=interval,
    )

"""Rewards: explicit values in [0, 1], or raw chat outcomes mapped by a documented rule.

The rule (configurable per deployment in the decision-points YAML ``reward:`` block)::

    reward = sum(w_i * component_i) / sum(w_i)   over the outcomes present

    csat            -> (csat - 1) / 4            (CSAT 1..5)
    resolved        -> 1 if resolved else 0
    recontact_7d    -> 0 if the user came back within 7 days else 1
    nps             -> nps / 10                  (NPS 0..10, weight 0 by default)

Outcomes that are absent are left out and the weights of those present are renormalized.
A decision with no reward after ``timeout_seconds`` gets ``default_reward`` (logged with
source ``timeout``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chatpersona.exceptions import ParameterError, PlanError, ValidationError

__all__ = ["REWARD_SOURCES", "RewardRule"]

REWARD_SOURCES = ("explicit", "outcomes", "timeout")
"""Where a logged reward came from."""

_DEFAULT_WEIGHTS = {"csat": 0.5, "resolved": 0.3, "recontact_7d": 0.2, "nps": 0.0}


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no", "1", "0"):
        return value.strip().lower() in ("true", "yes", "1")
    raise ValidationError(
        f"Outcome {name!r} must be a boolean. Got {value!r} instead.",
        code="bad_outcome",
        field=name,
        value=value,
    )


def _as_number(name: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise ValidationError(
            f"Outcome {name!r} must be a number in [{lo:g}, {hi:g}]. Got {value!r} instead.",
            code="bad_outcome",
            field=name,
            value=value,
        )
    return float(value)


@dataclass(frozen=True)
class RewardRule:
    """Maps outcomes to a reward in [0, 1]; knows the timeout and its default reward.

    Examples
    --------
    >>> rule = RewardRule()
    >>> rule.from_outcomes({"csat": 5, "resolved": True, "recontact_7d": False})
    1.0
    >>> rule.from_outcomes({"csat": 1})
    0.0
    >>> rule.from_outcomes({"resolved": True, "csat": 3})
    0.6875
    """

    weights: Mapping[str, float] = field(default_factory=lambda: dict(_DEFAULT_WEIGHTS))
    default_reward: float = 0.0
    timeout_seconds: float = 86400.0

    def __post_init__(self) -> None:
        unknown = sorted(set(self.weights) - set(_DEFAULT_WEIGHTS))
        if unknown:
            raise PlanError(
                f"Unknown reward weight(s) {', '.join(unknown)}. Known: "
                f"{', '.join(sorted(_DEFAULT_WEIGHTS))}.",
                keys=unknown,
            )
        for k, w in self.weights.items():
            if not isinstance(w, int | float) or w < 0:
                raise ParameterError("RewardRule", f"weights.{k}", "a float >= 0", w)
        if not isinstance(self.default_reward, int | float) or not 0 <= self.default_reward <= 1:
            raise ParameterError(
                "RewardRule", "default_reward", "a float in [0, 1]", self.default_reward
            )
        if not isinstance(self.timeout_seconds, int | float) or self.timeout_seconds <= 0:
            raise ParameterError(
                "RewardRule", "timeout_seconds", "a float > 0", self.timeout_seconds
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RewardRule:
        """Build from the ``reward:`` block: ``weights``, ``default_reward``, ``timeout_seconds``."""
        data = dict(data or {})
        unknown = sorted(set(data) - {"weights", "default_reward", "timeout_seconds"})
        if unknown:
            raise PlanError(
                f"Unknown reward key(s) {', '.join(unknown)}. Known: default_reward, "
                "timeout_seconds, weights.",
                keys=unknown,
            )
        weights = {**_DEFAULT_WEIGHTS, **(data.get("weights") or {})}
        return cls(
            weights=weights,
            default_reward=data.get("default_reward", 0.0),
            timeout_seconds=data.get("timeout_seconds", 86400.0),
        )

    def components(self, outcomes: Mapping[str, Any]) -> dict[str, float]:
        """Each known outcome present in ``outcomes`` mapped to [0, 1]."""
        unknown = sorted(set(outcomes) - set(_DEFAULT_WEIGHTS))
        if unknown:
            raise ValidationError(
                f"Unknown outcome(s) {', '.join(unknown)}. Known: "
                f"{', '.join(sorted(_DEFAULT_WEIGHTS))}.",
                code="unknown_outcome",
                value=unknown,
            )
        out: dict[str, float] = {}
        if outcomes.get("csat") is not None:
            out["csat"] = (_as_number("csat", outcomes["csat"], 1, 5) - 1.0) / 4.0
        if outcomes.get("resolved") is not None:
            out["resolved"] = 1.0 if _as_bool("resolved", outcomes["resolved"]) else 0.0
        if outcomes.get("recontact_7d") is not None:
            out["recontact_7d"] = 0.0 if _as_bool("recontact_7d", outcomes["recontact_7d"]) else 1.0
        if outcomes.get("nps") is not None:
            out["nps"] = _as_number("nps", outcomes["nps"], 0, 10) / 10.0
        return out

    def from_outcomes(self, outcomes: Mapping[str, Any]) -> float:
        """The reward of raw outcomes by the documented rule."""
        comps = self.components(outcomes)
        total = sum(self.weights.get(k, 0.0) for k in comps)
        if not comps or total <= 0:
            raise ValidationError(
                "Outcomes must include at least one weighted outcome (csat, resolved, "
                f"recontact_7d, nps). Got {dict(outcomes)!r} instead.",
                code="no_outcome",
                value=dict(outcomes),
            )
        value = sum(self.weights.get(k, 0.0) * v for k, v in comps.items()) / total
        return min(1.0, max(0.0, value))

    def to_dict(self) -> dict[str, Any]:
        """The rule as a ``reward:`` block."""
        return {
            "weights": dict(self.weights),
            "default_reward": self.default_reward,
            "timeout_seconds": self.timeout_seconds,
        }

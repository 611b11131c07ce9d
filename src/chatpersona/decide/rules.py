"""Rule policies: the first rule whose condition matches wins; otherwise the fallback.

Rules are what most teams start with; here they are a :class:`Policy` like the bandits,
so they are logged with propensities and can be compared offline with any candidate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from chatpersona.decide.base import Policy, Scores
from chatpersona.decide.conditions import Condition
from chatpersona.exceptions import ParameterError, PlanError

__all__ = ["Rule", "RulePolicy"]


class Rule:
    """One rule: ``name``, a :class:`Condition` (``when``) and the ``action`` it picks."""

    def __init__(self, name: str, when: Mapping[str, Any] | None, action: str) -> None:
        self.name = name
        self.condition = Condition(when, where=f"rules[{name}].when")
        self.action = action

    def to_dict(self) -> dict[str, Any]:
        """The rule as written in YAML."""
        return {"name": self.name, "when": self.condition.when, "action": self.action}


class RulePolicy(Policy):
    """First match wins, with a fallback action.

    Parameters
    ----------
    actions:
        Action ids of the decision point.
    rules:
        A list of :class:`Rule` or mappings ``{name, when, action}``; conditions on
        segment, intent, channel, time (hour, weekday) and profile fields (see
        :mod:`chatpersona.decide.conditions`).
    fallback:
        The action when no rule matches (default: the first action).

    Examples
    --------
    >>> p = RulePolicy(["bot", "human"], rules=[{"name": "vip", "when": {"segment": "vip"},
    ...                "action": "human"}], fallback="bot")
    >>> d = p.decide({"segment": "VIP"})
    >>> d.action, d.explanation["rule"]
    ('human', 'vip')
    """

    kind = "rules"
    learns = False

    def __init__(
        self,
        actions: Sequence[str],
        *,
        rules: Sequence[Rule | Mapping[str, Any]] = (),
        fallback: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.rules = list(rules)
        self.fallback = fallback
        super().__init__(actions, **kwargs)

    def _init_state(self, n_actions: int, dim: int) -> None:
        compiled: list[Rule] = []
        for i, r in enumerate(self.rules):
            if isinstance(r, Rule):
                compiled.append(r)
                continue
            if not isinstance(r, Mapping) or "action" not in r:
                raise PlanError(f"rules[{i}] needs an 'action'. Got {r!r} instead.", value=r)
            unknown = sorted(set(r) - {"name", "when", "action"})
            if unknown:
                raise PlanError(
                    f"Unknown key(s) {', '.join(unknown)} in rules[{i}]. Known: action, name, when.",
                    keys=unknown,
                )
            compiled.append(Rule(str(r.get("name", f"rule_{i}")), r.get("when"), str(r["action"])))
        for r in compiled:
            if r.action not in self.actions:
                raise PlanError(
                    f"Rule {r.name!r} picks unknown action {r.action!r}. "
                    f"Known: {', '.join(self.actions)}.",
                    value=r.action,
                )
        fb = self.fallback if self.fallback is not None else self.actions[0]
        if fb not in self.actions:
            raise ParameterError("RulePolicy", "fallback", f"one of {self.actions}", fb)
        self.rules_ = compiled
        self.fallback_ = fb
        self._last: tuple[int, str] | None = None

    def match(
        self, context: Mapping[str, Any], allowed: Sequence[str] | None = None
    ) -> Rule | None:
        """The first rule matching ``context`` whose action is allowed (``None``: fallback)."""
        for r in self.rules_:
            if (allowed is None or r.action in allowed) and r.condition(context):
                return r
        return None

    def _scores(self, x: np.ndarray, idx: np.ndarray, context: Mapping[str, Any]) -> Scores:
        allowed = [self.actions[i] for i in idx]
        rule = self.match(context, allowed)
        target = rule.action if rule is not None else self.fallback_
        value = np.array([1.0 if a == target else 0.0 for a in allowed])
        if not value.any():
            value[0] = 1.0
        self._last = (int(idx[int(value.argmax())]), rule.name if rule else "fallback")
        return Scores(value)

    def _explain_extra(self, context: Mapping[str, Any], action: int) -> dict[str, Any]:
        if self._last is not None and self._last[0] == action:
            return {"rule": self._last[1]}
        return {"rule": None}

    def _update(self, x: np.ndarray, action: int, reward: float) -> None:
        return None

    def params(self) -> dict[str, Any]:
        return {
            **super().params(),
            "rules": [r.to_dict() for r in self.rules_],
            "fallback": self.fallback_,
        }

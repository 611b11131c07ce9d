"""Decision points and their actions, loaded from YAML; the policy registry and factory.

The package ships ``defaults/decision_points.yaml`` (greeting, tone, content, routing);
:meth:`DecisionConfig.load` reads it or a file of the same shape.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from chatpersona.decide.bandits import (
    EpsilonGreedy,
    FixedPolicy,
    LinearThompson,
    LinUCB,
    UniformRandom,
)
from chatpersona.decide.base import DecisionSink, Guardrails, Policy
from chatpersona.decide.context import ContextSchema
from chatpersona.decide.rewards import RewardRule
from chatpersona.decide.rules import RulePolicy
from chatpersona.exceptions import InputError, PlanError

__all__ = [
    "POLICIES",
    "Action",
    "DecisionConfig",
    "DecisionPoint",
    "load_policy_spec",
    "make_policy",
]

POLICIES: dict[str, type[Policy]] = {
    cls.kind: cls
    for cls in (EpsilonGreedy, LinUCB, LinearThompson, RulePolicy, FixedPolicy, UniformRandom)
}
"""Registry: policy ``type`` name -> class."""

_BASE_KEYS = {"exploration_floor", "seed", "version"}


def _params_of(cls: type[Policy]) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.kind == p.KEYWORD_ONLY:
                names.add(p.name)
    return names - {"schema", "guardrails", "decision_point", "sink"}


def make_policy(
    spec: Mapping[str, Any] | str,
    actions: Sequence[str],
    *,
    schema: ContextSchema | None = None,
    guardrails: Guardrails | None = None,
    seed: int | None = None,
    decision_point: str = "default",
    sink: DecisionSink | None = None,
) -> Policy:
    """Build a policy from a spec ``{type: linucb, alpha: 0.5, ...}`` or a registry name.

    Examples
    --------
    >>> make_policy({"type": "epsilon_greedy", "epsilon": 0.2}, ["a", "b"]).epsilon
    0.2
    """
    if isinstance(spec, str):
        spec = {"type": spec}
    spec = dict(spec)
    kind = spec.pop("type", None)
    if kind not in POLICIES:
        raise PlanError(
            f"Unknown policy type {kind!r}. Known: {', '.join(sorted(POLICIES))}.",
            value=kind,
        )
    cls = POLICIES[kind]
    spec.pop("context", None)
    if "guardrails" in spec:  # a policy file may carry its own guardrails
        own = Guardrails.from_dict(spec.pop("guardrails"))
        if guardrails is not None:
            own = Guardrails(
                no_explore=[*guardrails.no_explore, *own.no_explore],
                forbid=[*guardrails.forbid, *own.forbid],
                caps={**guardrails.caps, **own.caps},
            )
        guardrails = own
    known = _params_of(cls)
    unknown = sorted(set(spec) - known)
    if unknown:
        raise PlanError(
            f"Unknown parameter(s) {', '.join(unknown)} for policy {kind!r}. "
            f"Known: {', '.join(sorted(known))}.",
            keys=unknown,
        )
    if seed is not None:
        spec["seed"] = seed
    if "version" in spec:
        spec["version"] = str(spec["version"])
    return cls(
        list(actions),
        schema=schema,
        guardrails=guardrails,
        decision_point=decision_point,
        sink=sink,
        **spec,
    )


def load_policy_spec(name_or_path: str | Path) -> dict[str, Any]:
    """A policy spec from a registry name (``linucb``) or a YAML file path.

    The YAML holds ``type`` and the policy's parameters, and optionally ``context`` (a
    :class:`ContextSchema` mapping), ``guardrails`` (as in the decision-points YAML) and
    ``actions``.
    """
    text = str(name_or_path)
    if text in POLICIES:
        return {"type": text}
    path = Path(text)
    if not path.is_file():
        raise InputError(
            f"--policy must be a policy name ({', '.join(sorted(POLICIES))}) or a YAML file",
            file=text,
            value=text,
            code="unknown_policy",
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise InputError(f"Cannot read policy file: {exc}", file=text) from exc
    if not isinstance(data, dict) or "type" not in data:
        raise PlanError(
            f"Policy file {text} must be a mapping with a 'type' ({', '.join(sorted(POLICIES))}).",
            file=text,
        )
    return data


@dataclass(frozen=True)
class Action:
    """One action of a decision point: an id, a description and free ``params`` (a
    template name, an article id, a queue and priority ...)."""

    id: str
    description: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class DecisionPoint:
    """A place in the conversation where something is chosen, with its actions and policy."""

    name: str
    actions: list[Action]
    policy: dict[str, Any]
    guardrails: Guardrails
    description: str = ""

    @property
    def action_ids(self) -> list[str]:
        """The ids of the actions, in order."""
        return [a.id for a in self.actions]

    def action(self, action_id: str) -> Action:
        """The :class:`Action` with this id."""
        for a in self.actions:
            if a.id == action_id:
                return a
        raise KeyError(action_id)


@dataclass
class DecisionConfig:
    """Everything the decision engine is configured with (one YAML file)."""

    points: dict[str, DecisionPoint]
    schema: ContextSchema
    reward: RewardRule
    version: str = "1"

    @classmethod
    def default_path(cls) -> Path:
        """The packaged ``decision_points.yaml``."""
        return Path(
            str(resources.files("chatpersona.decide") / "defaults" / "decision_points.yaml")
        )

    @classmethod
    def load(cls, path: str | Path | None = None) -> DecisionConfig:
        """Load a decision-points YAML (default: the packaged one)."""
        p = Path(path) if path is not None else cls.default_path()
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise InputError(f"Cannot read decision points: {exc}", file=str(p)) from exc
        try:
            return cls.from_dict(data)
        except PlanError as exc:
            raise PlanError(f"{exc.message} (file {p})", file=str(p), **exc.fields) from exc

    @classmethod
    def from_dict(cls, data: Any) -> DecisionConfig:
        """Build from the parsed YAML mapping (validated: unknown keys and actions fail)."""
        if not isinstance(data, Mapping):
            raise PlanError(f"Decision points must be a mapping. Got {data!r} instead.")
        known = {"version", "context", "reward", "guardrails", "decision_points"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise PlanError(
                f"Unknown key(s) {', '.join(unknown)}. Known: {', '.join(sorted(known))}.",
                keys=unknown,
            )
        schema = ContextSchema.from_dict(data.get("context") or {})
        reward = RewardRule.from_dict(data.get("reward"))
        glob = dict(data.get("guardrails") or {})
        points: dict[str, DecisionPoint] = {}
        raw_points = data.get("decision_points") or {}
        if not isinstance(raw_points, Mapping) or not raw_points:
            raise PlanError("'decision_points' must be a non-empty mapping of name -> point.")
        for name, raw in raw_points.items():
            points[str(name)] = cls._point(str(name), raw, glob)
        return cls(
            points=points, schema=schema, reward=reward, version=str(data.get("version", "1"))
        )

    @staticmethod
    def _point(name: str, raw: Any, glob: Mapping[str, Any]) -> DecisionPoint:
        if not isinstance(raw, Mapping):
            raise PlanError(f"Decision point {name!r} must be a mapping. Got {raw!r} instead.")
        known = {"description", "actions", "policy", "guardrails"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise PlanError(
                f"Unknown key(s) {', '.join(unknown)} in decision point {name!r}. "
                f"Known: {', '.join(sorted(known))}.",
                keys=unknown,
            )
        actions = []
        for item in raw.get("actions") or []:
            if isinstance(item, str):
                actions.append(Action(item))
            elif isinstance(item, Mapping) and "id" in item:
                actions.append(
                    Action(
                        str(item["id"]),
                        str(item.get("description", "")),
                        dict(item.get("params") or {}),
                    )
                )
            else:
                raise PlanError(
                    f"Actions of decision point {name!r} must be ids or {{id, params}}. "
                    f"Got {item!r} instead.",
                    value=item,
                )
        if not actions:
            raise PlanError(f"Decision point {name!r} has no actions.")
        local = dict(raw.get("guardrails") or {})
        merged = {
            "no_explore": [*(glob.get("no_explore") or []), *(local.get("no_explore") or [])],
            "forbid": [*(glob.get("forbid") or []), *(local.get("forbid") or [])],
            "caps": {**(glob.get("caps") or {}), **(local.get("caps") or {})},
        }
        extra = sorted((set(glob) | set(local)) - set(merged))
        if extra:
            raise PlanError(
                f"Unknown guardrail key(s) {', '.join(extra)}. Known: caps, forbid, no_explore.",
                keys=extra,
            )
        guardrails = Guardrails.from_dict(merged)
        ids = [a.id for a in actions]
        # A global forbid naming another point's action is harmless; a local cap on an
        # action this point does not have is a typo.
        for a in guardrails.caps:
            if a not in ids and a in (local.get("caps") or {}):
                raise PlanError(f"Cap on unknown action {a!r} in decision point {name!r}.")
        policy = dict(raw.get("policy") or {"type": "linucb"})
        if policy.get("type") not in POLICIES:
            raise PlanError(
                f"Unknown policy type {policy.get('type')!r} in decision point {name!r}. "
                f"Known: {', '.join(sorted(POLICIES))}.",
                value=policy.get("type"),
            )
        return DecisionPoint(name, actions, policy, guardrails, str(raw.get("description", "")))

    def build_policy(
        self, point: str, *, seed: int = 0, sink: DecisionSink | None = None
    ) -> Policy:
        """The configured policy of one decision point (validated now)."""
        dp = self.points[point]
        return make_policy(
            dp.policy,
            dp.action_ids,
            schema=self.schema,
            guardrails=dp.guardrails,
            seed=seed,
            decision_point=point,
            sink=sink,
        )

"""The decision engine: decision points -> policies, decisions -> rewards -> learning.

``engine.decide(user_id, decision_point, context, profile)`` builds the full context from
the request and the stored profile (segment, features, attributes, consent, time), asks
the point's policy, and remembers the decision until its reward arrives.
``engine.reward(decision_id, reward | outcomes)`` maps outcomes to a reward, logs it and
updates the policy online; ``engine.expire()`` gives timed-out decisions their default.
Pure core: the caller passes the clock, the log sink and the profile.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from chatpersona.decide.base import Decision, DecisionSink, Policy
from chatpersona.decide.log import reward_record
from chatpersona.decide.points import DecisionConfig
from chatpersona.exceptions import ConflictError, InputError, NotFoundError, ValidationError

__all__ = ["DecisionEngine", "RewardResult", "build_context"]

_PROFILE_FIELDS = ("attributes", "preferences", "features", "consent")


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def build_context(
    user_id: str | None,
    context: Mapping[str, Any] | None,
    profile: Any = None,
    *,
    now: float | None = None,
) -> dict[str, Any]:
    """The canonical decision context from a request context and a stored profile.

    Request values win over profile values. ``segment`` comes from the request, else from
    the profile's assigned segment name. ``hour`` and ``weekday`` (0 = Monday, UTC) are
    added from ``now`` unless given.

    Examples
    --------
    >>> ctx = build_context("u1", {"intent": "get_refund", "channel": "web"},
    ...                     {"segment": {"name": "loyal_premium"}, "features": {"csat_mean": 4.0}},
    ...                     now=0.0)
    >>> ctx["segment"], ctx["features"]["csat_mean"], ctx["hour"]
    ('loyal_premium', 4.0, 0)
    """
    ctx: dict[str, Any] = {}
    seg = _get(profile, "segment")
    seg_name = _get(seg, "name") if seg is not None and not isinstance(seg, str) else seg
    if seg_name is not None:
        ctx["segment"] = str(seg_name)
    for name in _PROFILE_FIELDS:
        value = _get(profile, name)
        if value:
            ctx[name] = dict(value)
    for key, value in (context or {}).items():
        if key in _PROFILE_FIELDS:
            if not isinstance(value, Mapping):
                raise ValidationError(
                    f"context.{key} must be an object. Got {value!r} instead.",
                    code="invalid_context",
                    field=f"context.{key}",
                    value=value,
                )
            ctx[key] = {**ctx.get(key, {}), **value}
        else:
            ctx[key] = value
    if user_id is not None:  # the caller's user id, never one smuggled in the context
        ctx["user_id"] = str(user_id)
    if "hour" not in ctx or "weekday" not in ctx:
        dt = datetime.fromtimestamp(time.time() if now is None else now, UTC)
        ctx.setdefault("hour", dt.hour)
        ctx.setdefault("weekday", dt.weekday())
    return ctx


@dataclass
class RewardResult:
    """What :meth:`DecisionEngine.reward` did: the reward, where it came from, the record."""

    decision_id: str
    decision_point: str
    reward: float
    source: str
    record: dict[str, Any]


class DecisionEngine:
    """Decision points with their policies, a pending-reward table and a log.

    Parameters
    ----------
    config:
        A :class:`DecisionConfig` (default: the packaged decision points).
    sink:
        Where decisions and rewards are logged (``None``: not logged).
    seed:
        Seeds every point's policy (point ``i`` gets ``seed + i``).
    clock:
        Returns the current time in epoch seconds (default ``time.time``).
    max_pending:
        Oldest pending decisions beyond this many get their default reward.

    Examples
    --------
    >>> from chatpersona.decide import DecisionEngine, MemoryDecisionLog
    >>> log = MemoryDecisionLog()
    >>> engine = DecisionEngine(sink=log, seed=1)
    >>> d = engine.decide("u1", "tone", {"intent": "track_order", "channel": "web"})
    >>> r = engine.reward(d.decision_id, outcomes={"csat": 5, "resolved": True})
    >>> r.source, r.reward, [rec["type"] for rec in log.records]
    ('outcomes', 1.0, ['decision', 'reward'])
    """

    def __init__(
        self,
        config: DecisionConfig | None = None,
        *,
        sink: DecisionSink | None = None,
        seed: int = 0,
        clock: Callable[[], float] | None = None,
        max_pending: int = 100_000,
    ) -> None:
        self.config = config or DecisionConfig.load()
        self.sink = sink
        self.seed = seed
        self.clock = clock or time.time
        self.max_pending = max_pending
        self.policies: dict[str, Policy] = {
            name: self.config.build_policy(name, seed=seed + i, sink=sink)
            for i, name in enumerate(self.config.points)
        }
        self._pending: OrderedDict[str, Decision] = OrderedDict()
        self._done: OrderedDict[str, tuple[str, str | None]] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def from_yaml(
        cls, path: str | Path | None = None, *, sink: DecisionSink | None = None, seed: int = 0
    ) -> DecisionEngine:
        """An engine from a decision-points YAML (default: the packaged one)."""
        return cls(DecisionConfig.load(path), sink=sink, seed=seed)

    def save_state(self, directory: str | Path) -> Path:
        """Write what every point's policy has learned to ``directory`` (``state.json``
        plus one ``<point>.npz``); pending decisions are not saved."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        meta: dict[str, Any] = {"config_version": self.config.version, "policies": {}}
        with self._lock:
            for name, policy in self.policies.items():
                pmeta, arrays = policy.get_state()
                meta["policies"][name] = pmeta
                if arrays:
                    tmp = out / f".{name}.npz.tmp"
                    with tmp.open("wb") as fh:
                        np.savez(fh, **arrays)  # type: ignore[arg-type]
                    tmp.replace(out / f"{name}.npz")
        tmp_json = out / ".state.json.tmp"
        tmp_json.write_text(json.dumps(meta, indent=1), encoding="utf-8")
        tmp_json.replace(out / "state.json")  # written last: a complete save or none
        return out

    def load_state(self, directory: str | Path) -> None:
        """Restore :meth:`save_state` output. Points absent from the save start fresh; a
        saved point that no longer fits its policy (other actions, kind or context)
        raises :class:`PlanError`."""
        src = Path(directory)
        try:
            meta = json.loads((src / "state.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"Cannot read decision state: {exc}", file=str(src)) from exc
        with self._lock:
            for name, pmeta in (meta.get("policies") or {}).items():
                policy = self.policies.get(name)
                if policy is None:
                    continue
                npz = src / f"{name}.npz"
                if npz.exists():
                    with np.load(npz) as data:
                        arrays = {k: data[k] for k in data.files}
                else:
                    arrays = {}
                policy.set_state(pmeta, arrays)

    @property
    def decision_points(self) -> list[str]:
        """Names of the configured decision points."""
        return list(self.policies)

    def policy(self, decision_point: str) -> Policy:
        """The policy of a decision point (:class:`NotFoundError` when unknown)."""
        try:
            return self.policies[decision_point]
        except KeyError:
            raise NotFoundError(
                f"Unknown decision point {decision_point!r}. Known: {', '.join(self.policies)}.",
                code="unknown_decision_point",
                value=decision_point,
            ) from None

    def decide(
        self,
        user_id: str | None,
        decision_point: str,
        context: Mapping[str, Any] | None = None,
        profile: Any = None,
        *,
        tenant: str | None = None,
    ) -> Decision:
        """Decide at one decision point for one user; the decision waits for its reward.

        ``tenant`` (optional) scopes the decision: a reward that names another tenant
        does not find it.
        """
        policy = self.policy(decision_point)
        now = self.clock()
        ctx = build_context(user_id, context, profile, now=now)
        candidates = ctx.pop("candidates", None)
        if candidates is not None and (
            not isinstance(candidates, list) or not all(isinstance(a, str) for a in candidates)
        ):
            raise ValidationError(
                f"context.candidates must be a list of action ids. Got {candidates!r} instead.",
                code="invalid_context",
                field="context.candidates",
                value=candidates,
            )
        with self._lock:
            decision = policy.decide(ctx, candidates=candidates, user_id=user_id, ts=now)
            point = self.config.points[decision_point]
            decision.params = dict(point.action(decision.action).params)
            decision.tenant = tenant
            self._pending[decision.decision_id] = decision
            overflow = len(self._pending) - self.max_pending
        if overflow > 0:
            self._expire_oldest(overflow)
        return decision

    def pending(self) -> int:
        """How many decisions are waiting for a reward."""
        return len(self._pending)

    def reward(
        self,
        decision_id: str,
        reward: float | None = None,
        outcomes: Mapping[str, Any] | None = None,
        *,
        tenant: str | None = None,
    ) -> RewardResult:
        """Give a decision its reward (a number in [0, 1] or raw ``outcomes``).

        Raises
        ------
        ValidationError
            Neither or both of ``reward`` and ``outcomes``, or a value out of range.
        NotFoundError
            No pending decision has this id (unknown, or expired long ago).
        ConflictError
            The decision already has its reward.
        """
        if (reward is None) == (outcomes is None):
            raise ValidationError(
                "Give exactly one of 'reward' (a number in [0, 1]) or 'outcomes' "
                "(csat, resolved, recontact_7d, nps).",
                code="reward_or_outcomes",
            )
        if reward is not None:
            if isinstance(reward, bool) or not isinstance(reward, int | float):
                raise ValidationError(
                    f"A reward must be a number in [0, 1]. Got {reward!r} instead.",
                    code="reward_out_of_range",
                    value=reward,
                )
            value, source = float(reward), "explicit"
            if not 0.0 <= value <= 1.0:
                raise ValidationError(
                    f"A reward must be a number in [0, 1]. Got {reward!r} instead.",
                    code="reward_out_of_range",
                    value=reward,
                )
        else:
            assert outcomes is not None
            value, source = self.config.reward.from_outcomes(outcomes), "outcomes"
        return self._apply(decision_id, value, source, dict(outcomes) if outcomes else None, tenant)

    def _apply(
        self,
        decision_id: str,
        value: float,
        source: str,
        outcomes: dict[str, Any] | None,
        tenant: str | None = None,
    ) -> RewardResult:
        with self._lock:
            decision = self._pending.get(decision_id)
            if decision is not None and tenant is not None and decision.tenant != tenant:
                decision = None  # another tenant's decision: indistinguishable from unknown
            elif decision is not None:
                del self._pending[decision_id]
            if decision is None:
                done = self._done.get(decision_id)
                if done is not None and tenant in (None, done[1]):
                    raise ConflictError(
                        f"Decision {decision_id!r} already has its reward ({done[0]}).",
                        code="already_rewarded",
                        value=decision_id,
                    )
                raise NotFoundError(
                    f"No pending decision {decision_id!r} (unknown, or expired).",
                    code="unknown_decision",
                    value=decision_id,
                )
            policy = self.policies[decision.decision_point]
            policy.update_decision(decision, value)
            self._done[decision_id] = (source, decision.tenant)
            while len(self._done) > self.max_pending:
                self._done.popitem(last=False)
            record = reward_record(
                decision_id, value, source, self.clock(), outcomes, decision.decision_point
            )
            if self.sink is not None:
                self.sink.write(record)
        return RewardResult(decision_id, decision.decision_point, value, source, record)

    def expire(self, now: float | None = None) -> list[RewardResult]:
        """Give every decision older than the timeout the configured default reward
        (logged with source ``timeout``; the policy learns from it too)."""
        limit = (self.clock() if now is None else now) - self.config.reward.timeout_seconds
        old = []
        with self._lock:
            # Pending decisions are in decision order: stop at the first recent one, so
            # calling this on every request costs only the expired ones.
            for d in self._pending.values():
                if d.ts > limit:
                    break
                old.append(d.decision_id)
        out = [self._timeout(did) for did in old]
        return [r for r in out if r is not None]

    def _expire_oldest(self, n: int) -> None:
        with self._lock:
            old = list(self._pending)[:n]
        for did in old:
            self._timeout(did)

    def _timeout(self, decision_id: str) -> RewardResult | None:
        try:
            return self._apply(decision_id, self.config.reward.default_reward, "timeout", None)
        except (NotFoundError, ConflictError):  # rewarded meanwhile by another thread
            return None

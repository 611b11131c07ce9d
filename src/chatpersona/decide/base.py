"""The shared :class:`Policy` base: one public ``decide()`` for every algorithm.

``decide()`` does, once for all policies, what must never differ between them: featurize
the context, apply guardrails (forbidden actions, caps, contexts where exploring is not
allowed), turn scores into action probabilities with an exploration floor, sample with the
policy's own seeded generator, explain, and log the decision with its propensity. A policy
implements only ``_scores()`` (how good each candidate looks) and ``_update()`` (learn
from one reward).
"""

from __future__ import annotations

import secrets
import time
from abc import ABC, abstractmethod
from collections import defaultdict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, NamedTuple, Protocol

import numpy as np

from chatpersona.decide.conditions import _MISSING, Condition, lookup
from chatpersona.decide.context import ContextSchema, Featurizer
from chatpersona.exceptions import ParameterError, PlanError, ValidationError

__all__ = [
    "BatchDecisions",
    "Cap",
    "Decision",
    "DecisionSink",
    "Guardrails",
    "Policy",
    "Scores",
]


_CACHEABLE = (str, bool, type(None))


class DecisionSink(Protocol):
    """Anything that stores log records (a JSONL file, a list in memory)."""

    def write(self, record: dict[str, Any]) -> None:
        """Store one record."""


class Scores(NamedTuple):
    """What a policy's ``_scores()`` returns for the candidate actions (same order).

    value:
        The policy's estimate of each candidate's reward (its exploitation score).
    bonus:
        Optimism added when choosing (LinUCB's confidence width); ``None`` for none.
    probs:
        A full probability distribution when the algorithm randomizes by itself
        (epsilon-greedy, Thompson sampling); ``None`` means "greedy on value + bonus".
    """

    value: np.ndarray
    bonus: np.ndarray | None = None
    probs: np.ndarray | None = None


@dataclass(frozen=True)
class Cap:
    """At most ``per_user`` showings of an action to one user within ``window_seconds``."""

    per_user: int
    window_seconds: float = 86400.0


@dataclass
class Guardrails:
    """Limits every policy obeys, whatever its algorithm.

    Parameters
    ----------
    no_explore:
        Named conditions; when any matches the context the decision is greedy (the
        policy's best estimate, propensity 1): no exploration, no exploration floor.
    forbid:
        ``(condition, actions)`` pairs: those actions are never candidates when the
        condition matches (e.g. no offers without marketing consent).
    caps:
        Per-action :class:`Cap` on how often one user may be shown the action.

    Examples
    --------
    >>> g = Guardrails.standard()
    >>> g.no_explore_reasons({"intent": "cancel_order"})
    ['sensitive_intent']
    """

    no_explore: list[tuple[str, Condition]] = field(default_factory=list)
    forbid: list[tuple[Condition, frozenset[str]]] = field(default_factory=list)
    caps: dict[str, Cap] = field(default_factory=dict)
    _no_explore_keys: tuple[list[Any], list[str]] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _no_explore_cache: dict[tuple[Any, ...], tuple[str, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def standard(cls) -> Guardrails:
        """The documented defaults: never explore on complaints or cancellations, for VIP
        users, or without ``personalization`` consent."""
        return cls.from_dict(
            {
                "no_explore": [
                    {"name": "sensitive_intent", "when": {"intent": ["*complain*", "*cancel*"]}},
                    {"name": "sensitive_category", "when": {"category": ["CANCEL", "COMPLAINT"]}},
                    {"name": "vip_segment", "when": {"segment": "*vip*"}},
                    {"name": "vip_attribute", "when": {"attributes.is_vip": True}},
                    {"name": "no_consent", "when": {"consent.personalization": False}},
                ]
            }
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Guardrails:
        """Build guardrails from the ``guardrails:`` block of a decision-points YAML."""
        data = dict(data or {})
        unknown = sorted(set(data) - {"no_explore", "forbid", "caps"})
        if unknown:
            raise PlanError(
                f"Unknown guardrail key(s) {', '.join(unknown)}. Known: caps, forbid, no_explore.",
                keys=unknown,
            )
        no_explore = []
        for i, item in enumerate(data.get("no_explore") or []):
            if not isinstance(item, Mapping) or "when" not in item:
                raise PlanError(
                    f"guardrails.no_explore[{i}] needs a 'when' condition. Got {item!r} instead.",
                    value=item,
                )
            name = str(item.get("name", f"no_explore_{i}"))
            no_explore.append((name, Condition(item["when"], where=f"no_explore[{i}].when")))
        forbid = []
        for i, item in enumerate(data.get("forbid") or []):
            if not isinstance(item, Mapping) or "when" not in item or "actions" not in item:
                raise PlanError(
                    f"guardrails.forbid[{i}] needs 'when' and 'actions'. Got {item!r} instead.",
                    value=item,
                )
            cond = Condition(item["when"], where=f"forbid[{i}].when")
            forbid.append((cond, frozenset(str(a) for a in item["actions"])))
        caps = {}
        for action, spec in (data.get("caps") or {}).items():
            if not isinstance(spec, Mapping) or int(spec.get("per_user", 0)) < 1:
                raise PlanError(
                    f"caps.{action} needs per_user >= 1 (and optionally window_hours). "
                    f"Got {spec!r} instead.",
                    value=spec,
                )
            hours = float(spec.get("window_hours", 24))
            caps[str(action)] = Cap(int(spec["per_user"]), hours * 3600.0)
        return cls(no_explore=no_explore, forbid=forbid, caps=caps)

    def no_explore_reasons(self, context: Mapping[str, Any]) -> list[str]:
        """Names of the no-explore conditions that match ``context`` (empty: may explore).

        The answer depends only on the values at the keys the conditions name; when those
        are all strings, booleans or missing (segment, intent, consent flags ...) it is
        memoized (bounded), so repeated contexts skip the pattern matching.
        """
        keys = self._no_explore_keys
        if keys is None or keys[0] != self.no_explore:  # (re)build after any change
            seen: dict[str, None] = {}
            for _, cond in self.no_explore:
                seen.update(dict.fromkeys(cond.when))
            keys = self._no_explore_keys = (list(self.no_explore), list(seen))
            self._no_explore_cache.clear()
        values = tuple([lookup(context, k) for k in keys[1]])
        cacheable = all(type(v) in _CACHEABLE or v is _MISSING for v in values)
        if cacheable:
            hit = self._no_explore_cache.get(values)
            if hit is not None:
                return list(hit)
        reasons = [name for name, cond in self.no_explore if cond(context)]
        if cacheable and len(self._no_explore_cache) < 4096:
            self._no_explore_cache[values] = tuple(reasons)
        return reasons

    def forbidden(self, context: Mapping[str, Any]) -> set[str]:
        """Actions forbidden in ``context``."""
        out: set[str] = set()
        for cond, actions in self.forbid:
            if cond(context):
                out |= actions
        return out


@dataclass
class Decision:
    """One logged decision. ``to_record()`` is its JSONL log line."""

    decision_id: str
    ts: float
    decision_point: str
    action: str
    propensity: float
    candidates: list[str]
    probabilities: list[float]
    policy: str
    policy_version: str
    context: dict[str, Any]
    exploration: bool
    explore_allowed: bool
    explanation: dict[str, Any]
    user_id: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    tenant: str | None = None
    x: np.ndarray | None = field(default=None, repr=False)

    @property
    def segment(self) -> str | None:
        """The segment the decision was made for (from the context)."""
        seg = self.context.get("segment")
        return None if seg is None else str(seg)

    def to_json(self, encode: Callable[[Any], str], candidates_json: str | None = None) -> str:
        """``encode(self.to_record())`` without building the record dict: the same JSON
        text, field by field (``encode`` must use ``separators=(",", ":")``).
        ``candidates_json``, when given, is ``encode(self.candidates)`` computed before."""
        ts = datetime.fromtimestamp(self.ts, UTC).isoformat().replace("+00:00", "Z")
        return "".join(
            (
                '{"type":"decision","decision_id":',
                encode(self.decision_id),
                ',"ts":',
                encode(ts),
                ',"decision_point":',
                encode(self.decision_point),
                ',"user_id":',
                encode(self.user_id),
                ',"policy":',
                encode(self.policy),
                ',"policy_version":',
                encode(self.policy_version),
                ',"context":',
                encode(self.context),
                ',"candidates":',
                encode(self.candidates) if candidates_json is None else candidates_json,
                ',"probabilities":',
                encode(self.probabilities),
                ',"action":',
                encode(self.action),
                ',"propensity":',
                encode(self.propensity),
                ',"exploration":',
                "true" if self.exploration else "false",
                ',"explore_allowed":',
                "true" if self.explore_allowed else "false",
                ',"explanation":',
                encode(self.explanation),
                "}",
            )
        )

    def to_record(self) -> dict[str, Any]:
        """The JSON-friendly log record (``type: decision``)."""
        return {
            "type": "decision",
            "decision_id": self.decision_id,
            "ts": datetime.fromtimestamp(self.ts, UTC).isoformat().replace("+00:00", "Z"),
            "decision_point": self.decision_point,
            "user_id": self.user_id,
            "policy": self.policy,
            "policy_version": self.policy_version,
            "context": self.context,
            "candidates": self.candidates,
            "probabilities": self.probabilities,
            "action": self.action,
            "propensity": self.propensity,
            "exploration": self.exploration,
            "explore_allowed": self.explore_allowed,
            "explanation": self.explanation,
        }


@dataclass
class BatchDecisions:
    """Decisions for many contexts at once (``Policy.decide_batch``)."""

    actions: list[str]
    propensities: np.ndarray
    candidates: list[str]
    probabilities: np.ndarray


def _neg_abs_second(pair: tuple[int, float]) -> float:
    return -abs(pair[1])


def _greedy(score: np.ndarray, split_ties: bool) -> np.ndarray:
    ties = score >= score.max() - 1e-12
    if split_ties:
        return ties / np.count_nonzero(ties)
    p = np.zeros(score.shape[0])
    p[int(ties.argmax())] = 1.0
    return p


class Policy(ABC):
    """Base of every decision policy (rules and contextual bandits).

    Parameters
    ----------
    actions:
        The action ids this policy chooses among (order = preference on ties when
        exploring is not allowed).
    schema:
        How a context becomes a vector (:class:`ContextSchema`); default: bias only.
    exploration_floor:
        Minimum probability of every candidate when exploring is allowed (0 <= floor,
        floor x candidates < 1). Keeps propensities positive for offline evaluation.
    guardrails:
        :class:`Guardrails`; default none.
    seed:
        Seed of the policy's own random generator (the only randomness used).
    version:
        Logged with every decision.
    decision_point:
        Name of the decision point, logged with every decision.
    sink:
        Where ``decide()`` writes each decision record (``None``: not logged).

    Notes
    -----
    A policy is not thread-safe on its own; :class:`~chatpersona.decide.DecisionEngine`
    serializes ``decide`` and reward updates behind one lock.
    """

    kind: ClassVar[str] = "policy"
    learns: ClassVar[bool] = True

    def __init__(
        self,
        actions: Sequence[str],
        *,
        schema: ContextSchema | None = None,
        exploration_floor: float = 0.0,
        guardrails: Guardrails | None = None,
        seed: int = 0,
        version: str = "1",
        decision_point: str = "default",
        sink: DecisionSink | None = None,
    ) -> None:
        self.actions = list(actions)
        self.schema = schema or ContextSchema()
        self.exploration_floor = exploration_floor
        self.guardrails = guardrails or Guardrails()
        self.seed = seed
        self.version = version
        self.decision_point = decision_point
        self.sink = sink
        self._validate_base()
        self.featurizer_ = Featurizer(self.schema)
        self.feature_names_ = self.schema.feature_names()
        self.index_ = {a: i for i, a in enumerate(self.actions)}
        self.rng_ = np.random.default_rng(seed)
        self.n_decisions_ = 0
        self.n_updates_ = 0
        self._shown: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._all_idx = np.arange(len(self.actions))
        self._init_state(len(self.actions), self.featurizer_.dim)

    # -- subclass hooks -----------------------------------------------------------------

    def _init_state(self, n_actions: int, dim: int) -> None:  # noqa: B027 - optional hook
        """Allocate learned state (called once from ``__init__``)."""

    @abstractmethod
    def _scores(self, x: np.ndarray, idx: np.ndarray, context: Mapping[str, Any]) -> Scores:
        """Scores of the candidate actions ``idx`` (indices into ``actions``) for ``x``."""

    @abstractmethod
    def _update(self, x: np.ndarray, action: int, reward: float) -> None:
        """Learn from one reward for action index ``action`` in context vector ``x``."""

    def _contributions(self, x: np.ndarray, action: int) -> np.ndarray | None:
        """Per-feature contribution to the chosen action's score (linear models)."""
        return None

    def _explain_extra(self, context: Mapping[str, Any], action: int) -> dict[str, Any]:
        """Extra explanation fields (rules: which rule matched)."""
        return {}

    def _batch_scores(self, X: np.ndarray, idx: np.ndarray) -> np.ndarray | None:
        """Vectorized value + bonus for many rows (``None``: decide row by row)."""
        return None

    def _fast_distribution(
        self, x: np.ndarray, explore: bool
    ) -> tuple[list[float], list[float]] | None:
        """Optional hot path when every action is a candidate: ``(probabilities, values)``
        as Python lists, exactly equal to what ``_distribution`` gives (same floating-point
        operations). ``None``: use ``_distribution``."""
        return None

    # -- validation ---------------------------------------------------------------------

    def _validate_base(self) -> None:
        owner = type(self).__name__
        if not self.actions:
            raise ParameterError(owner, "actions", "a non-empty list of action ids", self.actions)
        if len(set(self.actions)) != len(self.actions):
            raise ParameterError(owner, "actions", "a list of distinct action ids", self.actions)
        f = self.exploration_floor
        if not isinstance(f, int | float) or not f >= 0 or f * len(self.actions) >= 1:
            raise ParameterError(
                owner, "exploration_floor", f"a float in [0, 1/{len(self.actions)})", f
            )
        if not isinstance(self.seed, int | np.integer):
            raise ParameterError(owner, "seed", "an int", self.seed)

    # -- public API ---------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The policy's registry name (``linucb``, ``rules`` ...)."""
        return self.kind

    def _candidates(
        self,
        context: Mapping[str, Any],
        candidates: Sequence[str] | None,
        user_id: str | None,
        now: float | None = None,
    ) -> tuple[list[str], list[str]]:
        notes: list[str] = []
        if candidates is None and not self.guardrails.forbid and not self.guardrails.caps:
            return list(self.actions), notes  # the common case, kept cheap
        base = list(self.actions) if candidates is None else list(candidates)
        unknown = [a for a in base if a not in self.index_]
        if candidates is not None and len(set(base)) != len(base):
            raise ValidationError(
                f"Candidate actions must be distinct. Got {base} instead.",
                code="duplicate_candidates",
                value=base,
            )
        if unknown:
            raise ValidationError(
                f"Unknown candidate action(s) {unknown} for decision point "
                f"{self.decision_point!r}. Known: {', '.join(self.actions)}.",
                code="unknown_action",
                value=unknown,
            )
        forbidden = self.guardrails.forbidden(context) if self.guardrails.forbid else set()
        allowed = [a for a in base if a not in forbidden]
        if forbidden & set(base):
            notes.append("forbidden:" + ",".join(sorted(forbidden & set(base))))
        if self.guardrails.caps and user_id is not None:
            now = time.time() if now is None else now
            capped = []
            for a in allowed:
                cap = self.guardrails.caps.get(a)
                if cap is None:
                    continue
                shown = self._shown[(user_id, a)]
                while shown and shown[0] < now - cap.window_seconds:
                    shown.popleft()
                if len(shown) >= cap.per_user:
                    capped.append(a)
            if capped and len(capped) < len(allowed):
                allowed = [a for a in allowed if a not in capped]
                notes.append("capped:" + ",".join(capped))
            elif capped:
                notes.append("caps_exhausted")
        if not allowed:
            raise ValidationError(
                f"No action is allowed at decision point {self.decision_point!r}: guardrails "
                f"forbid all of {base}.",
                code="no_allowed_action",
                value=base,
            )
        return allowed, notes

    def _distribution(
        self, x: np.ndarray, idx: np.ndarray, context: Mapping[str, Any], explore: bool
    ) -> tuple[np.ndarray, Scores]:
        s = self._scores(x, idx, context)
        if not explore:
            return _greedy(s.value, split_ties=False), s
        if s.probs is not None:
            p = np.asarray(s.probs, dtype=float)
            p = p / p.sum()
        else:
            p = _greedy(s.value if s.bonus is None else s.value + s.bonus, split_ties=True)
        k = idx.shape[0]
        if self.exploration_floor > 0 and k > 1:
            p *= 1.0 - k * self.exploration_floor
            p += self.exploration_floor
        return p, s

    def probabilities(
        self, context: Mapping[str, Any], candidates: Sequence[str] | None = None
    ) -> dict[str, float]:
        """The distribution ``decide()`` would sample from in ``context`` (no logging, no
        caps bookkeeping). Used by offline evaluation to score a candidate policy."""
        allowed, _ = self._candidates(context, candidates, None)
        idx = np.fromiter((self.index_[a] for a in allowed), dtype=np.intp, count=len(allowed))
        x = self.featurizer_.transform_one(context)
        explore = not self.guardrails.no_explore_reasons(context)
        p, _ = self._distribution(x, idx, context, explore)
        return dict(zip(allowed, p.tolist(), strict=True))

    def decide(
        self,
        context: Mapping[str, Any],
        *,
        candidates: Sequence[str] | None = None,
        user_id: str | None = None,
        decision_id: str | None = None,
        ts: float | None = None,
    ) -> Decision:
        """Choose an action for one context, log it, and return the :class:`Decision`.

        Examples
        --------
        >>> from chatpersona.decide import LinUCB
        >>> p = LinUCB(["a", "b"], seed=0)
        >>> d = p.decide({"segment": "s"})
        >>> d.action in ("a", "b"), d.propensity
        (True, 0.5)
        """
        user = user_id if user_id is not None else context.get("user_id")
        user = None if user is None else str(user)
        now = time.time() if ts is None else ts
        guard = self.guardrails
        notes: list[str]
        if candidates is None and not guard.forbid and not guard.caps:
            allowed, notes, idx = list(self.actions), [], self._all_idx  # the common case
        else:
            allowed, notes = self._candidates(context, candidates, user, now)
            if len(allowed) == len(self.actions) and candidates is None:
                idx = self._all_idx
            else:
                idx = np.fromiter(
                    (self.index_[a] for a in allowed), dtype=np.intp, count=len(allowed)
                )
        x = self.featurizer_.transform_one(context)
        reasons = guard.no_explore_reasons(context) if guard.no_explore else []
        explore = not reasons
        fast = self._fast_distribution(x, explore) if idx is self._all_idx else None
        if fast is None:
            p, s = self._distribution(x, idx, context, explore)
            probs, values = p.tolist(), s.value.tolist()
        else:
            probs, values = fast
        # Inverse-CDF sampling in plain Python: faster than numpy for ~20 actions.
        u = self.rng_.random()
        acc, j = 0.0, -1
        for i, q in enumerate(probs):
            if q > 0.0:
                j = i
                acc += q
                if u < acc:
                    break
        a = j if idx is self._all_idx else int(idx[j])
        exploration = values[j] < max(values) - 1e-12
        explanation: dict[str, Any] = {"exploration": exploration}
        if reasons:
            explanation["no_explore"] = reasons
        if notes:
            explanation["guardrails"] = notes
        contrib = self._contributions(x, a)
        if contrib is not None:
            explanation["top_features"] = self._top_features(contrib)
        explanation.update(self._explain_extra(context, a))
        decision = Decision(
            decision_id=decision_id or secrets.token_hex(16),
            ts=now,
            decision_point=self.decision_point,
            action=self.actions[a],
            propensity=probs[j],
            candidates=allowed,
            probabilities=probs,
            policy=self.name,
            policy_version=self.version,
            context=dict(context),
            exploration=exploration,
            explore_allowed=explore,
            explanation=explanation,
            user_id=user,
            x=x,
        )
        self.n_decisions_ += 1
        if user is not None and self.actions[a] in self.guardrails.caps:
            self._shown[(user, self.actions[a])].append(now)
        sink = self.sink
        if sink is not None:
            write_decision = getattr(sink, "write_decision", None)
            if write_decision is not None:  # the sink encodes the Decision itself
                write_decision(decision)
            else:
                sink.write(decision.to_record())
        return decision

    def _top_features(self, contrib: np.ndarray) -> list[dict[str, Any]]:
        """The (up to) three largest contributions, largest magnitude first, zeros left out
        (ties keep ``argpartition``'s order, as logged since the first version)."""
        names = self.feature_names_
        if contrib.shape[0] > 3:
            top = np.argpartition(np.abs(contrib), -3)[-3:]
            pairs = list(zip(top.tolist(), contrib[top].tolist(), strict=True))
        else:
            pairs = list(enumerate(contrib.tolist()))
        pairs.sort(key=_neg_abs_second)
        return [{"feature": names[t], "contribution": round(v, 6)} for t, v in pairs if v != 0.0]

    def decide_batch(
        self, contexts: Sequence[Mapping[str, Any]], *, X: np.ndarray | None = None
    ) -> BatchDecisions:
        """Choose for many contexts at once (scoring, not logging: e.g. a campaign list).

        Guardrails apply per row (forbidden actions are not supported in batch: use
        ``decide()`` for decision points with forbid rules or caps).
        """
        if self.guardrails.forbid or self.guardrails.caps:
            raise ValidationError(
                "decide_batch does not apply forbid rules or caps; use decide() for this "
                f"decision point ({self.decision_point!r}).",
                code="batch_unsupported",
            )
        n = len(contexts) if X is None else X.shape[0]
        if self.guardrails.no_explore and len(contexts) != n:
            raise ValidationError(
                "decide_batch needs the contexts (not only X) to apply no-explore "
                f"guardrails: got {len(contexts)} contexts for {n} rows.",
                code="batch_contexts_missing",
            )
        if X is None:
            X = self.featurizer_.transform(contexts)
        idx = self._all_idx
        k = idx.shape[0]
        explore = np.ones(n, dtype=bool)
        if self.guardrails.no_explore and contexts:
            explore = np.array([not self.guardrails.no_explore_reasons(c) for c in contexts])
        S = self._batch_scores(X, idx)
        if S is None:
            P = np.empty((n, k))
            for i in range(n):
                P[i] = self._distribution(X[i], idx, contexts[i] if contexts else {}, explore[i])[0]
        else:
            best = S.max(axis=1, keepdims=True)
            ties = best - 1e-12 <= S
            P = ties / ties.sum(axis=1, keepdims=True)
            if self.exploration_floor > 0:
                f = self.exploration_floor
                P = np.where(explore[:, None], (1 - k * f) * P + f, P)
            if not explore.all():
                first = np.zeros_like(P)
                first[np.arange(n), ties.argmax(axis=1)] = 1.0
                P = np.where(explore[:, None], P, first)
        u = self.rng_.random(n)[:, None]
        choice = (np.cumsum(P, axis=1) < u * P.sum(axis=1, keepdims=True)).sum(axis=1)
        choice = np.minimum(choice, k - 1)
        self.n_decisions_ += n
        return BatchDecisions(
            actions=[self.actions[int(idx[c])] for c in choice],
            propensities=P[np.arange(n), choice],
            candidates=[self.actions[int(i)] for i in idx],
            probabilities=P,
        )

    def update(self, context: Mapping[str, Any], action: str, reward: float) -> None:
        """Learn from one reward in [0, 1] for ``action`` taken in ``context``."""
        self.update_x(self.featurizer_.transform_one(context), action, reward)

    def update_decision(self, decision: Decision, reward: float) -> None:
        """Learn from the reward of a :class:`Decision` this policy made."""
        x = decision.x if decision.x is not None else None
        if x is None:
            x = self.featurizer_.transform_one(decision.context)
        self.update_x(x, decision.action, reward)

    def update_x(self, x: np.ndarray, action: str, reward: float) -> None:
        """Learn from one reward given an already featurized context vector."""
        if action not in self.index_:
            raise ValidationError(
                f"Unknown action {action!r} for decision point {self.decision_point!r}. "
                f"Known: {', '.join(self.actions)}.",
                code="unknown_action",
                value=action,
            )
        r = float(reward)
        if not 0.0 <= r <= 1.0:
            raise ValidationError(
                f"A reward must be a number in [0, 1]. Got {reward!r} instead.",
                code="reward_out_of_range",
                value=reward,
            )
        self._update(x, self.index_[action], r)
        self.n_updates_ += 1

    # -- state ----------------------------------------------------------------------------

    def _state_arrays(self) -> dict[str, np.ndarray]:
        """Learned arrays to persist (subclasses with learned state override)."""
        return {}

    def _load_arrays(self, arrays: Mapping[str, np.ndarray]) -> None:  # noqa: B027
        """Restore what :meth:`_state_arrays` returned."""

    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """What the policy has learned: JSON-friendly metadata and numpy arrays.

        The metadata holds the kind, version, actions, context schema, counters and the
        random generator's state, so a restored policy continues exactly where it was.
        """
        meta = {
            "kind": self.kind,
            "version": self.version,
            "decision_point": self.decision_point,
            "actions": list(self.actions),
            "schema": self.schema.to_dict(),
            "n_decisions": self.n_decisions_,
            "n_updates": self.n_updates_,
            "rng": self.rng_.bit_generator.state,
        }
        return meta, self._state_arrays()

    def set_state(self, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        """Restore :meth:`get_state` output; the kind, actions and schema must match."""
        for key, mine in (
            ("kind", self.kind),
            ("actions", list(self.actions)),
            ("schema", self.schema.to_dict()),
        ):
            if meta.get(key) != mine:
                raise PlanError(
                    f"Saved policy state does not fit this policy: {key} is "
                    f"{meta.get(key)!r}, expected {mine!r} (decision point "
                    f"{self.decision_point!r}).",
                    code="state_mismatch",
                    key=key,
                )
        self._load_arrays(arrays)
        self.n_decisions_ = int(meta.get("n_decisions", 0))
        self.n_updates_ = int(meta.get("n_updates", 0))
        if meta.get("rng"):
            self.rng_.bit_generator.state = dict(meta["rng"])

    def params(self) -> dict[str, Any]:
        """Algorithm parameters (logged in reports; subclasses add theirs)."""
        return {"exploration_floor": self.exploration_floor, "seed": self.seed}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(actions={self.actions!r}, version={self.version!r})"

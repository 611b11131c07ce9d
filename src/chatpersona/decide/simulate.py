"""A support-chat simulator with hidden reward rates, to test policies before going live.

The world mirrors the generator's five latent segments (``chatpersona.datagen``): each
chat has a segment, an intent (drawn per segment), a channel and two numeric profile
features; every (segment, intent, action) has a hidden probability that the chat ends
well (reward 1, else 0). The oracle knows those rates and always picks the best action;
the best fixed action is the single action with the highest average rate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chatpersona.decide.base import DecisionSink, Policy
from chatpersona.decide.context import ContextSchema
from chatpersona.decide.log import reward_record
from chatpersona.exceptions import ParameterError

__all__ = ["SimulationResult", "Simulator", "World", "default_world"]

# The generator's segment names (chatpersona.datagen.segments.SEGMENT_NAMES), in order.
SEGMENTS = (
    "billing_focused",
    "mobile_shopper",
    "loyal_premium",
    "at_risk_complainer",
    "new_explorer",
)
SEGMENT_SHARES = (0.24, 0.26, 0.16, 0.14, 0.20)
INTENTS = (
    "track_order",
    "get_refund",
    "check_invoice",
    "payment_issue",
    "delivery_options",
    "recover_password",
)
CATEGORIES = ("ORDER", "REFUND", "INVOICE", "PAYMENT", "DELIVERY", "ACCOUNT")
CHANNELS = ("web", "mobile_app", "email", "whatsapp", "phone")
ACTIONS = ("concise", "empathetic", "formal", "self_service", "human_agent")

# P(intent | segment), rows follow SEGMENTS.
_INTENT_P = (
    (0.10, 0.15, 0.35, 0.30, 0.05, 0.05),
    (0.35, 0.10, 0.05, 0.10, 0.30, 0.10),
    (0.20, 0.20, 0.20, 0.15, 0.15, 0.10),
    (0.15, 0.40, 0.10, 0.20, 0.10, 0.05),
    (0.20, 0.10, 0.10, 0.10, 0.20, 0.30),
)
_CHANNEL_P = (
    (0.50, 0.10, 0.25, 0.05, 0.10),
    (0.10, 0.65, 0.05, 0.15, 0.05),
    (0.35, 0.20, 0.15, 0.10, 0.20),
    (0.30, 0.20, 0.15, 0.10, 0.25),
    (0.35, 0.35, 0.10, 0.15, 0.05),
)
# Hidden success rate by segment (rows) and action (columns) ...
_BASE = (
    (0.55, 0.35, 0.60, 0.40, 0.30),
    (0.60, 0.30, 0.25, 0.65, 0.20),
    (0.35, 0.50, 0.55, 0.20, 0.65),
    (0.20, 0.65, 0.30, 0.15, 0.60),
    (0.40, 0.45, 0.30, 0.60, 0.35),
)
# ... shifted by intent (rows follow INTENTS) ...
_INTENT_SHIFT = (
    (0.15, -0.05, -0.05, 0.15, -0.15),
    (-0.10, 0.10, 0.00, -0.10, 0.10),
    (0.00, -0.05, 0.10, 0.05, -0.05),
    (-0.05, 0.05, 0.05, -0.10, 0.10),
    (0.10, 0.00, -0.05, 0.15, -0.10),
    (0.05, -0.05, 0.00, 0.20, -0.10),
)
_WORLD_SEED = 20261129  # ... plus small fixed segment x intent interactions.
_STREAM = 0x5EED


@dataclass(frozen=True)
class World:
    """The hidden truth of a simulation: who comes, with what, and what works."""

    segments: tuple[str, ...]
    segment_p: np.ndarray
    intents: tuple[str, ...]
    categories: tuple[str, ...]
    intent_p: np.ndarray  # (segments, intents)
    channels: tuple[str, ...]
    channel_p: np.ndarray  # (segments, channels)
    actions: tuple[str, ...]
    rates: np.ndarray  # (segments, intents, actions), each in (0, 1)

    @property
    def schema(self) -> ContextSchema:
        """The context schema policies use in this world (one-hots + two numeric features)."""
        return ContextSchema(
            segments=self.segments,
            intents=self.intents,
            channels=self.channels,
            numeric=("tenure_years", "chats_30d"),
            cross=False,
        )


def default_world() -> World:
    """The documented world (fixed: it does not depend on any run's seed)."""
    rng = np.random.default_rng(_WORLD_SEED)
    base = np.asarray(_BASE)[:, None, :] + np.asarray(_INTENT_SHIFT)[None, :, :]
    noise = rng.uniform(-0.05, 0.05, size=base.shape)
    return World(
        segments=SEGMENTS,
        segment_p=np.asarray(SEGMENT_SHARES),
        intents=INTENTS,
        categories=CATEGORIES,
        intent_p=np.asarray(_INTENT_P),
        channels=CHANNELS,
        channel_p=np.asarray(_CHANNEL_P),
        actions=ACTIONS,
        rates=np.clip(base + noise, 0.02, 0.95),
    )


@dataclass
class SimulationResult:
    """Outcome of :meth:`Simulator.run` (``to_dict()`` is what ``--json`` prints)."""

    policy: str
    chats: int
    seed: int
    mean_reward: float
    expected_mean_reward: float
    oracle_mean_reward: float
    best_fixed_mean_reward: float
    best_fixed_action: str
    fixed_mean_rewards: dict[str, float]
    action_counts: dict[str, int]
    curve_t: list[int] = field(default_factory=list)
    curve_policy: list[float] = field(default_factory=list)
    curve_oracle: list[float] = field(default_factory=list)
    curve_best_fixed: list[float] = field(default_factory=list)

    @property
    def ratio_to_oracle(self) -> float:
        """Expected mean reward of the policy / the oracle's."""
        return self.expected_mean_reward / self.oracle_mean_reward

    @property
    def lift_over_best_fixed(self) -> float:
        """Relative gain of the policy over the best fixed action (0.15 = 15% better)."""
        return self.expected_mean_reward / self.best_fixed_mean_reward - 1.0

    @property
    def cumulative_regret(self) -> float:
        """Expected reward lost against the oracle over the whole run."""
        return (self.oracle_mean_reward - self.expected_mean_reward) * self.chats

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (curves included)."""
        return {
            "policy": self.policy,
            "chats": self.chats,
            "seed": self.seed,
            "mean_reward": self.mean_reward,
            "expected_mean_reward": self.expected_mean_reward,
            "oracle_mean_reward": self.oracle_mean_reward,
            "best_fixed_mean_reward": self.best_fixed_mean_reward,
            "best_fixed_action": self.best_fixed_action,
            "ratio_to_oracle": self.ratio_to_oracle,
            "lift_over_best_fixed": self.lift_over_best_fixed,
            "cumulative_regret": self.cumulative_regret,
            "fixed_mean_rewards": self.fixed_mean_rewards,
            "action_counts": self.action_counts,
            "curves": {
                "t": self.curve_t,
                "policy": self.curve_policy,
                "oracle": self.curve_oracle,
                "best_fixed": self.curve_best_fixed,
            },
        }


class Simulator:
    """Draws chats from a :class:`World`, asks a policy, and draws rewards.

    Parameters
    ----------
    world:
        The hidden truth (default :func:`default_world`).
    seed:
        Seeds the chats and rewards drawn (the policy has its own seed).

    Examples
    --------
    >>> from chatpersona.decide import FixedPolicy
    >>> sim = Simulator(seed=3)
    >>> res = sim.run(FixedPolicy(list(sim.world.actions), action="concise"), 500)
    >>> round(res.expected_mean_reward, 3) == round(res.fixed_mean_rewards["concise"], 3)
    True
    """

    def __init__(self, world: World | None = None, *, seed: int = 0) -> None:
        self.world = world or default_world()
        self.seed = seed

    @property
    def schema(self) -> ContextSchema:
        """The context schema of the world."""
        return self.world.schema

    def sample(self, n: int, rng: np.random.Generator) -> tuple[list[dict[str, Any]], np.ndarray]:
        """``n`` chat contexts and their (segment, intent) indices (shape ``(n, 2)``)."""
        w = self.world
        s = rng.choice(len(w.segments), size=n, p=w.segment_p)
        u = rng.random(n)
        i = (u[:, None] > np.cumsum(w.intent_p[s], axis=1)).sum(axis=1)
        i = np.minimum(i, len(w.intents) - 1)
        u = rng.random(n)
        c = (u[:, None] > np.cumsum(w.channel_p[s], axis=1)).sum(axis=1)
        c = np.minimum(c, len(w.channels) - 1)
        tenure = np.round(rng.gamma(2.0, 0.5 + 0.3 * s), 3)
        chats = rng.poisson(1.0 + s)
        hours = rng.integers(0, 24, n)
        users = rng.integers(0, max(1, n // 3), n)
        contexts = [
            {
                "user_id": f"sim-{users[k]}",
                "segment": w.segments[s[k]],
                "intent": w.intents[i[k]],
                "category": w.categories[i[k]],
                "channel": w.channels[c[k]],
                "features": {"tenure_years": float(tenure[k]), "chats_30d": float(chats[k])},
                "hour": int(hours[k]),
            }
            for k in range(n)
        ]
        return contexts, np.stack([s, i], axis=1)

    def run(
        self,
        policy: Policy,
        chats: int,
        *,
        log: DecisionSink | None = None,
        curve_points: int = 200,
        progress: Callable[[int], None] | None = None,
    ) -> SimulationResult:
        """Run ``chats`` chats: decide, draw the reward, let the policy learn.

        With ``log`` every decision and reward is written there (``log`` becomes the
        policy's sink for the run).
        """
        if not isinstance(chats, int) or chats < 1:
            raise ParameterError("Simulator", "chats", "an int >= 1", chats)
        w = self.world
        unknown = [a for a in policy.actions if a not in w.actions]
        if unknown:
            raise ParameterError("Simulator", "policy.actions", f"a subset of {w.actions}", unknown)
        # A stream of its own: a policy seeded with the same number must not draw the very
        # same uniforms (its choices would then depend on the context through the seed,
        # and logged propensities would lie).
        rng = np.random.default_rng([self.seed, _STREAM])
        contexts, si = self.sample(chats, rng)
        draws = rng.random(chats)
        amap = np.array([w.actions.index(a) for a in policy.actions])
        rates = w.rates[si[:, 0], si[:, 1]][:, amap]  # (chats, policy actions)
        old_sink = policy.sink
        if log is not None:
            policy.sink = log
        t0 = 1_780_000_000.0
        realized = np.zeros(chats)
        expected = np.zeros(chats)
        counts = np.zeros(len(policy.actions), dtype=np.int64)
        step = max(1, chats // 100)
        try:
            for t, ctx in enumerate(contexts):
                d = policy.decide(ctx, ts=t0 + t)
                a = policy.index_[d.action]
                r = 1.0 if draws[t] < rates[t, a] else 0.0
                realized[t], expected[t] = r, rates[t, a]
                counts[a] += 1
                policy.update_decision(d, r)
                if log is not None:
                    log.write(
                        reward_record(d.decision_id, r, "explicit", t0 + t, None, d.decision_point)
                    )
                if progress is not None and (t + 1) % step == 0:
                    progress(step)
        finally:
            policy.sink = old_sink
        oracle = rates.max(axis=1)
        fixed = rates.mean(axis=0)
        best = int(np.argmax(fixed))
        pts = np.unique(np.linspace(1, chats, min(curve_points, chats)).astype(int))
        cum_p, cum_o, cum_f = np.cumsum(expected), np.cumsum(oracle), np.cumsum(rates[:, best])
        return SimulationResult(
            policy=policy.name,
            chats=chats,
            seed=self.seed,
            mean_reward=float(realized.mean()),
            expected_mean_reward=float(expected.mean()),
            oracle_mean_reward=float(oracle.mean()),
            best_fixed_mean_reward=float(fixed[best]),
            best_fixed_action=policy.actions[best],
            fixed_mean_rewards={a: float(v) for a, v in zip(policy.actions, fixed, strict=True)},
            action_counts={a: int(c) for a, c in zip(policy.actions, counts, strict=True)},
            curve_t=pts.tolist(),
            curve_policy=cum_p[pts - 1].round(4).tolist(),
            curve_oracle=cum_o[pts - 1].round(4).tolist(),
            curve_best_fixed=cum_f[pts - 1].round(4).tolist(),
        )

    def policy_value(self, policy: Policy, n: int = 10_000, *, seed: int = 12345) -> float:
        """The true expected reward of ``policy`` as it stands (it does not learn here):
        the average over ``n`` fresh contexts of ``sum_a pi(a | x) * rate(x, a)``."""
        w = self.world
        contexts, si = self.sample(n, np.random.default_rng([seed, _STREAM, 1]))
        total = 0.0
        for ctx, (s, i) in zip(contexts, si, strict=True):
            probs = policy.probabilities(ctx)
            total += sum(p * w.rates[s, i, w.actions.index(a)] for a, p in probs.items())
        return total / n

"""Produce a fixed-seed decision log (decide + update for several policies and guardrails).

``tests/unit/decide/data/golden_decisions.jsonl`` was written by this script from the
decide code *before* the hot-path optimizations; ``test_decide_golden_log.py`` checks the
current code writes byte-identical lines. Regenerate only when the log format changes on
purpose: ``.venv/bin/python tests/unit/decide/golden_log.py``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from chatpersona.decide import (
    ContextSchema,
    EpsilonGreedy,
    Guardrails,
    JsonlDecisionLog,
    LinearThompson,
    LinUCB,
)

GOLDEN = Path(__file__).resolve().parent / "data" / "golden_decisions.jsonl"
ACTIONS = [f"act{i}" for i in range(7)]
SCHEMA = ContextSchema(
    segments=("loyal", "vip_gold", "new"),
    intents=("track_order", "cancel_order", "complaint"),
    channels=("web", "app"),
    numeric=("n0", "n1", "n2", "n3", "n4"),
    cross=True,
)
GUARDS = {
    "no_explore": [{"name": "sensitive", "when": {"intent": ["*cancel*", "*complain*"]}}],
    "forbid": [{"when": {"consent.marketing": False}, "actions": ["act6"]}],
    "caps": {"act0": {"per_user": 2, "window_hours": 1}},
}


def contexts(n: int, seed: int) -> list[dict[str, Any]]:
    """Varied contexts: unknown categories, missing/str/bool/None/non-finite features."""
    rng = np.random.default_rng(seed)
    segs = [*SCHEMA.segments, "other"]
    ints = [*SCHEMA.intents, "refund"]
    out = []
    for i in range(n):
        feats: dict[str, Any] = {f"n{j}": round(float(rng.normal()), 4) for j in range(5)}
        if i % 7 == 0:
            feats["n1"] = "2.5"
        if i % 11 == 0:
            feats["n2"] = None
        if i % 13 == 0:
            feats["n3"] = True
        if i % 17 == 0:
            feats["n4"] = float("inf")
        ctx: dict[str, Any] = {
            "user_id": f"u{i % 9}",
            "segment": segs[int(rng.integers(0, len(segs)))],
            "intent": ints[int(rng.integers(0, len(ints)))],
            "channel": ["web", "app", "sms"][int(rng.integers(0, 3))],
            "features": feats,
            "consent": {"marketing": bool(i % 5)},
        }
        if i % 19 == 0:
            ctx["n0"] = 1.5
            del feats["n0"]
        out.append(ctx)
    return out


def write_log(path: Path, n: int = 120) -> None:
    """Decide and learn with three bandits (same contexts, fixed ids and clock)."""
    ctxs = contexts(n, 7)
    rewards = np.random.default_rng(8).random(n)
    with JsonlDecisionLog(path, flush_every=16) as log:
        for k, cls in enumerate((LinUCB, EpsilonGreedy, LinearThompson)):
            policy = cls(
                ACTIONS,
                schema=SCHEMA,
                exploration_floor=0.01,
                guardrails=Guardrails.from_dict(GUARDS),
                seed=11 + k,
                sink=log,
            )
            for i, ctx in enumerate(ctxs):
                d = policy.decide(ctx, decision_id=f"{cls.kind}-{i}", ts=1_800_000_000.0 + i * 60)
                policy.update_decision(d, float(rewards[i]))
            explicit = policy.decide(
                ctxs[0], candidates=["act1", "act2", "act3"], decision_id="cand", ts=1.9e9
            )
            policy.update_decision(explicit, 1.0)
        # the common case: standard guardrails only (no forbid rules, no caps)
        plain = LinUCB(
            ACTIONS,
            schema=SCHEMA,
            exploration_floor=0.01,
            guardrails=Guardrails.standard(),
            seed=5,
            sink=log,
        )
        for i, ctx in enumerate(ctxs):
            d = plain.decide(ctx, decision_id=f"plain-{i}", ts=1_800_000_000.0 + i * 60)
            plain.update_decision(d, float(rewards[i]))


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "log.jsonl"
        write_log(out)
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_bytes(out.read_bytes())
    print(f"wrote {GOLDEN} ({GOLDEN.stat().st_size} bytes)")

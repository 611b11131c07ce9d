"""Stand-ins and an independent oracle shared by the stream tests."""

from __future__ import annotations

import itertools
import json
import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

HOUR = 3600.0
BASE = datetime(2026, 5, 1, tzinfo=UTC).timestamp()


@dataclass
class Result:
    ok: bool
    record: dict[str, Any] | None
    reason: str | None = None
    column: str | None = None


class AgeCleaner:
    """Stand-in for FittedPlan: ``age`` must be an integer 0..120."""

    def transform_record(self, row: dict[str, Any]) -> Result:
        try:
            age = int(str(row.get("age", "")).strip())
        except ValueError:
            return Result(False, None, "unparseable", "age")
        if not 0 <= age <= 120:
            return Result(False, None, "outlier", "age")
        return Result(True, {**row, "age": age})


@dataclass
class Assignment:
    segment_id: str
    segment_name: str
    model_version: str


class ThresholdModel:
    """Stand-in for SegmentModel: busy users (>= ``k`` events in 30 d) vs quiet ones."""

    def __init__(self, k: float = 3, version: str = "v1") -> None:
        self.k, self.version = k, version

    def assign_one(self, features: dict[str, float]) -> Assignment:
        busy = features.get("events_30d", 0.0) >= self.k
        return Assignment("1" if busy else "0", "busy" if busy else "quiet", self.version)


def make_events(seed: int, users: int = 5, chats: int = 20, span_h: float = 72) -> list[dict]:
    """Chats (started, 1-3 messages, ended, feedback) sorted by ts, seeded."""
    rng = random.Random(seed)
    out = []
    for c in range(chats):
        uid = f"u{rng.randrange(users)}"
        t = BASE + rng.uniform(0, span_h * HOUR)
        chat = f"chat{seed}-{c}"
        channel = rng.choice(["web", "email", "phone"])
        device = rng.choice(["desktop", "mobile"])

        def ev(
            kind: str,
            ts: float,
            payload: dict,
            n: int,
            chat: str = chat,
            uid: str = uid,
            channel: str = channel,
            device: str = device,
        ) -> dict:
            return {
                "event_id": f"{chat}-{n}",
                "user_id": uid,
                "type": kind,
                "ts": datetime.fromtimestamp(ts, UTC).isoformat(),
                "channel": channel,
                "device": device,
                "payload": {"chat_id": chat, **payload},
            }

        out.append(ev("chat_started", t, {}, 0))
        k = 1
        for _ in range(rng.randint(1, 3)):
            t += rng.uniform(5, 120)
            out.append(ev("message", t, {"intent": rng.choice(["a", "b"]), "text": "hi"}, k))
            k += 1
        t += rng.uniform(5, 60)
        out.append(ev("chat_ended", t, {"resolved": rng.random() < 0.7, "handle_time_s": 30.0}, k))
        if rng.random() < 0.6:
            fb: dict[str, Any] = {"csat": rng.randint(1, 5)}
            if rng.random() < 0.5:
                fb["nps"] = rng.randint(0, 10)
            out.append(ev("feedback", t + 10, fb, k + 1))
    out.sort(key=lambda e: e["ts"])
    return out


def to_bytes(events: list[dict]) -> list[bytes]:
    return [json.dumps(e).encode() for e in events]


def oracle(events: list[dict], gap: float = 1800.0) -> dict[str, dict[str, Any]]:
    """Per user, straight from the distinct events: what state and profile must say."""
    by_user: dict[str, dict[str, dict]] = defaultdict(dict)
    for e in events:
        by_user[e["user_id"]][e["event_id"]] = e
    out = {}
    for uid, evs in by_user.items():
        items = sorted(evs.values(), key=lambda e: (e["ts"], e["event_id"]))
        ts = [datetime.fromisoformat(e["ts"]).timestamp() for e in items]
        top = int(max(ts) // HOUR)
        sessions = 1
        for a, b in itertools.pairwise(ts):
            if b - a > gap:
                sessions += 1
        csats = [e["payload"]["csat"] for e in items if "csat" in e["payload"]]
        last = items[-1]
        out[uid] = {
            "events_total": len(items),
            "events_24h": sum(1 for t in ts if top - 24 < int(t // HOUR) <= top),
            "events_7d": sum(1 for t in ts if top - 168 < int(t // HOUR) <= top),
            "sessions_30d": sessions,
            "chats": {e["payload"]["chat_id"] for e in items},
            "csat_count": len(csats),
            "csat_sum": sum(csats),
            "last_channel": last["channel"],
        }
    return out

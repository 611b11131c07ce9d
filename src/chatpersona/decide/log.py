"""The decision log: one JSON object per line, decisions and their rewards.

A ``decision`` line holds ``decision_id, ts, decision_point, user_id, policy,
policy_version, context, candidates, probabilities, action, propensity, exploration,
explanation``. A ``reward`` line holds ``decision_id, ts, reward, source`` (``explicit``,
``outcomes`` or ``timeout``) and the raw ``outcomes`` when given. Offline evaluation
joins them by ``decision_id``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from chatpersona.exceptions import InputError

if TYPE_CHECKING:
    from chatpersona.decide.base import Decision

__all__ = [
    "JsonlDecisionLog",
    "LoggedDecision",
    "MemoryDecisionLog",
    "read_decision_log",
    "reward_record",
]


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str, check_circular=False)

# The C encoder behind _ENCODER.encode(), built once (encode() builds one per call): same
# output, about 1 us less per call. None on interpreters without the C accelerator.
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_C_ENCODER = (
    None
    if _c_make_encoder is None
    else _c_make_encoder(
        None, str, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True
    )
)
_encode_str = json.encoder.encode_basestring_ascii


def _fast_encode(obj: Any) -> str:
    """``_ENCODER.encode(obj)``, faster for the values a decision record holds."""
    if type(obj) is str:
        return str(_encode_str(obj))
    if obj is None:
        return "null"
    if _C_ENCODER is None:  # pragma: no cover
        return _ENCODER.encode(obj)
    return "".join(_C_ENCODER(obj, 0))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def reward_record(
    decision_id: str,
    reward: float,
    source: str,
    ts: float,
    outcomes: dict[str, Any] | None = None,
    decision_point: str | None = None,
) -> dict[str, Any]:
    """The log record of one reward."""
    rec: dict[str, Any] = {
        "type": "reward",
        "decision_id": decision_id,
        "ts": _iso(ts),
        "reward": reward,
        "source": source,
    }
    if decision_point is not None:
        rec["decision_point"] = decision_point
    if outcomes is not None:
        rec["outcomes"] = outcomes
    return rec


class MemoryDecisionLog:
    """Keeps records in a list (tests, the simulator, the demo)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def write(self, record: dict[str, Any]) -> None:
        """Append one record."""
        self.records.append(record)

    def dump(self, path: str | Path) -> None:
        """Write every record to a JSONL file."""
        with Path(path).open("w", encoding="utf-8") as fh:
            for rec in self.records:
                fh.write(json.dumps(rec, separators=(",", ":"), default=str) + "\n")


class JsonlDecisionLog:
    """Appends records to a JSONL file (line-buffered by ``flush_every``; thread-safe).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "d.jsonl"
    >>> with JsonlDecisionLog(path) as log:
    ...     log.write({"type": "reward", "decision_id": "x", "reward": 1.0})
    >>> path.read_text().count("\\n")
    1
    """

    def __init__(self, path: str | Path, *, flush_every: int = 256) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.flush_every = flush_every
        # A large buffer: one write(2) per ~1 MiB instead of per ~8 KiB of log lines.
        self._fh: TextIO = self.path.open("a", encoding="utf-8", buffering=1 << 20)
        self._pending = 0
        self._lock = threading.Lock()
        self._cands_json: dict[tuple[str, ...], str] = {}

    def write(self, record: dict[str, Any]) -> None:
        """Append one record."""
        line = _ENCODER.encode(record)
        with self._lock:
            self._fh.write(line + "\n")
            self._pending += 1
            if self._pending >= self.flush_every:
                self._fh.flush()
                self._pending = 0

    def write_decision(self, decision: Decision) -> None:
        """Append one decision's record: the same line as ``write(decision.to_record())``,
        encoded field by field (the full-candidates list is encoded once and reused).
        A subclass that overrides ``write`` gets ``write(decision.to_record())``."""
        if type(self).write is not JsonlDecisionLog.write:
            self.write(decision.to_record())
            return
        cands = decision.candidates
        key = tuple(cands)
        cached = self._cands_json.get(key)
        if cached is None:
            cached = _fast_encode(cands)
            if len(self._cands_json) < 256:
                self._cands_json[key] = cached
        line = decision.to_json(_fast_encode, cached)
        with self._lock:
            self._fh.write(line + "\n")
            self._pending += 1
            if self._pending >= self.flush_every:
                self._fh.flush()
                self._pending = 0

    def flush(self) -> None:
        """Flush buffered lines to the file."""
        with self._lock:
            self._fh.flush()
            self._pending = 0

    def close(self) -> None:
        """Flush and close the file."""
        with self._lock:
            if not self._fh.closed:
                self._fh.close()

    def __enter__(self) -> JsonlDecisionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class LoggedDecision:
    """A decision joined with its reward (``reward`` is ``None`` when none was logged)."""

    line: int
    record: dict[str, Any]
    reward: float | None
    reward_source: str | None

    @property
    def context(self) -> dict[str, Any]:
        """The logged context."""
        ctx: dict[str, Any] = self.record.get("context") or {}
        return ctx

    @property
    def action(self) -> str:
        """The logged chosen action."""
        return str(self.record["action"])

    @property
    def propensity(self) -> float:
        """The logged probability of the chosen action."""
        return float(self.record["propensity"])

    @property
    def candidates(self) -> list[str]:
        """The logged candidate actions."""
        return [str(a) for a in self.record["candidates"]]


def _iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        with path.open(encoding="utf-8") as fh:
            for no, line in enumerate(fh, start=1):
                if line.strip():
                    yield no, line
    except OSError as exc:
        raise InputError(f"Cannot read decision log: {exc}", file=str(path)) from exc


def read_decision_log(path: str | Path) -> list[LoggedDecision]:
    """Read a decision log and join rewards to decisions (the last reward of a decision wins).

    Raises
    ------
    InputError
        A line is not JSON, a decision lacks a field, or a decision has no usable
        propensity (the error names the file, line and value); offline evaluation needs
        the probability each logged action was chosen with.
    """
    p = Path(path)
    decisions: dict[str, LoggedDecision] = {}
    rewards: dict[str, tuple[float, str]] = {}
    for no, line in _iter_lines(p):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(
                f"Line is not valid JSON ({exc.msg})", file=str(p), row=no, code="bad_json"
            ) from exc
        if not isinstance(rec, dict):
            raise InputError("Line is not a JSON object", file=str(p), row=no, value=rec)
        kind = rec.get("type", "decision")
        if kind == "reward":
            r = rec.get("reward")
            if isinstance(r, bool) or not isinstance(r, int | float) or not 0 <= r <= 1:
                raise InputError(
                    "A reward line needs a 'reward' in [0, 1]",
                    file=str(p),
                    row=no,
                    column="reward",
                    value=r,
                    code="bad_reward",
                )
            rewards[str(rec.get("decision_id"))] = (float(r), str(rec.get("source", "explicit")))
            continue
        for key in ("decision_id", "action", "candidates", "context"):
            if key not in rec:
                raise InputError(
                    f"A decision line lacks {key!r}",
                    file=str(p),
                    row=no,
                    column=key,
                    code="missing_field",
                )
        prop = rec.get("propensity")
        if prop is None:
            raise InputError(
                f"Line {no} of the decision log has no propensity, so no off-policy estimate "
                "is possible (log the probability of each chosen action, as chatpersona "
                "policies do)",
                file=str(p),
                row=no,
                column="propensity",
                code="missing_propensity",
            )
        if isinstance(prop, bool) or not isinstance(prop, int | float) or not 0 < prop <= 1:
            raise InputError(
                f"Line {no}: a propensity must be a number in (0, 1]",
                file=str(p),
                row=no,
                column="propensity",
                value=prop,
                code="bad_propensity",
            )
        did = str(rec["decision_id"])
        decisions[did] = LoggedDecision(no, rec, None, None)
    for did, (r, src) in rewards.items():
        if did in decisions:
            decisions[did].reward = r
            decisions[did].reward_source = src
    return list(decisions.values())

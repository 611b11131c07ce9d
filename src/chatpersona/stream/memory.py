"""``memory://NAME`` — an in-process transport for the demo, the API in one process and tests.

Transports opened with the same NAME in one process share one bus. Messages are routed to
shards by user hash; each consumer owns a fixed subset of shards, so one user's events are
handled by one consumer in order, exactly like the Redis and Kafka transports.
"""

from __future__ import annotations

import heapq
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from chatpersona.stream.base import (
    DeadLetter,
    Delivery,
    Transport,
    int_option,
    parse_options,
    register_transport,
    shard_of,
    user_of,
)
from chatpersona.stream.events import Event

__all__ = ["MemoryTransport", "reset_memory_buses"]


@dataclass
class _Bus:
    shards: int
    lock: threading.Condition = field(default_factory=threading.Condition)
    queues: list[deque[tuple[int, bytes, float]]] = field(default_factory=list)
    redo: list[list[tuple[int, bytes, float]]] = field(default_factory=list)
    seq: int = 0
    attempts: dict[int, int] = field(default_factory=dict)
    pending: dict[int, tuple[str, int, bytes, float]] = field(default_factory=dict)
    consumers: list[str] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.queues = [deque() for _ in range(self.shards)]
        self.redo = [[] for _ in range(self.shards)]

    def owned(self, consumer: str) -> list[int]:
        if consumer not in self.consumers:
            return []
        idx, n = self.consumers.index(consumer), len(self.consumers)
        return [s for s in range(self.shards) if s % n == idx]

    def requeue(self, seq: int) -> None:
        _owner, shard, raw, at = self.pending.pop(seq)
        heapq.heappush(self.redo[shard], (seq, raw, at))


_BUSES: dict[str, _Bus] = {}
_BUSES_LOCK = threading.Lock()


def reset_memory_buses() -> None:
    """Forget every in-process bus (tests)."""
    with _BUSES_LOCK:
        _BUSES.clear()


@register_transport("memory")
class MemoryTransport(Transport):
    """The in-process transport.

    Examples
    --------
    >>> from chatpersona.stream import open_transport
    >>> t = open_transport("memory://doc-memory")
    >>> t.publish([b'{"user_id": "u1", "type": "message"}'])
    1
    >>> [d.raw for d in t.receive(timeout=0)]
    [b'{"user_id": "u1", "type": "message"}']
    """

    scheme = "memory"

    def __init__(self, name: str = "default", *, shards: int = 8, max_deliveries: int = 5) -> None:
        with _BUSES_LOCK:
            bus = _BUSES.get(name)
            if bus is None:
                bus = _BUSES[name] = _Bus(shards)
        self.name = name
        self._bus = bus
        self.max_deliveries = max_deliveries
        self.consumer = uuid.uuid4().hex[:12]
        self._registered = False

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MemoryTransport:
        netloc, path, query = parse_options(url)
        query.update({k: str(v) for k, v in options.items()})
        name = "/".join(p for p in (netloc, path) if p) or "default"
        return cls(
            name,
            shards=int_option("MemoryTransport", query, "shards", 8),
            max_deliveries=int_option("MemoryTransport", query, "max_deliveries", 5),
        )

    def publish(self, items: Sequence[Event | bytes]) -> int:
        bus = self._bus
        now = time.time()
        with bus.lock:
            for item in items:
                if isinstance(item, Event):
                    raw, uid = item.to_bytes(), item.user_id
                else:
                    raw, uid = bytes(item), user_of(item)
                bus.seq += 1
                bus.queues[shard_of(uid, bus.shards)].append((bus.seq, raw, now))
            bus.lock.notify_all()
        return len(items)

    def receive(self, max_messages: int = 500, timeout: float = 1.0) -> list[Delivery]:
        bus = self._bus
        deadline = time.monotonic() + max(timeout, 0.0)
        with bus.lock:
            if not self._registered:
                bus.consumers.append(self.consumer)
                self._registered = True
            while True:
                out = self._take(max_messages)
                remaining = deadline - time.monotonic()
                if out or remaining <= 0:
                    return out
                bus.lock.wait(remaining)

    def _take(self, max_messages: int) -> list[Delivery]:
        bus = self._bus
        out: list[Delivery] = []
        for shard in bus.owned(self.consumer):
            while len(out) < max_messages:
                if bus.redo[shard]:
                    seq, raw, at = heapq.heappop(bus.redo[shard])
                elif bus.queues[shard]:
                    seq, raw, at = bus.queues[shard].popleft()
                else:
                    break
                attempt = bus.attempts.get(seq, 0) + 1
                if attempt > self.max_deliveries:
                    bus.attempts.pop(seq, None)
                    bus.dead.append(
                        DeadLetter(
                            "max_deliveries",
                            f"delivered {attempt - 1} times without an ack",
                            raw,
                            str(seq),
                            attempt - 1,
                        )
                    )
                    continue
                bus.attempts[seq] = attempt
                bus.pending[seq] = (self.consumer, shard, raw, at)
                out.append(Delivery(str(seq), raw, str(shard), attempt, at))
        return out

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        bus = self._bus
        with bus.lock:
            for d in deliveries:
                seq = int(d.id)
                bus.pending.pop(seq, None)
                bus.attempts.pop(seq, None)

    def nack(self, deliveries: Sequence[Delivery]) -> None:
        bus = self._bus
        with bus.lock:
            for d in deliveries:
                if int(d.id) in bus.pending:
                    bus.requeue(int(d.id))
            bus.lock.notify_all()

    def dead_letter(self, delivery: Delivery, reason: str, detail: str = "") -> None:
        bus = self._bus
        with bus.lock:
            bus.dead.append(DeadLetter(reason, detail, delivery.raw, delivery.id, delivery.attempt))
            bus.pending.pop(int(delivery.id), None)
            bus.attempts.pop(int(delivery.id), None)

    def dead_letters(self, limit: int = 1000) -> list[DeadLetter]:
        with self._bus.lock:
            return list(self._bus.dead[:limit])

    def stats(self) -> dict[str, int]:
        bus = self._bus
        with bus.lock:
            lag = sum(len(q) for q in bus.queues) + sum(len(r) for r in bus.redo)
            return {"pending": len(bus.pending), "lag": lag, "dead_letters": len(bus.dead)}

    def close(self) -> None:
        """Leave the bus: this consumer's unacked deliveries go back for redelivery."""
        bus = self._bus
        with bus.lock:
            for seq in [s for s, p in bus.pending.items() if p[0] == self.consumer]:
                bus.requeue(seq)
            if self.consumer in bus.consumers:
                bus.consumers.remove(self.consumer)
            self._registered = False
            bus.lock.notify_all()

"""``redis://host:port/STREAM`` — Redis Streams with a consumer group, sharded by user.

Layout (all under the STREAM name): ``STREAM:0`` .. ``STREAM:{N-1}`` shard streams (a user
always lands in the same one), ``STREAM:dlq`` the dead-letter stream, ``STREAM:lease:i``
shard leases and ``STREAM:workers`` the live-worker heartbeat set.

Why leases: a consumer group hands entries to any consumer, which would let two workers
process one user's events at once. Each shard is instead leased (``SET NX PX``) to one
worker, like a Kafka partition; the leases are rebalanced as workers come and go. A
worker that takes over a shard first claims the entries its previous owner left pending
(``XAUTOCLAIM``), so nothing acked-late is lost; entries delivered ``max_deliveries``
times go to the dead-letter stream instead of being retried forever.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections.abc import Sequence
from typing import Any

from chatpersona.exceptions import BackendError
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

__all__ = ["RedisStreamsTransport"]

_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
# Dead-letter and ack atomically; the marker makes a repeated call (after a crash between
# the two) add the entry only once.
_DEAD = """
if redis.call('set', KEYS[1], '1', 'NX', 'EX', ARGV[7]) then
  redis.call('xadd', KEYS[2], '*', 'raw', ARGV[3], 'reason', ARGV[4], 'detail', ARGV[5],
             'source', ARGV[2], 'shard', KEYS[3], 'attempts', ARGV[6])
end
redis.call('xack', KEYS[3], ARGV[1], ARGV[2])
return redis.call('xdel', KEYS[3], ARGV[2])
"""


MEMBERSHIP_S = 0.2
"""How often (at most) a consumer re-counts the live workers to hand over or take shards."""


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@register_transport("redis", "rediss")
class RedisStreamsTransport(Transport):
    """Redis Streams transport.

    Parameters
    ----------
    redis_url:
        ``redis://host:port/DB`` of the server.
    stream:
        Base name of the shard streams.
    shards, group, max_deliveries, lease_ms:
        Number of shard streams (fixed for the life of the stream), consumer group name,
        deliveries before dead-lettering, and how long a dead worker's shards stay locked.
        URL query options of the same names set them:
        ``redis://127.0.0.1:6379/events?shards=8&group=workers&lease_ms=10000``. A lease
        must outlive the slowest batch; a killed worker's shards wait that long.
    """

    scheme = "redis"

    def __init__(
        self,
        redis_url: str,
        stream: str,
        *,
        shards: int = 8,
        group: str = "chatpersona",
        max_deliveries: int = 5,
        lease_ms: int = 10_000,
        dlq_ttl_s: int = 7 * 86400,
    ) -> None:
        import redis

        self.stream = stream
        self.shards = shards
        self.group = group
        self.max_deliveries = max_deliveries
        self.lease_ms = lease_ms
        self.dlq_ttl_s = dlq_ttl_s
        self.consumer = f"c-{uuid.uuid4().hex[:12]}"
        self._client: Any = redis.Redis.from_url(redis_url)
        self._renew = self._client.register_script(_RENEW)
        self._release = self._client.register_script(_RELEASE)
        self._dead = self._client.register_script(_DEAD)
        self._owned: set[int] = set()
        self._recover: set[int] = set()
        self._groups_ready = False
        self._next_rebalance = 0.0
        self._next_membership = 0.0
        self._rng = random.Random()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisStreamsTransport:
        netloc, path, query = parse_options(url)
        query.update({k: str(v) for k, v in options.items()})
        if not path:
            raise BackendError(
                f"A Redis Streams URL needs a stream name: redis://host:port/STREAM (got {url!r})",
                url=url,
            )
        db = query.get("db", "0")
        scheme = url.split("://", 1)[0]
        owner = "RedisStreamsTransport"
        return cls(
            f"{scheme}://{netloc}/{db}",
            path,
            shards=int_option(owner, query, "shards", 8),
            group=query.get("group", "chatpersona"),
            max_deliveries=int_option(owner, query, "max_deliveries", 5),
            lease_ms=int_option(owner, query, "lease_ms", 10_000, low=100),
        )

    # -- keys -------------------------------------------------------------------------
    def shard_key(self, shard: int) -> str:
        """The Redis key of shard stream ``shard``."""
        return f"{self.stream}:{shard}"

    @property
    def dlq_key(self) -> str:
        """The dead-letter stream."""
        return f"{self.stream}:dlq"

    def _lease_key(self, shard: int) -> str:
        return f"{self.stream}:lease:{shard}"

    # -- producing --------------------------------------------------------------------
    def publish(self, items: Sequence[Event | bytes]) -> int:
        import redis

        try:
            for start in range(0, len(items), 1000):
                pipe = self._client.pipeline(transaction=False)
                for item in items[start : start + 1000]:
                    if isinstance(item, Event):
                        raw, uid = item.to_bytes(), item.user_id
                    else:
                        raw, uid = bytes(item), user_of(item)
                    pipe.xadd(self.shard_key(shard_of(uid, self.shards)), {"e": raw})
                pipe.execute()
        except redis.RedisError as exc:
            raise BackendError(f"Redis publish to {self.stream!r} failed: {exc}") from exc
        return len(items)

    # -- consuming --------------------------------------------------------------------
    def _ensure_groups(self) -> None:
        import redis

        if self._groups_ready:
            return
        for shard in range(self.shards):
            try:
                self._client.xgroup_create(self.shard_key(shard), self.group, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self._groups_ready = True

    def _rebalance(self) -> None:
        now = time.monotonic()
        renew = now >= self._next_rebalance
        if not renew and now < self._next_membership:
            return
        # Membership (heartbeat + live-worker count, one round trip) is checked often, so
        # a worker that joins gets its share within ~MEMBERSHIP_S instead of a third of a
        # lease; leases are renewed every third of a lease as before.
        self._next_membership = now + min(MEMBERSHIP_S, self.lease_ms / 3000.0)
        wall_ms = int(time.time() * 1000)
        workers = f"{self.stream}:workers"
        pipe = self._client.pipeline(transaction=False)
        pipe.zadd(workers, {self.consumer: wall_ms})
        pipe.zremrangebyscore(workers, 0, wall_ms - self.lease_ms)
        pipe.zcard(workers)
        pipe.pexpire(workers, self.lease_ms * 10)
        live = max(1, int(pipe.execute()[2]))
        target = math.ceil(self.shards / live)
        if not renew and len(self._owned) == target:
            return
        if renew:
            self._next_rebalance = now + self.lease_ms / 3000.0
            for shard in sorted(self._owned):
                if not self._renew(
                    keys=[self._lease_key(shard)], args=[self.consumer, self.lease_ms]
                ):
                    self._owned.discard(shard)
                    self._recover.discard(shard)
        for shard in sorted(self._owned, reverse=True)[: max(0, len(self._owned) - target)]:
            # Called between batches, so everything delivered from this shard is acked.
            self._release(keys=[self._lease_key(shard)], args=[self.consumer])
            self._owned.discard(shard)
            self._recover.discard(shard)
        if len(self._owned) < target:
            free = [s for s in range(self.shards) if s not in self._owned]
            self._rng.shuffle(free)
            for shard in free:
                if len(self._owned) >= target:
                    break
                if self._client.set(
                    self._lease_key(shard), self.consumer, nx=True, px=self.lease_ms
                ):
                    self._owned.add(shard)
                    self._recover.add(shard)

    def owned_shards(self) -> list[int]:
        """The shards this consumer currently leases."""
        return sorted(self._owned)

    def receive(self, max_messages: int = 500, timeout: float = 1.0) -> list[Delivery]:
        import redis

        try:
            self._ensure_groups()
            self._rebalance()
            if not self._owned:
                time.sleep(min(timeout, self.lease_ms / 3000.0))
                return []
            for shard in sorted(self._recover):
                got = self._claim(shard, max_messages)
                if got:
                    return got
                self._recover.discard(shard)
            per_stream = max(1, math.ceil(max_messages / len(self._owned)))
            block = int(min(timeout, self.lease_ms / 3000.0) * 1000)
            resp = self._client.xreadgroup(
                self.group,
                self.consumer,
                {self.shard_key(s): ">" for s in sorted(self._owned)},
                count=per_stream,
                block=block if block > 0 else None,
            )
        except redis.RedisError as exc:
            raise BackendError(f"Redis receive from {self.stream!r} failed: {exc}") from exc
        out: list[Delivery] = []
        for key, entries in resp or []:
            stream_key = _s(key)
            for entry_id, fields in entries:
                eid = _s(entry_id)
                at = int(eid.split("-")[0]) / 1000
                out.append(Delivery(eid, fields[b"e"], stream_key, 1, at))
        return out

    def _claim(self, shard: int, max_messages: int) -> list[Delivery]:
        """Take over what a previous owner (or a nack) left pending on ``shard``."""
        key = self.shard_key(shard)
        pend = self._client.xpending_range(key, self.group, min="-", max="+", count=max_messages)
        if not pend:
            return []
        times = {_s(p["message_id"]): int(p["times_delivered"]) for p in pend}
        over = [mid for mid, n in times.items() if n >= self.max_deliveries]
        for mid in over:
            rows = self._client.xrange(key, mid, mid)
            raw = rows[0][1][b"e"] if rows else b""
            delivery = Delivery(mid, raw, key, times[mid])
            self.dead_letter(
                delivery, "max_deliveries", f"delivered {times[mid]} times without an ack"
            )
        rest = [mid for mid in times if mid not in over]
        if not rest:
            return self._claim(shard, max_messages)
        _next, claimed, deleted = self._client.xautoclaim(
            key, self.group, self.consumer, 0, start_id=rest[0], count=len(rest)
        )[:3]
        if deleted:
            self._client.xack(key, self.group, *deleted)
        out = []
        for entry_id, fields in claimed:
            eid = _s(entry_id)
            if fields is None or b"e" not in fields:
                self._client.pipeline(transaction=True).xack(key, self.group, eid).xdel(
                    key, eid
                ).execute()
                continue
            attempt = times.get(eid, 0) + 1
            out.append(Delivery(eid, fields[b"e"], key, attempt, int(eid.split("-")[0]) / 1000))
        return out

    def ack(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        by_shard: dict[str, list[str]] = {}
        for d in deliveries:
            by_shard.setdefault(d.shard, []).append(d.id)
        # MULTI/EXEC: an ack and its delete happen together or not at all (a worker killed
        # between the two would leave acked entries in the stream: never delivered again,
        # yet counted in the backlog forever).
        pipe = self._client.pipeline(transaction=True)
        for shard, ids in by_shard.items():
            pipe.xack(shard, self.group, *ids)
            # Acked entries are deleted so the stream length is the backlog (lag + pending).
            pipe.xdel(shard, *ids)
        pipe.execute()

    def nack(self, deliveries: Sequence[Delivery]) -> None:
        for d in deliveries:
            shard = int(d.shard.rsplit(":", 1)[1])
            if shard in self._owned:
                self._recover.add(shard)

    def dead_letter(self, delivery: Delivery, reason: str, detail: str = "") -> None:
        seen = f"{self.dlq_key}:seen:{delivery.shard}:{delivery.id}"
        self._dead(
            keys=[seen, self.dlq_key, delivery.shard],
            args=[
                self.group,
                delivery.id,
                delivery.raw,
                reason,
                detail[:2000],
                delivery.attempt,
                self.dlq_ttl_s,
            ],
        )

    def dead_letters(self, limit: int = 1000) -> list[DeadLetter]:
        rows = self._client.xrange(self.dlq_key, "-", "+", count=limit)
        return [
            DeadLetter(
                _s(f[b"reason"]),
                _s(f[b"detail"]),
                f[b"raw"],
                _s(f[b"source"]),
                int(f[b"attempts"]),
                {"shard": _s(f[b"shard"]), "id": _s(rid)},
            )
            for rid, f in rows
        ]

    def stats(self) -> dict[str, int]:
        pipe = self._client.pipeline(transaction=False)
        for shard in range(self.shards):
            pipe.xlen(self.shard_key(shard))
        pipe.xlen(self.dlq_key)
        res = pipe.execute()
        backlog = sum(int(x) for x in res[: self.shards])
        pending = 0
        if self._groups_ready or self._client.exists(self.shard_key(0)):
            pipe = self._client.pipeline(transaction=False)
            for shard in range(self.shards):
                pipe.xpending(self.shard_key(shard), self.group)
            for info in pipe.execute(raise_on_error=False):
                if isinstance(info, dict):
                    pending += int(info.get("pending", 0))
        return {"pending": pending, "lag": backlog - pending, "dead_letters": int(res[-1])}

    def close(self) -> None:
        """Release this consumer's leases (unacked entries stay pending for the next owner)."""
        try:
            for shard in list(self._owned):
                self._release(keys=[self._lease_key(shard)], args=[self.consumer])
            self._client.zrem(f"{self.stream}:workers", self.consumer)
        except Exception:
            pass
        self._owned.clear()
        self._client.close()

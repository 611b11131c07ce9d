"""Erasure and export of a user's events still held by the transport: events published but
not yet processed (the shard streams / queues) and dead letters carrying the user's bytes.

``DELETE /api/user/{id}/profile`` calls ``delete_user`` on every service that has it; the API
registers a :class:`TransportEraser` around its transport as the ``event_log`` service, so an
erasure also removes the user's events that a worker has not consumed yet (they would
otherwise re-create the profile) and the user's entries in the dead-letter place.

What each transport can erase:

* ``memory://`` — queued (not yet delivered) events and dead letters.
* ``redis://`` — entries of the user's shard stream (``XDEL``, and ``XACK`` for an entry a
  dead worker left pending) and dead letters (``XDEL`` on the dead-letter stream).
* ``kafka://`` — nothing: a Kafka log is immutable. Events are consumed within seconds and
  leave the topic by its retention (set ``retention.ms`` to your erasure deadline); the
  dead-letter topic likewise. :meth:`TransportEraser.delete_user` returns 0 there.

Events are matched on their ``user_id`` and ``tenant`` (``default`` when absent). A dead
letter whose bytes are not JSON cannot be attributed to a user and is left (its reason code
says why it was rejected; operators purge such entries with ``chatpersona stream dlq``).
"""

from __future__ import annotations

import json
from typing import Any

from chatpersona.stream.base import Transport, shard_of

__all__ = ["TransportEraser", "event_owner"]

_PAGE = 1000


def event_owner(raw: bytes) -> tuple[str, str] | None:
    """``(tenant, user_id)`` of raw event bytes, or ``None`` when they name no user.

    Examples
    --------
    >>> event_owner(b'{"user_id": "u1", "type": "message"}')
    ('default', 'u1')
    >>> event_owner(b'{"user_id": "u1", "tenant": "acme"}'), event_owner(b"not json")
    (('acme', 'u1'), None)
    """
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("user_id"), str):
        return None
    tenant = data.get("tenant")
    return (tenant if isinstance(tenant, str) and tenant else "default", data["user_id"])


class TransportEraser:
    """Wraps a :class:`~chatpersona.stream.base.Transport` for erasure and export.

    Examples
    --------
    >>> from chatpersona.stream.memory import MemoryTransport, reset_memory_buses
    >>> reset_memory_buses()
    >>> bus = MemoryTransport("erasure-doc")
    >>> bus.publish([b'{"user_id": "u1", "type": "message"}', b'{"user_id": "u2"}'])
    2
    >>> eraser = TransportEraser(bus)
    >>> len(eraser.export_user("default", "u1")["queued_events"])
    1
    >>> eraser.delete_user("default", "u1"), eraser.export_user("default", "u1")
    (1, {})
    >>> bus.stats()["lag"]
    1
    """

    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def _mine(self, raw: bytes, tenant: str, user_id: str) -> bool:
        return event_owner(raw) == (tenant, user_id)

    # -- erasure ----------------------------------------------------------------------
    def delete_user(self, tenant: str, user_id: str) -> int:
        """Delete the user's queued events and dead letters; returns how many."""
        from chatpersona.stream.memory import MemoryTransport
        from chatpersona.stream.redis_streams import RedisStreamsTransport

        t = self.transport
        if isinstance(t, MemoryTransport):
            return self._delete_memory(t, tenant, user_id)
        if isinstance(t, RedisStreamsTransport):
            return self._delete_redis(t, tenant, user_id)
        return 0  # an immutable log (Kafka): retention erases

    def _delete_memory(self, t: Any, tenant: str, user_id: str) -> int:
        bus = t._bus
        n = 0
        with bus.lock:
            shard = shard_of(user_id, bus.shards)
            queue = bus.queues[shard]
            keep = [item for item in queue if not self._mine(item[1], tenant, user_id)]
            n += len(queue) - len(keep)
            queue.clear()
            queue.extend(keep)
            redo = [item for item in bus.redo[shard] if not self._mine(item[1], tenant, user_id)]
            n += len(bus.redo[shard]) - len(redo)
            bus.redo[shard] = redo  # a sorted list stays a heap
            dead = [d for d in bus.dead if not self._mine(d.raw, tenant, user_id)]
            n += len(bus.dead) - len(dead)
            bus.dead[:] = dead
        return n

    def _delete_redis(self, t: Any, tenant: str, user_id: str) -> int:
        client = t._client
        shard_key = t.shard_key(shard_of(user_id, t.shards))
        doomed = [
            rid for rid, raw in _scan(client, shard_key, b"e") if self._mine(raw, tenant, user_id)
        ]
        dead = [
            rid for rid, raw in _scan(client, t.dlq_key, b"raw") if self._mine(raw, tenant, user_id)
        ]
        grouped = bool(doomed) and _has_group(client, shard_key, t.group)
        pipe = client.pipeline(transaction=True)
        for start in range(0, len(doomed), _PAGE):
            ids = doomed[start : start + _PAGE]
            if grouped:  # an entry a dead worker left pending is not claimed again
                pipe.xack(shard_key, t.group, *ids)
            pipe.xdel(shard_key, *ids)
        for start in range(0, len(dead), _PAGE):
            pipe.xdel(t.dlq_key, *dead[start : start + _PAGE])
        pipe.execute()
        return len(doomed) + len(dead)

    # -- export -----------------------------------------------------------------------
    def export_user(self, tenant: str, user_id: str) -> dict[str, Any]:
        """The user's queued events and dead letters (decoded JSON where possible)."""
        from chatpersona.stream.memory import MemoryTransport
        from chatpersona.stream.redis_streams import RedisStreamsTransport

        t = self.transport
        queued: list[bytes] = []
        dead: list[tuple[str, bytes]] = []
        if isinstance(t, MemoryTransport):
            bus = t._bus
            with bus.lock:
                shard = shard_of(user_id, bus.shards)
                queued = [i[1] for i in (*bus.queues[shard], *bus.redo[shard])]
                dead = [(d.reason, d.raw) for d in bus.dead]
        elif isinstance(t, RedisStreamsTransport):
            client = t._client
            queued = [
                raw for _, raw in _scan(client, t.shard_key(shard_of(user_id, t.shards)), b"e")
            ]
            dead = [
                (_text(f.get(b"reason", b"")), f.get(b"raw", b""))
                for _, f in _scan_fields(client, t.dlq_key)
            ]
        out: dict[str, Any] = {}
        mine_q = [_decode(r) for r in queued if self._mine(r, tenant, user_id)]
        mine_d = [
            {"reason": reason, "event": _decode(raw)}
            for reason, raw in dead
            if self._mine(raw, tenant, user_id)
        ]
        if mine_q:
            out["queued_events"] = mine_q
        if mine_d:
            out["dead_letters"] = mine_d
        return out


def _text(v: bytes | str) -> str:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else v


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw.decode("utf-8", "replace")


def _scan_fields(client: Any, key: str) -> list[tuple[bytes, dict[bytes, bytes]]]:
    """Every entry of a stream, a page at a time."""
    out: list[tuple[bytes, dict[bytes, bytes]]] = []
    start = "-"
    while True:
        rows = client.xrange(key, start, "+", count=_PAGE)
        if not rows:
            return out
        out.extend(rows)
        if len(rows) < _PAGE:
            return out
        start = "(" + _text(rows[-1][0])


def _scan(client: Any, key: str, field: bytes) -> list[tuple[bytes, bytes]]:
    return [(rid, f.get(field, b"")) for rid, f in _scan_fields(client, key)]


def _has_group(client: Any, key: str, group: str) -> bool:
    try:
        groups = client.xinfo_groups(key)
    except Exception:
        return False
    return any(_text(g.get("name", b"")) == group for g in groups)

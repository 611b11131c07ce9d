"""Real-time state stores by URL: ``memory://`` and ``redis://`` — every entry expires.

A state store keeps two things for the stream worker: one JSON document per user (window
state, feature aggregates, last segment) and the ids of processed events (for dedupe).
:meth:`StateStore.commit` writes both atomically, so an event is marked processed exactly
when its state change is stored. Redis commands are batched: one round trip to load a
batch's users, one to check its event ids, one (a single atomic Lua script) to commit.
"""

from __future__ import annotations

import marshal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import pydantic_core

from chatpersona.exceptions import BackendError, UnknownBackendError
from chatpersona.stream.base import int_option, parse_options

__all__ = [
    "MemoryStateStore",
    "RedisStateStore",
    "StateStore",
    "open_state",
    "register_state",
    "state_schemes",
]

DEFAULT_TTL_S = 35 * 86400
"""User state lives this long after its last change (longer than the 30-day window)."""
DEFAULT_DEDUPE_TTL_S = 7 * 86400
"""Processed event ids are remembered this long (the retry horizon)."""

_encode = pydantic_core.to_json
"""Compact JSON (UTF-8 bytes) from pydantic's Rust serializer: 3-4x faster than the
standard library's C encoder for these documents; standard JSON either way."""
_decode = pydantic_core.from_json
"""JSON parsing by pydantic's Rust parser (about 2x ``json.loads`` on these documents);
reads what either encoder wrote."""

# Commit = one command: every SET with its EX, atomically (a script runs alone), instead of
# a MULTI/EXEC of one SET per state document and per event id (client-side packing of
# ~500 commands per batch was the larger cost). KEYS = state keys then event-id keys;
# ARGV = [number of state keys, state TTL, dedupe TTL, *documents].
_COMMIT = """
local n = tonumber(ARGV[1])
for i = 1, n do redis.call('SET', KEYS[i], ARGV[3 + i], 'EX', ARGV[2]) end
for i = n + 1, #KEYS do redis.call('SET', KEYS[i], '1', 'EX', ARGV[3]) end
return #KEYS
"""


class StateStore(ABC):
    """Per-user JSON documents plus processed event ids, all with a TTL."""

    scheme: ClassVar[str]
    ttl_s: int = DEFAULT_TTL_S
    dedupe_ttl_s: int = DEFAULT_DEDUPE_TTL_S

    @classmethod
    @abstractmethod
    def from_url(cls, url: str, **options: Any) -> StateStore:
        """Open the store named by ``url``."""

    @abstractmethod
    def load(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The documents of ``keys`` that exist (missing or expired keys are absent)."""

    @abstractmethod
    def seen(self, event_ids: Sequence[str]) -> set[str]:
        """Which of ``event_ids`` were committed before (and not yet expired)."""

    @abstractmethod
    def commit(self, states: Mapping[str, dict[str, Any]], event_ids: Sequence[str]) -> None:
        """Store ``states`` and mark ``event_ids`` processed, all or nothing, each with its
        TTL refreshed."""

    def delete(self, keys: Sequence[str]) -> None:  # noqa: B027 - optional ability
        """Forget these users' documents (erasure)."""

    def close(self) -> None:  # noqa: B027 - optional ability
        """Release connections."""


S = TypeVar("S", bound=type[StateStore])
_REGISTRY: dict[str, type[StateStore]] = {}


def register_state(*schemes: str) -> Callable[[S], S]:
    """Class decorator: make :func:`open_state` use this class for these URL schemes."""

    def deco(cls: S) -> S:
        for scheme in schemes:
            _REGISTRY[scheme] = cls
        return cls

    return deco


def state_schemes() -> list[str]:
    """The URL schemes :func:`open_state` knows."""
    return sorted(_REGISTRY)


def open_state(url: str, **options: Any) -> StateStore:
    """Open a state store: ``memory://`` or ``redis://host:port/DB?prefix=cp:&ttl=SECONDS``.

    Examples
    --------
    >>> st = open_state("memory://")
    >>> st.commit({"default:u1": {"n": 1}}, ["e1"])
    >>> st.load(["default:u1", "default:u2"]), st.seen(["e1", "e2"])
    ({'default:u1': {'n': 1}}, {'e1'})
    """
    scheme = url.split("://", 1)[0] if "://" in url else ""
    cls = _REGISTRY.get(scheme)
    if cls is None:
        raise UnknownBackendError("state store", url, list(_REGISTRY))
    return cls.from_url(url, **options)


def _ttls(owner: str, query: dict[str, Any]) -> tuple[int, int]:
    return (
        int_option(owner, query, "ttl", DEFAULT_TTL_S),
        int_option(owner, query, "dedupe_ttl", DEFAULT_DEDUPE_TTL_S),
    )


@register_state("memory")
class MemoryStateStore(StateStore):
    """In-process state with expiry (``clock`` is injectable for tests).

    Documents are stored serialized, so a caller mutating a loaded dict changes nothing
    until it commits — the same isolation as Redis. The in-process encoding is
    :mod:`marshal` (several times faster than JSON for these plain dicts); a document must
    still be JSON-serializable data, as every store requires.
    """

    scheme = "memory"

    def __init__(
        self,
        *,
        ttl_s: int = DEFAULT_TTL_S,
        dedupe_ttl_s: int = DEFAULT_DEDUPE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_s = ttl_s
        self.dedupe_ttl_s = dedupe_ttl_s
        self._clock = clock
        self._docs: dict[str, tuple[float, bytes]] = {}
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MemoryStateStore:
        _netloc, _path, query = parse_options(url)
        query.update({k: v for k, v in options.items() if k != "clock"})
        ttl, dedupe = _ttls("MemoryStateStore", query)
        if "clock" in options:
            return cls(ttl_s=ttl, dedupe_ttl_s=dedupe, clock=options["clock"])
        return cls(ttl_s=ttl, dedupe_ttl_s=dedupe)

    def load(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        now = self._clock()
        out: dict[str, dict[str, Any]] = {}
        with self._lock:
            for key in keys:
                item = self._docs.get(key)
                if item is not None and item[0] > now:
                    out[key] = marshal.loads(item[1])
        return out

    def seen(self, event_ids: Sequence[str]) -> set[str]:
        now = self._clock()
        with self._lock:
            return {e for e in event_ids if self._seen.get(e, -1.0) > now}

    def commit(self, states: Mapping[str, dict[str, Any]], event_ids: Sequence[str]) -> None:
        encoded = {k: marshal.dumps(v) for k, v in states.items()}
        now = self._clock()
        with self._lock:
            for key, doc in encoded.items():
                self._docs[key] = (now + self.ttl_s, doc)
            for eid in event_ids:
                self._seen[eid] = now + self.dedupe_ttl_s
            if now >= self._next_sweep:
                self._sweep(now)

    def _sweep(self, now: float) -> None:
        self._next_sweep = now + 60.0
        for key in [k for k, (exp, _) in self._docs.items() if exp <= now]:
            del self._docs[key]
        for eid in [e for e, exp in self._seen.items() if exp <= now]:
            del self._seen[eid]

    def delete(self, keys: Sequence[str]) -> None:
        with self._lock:
            for key in keys:
                self._docs.pop(key, None)

    def __len__(self) -> int:
        now = self._clock()
        with self._lock:
            return sum(1 for exp, _ in self._docs.values() if exp > now)


@register_state("redis", "rediss")
class RedisStateStore(StateStore):
    """Redis state: ``{prefix}s:{key}`` JSON documents and ``{prefix}d:{event_id}`` markers,
    every key written with ``EX``.

    Parameters
    ----------
    redis_url:
        ``redis://host:port/DB``.
    prefix:
        Namespace of every key (URL option ``prefix``, default ``cp:state:``).
    ttl_s, dedupe_ttl_s:
        Lifetimes of documents and event markers (URL options ``ttl``, ``dedupe_ttl``).
    """

    scheme = "redis"

    def __init__(
        self,
        redis_url: str,
        *,
        prefix: str = "cp:state:",
        ttl_s: int = DEFAULT_TTL_S,
        dedupe_ttl_s: int = DEFAULT_DEDUPE_TTL_S,
    ) -> None:
        import redis

        self.prefix = prefix
        self.ttl_s = ttl_s
        self.dedupe_ttl_s = dedupe_ttl_s
        self._client: Any = redis.Redis.from_url(redis_url)
        self._commit = self._client.register_script(_COMMIT)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisStateStore:
        netloc, path, query = parse_options(url)
        query.update(options)
        ttl, dedupe = _ttls("RedisStateStore", query)
        scheme = url.split("://", 1)[0]
        return cls(
            f"{scheme}://{netloc}/{path or '0'}",
            prefix=str(query.get("prefix", "cp:state:")),
            ttl_s=ttl,
            dedupe_ttl_s=dedupe,
        )

    def _wrap(self, what: str, fn: Callable[[], Any]) -> Any:
        import redis

        try:
            return fn()
        except redis.RedisError as exc:
            raise BackendError(f"Redis state {what} failed: {exc}") from exc

    def load(self, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        if not keys:
            return {}
        values = self._wrap(
            "load", lambda: self._client.mget([f"{self.prefix}s:{k}" for k in keys])
        )
        return {k: _decode(v) for k, v in zip(keys, values, strict=True) if v is not None}

    def seen(self, event_ids: Sequence[str]) -> set[str]:
        if not event_ids:
            return set()
        values = self._wrap(
            "dedupe", lambda: self._client.mget([f"{self.prefix}d:{e}" for e in event_ids])
        )
        return {e for e, v in zip(event_ids, values, strict=True) if v is not None}

    def commit(self, states: Mapping[str, dict[str, Any]], event_ids: Sequence[str]) -> None:
        if not states and not event_ids:
            return
        keys = [f"{self.prefix}s:{k}" for k in states]
        keys += [f"{self.prefix}d:{e}" for e in event_ids]
        args: list[Any] = [len(states), self.ttl_s, self.dedupe_ttl_s]
        args += [_encode(doc) for doc in states.values()]
        self._wrap("commit", lambda: self._commit(keys=keys, args=args))

    def delete(self, keys: Sequence[str]) -> None:
        if keys:
            self._wrap(
                "delete", lambda: self._client.delete(*[f"{self.prefix}s:{k}" for k in keys])
            )

    def close(self) -> None:
        self._client.close()

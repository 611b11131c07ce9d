"""Redis read-through cache in front of any profile store (``--cache redis://...``).

Reads try Redis first; on a miss the reader takes a short *lease* (``SET NX PX``), reads
the inner store and fills the cache only if its lease is still there. Both steps are one
Lua script (``GET``, else take the lease), so a hit costs one round trip and a miss two
(the script, then the fill) plus the inner read. Every write and delete goes to the
inner store first, then deletes both the cached copy and any lease. So a reader that
fetched a profile just before a write can never put that stale copy back (its lease is
gone), and an erased profile cannot be resurrected by a racing read. Every key has a TTL
and lives under ``prefix``. Redis being down makes reads fall back to the inner store; a
write whose invalidation fails raises :class:`BackendError` (the write itself landed).

Reads and merges can also run on an asyncio event loop
(:class:`~chatpersona.profiles.base.AsyncStore`): one pipelined Redis connection per loop (:mod:`chatpersona.profiles._resp`) and the inner
store's own async access when it has it (PostgreSQL).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from chatpersona.exceptions import BackendError, ParameterError
from chatpersona.profiles._common import check_ids, redact_url
from chatpersona.profiles._resp import PipelinedRedis
from chatpersona.profiles.base import AsyncStore, Page, ProfileStore, chunked
from chatpersona.profiles.keys import ApiKey, KeyStore
from chatpersona.profiles.schema import Profile, ProfilePatch

__all__ = ["CachedStore"]

log = logging.getLogger(__name__)

# The cached value if there is one; else take the fill lease: 1 if taken, 0 if another
# reader holds it (that reader fills; this one just reads through).
_GET_OR_LEASE = """
local value = redis.call('GET', KEYS[1])
if value then
  return value
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', tonumber(ARGV[2])) then
  return 1
end
return 0
"""

# Set the value only if this reader's lease is still in place; then drop the lease.
_FILL = """
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
"""

_GET_OR_LEASE_SHA = hashlib.sha1(_GET_OR_LEASE.encode()).hexdigest()
_FILL_SHA = hashlib.sha1(_FILL.encode()).hexdigest()


class CachedStore(ProfileStore):
    """A :class:`ProfileStore` that caches ``get`` in Redis and delegates the rest.

    Parameters
    ----------
    inner:
        The system of record (SQLite, PostgreSQL, memory).
    redis_url:
        ``redis://host:port/db``.
    ttl_seconds:
        Lifetime of every cached profile (> 0).
    prefix:
        Namespace of every key this cache writes, e.g. ``"chatpersona:"``.
    lease_ms:
        Lifetime of a fill lease; a reader slower than this simply does not fill.
    """

    scheme = "cached"

    def __init__(
        self,
        inner: ProfileStore,
        redis_url: str,
        ttl_seconds: int = 60,
        prefix: str = "chatpersona:",
        *,
        lease_ms: int = 2000,
    ) -> None:
        import redis

        if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or ttl_seconds < 1:
            raise ParameterError("CachedStore", "ttl_seconds", "an int >= 1", ttl_seconds)
        self.inner = inner
        self.redis_url = redis_url
        self.ttl_seconds = ttl_seconds
        self.prefix = prefix
        self.lease_ms = lease_ms
        self._where = redact_url(redis_url)
        self._redis = redis.Redis.from_url(
            redis_url, socket_timeout=2.0, socket_connect_timeout=2.0
        )
        self._get_or_lease = self._redis.register_script(_GET_OR_LEASE)
        self._fill = self._redis.register_script(_FILL)
        # Async reads: one pipelined Redis connection per event loop (see open_async).
        self._aredis: dict[asyncio.AbstractEventLoop, PipelinedRedis] = {}
        self._inner_async = isinstance(inner, AsyncStore)
        self.hits = 0
        self.misses = 0
        # After a failed read, reads skip Redis for this long (a dead or black-holed
        # Redis must not add a socket timeout to every request).
        self.retry_after_s = 5.0
        self._skip_until = 0.0

    @classmethod
    def from_url(cls, url: str, **options: Any) -> CachedStore:
        """Not opened by scheme: use ``open_store(store_url, cache_url=...)``."""
        raise BackendError(
            "CachedStore wraps another store: use open_store(store_url, cache_url=redis_url).",
            code="not_a_url_store",
        )

    # -- keys ---------------------------------------------------------------------------
    def key(self, tenant: str, user_id: str) -> str:
        """The Redis key of a profile (tenant quoted so ``a:b``/``c`` ≠ ``a``/``b:c``)."""
        return f"{self.prefix}profile:{quote(tenant, safe='')}:{user_id}"

    def lease_key(self, tenant: str, user_id: str) -> str:
        """The Redis key of a reader's fill lease for one profile."""
        return f"{self.prefix}lease:{quote(tenant, safe='')}:{user_id}"

    def _invalidate(self, tenant: str, user_id: str) -> None:
        try:
            self._redis.delete(self.key(tenant, user_id), self.lease_key(tenant, user_id))
        except Exception as exc:  # redis.RedisError and socket errors
            raise self._invalidation_failed(user_id, exc) from exc

    def _invalidation_failed(self, user_id: str, exc: BaseException) -> BackendError:
        return BackendError(
            f"Profile {user_id!r} was written but its cached copy in Redis at "
            f"{self._where} could not be invalidated ({type(exc).__name__}); it may be "
            f"stale for up to {self.ttl_seconds}s.",
            code="cache_invalidation_failed",
            user_id=user_id,
        )

    # -- ProfileStore -------------------------------------------------------------------
    def get(self, tenant: str, user_id: str) -> Profile | None:
        check_ids(tenant, user_id)
        if time.monotonic() < self._skip_until:
            return self.inner.get(tenant, user_id)
        k, lease = self.key(tenant, user_id), self.lease_key(tenant, user_id)
        token = secrets.token_hex(8)
        try:
            found = self._get_or_lease(keys=[k, lease], args=[token, self.lease_ms])
        except Exception as exc:  # redis.RedisError and socket errors
            self._read_failed(exc)
            return self.inner.get(tenant, user_id)
        if isinstance(found, bytes):
            self.hits += 1
            return Profile.model_validate_json(found)
        self.misses += 1
        profile = self.inner.get(tenant, user_id)
        if profile is not None and found == 1:  # this reader holds the fill lease
            try:
                self._fill(
                    keys=[k, lease], args=[token, profile.model_dump_json(), self.ttl_seconds]
                )
            except Exception as exc:
                log.warning("profile cache fill failed (%s)", type(exc).__name__)
        return profile

    def _read_failed(self, exc: BaseException) -> None:
        log.warning(
            "profile cache read failed, reading the store for %.0fs (%s)",
            self.retry_after_s,
            type(exc).__name__,
        )
        self._skip_until = time.monotonic() + self.retry_after_s

    # -- async access (AsyncStore) ------------------------------------------------------
    async def open_async(self) -> None:
        """A pipelined Redis connection for the running loop (and the inner store's async
        side, if it has one). With a ``rediss://`` cache, reads stay on the thread pool."""
        if isinstance(self.inner, AsyncStore):
            await self.inner.open_async()
        loop = asyncio.get_running_loop()
        if loop not in self._aredis and PipelinedRedis.supports(self.redis_url):
            self._aredis[loop] = PipelinedRedis(self.redis_url, timeout=2.0, connect_timeout=2.0)

    async def close_async(self) -> None:
        client = self._aredis.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()
        if isinstance(self.inner, AsyncStore):
            await self.inner.close_async()

    def async_ready(self) -> bool:
        try:
            return asyncio.get_running_loop() in self._aredis
        except RuntimeError:
            return False

    async def _inner_aget(self, tenant: str, user_id: str) -> Profile | None:
        if self._inner_async:
            return await self.inner.aget(tenant, user_id)  # type: ignore[attr-defined]
        return await asyncio.to_thread(self.inner.get, tenant, user_id)

    async def aget(self, tenant: str, user_id: str) -> Profile | None:
        """Like :meth:`get`, on the event loop: one Redis round trip on a hit; on a miss,
        the inner store's read and one more round trip for the fill."""
        check_ids(tenant, user_id)
        client = self._aredis.get(asyncio.get_running_loop())
        if client is None:
            return await asyncio.to_thread(self.get, tenant, user_id)
        if time.monotonic() < self._skip_until:
            return await self._inner_aget(tenant, user_id)
        k, lease = self.key(tenant, user_id), self.lease_key(tenant, user_id)
        token = secrets.token_hex(8)
        try:
            found = await client.evalsha(
                _GET_OR_LEASE_SHA, _GET_OR_LEASE, [k, lease], [token, self.lease_ms]
            )
        except Exception as exc:  # error replies, timeouts, connection errors
            self._read_failed(exc)
            return await self._inner_aget(tenant, user_id)
        if isinstance(found, bytes):
            self.hits += 1
            return Profile.model_validate_json(found)
        self.misses += 1
        profile = await self._inner_aget(tenant, user_id)
        if profile is not None and found == 1:
            try:
                await client.evalsha(
                    _FILL_SHA,
                    _FILL,
                    [k, lease],
                    [token, profile.model_dump_json(), self.ttl_seconds],
                )
            except Exception as exc:
                log.warning("profile cache fill failed (%s)", type(exc).__name__)
        return profile

    async def amerge(self, tenant: str, user_id: str, patch: ProfilePatch) -> Profile:
        """Like :meth:`merge`, on the event loop: the inner store's merge, then the cached
        copy and any fill lease deleted in one round trip."""
        check_ids(tenant, user_id)
        client = self._aredis.get(asyncio.get_running_loop())
        if client is None:
            return await asyncio.to_thread(self.merge, tenant, user_id, patch)
        if self._inner_async:
            profile: Profile = await self.inner.amerge(tenant, user_id, patch)  # type: ignore[attr-defined]
        else:
            profile = await asyncio.to_thread(self.inner.merge, tenant, user_id, patch)
        try:
            await client.execute("DEL", self.key(tenant, user_id), self.lease_key(tenant, user_id))
        except Exception as exc:  # error replies, timeouts, connection errors
            raise self._invalidation_failed(user_id, exc) from exc
        return profile

    def get_many(self, tenant: str, user_ids: Iterable[str]) -> dict[str, Profile]:
        """Cached copies from one ``MGET``, the rest from the inner store's ``get_many``.

        Misses are not filled: the bulk reader is the stream worker, which writes these
        profiles right after (and a write invalidates the cached copy anyway).
        """
        ids = list(dict.fromkeys(user_ids))
        for user_id in ids:
            check_ids(tenant, user_id)
        if not ids:
            return {}
        out: dict[str, Profile] = {}
        missing = ids
        if time.monotonic() >= self._skip_until:
            try:
                raws = self._redis.mget([self.key(tenant, uid) for uid in ids])
            except Exception as exc:
                log.warning(
                    "profile cache read failed, reading the store for %.0fs (%s)",
                    self.retry_after_s,
                    type(exc).__name__,
                )
                self._skip_until = time.monotonic() + self.retry_after_s
            else:
                missing = []
                for uid, raw in zip(ids, raws, strict=True):
                    if raw is None:
                        missing.append(uid)
                    else:
                        out[uid] = Profile.model_validate_json(raw)
                self.hits += len(out)
                self.misses += len(missing)
        if missing:
            out.update(self.inner.get_many(tenant, missing))
        return out

    def merge(self, tenant: str, user_id: str, patch: ProfilePatch) -> Profile:
        profile = self.inner.merge(tenant, user_id, patch)
        self._invalidate(tenant, user_id)
        return profile

    def merge_many(
        self,
        tenant: str,
        items: Iterable[tuple[str, ProfilePatch]],
        *,
        chunk_size: int = 500,
    ) -> int:
        """The inner store's bulk merge, then one pipelined invalidation per chunk."""
        n = 0
        for chunk in chunked(items, chunk_size):
            n += self.inner.merge_many(tenant, chunk, chunk_size=chunk_size)
            ids = {uid for uid, _ in chunk}
            try:
                pipe = self._redis.pipeline(transaction=False)
                for uid in ids:
                    pipe.delete(self.key(tenant, uid), self.lease_key(tenant, uid))
                pipe.execute()
            except Exception as exc:
                raise BackendError(
                    f"{len(ids)} profiles were written but their cached copies in Redis at "
                    f"{self._where} could not be invalidated ({type(exc).__name__}); they "
                    f"may be stale for up to {self.ttl_seconds}s.",
                    code="cache_invalidation_failed",
                ) from exc
        return n

    def delete(self, tenant: str, user_id: str) -> bool:
        existed = self.inner.delete(tenant, user_id)
        self._invalidate(tenant, user_id)
        return existed

    def scan(
        self,
        tenant: str,
        *,
        segment: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page:
        return self.inner.scan(tenant, segment=segment, cursor=cursor, limit=limit)

    def ping(self) -> bool:
        try:
            redis_ok = bool(self._redis.ping())
        except Exception:
            redis_ok = False
        return redis_ok and self.inner.ping()

    def close(self) -> None:
        self._redis.close()
        self.inner.close()

    def migrate(self) -> list[str]:
        """Migrate the inner store."""
        fn = getattr(self.inner, "migrate", None)
        return list(fn()) if fn is not None else []

    # -- KeyStore pass-through ----------------------------------------------------------
    def _keys(self) -> KeyStore:
        if not isinstance(self.inner, KeyStore):
            raise BackendError(
                f"{type(self.inner).__name__} does not store API keys.", code="no_key_store"
            )
        return self.inner

    def create_key(
        self, tenant: str, scopes: Iterable[str], name: str | None = None
    ) -> tuple[ApiKey, str]:
        return self._keys().create_key(tenant, scopes, name)

    def find_key(self, secret: str) -> ApiKey | None:
        return self._keys().find_key(secret)

    def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        return self._keys().list_keys(tenant)

    def revoke_key(self, key_id: str) -> bool:
        return self._keys().revoke_key(key_id)

"""Redis read-through cache in front of any profile store (``--cache redis://...``).

Reads try Redis first; on a miss the reader takes a short *lease* (``SET NX PX``), reads
the inner store and fills the cache only if its lease is still there. Every write and
delete goes to the inner store first, then deletes both the cached copy and any lease.
So a reader that fetched a profile just before a write can never put that stale copy
back (its lease is gone), and an erased profile cannot be resurrected by a racing read.
Every key has a TTL and lives under ``prefix``. Redis being down makes reads fall back
to the inner store; a write whose invalidation fails raises :class:`BackendError`
(the write itself landed).
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from chatpersona.exceptions import BackendError, ParameterError
from chatpersona.profiles._common import check_ids, redact_url
from chatpersona.profiles.base import Page, ProfileStore, chunked
from chatpersona.profiles.keys import ApiKey, KeyStore
from chatpersona.profiles.schema import Profile, ProfilePatch

__all__ = ["CachedStore"]

log = logging.getLogger(__name__)

# Set the value only if this reader's lease is still in place; then drop the lease.
_FILL = """
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
  redis.call('DEL', KEYS[2])
  return 1
end
return 0
"""


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
        self._fill = self._redis.register_script(_FILL)
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
            raise BackendError(
                f"Profile {user_id!r} was written but its cached copy in Redis at "
                f"{self._where} could not be invalidated ({type(exc).__name__}); it may be "
                f"stale for up to {self.ttl_seconds}s.",
                code="cache_invalidation_failed",
                user_id=user_id,
            ) from exc

    # -- ProfileStore -------------------------------------------------------------------
    def get(self, tenant: str, user_id: str) -> Profile | None:
        check_ids(tenant, user_id)
        k, lease = self.key(tenant, user_id), self.lease_key(tenant, user_id)
        if time.monotonic() < self._skip_until:
            return self.inner.get(tenant, user_id)
        token = secrets.token_hex(8)
        holder = False  # whether this reader holds the fill lease
        try:
            # A plain GET on the hot path: cheaper for the client than a script call.
            raw = self._redis.get(k)
            if raw is not None:
                self.hits += 1
                return Profile.model_validate_json(raw)
            self.misses += 1
            # else another reader is filling: just read through
            holder = bool(self._redis.set(lease, token, nx=True, px=self.lease_ms))
        except Exception as exc:
            log.warning(
                "profile cache read failed, reading the store for %.0fs (%s)",
                self.retry_after_s,
                type(exc).__name__,
            )
            self._skip_until = time.monotonic() + self.retry_after_s
            return self.inner.get(tenant, user_id)
        profile = self.inner.get(tenant, user_id)
        if profile is not None and holder:
            try:
                self._fill(
                    keys=[k, lease],
                    args=[token, profile.model_dump_json(), self.ttl_seconds],
                )
            except Exception as exc:
                log.warning("profile cache fill failed (%s)", type(exc).__name__)
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

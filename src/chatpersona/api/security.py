"""Who is calling: API keys to principals, with a short-lived in-process lookup cache.

A key is sent as ``Authorization: Bearer KEY`` or ``X-API-Key: KEY`` and looked up with
the store's :class:`~chatpersona.profiles.keys.KeyStore` capability (the store keeps only
SHA-256 hashes). Lookups are cached per process for ``ttl_seconds`` (5 s by default) so
that the hot path does not hit the database on every request; the cache is keyed by the
SHA-256 digest of the secret, never by the secret itself. A key revoked through the API
stops working at once in the process that revoked it, and within ``ttl_seconds``
everywhere else.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool

from chatpersona.profiles.keys import ApiKey, KeyStore, key_id_of

__all__ = ["KeyAuthenticator", "Principal", "find_key_store"]


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: a key of one tenant with some scopes.

    Examples
    --------
    >>> p = Principal(key_id="0123456789abcdef", tenant="acme", scopes=frozenset({"admin"}))
    >>> p.has_scope("profile:read")
    True
    """

    key_id: str
    tenant: str
    scopes: frozenset[str]

    def has_scope(self, scope: str) -> bool:
        """``True`` when the key carries ``scope``; ``admin`` implies every scope."""
        return scope in self.scopes or "admin" in self.scopes

    @classmethod
    def of(cls, key: ApiKey) -> Principal:
        return cls(key_id=key.key_id, tenant=key.tenant, scopes=frozenset(key.scopes))


def find_key_store(store: Any, services: dict[str, Any]) -> KeyStore | None:
    """The key store to authenticate with: ``services["keys"]``, else the profile store
    (or the store a cache wraps) when it offers the :class:`KeyStore` capability."""
    for candidate in (services.get("keys"), store, getattr(store, "inner", None)):
        if candidate is not None and isinstance(candidate, KeyStore):
            return candidate
    return None


class KeyAuthenticator:
    """Resolve secrets to :class:`Principal` objects, caching results briefly.

    Parameters
    ----------
    keys:
        The key store, or ``None`` (then every request is unauthenticated: 401).
    ttl_seconds:
        How long a lookup (hit or miss) is reused by this process.
    max_entries:
        Bound on cached lookups; the cache is emptied when it fills up.
    """

    def __init__(
        self, keys: KeyStore | None, *, ttl_seconds: float = 5.0, max_entries: int = 10_000
    ) -> None:
        self.keys = keys
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._cache: dict[bytes, tuple[Principal | None, float]] = {}

    async def authenticate(self, secret: str) -> Principal | None:
        """The principal for ``secret``, or ``None`` when it is malformed, unknown or revoked."""
        if self.keys is None or key_id_of(secret) is None:
            return None
        digest = hashlib.sha256(secret.encode("utf-8")).digest()
        now = time.monotonic()
        hit = self._cache.get(digest)
        if hit is not None and hit[1] > now:
            return hit[0]
        key = await run_in_threadpool(self.keys.find_key, secret)
        principal = Principal.of(key) if key is not None and not key.revoked else None
        if len(self._cache) >= self.max_entries:
            self._cache.clear()
        self._cache[digest] = (principal, now + self.ttl_seconds)
        return principal

    def forget(self, key_id: str | None = None) -> None:
        """Drop cached lookups (of one key, or all): called after a revocation."""
        if key_id is None:
            self._cache.clear()
            return
        for digest, (principal, _) in list(self._cache.items()):
            if principal is not None and principal.key_id == key_id:
                del self._cache[digest]

"""In-process profile + API key store (``memory://``): the demo engine and the tests' fake.

It obeys exactly the same contract as the SQL stores (one lock makes every merge atomic)
and passes the same conformance suite; data lives only as long as the object.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from chatpersona.profiles._common import check_ids, check_limit, decode_cursor, encode_cursor
from chatpersona.profiles.base import Page, ProfileStore, register_store
from chatpersona.profiles.keys import (
    ApiKey,
    check_secret,
    hash_secret,
    key_id_of,
    new_secret,
    normalize_scopes,
    validate_tenant,
)
from chatpersona.profiles.schema import Profile, ProfilePatch, apply_patch

__all__ = ["MemoryStore"]


@register_store("memory")
class MemoryStore(ProfileStore):
    """Profiles and API keys in dicts guarded by one lock.

    Examples
    --------
    >>> store = MemoryStore()
    >>> p = store.merge("t1", "u1", ProfilePatch(preferences={"language": "es"}))
    >>> store.get("t1", "u1").preferences, store.get("t2", "u1")
    ({'language': 'es'}, None)
    """

    scheme = "memory"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        # Stored as JSON, like the SQL stores: callers never share mutable state with
        # the store, and every backend round-trips through the same serialization.
        self._profiles: dict[tuple[str, str], str] = {}
        self._segments: dict[tuple[str, str], str | None] = {}
        self._keys: dict[str, tuple[ApiKey, str]] = {}

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MemoryStore:
        """``memory://`` — a new, empty store (options are accepted and ignored)."""
        return cls()

    def migrate(self) -> list[str]:
        """Nothing to migrate in memory; returns ``[]`` (same signature as SQL stores)."""
        return []

    # -- profiles -----------------------------------------------------------------------
    def get(self, tenant: str, user_id: str) -> Profile | None:
        check_ids(tenant, user_id)
        with self._lock:
            found = self._profiles.get((tenant, user_id))
        return Profile.model_validate_json(found) if found is not None else None

    def get_many(self, tenant: str, user_ids: Iterable[str]) -> dict[str, Profile]:
        ids = list(dict.fromkeys(user_ids))
        for user_id in ids:
            check_ids(tenant, user_id)
        with self._lock:
            raws = {uid: self._profiles.get((tenant, uid)) for uid in ids}
        return {uid: Profile.model_validate_json(r) for uid, r in raws.items() if r is not None}

    def merge(self, tenant: str, user_id: str, patch: ProfilePatch) -> Profile:
        check_ids(tenant, user_id)
        with self._lock:
            raw = self._profiles.get((tenant, user_id))
            current = Profile.model_validate_json(raw) if raw is not None else None
            new = apply_patch(current, patch, tenant=tenant, user_id=user_id)
            self._profiles[(tenant, user_id)] = new.model_dump_json()
            self._segments[(tenant, user_id)] = new.segment.id if new.segment else None
        return new

    def delete(self, tenant: str, user_id: str) -> bool:
        check_ids(tenant, user_id)
        with self._lock:
            self._segments.pop((tenant, user_id), None)
            return self._profiles.pop((tenant, user_id), None) is not None

    def scan(
        self,
        tenant: str,
        *,
        segment: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page:
        check_limit(limit)
        after = decode_cursor(cursor)
        with self._lock:
            ids = sorted(
                uid
                for (t, uid), seg in self._segments.items()
                if t == tenant
                and (after is None or uid > after)
                and (segment is None or seg == segment)
            )
            raws = [self._profiles[(tenant, uid)] for uid in ids[:limit]]
        page = [Profile.model_validate_json(r) for r in raws]
        nxt = encode_cursor(page[-1].user_id) if len(ids) > limit else None
        return Page(items=page, next_cursor=nxt)

    # -- API keys (KeyStore) ------------------------------------------------------------
    def create_key(
        self, tenant: str, scopes: Iterable[str], name: str | None = None
    ) -> tuple[ApiKey, str]:
        key_id, secret = new_secret()
        key = ApiKey(
            key_id=key_id,
            tenant=validate_tenant(tenant),
            scopes=normalize_scopes(scopes),
            name=name,
            created_at=datetime.now(UTC),
        )
        with self._lock:
            self._keys[key_id] = (key, hash_secret(secret))
        return key, secret

    def find_key(self, secret: str) -> ApiKey | None:
        key_id = key_id_of(secret)
        if key_id is None:
            return None
        with self._lock:
            found = self._keys.get(key_id)
        if found is None or not check_secret(secret, found[1]) or found[0].revoked:
            return None
        return found[0]

    def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        with self._lock:
            keys = [k for k, _ in self._keys.values() if tenant is None or k.tenant == tenant]
        return sorted(keys, key=lambda k: (k.created_at, k.key_id))

    def revoke_key(self, key_id: str) -> bool:
        with self._lock:
            found = self._keys.get(key_id)
            if found is None or found[0].revoked:
                return False
            key, digest = found
            self._keys[key_id] = (
                ApiKey(key.key_id, key.tenant, key.scopes, key.name, key.created_at, True),
                digest,
            )
            return True

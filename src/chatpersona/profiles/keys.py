"""API keys: the capability a profile store may offer to authenticate API callers.

A key's plaintext secret looks like ``cp_<key_id>_<43 url-safe characters>`` (32 random
bytes). It is shown once, by :meth:`KeyStore.create_key`; stores keep only its SHA-256
hash and compare hashes in constant time. The ``key_id`` inside the secret is public: it
names the key in ``keys list`` / ``keys revoke`` and in logs, and lets a store find the
one row to check without scanning.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from chatpersona.exceptions import ValidationError

__all__ = [
    "KNOWN_SCOPES",
    "SECRET_PREFIX",
    "ApiKey",
    "KeyStore",
    "check_secret",
    "hash_secret",
    "key_id_of",
    "new_secret",
    "normalize_scopes",
    "validate_tenant",
]

SECRET_PREFIX = "cp"
"""Every secret starts with ``cp_`` so that leaked keys are easy to grep and to scan for."""

KNOWN_SCOPES: frozenset[str] = frozenset({"profile:read", "profile:write", "events:write", "admin"})
"""The scopes the API checks. ``keys create`` on the CLI accepts only these."""

_SCOPE_RE = re.compile(r"^[a-z][a-z0-9_.-]*(:[a-z0-9_.-]+)*$")
_TENANT_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_KEY_ID_RE = re.compile(r"^[0-9a-f]{16}$")
_SECRET_RE = re.compile(r"^cp_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class ApiKey:
    """The public record of one API key (never its secret).

    Attributes
    ----------
    key_id:
        16 hex characters; appears inside the secret and names the key in the CLI.
    tenant:
        The tenant the key belongs to; every request made with it lives in that tenant.
    scopes:
        What the key may do (``profile:read``, ``profile:write``, ``events:write``, ``admin``).
    name:
        A human label, or ``None``.
    created_at:
        When the key was created (UTC).
    revoked:
        ``True`` once revoked; :meth:`KeyStore.find_key` never returns revoked keys.
    """

    key_id: str
    tenant: str
    scopes: frozenset[str]
    name: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    revoked: bool = False

    def has_scope(self, scope: str) -> bool:
        """``True`` when the key carries ``scope`` (``admin`` implies every scope)."""
        return scope in self.scopes or "admin" in self.scopes


@runtime_checkable
class KeyStore(Protocol):
    """Capability of a store that keeps API keys (memory, SQLite, PostgreSQL).

    Examples
    --------
    >>> from chatpersona.profiles import open_store
    >>> store = open_store("memory://")
    >>> isinstance(store, KeyStore)
    True
    >>> key, secret = store.create_key("acme", {"profile:read"}, name="bot")
    >>> store.find_key(secret) == key
    True
    >>> store.revoke_key(key.key_id), store.find_key(secret)
    (True, None)
    """

    def create_key(
        self, tenant: str, scopes: Iterable[str], name: str | None = None
    ) -> tuple[ApiKey, str]:
        """Create a key; return it and its plaintext secret (shown once, never stored)."""
        ...

    def find_key(self, secret: str) -> ApiKey | None:
        """The active key whose secret this is; ``None`` for unknown, malformed or revoked."""
        ...

    def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        """Every key (of one tenant, if given), revoked ones included, oldest first."""
        ...

    def revoke_key(self, key_id: str) -> bool:
        """Revoke a key; ``True`` if it existed and was active."""
        ...


def validate_tenant(tenant: str) -> str:
    """Return ``tenant`` if it is 1-64 characters of ``[A-Za-z0-9_.@-]``, else raise."""
    if not isinstance(tenant, str) or not _TENANT_RE.match(tenant):
        raise ValidationError(
            f"Tenant must be 1-64 characters of letters, digits, '_', '.', '@' or '-'. "
            f"Got {tenant!r} instead.",
            code="invalid_tenant",
            field="tenant",
            value=tenant,
        )
    return tenant


def normalize_scopes(scopes: Iterable[str] | str) -> frozenset[str]:
    """Scopes as a non-empty frozenset; accepts ``"a,b"`` or an iterable; checks their shape.

    >>> sorted(normalize_scopes("profile:read, profile:write"))
    ['profile:read', 'profile:write']
    """
    items = scopes.split(",") if isinstance(scopes, str) else list(scopes)
    out = frozenset(s.strip() for s in items if s.strip())
    if not out:
        raise ValidationError(
            "A key needs at least one scope, e.g. 'profile:read'. Got none.",
            code="invalid_scopes",
            field="scopes",
            value=sorted(items),
        )
    bad = sorted(s for s in out if not _SCOPE_RE.match(s) or len(s) > 64)
    if bad:
        raise ValidationError(
            f"Scopes must look like 'area:action' (lowercase). Got {bad!r} instead.",
            code="invalid_scopes",
            field="scopes",
            value=bad,
        )
    return out


def new_secret() -> tuple[str, str]:
    """A fresh ``(key_id, secret)``; the secret embeds the key id."""
    key_id = secrets.token_hex(8)
    return key_id, f"{SECRET_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"


def key_id_of(secret: str) -> str | None:
    """The key id inside a well-formed secret, or ``None`` for anything else."""
    if not isinstance(secret, str) or len(secret) > 128:
        return None
    m = _SECRET_RE.match(secret)
    return m.group(1) if m else None


def hash_secret(secret: str) -> str:
    """SHA-256 hex digest of a secret (secrets carry 256 random bits, so no slow KDF)."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def check_secret(secret: str, stored_hash: str) -> bool:
    """Constant-time comparison of a presented secret with a stored hash."""
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def is_key_id(value: str) -> bool:
    """``True`` for a syntactically valid key id."""
    return bool(_KEY_ID_RE.match(value))

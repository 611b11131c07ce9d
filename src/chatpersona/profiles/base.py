"""The profile store contract: a small base class and a registry from URL scheme to class.

Every store (memory, SQLite, PostgreSQL) implements four methods and passes the shared
conformance suite in ``tests/conformance/test_profile_stores.py``. Optional abilities
(API keys, caching) are separate capabilities, not methods that raise deep inside.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any, ClassVar, Protocol, TypeVar, runtime_checkable

from chatpersona.exceptions import UnknownBackendError
from chatpersona.profiles.schema import Profile, ProfilePatch

__all__ = [
    "AsyncStore",
    "Page",
    "ProfileStore",
    "open_store",
    "register_store",
    "store_schemes",
]


@dataclass(frozen=True)
class Page:
    """One page of a scan: the profiles and the cursor of the next page (``None`` at the end)."""

    items: list[Profile]
    next_cursor: str | None


class ProfileStore(ABC):
    """System of record for profiles, keyed by ``(tenant, user_id)``."""

    scheme: ClassVar[str]

    @classmethod
    @abstractmethod
    def from_url(cls, url: str, **options: Any) -> ProfileStore:
        """Open the store named by ``url`` (runs pending schema migrations)."""

    @abstractmethod
    def get(self, tenant: str, user_id: str) -> Profile | None:
        """The profile, or ``None`` when the user is unknown in this tenant."""

    @abstractmethod
    def merge(self, tenant: str, user_id: str, patch: ProfilePatch) -> Profile:
        """Apply ``patch`` atomically with :func:`~chatpersona.profiles.schema.apply_patch`
        semantics, creating the profile if absent; concurrent merges all land."""

    @abstractmethod
    def delete(self, tenant: str, user_id: str) -> bool:
        """Erase the profile; ``True`` if it existed."""

    @abstractmethod
    def scan(
        self,
        tenant: str,
        *,
        segment: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> Page:
        """Profiles of a tenant ordered by ``user_id``, optionally of one segment."""

    def get_many(self, tenant: str, user_ids: Iterable[str]) -> dict[str, Profile]:
        """The stored profiles of ``user_ids`` in one call: ``{user_id: profile}`` for those
        that exist (unknown users are absent; repeated ids are fine).

        The result equals calling :meth:`get` for each id. SQL stores override it with one
        query per chunk of ids (the stream worker reads the users new to its state this way).
        """
        out: dict[str, Profile] = {}
        for user_id in dict.fromkeys(user_ids):
            found = self.get(tenant, user_id)
            if found is not None:
                out[user_id] = found
        return out

    def merge_many(
        self,
        tenant: str,
        items: Iterable[tuple[str, ProfilePatch]],
        *,
        chunk_size: int = 500,
    ) -> int:
        """Apply many ``(user_id, patch)`` merges, in order; return how many were applied.

        The result equals calling :meth:`merge` for each item in turn (a user may appear
        several times). SQL stores override it to write each chunk in one transaction,
        for batch jobs (segment assignment) and bulk loads.
        """
        n = 0
        for user_id, patch in items:
            self.merge(tenant, user_id, patch)
            n += 1
        return n

    def ping(self) -> bool:
        """``True`` when the store answers (used by ``/readyz``)."""
        return True

    def close(self) -> None:
        """Release connections."""
        return None


@runtime_checkable
class AsyncStore(Protocol):
    """Capability of a network store that reads and merges on an asyncio event loop
    without a worker thread (PostgreSQL, the Redis cache).

    Async clients belong to one event loop: :meth:`open_async` binds them to the running
    loop (the API calls it at startup, in its lifespan) and :meth:`close_async` releases
    them. :meth:`aget` and :meth:`amerge` answer exactly like ``get`` and ``merge``; on a
    loop they were not opened for they run those in a worker thread instead.
    """

    async def open_async(self) -> None:
        """Open the async clients for the running event loop (idempotent)."""
        ...

    async def close_async(self) -> None:
        """Close the async clients of the running event loop."""
        ...

    def async_ready(self) -> bool:
        """``True`` when :meth:`open_async` ran for the running event loop."""
        ...

    async def aget(self, tenant: str, user_id: str) -> Profile | None:
        """Like ``get``, without blocking the event loop."""
        ...

    async def amerge(self, tenant: str, user_id: str, patch: ProfilePatch) -> Profile:
        """Like ``merge``, without blocking the event loop."""
        ...


def chunked(
    items: Iterable[tuple[str, ProfilePatch]], size: int
) -> Iterator[list[tuple[str, ProfilePatch]]]:
    """Successive lists of at most ``size`` items (helper for ``merge_many``)."""
    it = iter(items)
    while chunk := list(islice(it, max(1, size))):
        yield chunk


S = TypeVar("S", bound=type[ProfileStore])
_REGISTRY: dict[str, type[ProfileStore]] = {}


def register_store(*schemes: str) -> Callable[[S], S]:
    """Class decorator: make ``open_store`` use this class for these URL schemes."""

    def deco(cls: S) -> S:
        for scheme in schemes:
            _REGISTRY[scheme] = cls
        return cls

    return deco


def store_schemes() -> list[str]:
    """The URL schemes ``open_store`` knows."""
    _load_builtin()
    return sorted(_REGISTRY)


def _load_builtin() -> None:
    # Importing the modules registers them; drivers are imported lazily inside each.
    import importlib

    for mod in ("memory", "sqlite", "postgres"):
        try:
            importlib.import_module(f"chatpersona.profiles.{mod}")
        except ModuleNotFoundError as exc:
            if exc.name != f"chatpersona.profiles.{mod}":
                raise


def open_store(
    url: str,
    *,
    cache_url: str | None = None,
    cache_ttl_seconds: int = 60,
    cache_prefix: str = "chatpersona:",
    **options: Any,
) -> ProfileStore:
    """Open a profile store by URL: ``memory://``, ``sqlite:///path.db``, ``postgresql://...``.

    Pending schema migrations run on open (pass ``migrate=False`` to skip). With
    ``cache_url="redis://..."`` the store is wrapped in a read-through
    :class:`~chatpersona.profiles.cache.CachedStore`.

    Examples
    --------
    >>> store = open_store("sqlite:///:memory:")
    >>> type(store).__name__
    'SQLiteStore'
    """
    _load_builtin()
    scheme = url.split("://", 1)[0].split("+", 1)[0] if "://" in url else ""
    cls = _REGISTRY.get(scheme)
    if cls is None:
        raise UnknownBackendError("profile store", url, list(_REGISTRY))
    store = cls.from_url(url, **options)
    if cache_url:
        from chatpersona.profiles.cache import CachedStore

        cache_scheme = cache_url.split("://", 1)[0] if "://" in cache_url else ""
        if cache_scheme not in ("redis", "rediss", "unix"):
            store.close()
            raise UnknownBackendError("profile cache", cache_url, ["redis", "rediss", "unix"])
        return CachedStore(store, cache_url, cache_ttl_seconds, cache_prefix)
    return store

"""chatpersona.profiles: the system of record for user profiles and API keys.

Open a store by URL (``memory://``, ``sqlite:///path.db``, ``postgresql://...``), optionally
behind a Redis read-through cache; every store merges with the same pure
:func:`apply_patch` rules and passes the same conformance suite.
"""

from chatpersona.profiles.base import Page, ProfileStore, open_store, register_store, store_schemes
from chatpersona.profiles.cache import CachedStore
from chatpersona.profiles.keys import KNOWN_SCOPES, ApiKey, KeyStore
from chatpersona.profiles.memory import MemoryStore
from chatpersona.profiles.postgres import PostgresStore
from chatpersona.profiles.schema import (
    HISTORY_LIMIT,
    Feedback,
    Profile,
    ProfilePatch,
    ProfilePublic,
    ProfileUpdate,
    SegmentRef,
    apply_patch,
)
from chatpersona.profiles.sqlite import SQLiteStore

__all__ = [
    "HISTORY_LIMIT",
    "KNOWN_SCOPES",
    "ApiKey",
    "CachedStore",
    "Feedback",
    "KeyStore",
    "MemoryStore",
    "Page",
    "PostgresStore",
    "Profile",
    "ProfilePatch",
    "ProfilePublic",
    "ProfileStore",
    "ProfileUpdate",
    "SQLiteStore",
    "SegmentRef",
    "apply_patch",
    "open_store",
    "register_store",
    "store_schemes",
]

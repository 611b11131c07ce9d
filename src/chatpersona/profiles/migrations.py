"""Versioned schema migrations for the SQL stores.

Each dialect has an ordered list of :class:`Migration`; a store records what it applied
in ``schema_migrations`` and applies the rest in one transaction at start-up
(``from_url``) or on ``chatpersona db upgrade``. Migrations are append-only: never edit
a released one, add the next version instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from chatpersona.exceptions import BackendError

__all__ = ["POSTGRES", "SQLITE", "Migration", "pending"]


@dataclass(frozen=True)
class Migration:
    """One schema step: a version number, a short name and the statements to run."""

    version: int
    name: str
    statements: tuple[str, ...]

    @property
    def label(self) -> str:
        """``0001_profiles`` — what ``db upgrade`` prints."""
        return f"{self.version:04d}_{self.name}"


SQLITE: tuple[Migration, ...] = (
    Migration(
        1,
        "profiles",
        (
            """CREATE TABLE profiles (
                tenant TEXT NOT NULL,
                user_id TEXT NOT NULL,
                doc TEXT NOT NULL,
                segment_id TEXT,
                version INTEGER NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                PRIMARY KEY (tenant, user_id)
            ) WITHOUT ROWID""",
            "CREATE INDEX profiles_segment_idx ON profiles (tenant, segment_id, user_id)",
        ),
    ),
    Migration(
        2,
        "api_keys",
        (
            """CREATE TABLE api_keys (
                key_id TEXT PRIMARY KEY,
                tenant TEXT NOT NULL,
                secret_hash TEXT NOT NULL,
                scopes TEXT NOT NULL,
                name TEXT,
                created_at TEXT NOT NULL,
                revoked_at TEXT
            )""",
            "CREATE INDEX api_keys_tenant_idx ON api_keys (tenant, created_at)",
        ),
    ),
)

POSTGRES: tuple[Migration, ...] = (
    Migration(
        1,
        "profiles",
        (
            # COLLATE "C": scan order is code-point order, the same as SQLite and Python.
            """CREATE TABLE profiles (
                tenant TEXT COLLATE "C" NOT NULL,
                user_id TEXT COLLATE "C" NOT NULL,
                doc JSONB NOT NULL,
                segment_id TEXT COLLATE "C",
                version BIGINT NOT NULL,
                created_at TIMESTAMPTZ NOT NULL,
                updated_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (tenant, user_id)
            )""",
            "CREATE INDEX profiles_segment_idx ON profiles (tenant, segment_id, user_id)",
        ),
    ),
    Migration(
        2,
        "api_keys",
        (
            """CREATE TABLE api_keys (
                key_id TEXT PRIMARY KEY,
                tenant TEXT NOT NULL,
                secret_hash TEXT NOT NULL,
                scopes TEXT[] NOT NULL,
                name TEXT,
                created_at TIMESTAMPTZ NOT NULL,
                revoked_at TIMESTAMPTZ
            )""",
            "CREATE INDEX api_keys_tenant_idx ON api_keys (tenant, created_at)",
        ),
    ),
)


def pending(
    migrations: Sequence[Migration], applied: Iterable[int], *, where: str
) -> list[Migration]:
    """The migrations not yet applied, in order; refuses a database newer than the code."""
    done = set(applied)
    known = {m.version for m in migrations}
    unknown = sorted(done - known)
    if unknown:
        raise BackendError(
            f"The database at {where} has schema version(s) {unknown} that this chatpersona "
            f"does not know (it knows up to {max(known)}); upgrade chatpersona.",
            code="schema_too_new",
            where=where,
            versions=unknown,
        )
    return [m for m in migrations if m.version not in done]

"""PostgreSQL profile + API key store (``postgresql://...``): the production system of record.

psycopg 3 with a :class:`psycopg_pool.ConnectionPool`; each profile is one JSONB document
keyed by ``(tenant, user_id)``, with the segment id in its own indexed column for
``scan(segment=...)``. A merge runs in one transaction: ``SELECT ... FOR UPDATE`` locks the
row, :func:`apply_patch` computes the new document, ``UPDATE`` writes it; a missing row is
inserted with ``ON CONFLICT DO NOTHING`` and, if another transaction created it first,
the loop locks and merges into that row instead — so concurrent merges all land.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from typing import Any

from chatpersona.exceptions import BackendError, ConflictError
from chatpersona.profiles import migrations
from chatpersona.profiles._common import (
    check_ids,
    check_limit,
    decode_cursor,
    encode_cursor,
    redact_url,
)
from chatpersona.profiles.base import Page, ProfileStore, chunked, register_store
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

__all__ = ["PostgresStore"]

# Any constant: serializes concurrent `migrate()` calls from several processes.
_MIGRATION_LOCK = 7_246_331_902


class _ChunkRace(Exception):
    """Internal: a bulk chunk lost an insert race and must run again."""


def _conninfo(url: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"postgresql://{rest}" if scheme != "postgresql" else url


@register_store("postgresql", "postgres")
class PostgresStore(ProfileStore):
    """Profiles as JSONB and API keys in PostgreSQL, through a connection pool.

    Parameters
    ----------
    url:
        A libpq URL, ``postgresql://user@host:5432/db`` (``postgres://`` and
        ``postgresql+psycopg://`` are accepted too).
    migrate:
        Apply pending schema migrations when opening (default ``True``).
    min_size, max_size:
        Connection pool bounds.
    connect_timeout_s:
        How long to wait for the server when opening.
    """

    scheme = "postgresql"

    def __init__(
        self,
        url: str,
        *,
        migrate: bool = True,
        min_size: int = 1,
        max_size: int = 10,
        connect_timeout_s: float = 10.0,
    ) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool, PoolTimeout

        self.url = _conninfo(url)
        self._where = redact_url(self.url)
        self._max_size = max_size
        self._connect_timeout_s = connect_timeout_s
        # Async pools (AsyncStore: reads and merges on an event loop), one per loop.
        self._apools: dict[asyncio.AbstractEventLoop, Any] = {}
        # One direct connection first: fails fast with the server's own reason
        # (refused, unknown database, bad password) instead of pool retries.
        try:
            psycopg.connect(self.url, connect_timeout=max(1, int(connect_timeout_s))).close()
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BackendError(
                f"Cannot connect to PostgreSQL at {self._where}: {reason}",
                code="backend_unreachable",
                url=self._where,
            ) from exc
        self._pool = ConnectionPool(
            self.url,
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": True, "connect_timeout": max(1, int(connect_timeout_s))},
            open=False,
            name="chatpersona-profiles",
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout_s)
        except PoolTimeout as exc:
            self._pool.close()
            raise BackendError(
                f"Cannot connect to PostgreSQL at {self._where} within {connect_timeout_s}s.",
                code="backend_unreachable",
                url=self._where,
            ) from exc
        if migrate:
            self.migrate()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> PostgresStore:
        """``postgresql://user@host:port/db``."""
        return cls(url, **options)

    # -- connections --------------------------------------------------------------------
    @contextmanager
    def _conn(self) -> Iterator[Any]:
        import psycopg
        from psycopg_pool import PoolTimeout

        try:
            with self._pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise BackendError(
                f"PostgreSQL at {self._where} failed: {exc}", url=self._where
            ) from exc

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        with self._conn() as conn, conn.transaction():
            yield conn

    def migrate(self) -> list[str]:
        """Apply pending migrations in one transaction (under an advisory lock)."""
        with self._tx() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            applied = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
            todo = migrations.pending(migrations.POSTGRES, applied, where=self._where)
            for m in todo:
                for statement in m.statements:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (m.version, m.name),
                )
        return [m.label for m in todo]

    def ping(self) -> bool:
        try:
            with self._conn() as conn:
                conn.execute("SELECT 1 FROM schema_migrations LIMIT 1").fetchall()
            return True
        except Exception:  # any failure means "not ready"
            return False

    def close(self) -> None:
        self._pool.close()

    # -- async access (AsyncStore) ------------------------------------------------------
    async def open_async(self) -> None:
        """Open an :class:`psycopg_pool.AsyncConnectionPool` for the running loop."""
        from psycopg_pool import AsyncConnectionPool, PoolTimeout

        loop = asyncio.get_running_loop()
        if loop in self._apools:
            return
        pool = AsyncConnectionPool(
            self.url,
            min_size=1,
            max_size=self._max_size,
            kwargs={"autocommit": True, "connect_timeout": max(1, int(self._connect_timeout_s))},
            open=False,
            name="chatpersona-profiles-async",
        )
        try:
            await pool.open(wait=True, timeout=self._connect_timeout_s)
        except PoolTimeout as exc:
            await pool.close()
            raise BackendError(
                f"Cannot connect to PostgreSQL at {self._where} within {self._connect_timeout_s}s.",
                code="backend_unreachable",
                url=self._where,
            ) from exc
        self._apools[loop] = pool

    async def close_async(self) -> None:
        pool = self._apools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.close()

    def async_ready(self) -> bool:
        try:
            return asyncio.get_running_loop() in self._apools
        except RuntimeError:
            return False

    async def aget(self, tenant: str, user_id: str) -> Profile | None:
        check_ids(tenant, user_id)
        pool = self._apools.get(asyncio.get_running_loop())
        if pool is None:
            return await asyncio.to_thread(self.get, tenant, user_id)
        async with self._aconn(pool) as conn:
            cur = await conn.execute(self._GET, (tenant, user_id))
            row = await cur.fetchone()
        return Profile.model_validate_json(row[0]) if row else None

    OPTIMISTIC_TRIES = 3
    """Tries of :meth:`amerge`'s lock-free path before it falls back to :meth:`merge`."""

    async def amerge(self, tenant: str, user_id: str, patch: ProfilePatch) -> Profile:
        """Like :meth:`merge`, in two round trips instead of four: read the row, then
        ``UPDATE ... WHERE version = <the version read>`` (or ``INSERT ... ON CONFLICT DO
        NOTHING``), each statement its own transaction. A concurrent writer makes the
        statement touch no row; the read and write then run again, and after
        :attr:`OPTIMISTIC_TRIES` the locking :meth:`merge` settles it. Either way no
        concurrent merge is lost."""
        check_ids(tenant, user_id)
        pool = self._apools.get(asyncio.get_running_loop())
        if pool is not None:
            async with self._aconn(pool) as conn:
                for _ in range(self.OPTIMISTIC_TRIES):
                    cur = await conn.execute(self._GET, (tenant, user_id))
                    row = await cur.fetchone()
                    current = Profile.model_validate_json(row[0]) if row else None
                    new = apply_patch(current, patch, tenant=tenant, user_id=user_id)
                    if current is not None:
                        cur = await conn.execute(self._UPDATE, (*self._row(new), current.version))
                    else:
                        cur = await conn.execute(self._INSERT, (*self._row(new), new.created_at))
                    if cur.rowcount == 1:
                        return new
        return await asyncio.to_thread(self.merge, tenant, user_id, patch)

    @asynccontextmanager
    async def _aconn(self, pool: Any) -> AsyncIterator[Any]:
        import psycopg
        from psycopg_pool import PoolTimeout

        try:
            async with pool.connection() as conn:
                yield conn
        except (psycopg.OperationalError, PoolTimeout) as exc:
            raise BackendError(
                f"PostgreSQL at {self._where} failed: {exc}", url=self._where
            ) from exc

    # -- profiles -----------------------------------------------------------------------
    _GET = "SELECT doc::text FROM profiles WHERE tenant = %s AND user_id = %s"

    def get(self, tenant: str, user_id: str) -> Profile | None:
        check_ids(tenant, user_id)
        with self._conn() as conn:
            row = conn.execute(self._GET, (tenant, user_id)).fetchone()
        return Profile.model_validate_json(row[0]) if row else None

    def get_many(self, tenant: str, user_ids: Iterable[str]) -> dict[str, Profile]:
        """One ``SELECT ... WHERE user_id = ANY(%s)`` (one round trip)."""
        ids = list(dict.fromkeys(user_ids))
        for user_id in ids:
            check_ids(tenant, user_id)
        if not ids:
            return {}
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT user_id, doc::text FROM profiles WHERE tenant = %s AND user_id = ANY(%s)",
                (tenant, ids),
            ).fetchall()
        return {uid: Profile.model_validate_json(doc) for uid, doc in rows}

    def merge(self, tenant: str, user_id: str, patch: ProfilePatch) -> Profile:
        check_ids(tenant, user_id)
        with self._tx() as conn:
            return self._merge_locked(conn, tenant, user_id, [patch])

    @staticmethod
    def _row(p: Profile) -> tuple[Any, ...]:
        return (
            p.model_dump_json(),
            p.segment.id if p.segment else None,
            p.version,
            p.updated_at,
            p.tenant,
            p.user_id,
        )

    _UPDATE = (
        "UPDATE profiles SET doc = %s::jsonb, segment_id = %s, version = %s, updated_at = %s"
        " WHERE tenant = %s AND user_id = %s AND version = %s"
    )
    _INSERT = (
        "INSERT INTO profiles (doc, segment_id, version, updated_at, tenant, user_id,"
        " created_at) VALUES (%s::jsonb, %s, %s, %s, %s, %s, %s)"
        " ON CONFLICT (tenant, user_id) DO NOTHING"
    )

    def _merge_locked(
        self, conn: Any, tenant: str, user_id: str, patches: list[ProfilePatch]
    ) -> Profile:
        """Lock (or create) one row inside the caller's transaction and apply ``patches``."""
        for _ in range(3):
            row = conn.execute(
                "SELECT doc::text FROM profiles WHERE tenant = %s AND user_id = %s FOR UPDATE",
                (tenant, user_id),
            ).fetchone()
            current = Profile.model_validate_json(row[0]) if row else None
            new = current
            for patch in patches:
                new = apply_patch(new, patch, tenant=tenant, user_id=user_id)
            assert new is not None
            if current is not None:
                cur = conn.execute(self._UPDATE, (*self._row(new), current.version))
            else:
                cur = conn.execute(self._INSERT, (*self._row(new), new.created_at))
            if cur.rowcount == 1:
                return new
            # Another transaction created the row first: lock it and merge into it.
        raise ConflictError(
            f"Profile {user_id!r} kept changing during the merge; retry.", user_id=user_id
        )

    def merge_many(
        self,
        tenant: str,
        items: Iterable[tuple[str, ProfilePatch]],
        *,
        chunk_size: int = 500,
    ) -> int:
        """Like repeated :meth:`merge`, one transaction per chunk.

        Existing rows are locked in ``user_id`` order by one ``SELECT ... FOR UPDATE`` and
        updated in a batch; missing rows are inserted in a batch. If another writer created
        one of them meanwhile (or the server reports a deadlock), the chunk's transaction
        rolls back and runs again on fresh rows; after a few tries the chunk falls back to
        one :meth:`merge` per item. Either way the result equals merging one by one.
        """
        import psycopg

        n = 0
        for chunk in chunked(items, chunk_size):
            for user_id, _ in chunk:
                check_ids(tenant, user_id)
            by_user: dict[str, list[ProfilePatch]] = {}
            for uid, patch in chunk:
                by_user.setdefault(uid, []).append(patch)
            for _attempt in range(4):
                try:
                    self._merge_chunk(tenant, by_user)
                    break
                except _ChunkRace:
                    continue
                except BackendError as exc:
                    if not isinstance(exc.__cause__, psycopg.errors.TransactionRollback):
                        raise
            else:
                for uid, patch in chunk:
                    self.merge(tenant, uid, patch)
            n += len(chunk)
        return n

    def _merge_chunk(self, tenant: str, by_user: dict[str, list[ProfilePatch]]) -> None:
        ids = sorted(by_user)
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT user_id, doc::text FROM profiles WHERE tenant = %s"
                " AND user_id = ANY(%s) ORDER BY user_id FOR UPDATE",
                (tenant, ids),
            ).fetchall()
            current = {uid: Profile.model_validate_json(doc) for uid, doc in rows}
            updates, inserts = [], []
            for uid in ids:
                old = current.get(uid)
                new = old
                for patch in by_user[uid]:
                    new = apply_patch(new, patch, tenant=tenant, user_id=uid)
                assert new is not None
                if old is not None:
                    updates.append((*self._row(new), old.version))
                else:
                    inserts.append((*self._row(new), new.created_at))
            with conn.cursor() as cur:
                if updates:
                    cur.executemany(self._UPDATE, updates)
                if inserts:
                    cur.executemany(self._INSERT + " RETURNING user_id", inserts, returning=True)
                    created = 0
                    while True:
                        created += len(cur.fetchall())
                        if not cur.nextset():
                            break
                    if created != len(inserts):
                        raise _ChunkRace  # someone created a row we meant to insert

    def delete(self, tenant: str, user_id: str) -> bool:
        check_ids(tenant, user_id)
        with self._conn() as conn:
            cur = conn.execute(
                "DELETE FROM profiles WHERE tenant = %s AND user_id = %s", (tenant, user_id)
            )
            return bool(cur.rowcount > 0)

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
        sql = "SELECT doc::text FROM profiles WHERE tenant = %s"
        args: list[Any] = [tenant]
        if segment is not None:
            sql += " AND segment_id = %s"
            args.append(segment)
        if after is not None:
            sql += " AND user_id > %s"
            args.append(after)
        sql += " ORDER BY user_id LIMIT %s"
        args.append(limit + 1)
        with self._conn() as conn:
            rows = conn.execute(sql, args).fetchall()
        items = [Profile.model_validate_json(r[0]) for r in rows[:limit]]
        nxt = encode_cursor(items[-1].user_id) if len(rows) > limit else None
        return Page(items=items, next_cursor=nxt)

    # -- API keys (KeyStore) ------------------------------------------------------------
    _KEY_COLS = "key_id, tenant, scopes, name, created_at, revoked_at"

    @staticmethod
    def _key(row: tuple[Any, ...]) -> ApiKey:
        key_id, tenant, scopes, name, created_at, revoked_at = row
        return ApiKey(
            key_id=key_id,
            tenant=tenant,
            scopes=frozenset(scopes),
            name=name,
            created_at=created_at.astimezone(UTC),
            revoked=revoked_at is not None,
        )

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
        with self._conn() as conn:
            conn.execute(
                "INSERT INTO api_keys (key_id, tenant, secret_hash, scopes, name, created_at)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (
                    key.key_id,
                    key.tenant,
                    hash_secret(secret),
                    sorted(key.scopes),
                    key.name,
                    key.created_at,
                ),
            )
        return key, secret

    def find_key(self, secret: str) -> ApiKey | None:
        key_id = key_id_of(secret)
        if key_id is None:
            return None
        with self._conn() as conn:
            row = conn.execute(
                f"SELECT {self._KEY_COLS}, secret_hash FROM api_keys WHERE key_id = %s",
                (key_id,),
            ).fetchone()
        if row is None or not check_secret(secret, row[-1]):
            return None
        key = self._key(row[:-1])
        return None if key.revoked else key

    def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        sql = f"SELECT {self._KEY_COLS} FROM api_keys"
        args: tuple[str, ...] = ()
        if tenant is not None:
            sql += " WHERE tenant = %s"
            args = (tenant,)
        with self._conn() as conn:
            rows = conn.execute(sql + " ORDER BY created_at, key_id", args).fetchall()
        return [self._key(r) for r in rows]

    def revoke_key(self, key_id: str) -> bool:
        with self._conn() as conn:
            cur = conn.execute(
                "UPDATE api_keys SET revoked_at = now() WHERE key_id = %s AND revoked_at IS NULL",
                (key_id,),
            )
            return bool(cur.rowcount > 0)

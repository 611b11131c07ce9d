"""SQLite profile + API key store (``sqlite:///path.db``): the embedded default.

WAL mode lets readers run while one writer commits. Each thread gets its own connection
(``sqlite:///:memory:`` shares one connection under a lock, since every connection to
``:memory:`` is a different database). A merge is ``BEGIN IMMEDIATE`` (take the write
lock first) → read → :func:`apply_patch` → write with a version check → ``COMMIT``, so
concurrent merges from threads or processes serialize and all land.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chatpersona.exceptions import BackendError, ConfigError, ConflictError
from chatpersona.profiles import migrations
from chatpersona.profiles._common import check_ids, check_limit, decode_cursor, encode_cursor
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

__all__ = ["SQLiteStore"]

_MEMORY = ":memory:"


class _Connection(sqlite3.Connection):
    """A connection that can be weakly referenced: a thread's connection closes when the
    thread ends (its thread-local slot goes away), and ``close()`` reaches the rest."""


def _parse(url: str) -> str:
    if url in ("sqlite://", "sqlite:///" + _MEMORY):
        return _MEMORY
    if not url.startswith("sqlite:///") or len(url) <= len("sqlite:///"):
        raise ConfigError(
            f"A SQLite store URL looks like 'sqlite:///relative.db', 'sqlite:////abs/path.db' "
            f"or 'sqlite:///:memory:'. Got {url!r} instead.",
            code="invalid_store_url",
            url=url,
        )
    return url[len("sqlite:///") :]


@register_store("sqlite")
class SQLiteStore(ProfileStore):
    """Profiles (JSON documents stored as TEXT) and API keys in one SQLite file.

    Parameters
    ----------
    path:
        The database file, or ``":memory:"``.
    migrate:
        Apply pending schema migrations when opening (default ``True``).
    busy_timeout_s:
        How long a writer waits for the write lock before failing.

    Examples
    --------
    >>> store = SQLiteStore(":memory:")
    >>> store.merge("t", "u1", ProfilePatch(interaction_history=["c1"])).version
    1
    >>> store.get("t", "u1").interaction_history
    ['c1']
    """

    scheme = "sqlite"

    def __init__(
        self, path: str | Path, *, migrate: bool = True, busy_timeout_s: float = 30.0
    ) -> None:
        self.path = str(path)
        self.busy_timeout_s = busy_timeout_s
        self._shared = self.path == _MEMORY
        self._lock = threading.RLock()
        self._local = threading.local()
        self._all: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._closed = False
        if not self._shared:
            parent = Path(self.path).parent
            if not parent.is_dir():
                raise ConfigError(
                    f"Directory {parent} for SQLite database {self.path} does not exist.",
                    code="invalid_store_url",
                    path=self.path,
                )
        self._single = self._connect() if self._shared else None
        if migrate:
            self.migrate()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SQLiteStore:
        """``sqlite:///path.db`` (relative), ``sqlite:////abs.db`` or ``sqlite:///:memory:``."""
        return cls(_parse(url), **options)

    # -- connections --------------------------------------------------------------------
    def _connect(self) -> _Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout_s,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,
                factory=_Connection,
            )
            if not self._shared:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            raise BackendError(
                f"Cannot open SQLite database {self.path}: {exc}", path=self.path
            ) from exc
        with self._lock:
            self._all.add(conn)
        return conn

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        if self._closed:
            raise BackendError(f"SQLite store {self.path} is closed.", path=self.path)
        try:
            if self._single is not None:
                with self._lock:
                    yield self._single
            else:
                conn = getattr(self._local, "conn", None)
                if conn is None:
                    conn = self._local.conn = self._connect()
                yield conn
        except sqlite3.Error as exc:
            raise BackendError(f"SQLite error on {self.path}: {exc}", path=self.path) from exc

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._conn() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                # Also after a failed COMMIT: never leave this thread's connection inside
                # an open transaction.
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def migrate(self) -> list[str]:
        """Apply pending migrations in one transaction; return their labels."""
        with self._write() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            applied = [r[0] for r in conn.execute("SELECT version FROM schema_migrations")]
            todo = migrations.pending(migrations.SQLITE, applied, where=self.path)
            for m in todo:
                for statement in m.statements:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (m.version, m.name, datetime.now(UTC).isoformat()),
                )
        return [m.label for m in todo]

    def ping(self) -> bool:
        try:
            with self._conn() as conn:
                conn.execute("SELECT 1 FROM schema_migrations LIMIT 1").fetchall()
            return True
        except (BackendError, sqlite3.Error):
            return False

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for conn in list(self._all):
                conn.close()
            self._all.clear()
            self._local = threading.local()

    # -- profiles -----------------------------------------------------------------------
    def get(self, tenant: str, user_id: str) -> Profile | None:
        check_ids(tenant, user_id)
        with self._conn() as conn:
            row = conn.execute(
                "SELECT doc FROM profiles WHERE tenant = ? AND user_id = ?", (tenant, user_id)
            ).fetchone()
        return Profile.model_validate_json(row[0]) if row else None

    def get_many(self, tenant: str, user_ids: Iterable[str]) -> dict[str, Profile]:
        """One ``SELECT ... IN (...)`` per 900 ids (SQLite's bound-parameter limit)."""
        ids = list(dict.fromkeys(user_ids))
        for user_id in ids:
            check_ids(tenant, user_id)
        rows: list[tuple[str, str]] = []
        with self._conn() as conn:
            for start in range(0, len(ids), 900):
                part = ids[start : start + 900]
                marks = ",".join("?" * len(part))
                rows += conn.execute(
                    f"SELECT user_id, doc FROM profiles WHERE tenant = ? AND user_id IN ({marks})",
                    (tenant, *part),
                ).fetchall()
        return {uid: Profile.model_validate_json(doc) for uid, doc in rows}

    def merge(self, tenant: str, user_id: str, patch: ProfilePatch) -> Profile:
        check_ids(tenant, user_id)
        with self._write() as conn:
            row = conn.execute(
                "SELECT doc FROM profiles WHERE tenant = ? AND user_id = ?", (tenant, user_id)
            ).fetchone()
            current = Profile.model_validate_json(row[0]) if row else None
            new = apply_patch(current, patch, tenant=tenant, user_id=user_id)
            values = (
                new.model_dump_json(),
                new.segment.id if new.segment else None,
                new.version,
                new.updated_at.isoformat(),
                tenant,
                user_id,
            )
            if current is None:
                conn.execute(
                    "INSERT INTO profiles (doc, segment_id, version, updated_at, tenant, user_id,"
                    " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (*values, new.created_at.isoformat()),
                )
            else:
                cur = conn.execute(
                    "UPDATE profiles SET doc = ?, segment_id = ?, version = ?, updated_at = ?"
                    " WHERE tenant = ? AND user_id = ? AND version = ?",
                    (*values, current.version),
                )
                if cur.rowcount != 1:  # cannot happen under BEGIN IMMEDIATE; guard anyway
                    raise ConflictError(
                        f"Profile {user_id!r} changed during the merge; retry.",
                        user_id=user_id,
                    )
        return new

    def merge_many(
        self,
        tenant: str,
        items: Iterable[tuple[str, ProfilePatch]],
        *,
        chunk_size: int = 500,
    ) -> int:
        """Like repeated :meth:`merge`, one ``BEGIN IMMEDIATE`` transaction per chunk."""
        n = 0
        for chunk in chunked(items, min(chunk_size, 900)):
            for user_id, _ in chunk:
                check_ids(tenant, user_id)
            ids = list(dict.fromkeys(uid for uid, _ in chunk))
            with self._write() as conn:
                marks = ",".join("?" * len(ids))
                rows = conn.execute(
                    f"SELECT user_id, doc FROM profiles WHERE tenant = ? AND user_id IN ({marks})",
                    (tenant, *ids),
                ).fetchall()
                state: dict[str, Profile | None] = {
                    uid: Profile.model_validate_json(doc) for uid, doc in rows
                }
                existed = set(state)
                for uid, patch in chunk:
                    state[uid] = apply_patch(state.get(uid), patch, tenant=tenant, user_id=uid)
                updates, inserts = [], []
                for uid in ids:
                    p = state[uid]
                    assert p is not None
                    values = (
                        p.model_dump_json(),
                        p.segment.id if p.segment else None,
                        p.version,
                        p.updated_at.isoformat(),
                        tenant,
                        uid,
                    )
                    if uid in existed:
                        updates.append(values)
                    else:
                        inserts.append((*values, p.created_at.isoformat()))
                conn.executemany(
                    "UPDATE profiles SET doc = ?, segment_id = ?, version = ?, updated_at = ?"
                    " WHERE tenant = ? AND user_id = ?",
                    updates,
                )
                conn.executemany(
                    "INSERT INTO profiles (doc, segment_id, version, updated_at, tenant, user_id,"
                    " created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    inserts,
                )
            n += len(chunk)
        return n

    def delete(self, tenant: str, user_id: str) -> bool:
        check_ids(tenant, user_id)
        with self._write() as conn:
            cur = conn.execute(
                "DELETE FROM profiles WHERE tenant = ? AND user_id = ?", (tenant, user_id)
            )
            return cur.rowcount > 0

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
        sql = "SELECT doc FROM profiles WHERE tenant = ?"
        args: list[Any] = [tenant]
        if segment is not None:
            sql += " AND segment_id = ?"
            args.append(segment)
        if after is not None:
            sql += " AND user_id > ?"
            args.append(after)
        sql += " ORDER BY user_id LIMIT ?"
        args.append(limit + 1)
        with self._conn() as conn:
            rows = conn.execute(sql, args).fetchall()
        items = [Profile.model_validate_json(r[0]) for r in rows[:limit]]
        nxt = encode_cursor(items[-1].user_id) if len(rows) > limit else None
        return Page(items=items, next_cursor=nxt)

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
        with self._write() as conn:
            conn.execute(
                "INSERT INTO api_keys (key_id, tenant, secret_hash, scopes, name, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    key.key_id,
                    key.tenant,
                    hash_secret(secret),
                    json.dumps(sorted(key.scopes)),
                    key.name,
                    key.created_at.isoformat(),
                ),
            )
        return key, secret

    @staticmethod
    def _key(row: tuple[Any, ...]) -> ApiKey:
        key_id, tenant, scopes, name, created_at, revoked_at = row
        return ApiKey(
            key_id=key_id,
            tenant=tenant,
            scopes=frozenset(json.loads(scopes)),
            name=name,
            created_at=datetime.fromisoformat(created_at),
            revoked=revoked_at is not None,
        )

    _KEY_COLS = "key_id, tenant, scopes, name, created_at, revoked_at"

    def find_key(self, secret: str) -> ApiKey | None:
        key_id = key_id_of(secret)
        if key_id is None:
            return None
        with self._conn() as conn:
            row = conn.execute(
                f"SELECT {self._KEY_COLS}, secret_hash FROM api_keys WHERE key_id = ?",
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
            sql += " WHERE tenant = ?"
            args = (tenant,)
        with self._conn() as conn:
            rows = conn.execute(sql + " ORDER BY created_at, key_id", args).fetchall()
        return [self._key(r) for r in rows]

    def revoke_key(self, key_id: str) -> bool:
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL",
                (datetime.now(UTC).isoformat(), key_id),
            )
            return cur.rowcount > 0

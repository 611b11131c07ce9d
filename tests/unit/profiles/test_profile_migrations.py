"""Versioned migrations: applied once, recorded, idempotent, and a newer DB is refused."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import psycopg
import pytest

from chatpersona.exceptions import BackendError
from chatpersona.profiles import migrations, open_store
from chatpersona.profiles.postgres import PostgresStore
from chatpersona.profiles.sqlite import SQLiteStore


def test_versions_are_contiguous_and_same_for_both_dialects() -> None:
    for ms in (migrations.SQLITE, migrations.POSTGRES):
        assert [m.version for m in ms] == list(range(1, len(ms) + 1))
    assert [m.label for m in migrations.SQLITE] == [m.label for m in migrations.POSTGRES]


def test_sqlite_migrations_apply_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    s = open_store(url, migrate=False)
    assert s.ping() is False  # no schema yet
    assert s.migrate() == ["0001_profiles", "0002_api_keys"]  # type: ignore[attr-defined]
    assert s.migrate() == []  # type: ignore[attr-defined]
    assert s.ping() is True
    s.close()
    with sqlite3.connect(tmp_path / "m.db") as conn:
        rows = conn.execute("SELECT version, name FROM schema_migrations").fetchall()
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert rows == [(1, "profiles"), (2, "api_keys")]
    assert mode == "wal"
    assert open_store(url).migrate() == []  # type: ignore[attr-defined]


def test_sqlite_newer_schema_is_refused(tmp_path: Path) -> None:
    SQLiteStore(tmp_path / "m.db").close()
    with sqlite3.connect(tmp_path / "m.db") as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (99, 'future', 'x')")
    with pytest.raises(BackendError) as err:
        SQLiteStore(tmp_path / "m.db")
    assert err.value.code == "schema_too_new" and err.value.fields["versions"] == [99]


@pytest.mark.integration
def test_postgres_migrations_idempotent_and_concurrent(postgres_url: str) -> None:
    results: list[list[str]] = []
    errors: list[BaseException] = []
    stores: list[PostgresStore] = []

    def start() -> None:
        try:
            s = PostgresStore(postgres_url, migrate=False, max_size=2)
            stores.append(s)
            results.append(s.migrate())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    # Exactly one opener applied the migrations; the others found them done.
    assert sorted(results, key=len) == [[], [], [], ["0001_profiles", "0002_api_keys"]]
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
        col = conn.execute(
            "SELECT data_type FROM information_schema.columns"
            " WHERE table_name = 'profiles' AND column_name = 'doc'"
        ).fetchone()
    assert rows == [(1,), (2,)] and col == ("jsonb",)
    for s in stores:
        assert s.ping() is True
        s.close()


@pytest.mark.integration
def test_postgres_unreachable_is_a_clear_backend_error() -> None:
    with pytest.raises(BackendError) as err:
        open_store("postgresql://postgres:hunter2@127.0.0.1:1/nowhere", connect_timeout_s=2)
    assert err.value.code == "backend_unreachable"
    assert "hunter2" not in err.value.message and "***" in err.value.message

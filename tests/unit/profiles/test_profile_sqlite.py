"""SQLite specifics: URLs, per-thread connections, the shared :memory: connection."""

from __future__ import annotations

import gc
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from chatpersona.exceptions import BackendError, ConfigError
from chatpersona.profiles import ProfilePatch, open_store
from chatpersona.profiles.sqlite import SQLiteStore


@pytest.mark.parametrize("url", ["sqlite:", "sqlite:///", "sqlite:/x.db"])
def test_bad_urls_say_what_a_good_one_looks_like(url: str) -> None:
    with pytest.raises(ConfigError) as err:
        SQLiteStore.from_url(url)
    assert "sqlite:///relative.db" in err.value.message and repr(url) in err.value.message


def test_missing_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        open_store(f"sqlite:///{tmp_path}/nope/x.db")
    assert "does not exist" in err.value.message


def test_absolute_and_relative_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    open_store("sqlite:///rel.db").close()
    open_store(f"sqlite:///{tmp_path / 'abs.db'}").close()
    assert (tmp_path / "rel.db").exists() and (tmp_path / "abs.db").exists()


def test_memory_database_is_shared_across_threads() -> None:
    store = open_store("sqlite:///:memory:")

    def add(i: int) -> None:
        store.merge("t", "u", ProfilePatch(interaction_history=[f"c{i}"]))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(add, range(40)))
    p = store.get("t", "u")
    assert p is not None and p.interaction_count == 40
    store.close()


def test_thread_connections_close_when_threads_end(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "t.db")
    store.get("t", "u")  # this thread's connection

    def work() -> None:
        store.get("t", "u")

    threads = [threading.Thread(target=work) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gc.collect()
    assert len(store._all) == 1  # only the live thread's connection remains
    store.close()
    with pytest.raises(BackendError):
        store.get("t", "u")


def test_failed_commit_leaves_no_open_transaction(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "c.db")
    store.merge("t", "u", ProfilePatch(preferences={"a": 1}))

    class Boom(Exception):
        pass

    with pytest.raises(Boom), store._write() as conn:
        conn.execute("DELETE FROM profiles")
        raise Boom
    assert store.get("t", "u") is not None  # rolled back
    with store._conn() as conn:
        assert not conn.in_transaction
    store.merge("t", "u", ProfilePatch(preferences={"a": 2}))  # the connection still works
    store.close()

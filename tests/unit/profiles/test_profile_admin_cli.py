"""`chatpersona db upgrade` and `chatpersona keys create|list|revoke` end to end."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chatpersona.cli.main import app
from chatpersona.profiles import open_store
from chatpersona.profiles.keys import key_id_of

runner = CliRunner()


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'admin.db'}"


def test_db_upgrade_prints_what_it_applied(url: str) -> None:
    first = runner.invoke(app, ["db", "upgrade", "--store", url])
    assert first.exit_code == 0, first.output
    assert "applied 0001_profiles" in first.output and "applied 0002_api_keys" in first.output
    again = runner.invoke(app, ["db", "upgrade", "--store", url])
    assert again.exit_code == 0 and "up to date" in again.output and "applied" not in again.output


def test_keys_lifecycle(url: str) -> None:
    created = runner.invoke(
        app,
        [
            "keys",
            "create",
            "--tenant",
            "acme",
            "--scopes",
            "profile:read,profile:write",
            "--name",
            "support-bot",
            "--store",
            url,
        ],
    )
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[-1]
    key_id = key_id_of(secret)
    assert key_id is not None
    store = open_store(url)
    key = store.find_key(secret)  # type: ignore[attr-defined]
    assert key is not None and key.tenant == "acme" and key.name == "support-bot"
    assert key.scopes == frozenset({"profile:read", "profile:write"})

    listed = runner.invoke(app, ["keys", "list", "--store", url])
    assert listed.exit_code == 0 and key_id in listed.output and "active" in listed.output
    assert secret not in listed.output and secret.split("_", 2)[2] not in listed.output

    revoked = runner.invoke(app, ["keys", "revoke", key_id, "--store", url])
    assert revoked.exit_code == 0 and key_id in revoked.output
    assert store.find_key(secret) is None  # type: ignore[attr-defined]
    listed = runner.invoke(app, ["keys", "list", "--tenant", "acme", "--store", url])
    assert "revoked" in listed.output
    store.close()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatpersona.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_errors_exit_2_with_a_clear_message(url: str) -> None:
    bad = _cli("keys", "create", "--tenant", "acme", "--scopes", "profile:raed", "--store", url)
    assert bad.returncode == 2
    assert "profile:raed" in bad.stderr and "profile:read" in bad.stderr
    missing = _cli("keys", "revoke", "0123456789abcdef", "--store", url)
    assert missing.returncode == 2 and "0123456789abcdef" in missing.stderr


def test_store_url_from_environment(tmp_path: Path) -> None:
    env_url = f"sqlite:///{tmp_path / 'env.db'}"
    result = runner.invoke(
        app,
        ["keys", "create", "--tenant", "t1", "--scopes", "admin"],
        env={"CHATPERSONA_STORE_URL": env_url},
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "env.db").exists()
    s = open_store(env_url)
    assert [k.tenant for k in s.list_keys()] == ["t1"]  # type: ignore[attr-defined]
    s.close()


@pytest.mark.integration
def test_db_upgrade_and_keys_on_postgresql(postgres_url: str) -> None:
    up = runner.invoke(app, ["db", "upgrade", "--store", postgres_url])
    assert up.exit_code == 0 and "applied 0002_api_keys" in up.output, up.output
    created = runner.invoke(
        app,
        ["keys", "create", "--tenant", "acme", "--scopes", "events:write", "--store", postgres_url],
    )
    assert created.exit_code == 0, created.output
    secret = created.stdout.strip().splitlines()[-1]
    store = open_store(postgres_url)
    key = store.find_key(secret)  # type: ignore[attr-defined]
    assert key is not None and key.scopes == frozenset({"events:write"})
    store.close()

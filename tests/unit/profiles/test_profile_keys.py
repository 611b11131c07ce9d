"""API key secrets: format, hashing at rest, validation of tenants and scopes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from chatpersona.exceptions import ValidationError
from chatpersona.profiles.keys import (
    ApiKey,
    check_secret,
    hash_secret,
    key_id_of,
    new_secret,
    normalize_scopes,
    validate_tenant,
)
from chatpersona.profiles.sqlite import SQLiteStore


def test_secret_embeds_its_key_id_and_is_random() -> None:
    seen = set()
    for _ in range(50):
        key_id, secret = new_secret()
        assert key_id_of(secret) == key_id
        assert secret.startswith(f"cp_{key_id}_")
        seen.add(secret)
    assert len(seen) == 50


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "cp_",
        "cp_zzzzzzzzzzzzzzzz_" + "a" * 43,
        "xx_0123456789abcdef_" + "a" * 43,
        "cp_0123456789abcdef_" + "a" * 42,
        "cp_0123456789abcdef_" + "a" * 44,
        "a" * 500,
    ],
)
def test_malformed_secrets_have_no_key_id(bad: str) -> None:
    assert key_id_of(bad) is None


def test_hash_check_is_exact() -> None:
    _, secret = new_secret()
    digest = hash_secret(secret)
    assert len(digest) == 64 and secret not in digest
    assert check_secret(secret, digest)
    assert not check_secret(secret + "x", digest)
    assert not check_secret(secret[:-1], digest)


def test_sqlite_keeps_only_the_hash(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    store = SQLiteStore(db)
    key, secret = store.create_key("acme", ["profile:read"])
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert secret.encode() not in raw
    assert secret.split("_", 2)[2].encode() not in raw
    with sqlite3.connect(db) as conn:
        (stored,) = conn.execute(
            "SELECT secret_hash FROM api_keys WHERE key_id = ?", (key.key_id,)
        ).fetchone()
    assert stored == hash_secret(secret)


def test_scopes_normalized_and_checked() -> None:
    assert normalize_scopes(" profile:read ,profile:write,,") == frozenset(
        {"profile:read", "profile:write"}
    )
    assert normalize_scopes(["admin"]) == frozenset({"admin"})
    with pytest.raises(ValidationError) as err:
        normalize_scopes(",")
    assert err.value.code == "invalid_scopes"
    with pytest.raises(ValidationError) as err:
        normalize_scopes(["profile read"])
    assert err.value.fields["value"] == ["profile read"]


@pytest.mark.parametrize("tenant", ["", " ", "a b", "x" * 65, "t/1", "é"])
def test_bad_tenants_rejected(tenant: str) -> None:
    with pytest.raises(ValidationError) as err:
        validate_tenant(tenant)
    assert err.value.code == "invalid_tenant"
    assert repr(tenant) in err.value.message


def test_admin_implies_every_scope() -> None:
    admin = ApiKey("0" * 16, "t", frozenset({"admin"}))
    reader = ApiKey("1" * 16, "t", frozenset({"profile:read"}))
    assert admin.has_scope("events:write")
    assert reader.has_scope("profile:read") and not reader.has_scope("profile:write")

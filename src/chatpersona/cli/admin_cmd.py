"""Admin commands: ``chatpersona db upgrade`` and ``chatpersona keys create|list|revoke``.

The store URL comes from ``--store``, else ``CHATPERSONA_STORE_URL`` / the settings file,
else the embedded default ``sqlite:///chatpersona.db``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from chatpersona.profiles.base import ProfileStore
    from chatpersona.profiles.keys import KeyStore

__all__ = ["register"]

console = Console()

db_app = typer.Typer(help="Manage the profile store's schema.", no_args_is_help=True)
keys_app = typer.Typer(
    help="Manage API keys (stored hashed; a secret is shown once).", no_args_is_help=True
)

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="Profile store URL (sqlite:///path.db, postgresql://...). "
        "Default: CHATPERSONA_STORE_URL or sqlite:///chatpersona.db.",
        show_default=False,
    ),
]
ConfigOpt = Annotated[
    str | None,
    typer.Option("--config", help="Settings YAML file (store_url, ...).", show_default=False),
]


def _store_url(store: str | None, config: str | None) -> str:
    if store:
        return store
    from chatpersona.config import load_settings

    return load_settings(config, environ=os.environ).store_url


def _open(store: str | None, config: str | None, *, migrate: bool = True) -> ProfileStore:
    from chatpersona.profiles import open_store

    return open_store(_store_url(store, config), migrate=migrate)


def _key_store(store: ProfileStore) -> KeyStore:
    from chatpersona.exceptions import ConfigError
    from chatpersona.profiles.keys import KeyStore

    if not isinstance(store, KeyStore):
        raise ConfigError(
            f"The store {type(store).__name__} cannot hold API keys.", code="no_key_store"
        )
    return store


@db_app.command("upgrade")
def db_upgrade(store: StoreOpt = None, config: ConfigOpt = None) -> None:
    """Apply pending schema migrations to the profile store and print what was applied."""
    from chatpersona.profiles._common import redact_url

    url = _store_url(store, config)
    s = _open(url, None, migrate=False)
    try:
        migrate = getattr(s, "migrate", None)
        applied: list[str] = list(migrate()) if migrate is not None else []
    finally:
        s.close()
    where = redact_url(url)
    if applied:
        for label in applied:
            console.print(f"applied {label}", highlight=False)
        console.print(f"{where}: {len(applied)} migration(s) applied.", highlight=False)
    else:
        console.print(f"{where}: schema is up to date.", highlight=False)


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option("--tenant", help="Tenant the key belongs to.")],
    scopes: Annotated[
        str,
        typer.Option(
            "--scopes",
            help="Comma-separated scopes: profile:read, profile:write, events:write, admin.",
        ),
    ],
    name: Annotated[
        str | None, typer.Option("--name", help="A label to recognise the key by.")
    ] = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Create an API key and print its secret alone on the last line (shown only once)."""
    from chatpersona.exceptions import ValidationError
    from chatpersona.profiles.keys import KNOWN_SCOPES, normalize_scopes

    wanted = normalize_scopes(scopes)
    unknown = sorted(wanted - KNOWN_SCOPES)
    if unknown:
        raise ValidationError(
            f"Unknown scope(s) {', '.join(unknown)}. Known: {', '.join(sorted(KNOWN_SCOPES))}.",
            code="invalid_scopes",
            field="scopes",
            value=unknown,
        )
    s = _open(store, config)
    try:
        key, secret = _key_store(s).create_key(tenant, wanted, name=name)
    finally:
        s.close()
    console.print(
        f"Created key {key.key_id} for tenant {key.tenant} with scopes "
        f"{','.join(sorted(key.scopes))}. Store the secret below now: it is not shown again.",
        highlight=False,
    )
    typer.echo(secret)


@keys_app.command("list")
def keys_list(
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Only keys of this tenant.")
    ] = None,
    store: StoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """List API keys (ids, tenants, scopes, state); secrets are never shown."""
    s = _open(store, config)
    try:
        keys = _key_store(s).list_keys(tenant)
    finally:
        s.close()
    table = Table()
    table.add_column("key_id", no_wrap=True, min_width=16)
    for col in ("tenant", "scopes", "name", "created_at", "state"):
        table.add_column(col, overflow="fold")
    for k in keys:
        table.add_row(
            k.key_id,
            k.tenant,
            ",".join(sorted(k.scopes)),
            k.name or "",
            k.created_at.isoformat(timespec="seconds"),
            "revoked" if k.revoked else "active",
        )
    console.print(table)
    console.print(f"{len(keys)} key(s).", highlight=False)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id shown by `keys list`.")],
    store: StoreOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Revoke an API key: requests made with it get 401 from then on."""
    from chatpersona.exceptions import NotFoundError

    s = _open(store, config)
    try:
        done = _key_store(s).revoke_key(key_id)
    finally:
        s.close()
    if not done:
        raise NotFoundError(
            f"No active API key with id {key_id!r} (see `chatpersona keys list`).",
            key_id=key_id,
        )
    console.print(f"Revoked key {key_id}.", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the ``db`` and ``keys`` command groups to the root app."""
    app.add_typer(db_app, name="db")
    app.add_typer(keys_app, name="keys")

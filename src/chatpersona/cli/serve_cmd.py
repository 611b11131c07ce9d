"""``chatpersona serve``: run the REST API with uvicorn.

Settings are read once here (file, then ``CHATPERSONA_*`` variables, then options) and
handed to :func:`chatpersona.api.create_app`. With ``--workers N`` (N > 1) every worker
process rebuilds the app from the very same frozen settings, passed as JSON in a private
environment variable, not by reading the configuration again.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from fastapi import FastAPI

    from chatpersona.config import Settings

__all__ = ["register", "worker_app"]

_SETTINGS_ENV = "_CHATPERSONA_SERVE_SETTINGS_JSON"


def worker_app() -> FastAPI:
    """App factory for uvicorn worker processes (``--workers`` > 1)."""
    from chatpersona.api import create_app
    from chatpersona.config import Settings

    data = json.loads(os.environ[_SETTINGS_ENV])
    settings = Settings(**data)
    _configure_logging(settings.log_level)
    return create_app(settings)


def _configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("chatpersona")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the root app."""

    @app.command("serve")
    def serve(
        store: Annotated[
            str | None,
            typer.Option(
                "--store",
                help="Profile store URL: sqlite:///path.db (default sqlite:///chatpersona.db), "
                "postgresql://user@host/db or memory://.",
            ),
        ] = None,
        cache: Annotated[
            str | None,
            typer.Option(
                "--cache", help="Redis read-through cache URL, e.g. redis://127.0.0.1:6379/0."
            ),
        ] = None,
        host: Annotated[
            str | None,
            typer.Option("--host", help="Interface to bind (default 127.0.0.1, loopback only)."),
        ] = None,
        port: Annotated[
            int | None, typer.Option("--port", help="TCP port (default 8000).", min=0, max=65535)
        ] = None,
        config: Annotated[
            Path | None,
            typer.Option(
                "--config", help="YAML settings file (CHATPERSONA_* variables override it)."
            ),
        ] = None,
        model_dir: Annotated[
            str | None,
            typer.Option(
                "--model-dir",
                help="Segment model directory (or model registry root) for /api/segments.",
            ),
        ] = None,
        workers: Annotated[
            int, typer.Option("--workers", help="uvicorn worker processes.", min=1, max=64)
        ] = 1,
    ) -> None:
        """Serve the profiles REST API (OpenAPI docs at /docs) until interrupted."""
        import uvicorn

        from chatpersona.api import create_app
        from chatpersona.config import load_settings

        settings: Settings = load_settings(
            config,
            environ=os.environ,
            store_url=store,
            cache_url=cache,
            host=host,
            port=port,
            model_dir=model_dir,
        )
        _configure_logging(settings.log_level)
        scheme = settings.store_url.split("://", 1)[0]
        typer.echo(
            f"chatpersona API on http://{settings.host}:{settings.port} "
            f"(store: {scheme}, cache: {'redis' if settings.cache_url else 'none'}, "
            f"workers: {workers})",
            err=True,
        )
        # uvicorn's access log would print concrete paths (user ids); the API writes its
        # own access log with route templates instead.
        common = {
            "host": settings.host,
            "port": settings.port,
            "access_log": False,
            "log_level": settings.log_level.lower(),
            "server_header": False,
        }
        if workers == 1:
            uvicorn.run(create_app(settings), **common)  # type: ignore[arg-type]
            return
        os.environ[_SETTINGS_ENV] = json.dumps(dataclasses.asdict(settings))
        uvicorn.run(
            "chatpersona.cli.serve_cmd:worker_app",
            factory=True,
            workers=workers,
            **common,  # type: ignore[arg-type]
        )

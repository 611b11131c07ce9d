"""The application factory: settings in, a FastAPI app out (nothing is built at import).

``create_app`` wires the store, the optional services, the middlewares (metrics and access
log outermost, then the body limits) and the routers: the api's own (``health``,
``profiles``, ``segments``, ``admin``) and, when their modules exist, ``events``,
``decisions`` and ``chat`` from :mod:`chatpersona.api.routes`.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any

from fastapi import FastAPI
from starlette.routing import compile_path

from chatpersona import __version__
from chatpersona.api.deps import AUTH_MARKER
from chatpersona.api.errors import install_error_handlers
from chatpersona.api.limits import BodyLimitMiddleware, TokenBucketLimiter
from chatpersona.api.metrics import Metrics, ObservabilityMiddleware, route_templates
from chatpersona.api.routes import admin, health, profiles, segments
from chatpersona.api.security import KeyAuthenticator, find_key_store
from chatpersona.config import Settings
from chatpersona.exceptions import BackendError
from chatpersona.profiles.base import AsyncStore, ProfileStore, open_store

__all__ = ["OPTIONAL_ROUTERS", "create_app", "open_configured_store"]

log = logging.getLogger(__name__)

OPTIONAL_ROUTERS: tuple[str, ...] = ("events", "decisions", "chat")
"""Router modules of other stages, included when ``chatpersona.api.routes.<name>`` exists."""

MAX_JSON_DEPTH = 32
EVENTS_MAX_BODY_BYTES = 2 * 1024 * 1024
"""``POST /api/events`` carries up to 500 events: 2 MiB (4 KiB per event on average)."""


def open_configured_store(settings: Settings) -> ProfileStore:
    """The store named by ``settings.store_url``, behind the Redis cache if
    ``settings.cache_url`` is set."""
    return open_store(
        settings.store_url,
        cache_url=settings.cache_url,
        cache_ttl_seconds=settings.cache_ttl_seconds,
    )


def _optional_router(name: str) -> ModuleType | None:
    module_name = f"{__package__}.routes.{name}"
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only the router module itself may be missing; a broken import inside it is a bug.
        if exc.name != module_name:
            raise
        return None


def create_app(
    settings: Settings,
    *,
    store: ProfileStore | None = None,
    services: dict[str, Any] | None = None,
) -> FastAPI:
    """Build the REST API.

    Parameters
    ----------
    settings:
        Frozen settings (built once by the CLI or a test); stored as ``app.state.settings``.
    store:
        The profile store; opened from ``settings.store_url`` (+ ``cache_url``) when
        ``None``, and then closed with the app.
    services:
        Optional components by name, stored as ``app.state.services``: ``"keys"`` (a
        :class:`~chatpersona.profiles.keys.KeyStore` when the store is not one),
        ``"segments"``, ``"state"``, ``"event_log"``, ``"transport"``, ``"decisions"``,
        ``"bot"``, ``"pipeline"``. Any service with ``delete_user(tenant, user_id)`` /
        ``export_user(tenant, user_id)`` takes part in erasure / export.

    Returns
    -------
    FastAPI
        The app; OpenAPI at ``/openapi.json``, docs at ``/docs``.

    Examples
    --------
    >>> from chatpersona.config import Settings
    >>> from chatpersona.profiles import MemoryStore
    >>> app = create_app(Settings(), store=MemoryStore())
    >>> "/api/user/{user_id}/profile" in app.openapi()["paths"]
    True
    """
    owns_store = store is None
    the_store = store if store is not None else open_configured_store(settings)
    the_services: dict[str, Any] = dict(services or {})
    if "state" not in the_services and not settings.state_url.startswith("memory"):
        # A shared real-time state (Redis) is reachable from the API too: erasure and
        # export cover it. A memory:// state lives in the worker's process only.
        from chatpersona.api.erasure import StateEraser
        from chatpersona.stream.state import open_state

        the_services["state"] = StateEraser(open_state(settings.state_url))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Network stores read and merge on this event loop (no thread hop per request)
        # once their async clients are open; if that fails, they keep using threads.
        async_store = the_store if isinstance(the_store, AsyncStore) else None
        if async_store is not None:
            try:
                await async_store.open_async()
            except BackendError as exc:
                log.warning("async profile store access unavailable, using threads (%s)", exc.code)
        try:
            yield
        finally:
            if async_store is not None:
                await async_store.close_async()
            if owns_store:
                the_store.close()

    app = FastAPI(
        title="chatpersona",
        version=__version__,
        description="User profiles, segments and personalization for support chatbots.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.store = the_store
    app.state.services = the_services
    app.state.metrics = Metrics()
    app.state.rate_limiter = TokenBucketLimiter(settings.rate_limit_per_minute)
    app.state.route_methods = []  # (path regex, methods): the Allow header of a 405
    app.state.authenticator = KeyAuthenticator(find_key_store(the_store, the_services))

    install_error_handlers(app)
    # Added last = outermost: metrics/access log see every answer, the 413/400s included.
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        max_depth=MAX_JSON_DEPTH,
        route_limits={"/api/events": EVENTS_MAX_BODY_BYTES},
    )
    templates: list[tuple[re.Pattern[str], str]] = []
    secured: set[tuple[str, str]] = set()
    app.add_middleware(ObservabilityMiddleware, metrics=app.state.metrics, templates=templates)

    modules: list[ModuleType] = [health, profiles, segments, admin]
    for name in OPTIONAL_ROUTERS:
        module = _optional_router(name)
        if module is not None:
            modules.append(module)
    for module in modules:
        app.include_router(module.router)
        templates.extend(route_templates(module.router.routes))
        secured.update(_secured_operations(module.router.routes))
        for route in module.router.routes:
            if isinstance(getattr(route, "path", None), str) and getattr(route, "methods", None):
                regex, _, _ = compile_path(route.path)
                app.state.route_methods.append((regex, set(route.methods)))
        setup = getattr(module, "setup", None)
        if callable(setup):
            setup(app, settings)
    _document_security(app, secured)
    return app


SECURITY_SCHEMES: dict[str, Any] = {
    "HTTPBearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key: `Authorization: Bearer cp_<key_id>_<secret>`.",
    },
    "APIKeyHeader": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "The same API key in `X-API-Key`.",
    },
}


def _uses_auth(dependant: Any) -> bool:
    for dep in getattr(dependant, "dependencies", ()):
        if getattr(dep.call, AUTH_MARKER, False) or _uses_auth(dep):
            return True
    return False


def _secured_operations(routes: Any) -> set[tuple[str, str]]:
    """``(path, method)`` of every route whose dependencies authenticate an API key."""
    out = set()
    for route in routes:
        dependant = getattr(route, "dependant", None)
        if dependant is not None and _uses_auth(dependant):
            for method in getattr(route, "methods", ()):
                out.add((route.path, method.lower()))
    return out


def _document_security(app: FastAPI, secured: set[tuple[str, str]]) -> None:
    """Add the API-key security schemes to the OpenAPI document (the dependencies read
    the headers themselves, so FastAPI cannot infer them)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        schema.setdefault("components", {}).setdefault("securitySchemes", {}).update(
            SECURITY_SCHEMES
        )
        for path, operations in schema.get("paths", {}).items():
            for method, operation in operations.items():
                if (path, method) in secured:
                    operation["security"] = [{"HTTPBearer": []}, {"APIKeyHeader": []}]
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

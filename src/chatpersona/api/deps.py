"""Dependencies shared by every router, as ``Annotated`` aliases (FastAPI template style).

Routers (the api's own and the stream/decide/chat ones) declare what they need::

    from chatpersona.api.deps import StoreDep, require_scope

    @router.post("/events")
    def ingest(body: EventCreate, store: StoreDep,
               principal: Annotated[Principal, Depends(require_scope("events:write"))]): ...

Authentication (401), the per-key rate limit (429) and the scope check (403) all happen
here, so a route that takes a :class:`Principal` is protected by construction. Every
dependency here is ``async``: a sync one would cost a thread-pool hop per request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from chatpersona.api.errors import ApiError
from chatpersona.api.limits import TokenBucketLimiter
from chatpersona.api.security import KeyAuthenticator, Principal
from chatpersona.config import Settings
from chatpersona.profiles.base import AsyncStore, ProfileStore
from chatpersona.profiles.schema import Profile, ProfilePatch

T = TypeVar("T")

__all__ = [
    "AUTH_MARKER",
    "AdminDep",
    "Principal",
    "PrincipalDep",
    "ProfileReaderDep",
    "ProfileWriterDep",
    "ServicesDep",
    "SettingsDep",
    "StoreDep",
    "get_principal",
    "get_services",
    "get_settings",
    "get_store",
    "require_scope",
    "run_store",
    "store_get",
    "store_merge",
]


async def get_settings(request: Request) -> Settings:
    """The app's frozen :class:`~chatpersona.config.Settings` (given to ``create_app``)."""
    settings: Settings = request.app.state.settings
    return settings


async def get_store(request: Request) -> ProfileStore:
    """The app's profile store."""
    store: ProfileStore = request.app.state.store
    return store


async def get_services(request: Request) -> dict[str, Any]:
    """Optional components (``"state"``, ``"event_log"``, ``"segments"`` ...) by name."""
    services: dict[str, Any] = request.app.state.services
    return services


INLINE_READ_SCHEMES = frozenset({"memory", "sqlite"})
"""Stores whose reads run inline on the event loop: local, CPU-bound and short (a thread
hop costs more than the call; SQLite readers never wait in WAL mode)."""

INLINE_WRITE_SCHEMES = frozenset({"memory"})
"""Stores whose writes run inline. SQLite writes may wait for the file's write lock
(held by another worker process), so they go to the thread pool like every call to a
network store (PostgreSQL, the Redis cache), where waits of many requests overlap."""


async def run_store(
    store: ProfileStore, fn: Callable[..., T], *args: Any, write: bool = False, **kwargs: Any
) -> T:
    """Call ``fn(*args, **kwargs)`` — a method of ``store`` — inline or in the thread pool,
    by the store's kind and whether the call writes (see :data:`INLINE_READ_SCHEMES`)."""
    inline = INLINE_WRITE_SCHEMES if write else INLINE_READ_SCHEMES
    if getattr(store, "scheme", None) in inline:
        return fn(*args, **kwargs)
    return await run_in_threadpool(fn, *args, **kwargs)


_ASYNC_STORES: dict[type, bool] = {}


def _async_ready(store: ProfileStore) -> bool:
    kind = type(store)
    is_async = _ASYNC_STORES.get(kind)
    if is_async is None:
        is_async = _ASYNC_STORES[kind] = isinstance(store, AsyncStore)
    return is_async and store.async_ready()  # type: ignore[attr-defined]


async def store_get(store: ProfileStore, tenant: str, user_id: str) -> Profile | None:
    """``store.get(tenant, user_id)`` without a thread hop when the store works on this
    event loop (:class:`~chatpersona.profiles.base.AsyncStore`, opened by the app's
    lifespan: PostgreSQL, the Redis cache), else through :func:`run_store`."""
    if _async_ready(store):
        profile: Profile | None = await store.aget(tenant, user_id)  # type: ignore[attr-defined]
        return profile
    return await run_store(store, store.get, tenant, user_id)


async def store_merge(
    store: ProfileStore, tenant: str, user_id: str, patch: ProfilePatch
) -> Profile:
    """``store.merge(tenant, user_id, patch)``, on the event loop like :func:`store_get`."""
    if _async_ready(store):
        merged: Profile = await store.amerge(tenant, user_id, patch)  # type: ignore[attr-defined]
        return merged
    return await run_store(store, store.merge, tenant, user_id, patch, write=True)


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[ProfileStore, Depends(get_store)]
ServicesDep = Annotated[dict[str, Any], Depends(get_services)]

AUTH_MARKER = "__chatpersona_auth__"
"""Attribute set on the authenticating dependencies; ``create_app`` documents the API-key
security schemes on every operation that uses one."""


def _unauthorized(code: str, message: str) -> ApiError:
    return ApiError(401, code, message, headers={"WWW-Authenticate": "Bearer"})


def _secret_of(request: Request) -> str | None:
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    return request.headers.get("x-api-key") or None


async def get_principal(request: Request) -> Principal:
    """Authenticate the request's API key and spend one token of its rate limit.

    The key is read from ``Authorization: Bearer KEY``, else ``X-API-Key: KEY``. Raises
    401 (``missing_api_key`` / ``invalid_api_key``) or 429 (``rate_limited``, with
    ``Retry-After``). One flat dependency on purpose: each dependency node costs time on
    every request.
    """
    secret = _secret_of(request)
    if not secret:
        raise _unauthorized(
            "missing_api_key", "Send an API key as 'Authorization: Bearer KEY' or 'X-API-Key'."
        )
    authenticator: KeyAuthenticator = request.app.state.authenticator
    principal = await authenticator.authenticate(secret)
    if principal is None:
        raise _unauthorized("invalid_api_key", "The API key is unknown or revoked.")
    request.state.key_id = principal.key_id
    limiter: TokenBucketLimiter = request.app.state.rate_limiter
    wait = limiter.take(principal.key_id)
    if wait > 0:
        raise ApiError(
            429,
            "rate_limited",
            "Too many requests for this API key; retry later.",
            headers={"Retry-After": limiter.retry_after(wait)},
        )
    return principal


setattr(get_principal, AUTH_MARKER, True)

PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_scope(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency returning the :class:`Principal` if its key carries ``scope`` (403
    ``missing_scope`` otherwise; ``admin`` implies every scope).

    Examples
    --------
    >>> dep = require_scope("events:write")
    >>> dep.__name__
    'require_events_write'
    """

    async def dependency(request: Request) -> Principal:
        principal = await get_principal(request)
        if not principal.has_scope(scope):
            raise ApiError(403, "missing_scope", f"This API key lacks the {scope!r} scope.")
        return principal

    dependency.__name__ = "require_" + scope.replace(":", "_").replace("-", "_")
    setattr(dependency, AUTH_MARKER, True)
    return dependency


ProfileReaderDep = Annotated[Principal, Depends(require_scope("profile:read"))]
ProfileWriterDep = Annotated[Principal, Depends(require_scope("profile:write"))]
AdminDep = Annotated[Principal, Depends(require_scope("admin"))]

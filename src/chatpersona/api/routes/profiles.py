"""Profiles resource: the seed's ``GET``/``POST /api/user/{user_id}/profile`` plus erasure,
export and the paged user listing.

Every store call is scoped by the caller's tenant, so a user of another tenant is simply
not there: the 404 is the same object whether the id is unknown or belongs elsewhere.
Erasure and export also reach optional components in ``app.state.services``: any service
with ``delete_user(tenant, user_id)`` is called by ``DELETE`` and any service with
``export_user(tenant, user_id)`` contributes to the export.

The endpoints are ``async``. Reads and merges go through
:func:`~chatpersona.api.deps.store_get` / :func:`~chatpersona.api.deps.store_merge`: on
the event loop itself for stores with async access (PostgreSQL, the Redis cache), else
like every other store call through :func:`~chatpersona.api.deps.run_store` — inline for
local reads (memory, SQLite: a thread hop costs more than the call), in the thread pool
for SQLite writes (they may wait for the file lock) and for network stores, so that waits
overlap. Service hooks (erasure, export) always run in the thread pool.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from starlette.concurrency import run_in_threadpool

from chatpersona.api.deps import (
    ProfileReaderDep,
    ProfileWriterDep,
    ServicesDep,
    StoreDep,
    run_store,
    store_get,
    store_merge,
)
from chatpersona.api.errors import (
    BODY_RESPONSES,
    ERROR_RESPONSES,
    NOT_FOUND_RESPONSE,
    error_doc,
    not_found,
)
from chatpersona.api.schemas import (
    USER_ID_PATTERN,
    ErasurePublic,
    ExportPublic,
    ProfilePublic,
    ProfileUpdate,
    UserPagePublic,
)
from chatpersona.profiles.schema import Profile

__all__ = ["router"]

router = APIRouter(prefix="/api", tags=["profiles"], responses=ERROR_RESPONSES)

UserIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=128,
        pattern=USER_ID_PATTERN,
        description="The user's id inside the caller's tenant.",
    ),
]


@router.get(
    "/user/{user_id}/profile",
    response_model=ProfilePublic,
    responses=NOT_FOUND_RESPONSE,
    summary="Read a user's profile",
)
async def read_profile(user_id: UserIdPath, store: StoreDep, principal: ProfileReaderDep) -> Any:
    """The profile of ``user_id`` (scope ``profile:read``)."""
    profile = await store_get(store, principal.tenant, user_id)
    if profile is None:
        raise not_found()
    return _profile_response(profile)


@router.post(
    "/user/{user_id}/profile",
    response_model=ProfilePublic,
    responses=BODY_RESPONSES,
    summary="Create or update a user's profile",
)
async def update_profile(
    user_id: UserIdPath, body: ProfileUpdate, store: StoreDep, principal: ProfileWriterDep
) -> Any:
    """Merge ``body`` into the profile (scope ``profile:write``), creating it if absent.

    ``preferences`` merge key by key (``null`` deletes a key); ``interaction_history``
    is appended without duplicates, most recent first. Unknown fields are rejected (422).
    """
    patch = body.to_patch()
    profile = await store_merge(store, principal.tenant, user_id, patch)
    return _profile_response(profile)


@router.delete(
    "/user/{user_id}/profile",
    response_model=ErasurePublic,
    responses=NOT_FOUND_RESPONSE,
    summary="Erase everything held about a user",
)
async def erase_user(
    user_id: UserIdPath, store: StoreDep, services: ServicesDep, principal: ProfileWriterDep
) -> Any:
    """Erase the profile (and its cache entry), then the user's data in every optional
    component that implements ``delete_user(tenant, user_id)`` (real-time state, event
    log ...). Scope ``profile:write``; 404 when nothing was held about the user."""
    existed = await run_store(store, store.delete, principal.tenant, user_id, write=True)
    erased: dict[str, int] = {"profile": int(existed)}
    for name, service in sorted(services.items()):
        hook = getattr(service, "delete_user", None)
        if callable(hook):
            erased[name] = _as_count(await run_in_threadpool(hook, principal.tenant, user_id))
    if not any(erased.values()):
        raise not_found()
    return ErasurePublic(user_id=user_id, erased=erased)


@router.get(
    "/user/{user_id}/export",
    response_model=ExportPublic,
    responses=NOT_FOUND_RESPONSE,
    summary="Export everything held about a user",
)
async def export_user(
    user_id: UserIdPath, store: StoreDep, services: ServicesDep, principal: ProfileReaderDep
) -> Any:
    """The profile plus the user's data in every optional component that implements
    ``export_user(tenant, user_id)``, as JSON (scope ``profile:read``)."""
    profile = await store_get(store, principal.tenant, user_id)
    extra: dict[str, Any] = {}
    for name, service in sorted(services.items()):
        hook = getattr(service, "export_user", None)
        if callable(hook):
            data = await run_in_threadpool(hook, principal.tenant, user_id)
            if data:
                extra[name] = data
    if profile is None and not extra:
        raise not_found()
    return ExportPublic(
        user_id=user_id,
        exported_at=datetime.now(UTC),
        profile=ProfilePublic.of(profile) if profile is not None else None,
        services=extra,
    )


@router.get(
    "/users",
    response_model=UserPagePublic,
    responses={400: error_doc("The cursor was not made by this API.")},
    summary="List users, optionally by segment",
)
async def list_users(
    store: StoreDep,
    principal: ProfileReaderDep,
    segment: Annotated[
        str | None, Query(min_length=1, max_length=64, description="Only this segment id.")
    ] = None,
    cursor: Annotated[
        str | None,
        Query(min_length=1, max_length=512, description="`next_cursor` of the previous page."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size.")] = 100,
) -> Any:
    """One page of the tenant's profiles ordered by user id (scope ``profile:read``)."""
    page = await run_store(
        store, store.scan, principal.tenant, segment=segment, cursor=cursor, limit=limit
    )
    return UserPagePublic(
        items=[ProfilePublic.of(p) for p in page.items], next_cursor=page.next_cursor
    )


def _profile_response(profile: Profile) -> Response:
    # The stored profile minus its tenant *is* ProfilePublic, field for field and in the
    # same order; serializing it directly skips a validate-and-dump round trip.
    return Response(
        content=profile.model_dump_json(exclude=_INTERNAL), media_type="application/json"
    )


_INTERNAL = {"tenant"}


def _as_count(result: Any) -> int:
    if isinstance(result, bool):
        return int(result)
    if isinstance(result, int):
        return max(result, 0)
    return 1 if result else 0

"""Admin resource: manage the API keys of the caller's own tenant (scope ``admin``).

An admin key never sees or revokes another tenant's keys: such a key id answers 404,
exactly like an unknown one. The CLI (``chatpersona keys ...``) manages every tenant.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, status

from chatpersona.api.deps import AdminDep
from chatpersona.api.errors import BODY_RESPONSES, ERROR_RESPONSES, ApiError, error_doc
from chatpersona.api.schemas import ApiKeyCreate, ApiKeyCreatedPublic, ApiKeyPublic
from chatpersona.api.security import KeyAuthenticator
from chatpersona.profiles.keys import ApiKey, KeyStore

__all__ = ["router"]

router = APIRouter(prefix="/api/admin", tags=["admin"], responses=ERROR_RESPONSES)

KeyIdPath = Annotated[str, Path(min_length=16, max_length=16, pattern=r"^[0-9a-f]{16}$")]


def _keys(request: Request) -> KeyStore:
    authenticator: KeyAuthenticator = request.app.state.authenticator
    if authenticator.keys is None:  # unreachable: without a key store nobody is admin
        raise ApiError(404, "not_found", "This server keeps no API keys.")
    return authenticator.keys


def _public(key: ApiKey) -> ApiKeyPublic:
    return ApiKeyPublic(
        key_id=key.key_id,
        tenant=key.tenant,
        scopes=sorted(key.scopes),
        name=key.name,
        created_at=key.created_at,
        revoked=key.revoked,
    )


@router.get("/keys", response_model=list[ApiKeyPublic], summary="List this tenant's API keys")
async def list_keys(request: Request, principal: AdminDep) -> Any:
    """Every key of the caller's tenant, revoked ones included, oldest first."""
    return [_public(k) for k in _keys(request).list_keys(principal.tenant)]


@router.post(
    "/keys",
    response_model=ApiKeyCreatedPublic,
    status_code=status.HTTP_201_CREATED,
    responses=BODY_RESPONSES,
    summary="Create an API key in this tenant",
)
async def create_key(body: ApiKeyCreate, request: Request, principal: AdminDep) -> Any:
    """Create a key in the caller's tenant; its ``secret`` is returned this once only."""
    key, secret = _keys(request).create_key(principal.tenant, body.scopes, name=body.name)
    return ApiKeyCreatedPublic(key=_public(key), secret=secret)


@router.delete(
    "/keys/{key_id}",
    response_model=ApiKeyPublic,
    responses={404: error_doc("Unknown key id (or a key of another tenant).")},
    summary="Revoke an API key of this tenant",
)
async def revoke_key(key_id: KeyIdPath, request: Request, principal: AdminDep) -> Any:
    """Revoke a key of the caller's tenant; it stops working at once in this process."""
    keys = _keys(request)
    mine = {k.key_id: k for k in keys.list_keys(principal.tenant)}
    key = mine.get(key_id)
    if key is None:
        raise ApiError(404, "not_found", "No such API key.")
    keys.revoke_key(key_id)
    authenticator: KeyAuthenticator = request.app.state.authenticator
    authenticator.forget(key_id)
    revoked = {k.key_id: k for k in keys.list_keys(principal.tenant)}.get(key_id, key)
    return _public(revoked)

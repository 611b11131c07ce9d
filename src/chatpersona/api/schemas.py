"""Request and response bodies of the REST API, named by direction.

``*Public`` models leave the server, ``*Create`` / ``*Update`` models come in. Every
incoming string, list and mapping is bounded so that a request cannot make the server
hold unbounded data. The profile bodies themselves live with the store contract in
:mod:`chatpersona.profiles.schema` and are re-exported here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from chatpersona.profiles.schema import ProfilePublic, ProfileUpdate

__all__ = [
    "USER_ID_PATTERN",
    "ApiKeyCreate",
    "ApiKeyCreatedPublic",
    "ApiKeyPublic",
    "ErasurePublic",
    "ErrorPublic",
    "ExportPublic",
    "HealthPublic",
    "ProfilePublic",
    "ProfileUpdate",
    "ReadyPublic",
    "SegmentListPublic",
    "SegmentPublic",
    "UserPagePublic",
]

USER_ID_PATTERN = r"^[A-Za-z0-9_.:@-]+$"
"""The shape of a user id in a path (the same rule as the profile schema)."""

Scope = Literal["profile:read", "profile:write", "events:write", "admin"]
"""The scopes a key can carry (``chatpersona.profiles.keys.KNOWN_SCOPES``)."""


class ErrorPublic(BaseModel):
    """Every error the API raises on purpose (4xx/5xx except request validation's 422).

    ``code`` is a stable machine-readable reason (``missing_api_key``, ``not_found``,
    ``body_too_large`` ...); ``message`` is meant for humans and never echoes secrets or
    profile data.
    """

    error: str
    code: str
    message: str


class HealthPublic(BaseModel):
    """Liveness: the process answers."""

    status: str = "ok"


class ReadyPublic(BaseModel):
    """Readiness: the profile store answers."""

    status: str
    store: str


class SegmentPublic(BaseModel):
    """One segment of the active segment model (from its ``report.json``)."""

    model_config = ConfigDict(extra="allow")
    id: str
    name: str
    size: int | None = None
    share: float | None = None
    description: str | None = None
    top_features: list[Any] = Field(default_factory=list)


class SegmentListPublic(BaseModel):
    """The segments of the active model; empty when no model is active."""

    model_version: str | None
    segments: list[SegmentPublic]


class UserPagePublic(BaseModel):
    """One page of ``GET /api/users``; pass ``next_cursor`` back as ``cursor``."""

    items: list[ProfilePublic]
    next_cursor: str | None


class ExportPublic(BaseModel):
    """Everything held about one user (GDPR art. 15 / 20 style export)."""

    user_id: str
    exported_at: datetime
    profile: ProfilePublic | None
    services: dict[str, Any] = Field(
        default_factory=dict,
        description="Per-user data of optional components (real-time state, event log ...).",
    )


class ErasurePublic(BaseModel):
    """What ``DELETE /api/user/{user_id}/profile`` erased, per component."""

    user_id: str
    erased: dict[str, int] = Field(
        description="Records removed per component: 'profile' plus every service that "
        "holds per-user data (e.g. 'state', 'event_log')."
    )


class ApiKeyPublic(BaseModel):
    """An API key without its secret."""

    key_id: str
    tenant: str
    scopes: list[str]
    name: str | None
    created_at: datetime
    revoked: bool


class ApiKeyCreate(BaseModel):
    """Body of ``POST /api/admin/keys``: the new key lives in the caller's tenant."""

    model_config = ConfigDict(extra="forbid")
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=8)]
    name: Annotated[str, StringConstraints(max_length=128)] | None = None


class ApiKeyCreatedPublic(BaseModel):
    """A freshly created key; ``secret`` is shown this once and never again."""

    key: ApiKeyPublic
    secret: str

"""Personalization decisions and their rewards over HTTP.

- ``POST /api/personalize`` ``{user_id, decision_point, context}`` -> the chosen action
  with its ``decision_id``, the user's segment, the propensity and an explanation
  (scope ``profile:read``).
- ``POST /api/decisions/{decision_id}/reward`` with ``{"reward": 0..1}`` or
  ``{"outcomes": {csat, resolved, recontact_7d, nps}}`` -> the reward applied; the
  policy learns online (scope ``events:write``).

The engine is ``services["decisions"]`` (a :class:`~chatpersona.decide.DecisionEngine`);
:func:`setup` builds one when the app was given none, from ``settings.extra``:
``decision_points`` (a YAML path; default the packaged one), ``decision_log`` (a JSONL
path; default no log), ``decision_seed`` and ``decision_state`` (a directory written by
``DecisionEngine.save_state``, loaded when present).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from chatpersona.api.deps import Principal, ServicesDep, StoreDep, require_scope
from chatpersona.api.errors import BODY_RESPONSES, ERROR_RESPONSES, ApiError, error_doc
from chatpersona.api.schemas import USER_ID_PATTERN
from chatpersona.config import Settings
from chatpersona.decide.engine import DecisionEngine

__all__ = [
    "OutcomesIn",
    "PersonalizePublic",
    "PersonalizeRequest",
    "RewardCreate",
    "RewardPublic",
    "router",
    "setup",
]

router = APIRouter(tags=["decisions"], responses=ERROR_RESPONSES)

ReaderDep = Annotated[Principal, Depends(require_scope("profile:read"))]
WriterDep = Annotated[Principal, Depends(require_scope("events:write"))]
DecisionIdPath = Annotated[str, PathParam(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class PersonalizeRequest(BaseModel):
    """Body of ``POST /api/personalize``.

    ``context`` carries what the chat knows now: ``intent``, ``category``, ``channel``,
    ``device``, extra ``features``, ``candidates`` (restrict the actions) ... Request values
    win over the stored profile's.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "user_id": "u42",
                    "decision_point": "tone",
                    "context": {"intent": "get_refund", "channel": "web"},
                }
            ]
        },
    )
    user_id: str = Field(min_length=1, max_length=128, pattern=USER_ID_PATTERN)
    decision_point: str = Field(min_length=1, max_length=64)
    context: dict[str, Any] = Field(default_factory=dict, max_length=50)


class PersonalizePublic(BaseModel):
    """The decision: what to do, why, and the id to reward it by."""

    decision_id: str
    decision_point: str
    user_id: str
    segment: str | None
    action: str
    params: dict[str, Any]
    candidates: list[str]
    propensity: float
    policy: str
    policy_version: str
    exploration: bool
    explanation: dict[str, Any]


class OutcomesIn(BaseModel):
    """Raw chat outcomes, mapped to a reward by the configured rule."""

    model_config = ConfigDict(extra="forbid")
    csat: int | None = Field(default=None, ge=1, le=5)
    resolved: bool | None = None
    recontact_7d: bool | None = Field(
        default=None, description="The user came back about the same issue within 7 days."
    )
    nps: int | None = Field(default=None, ge=0, le=10)


class RewardCreate(BaseModel):
    """Body of ``POST /api/decisions/{decision_id}/reward``: exactly one of the two."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"reward": 1.0}, {"outcomes": {"csat": 5, "resolved": True}}]
        },
    )
    reward: float | None = Field(default=None, ge=0.0, le=1.0)
    outcomes: OutcomesIn | None = None


class RewardPublic(BaseModel):
    """The reward applied to a decision."""

    decision_id: str
    decision_point: str
    reward: float
    source: str


def _engine(services: dict[str, Any]) -> DecisionEngine:
    engine: DecisionEngine | None = services.get("decisions")
    if engine is None:
        raise ApiError(503, "decisions_unavailable", "No decision engine is configured.")
    return engine


@router.post(
    "/api/personalize",
    response_model=PersonalizePublic,
    summary="Choose a personalized action for a user at a decision point",
    responses={
        **BODY_RESPONSES,
        400: error_doc(
            "Invalid context (e.g. unknown or duplicate candidates, a non-object "
            "'features'), or guardrails allow no action."
        ),
        404: error_doc("Unknown decision point."),
        503: error_doc("No decision engine is configured."),
    },
)
def personalize(
    body: PersonalizeRequest, store: StoreDep, services: ServicesDep, principal: ReaderDep
) -> PersonalizePublic:
    """Decide with the decision point's policy (rules or a contextual bandit) from the
    request context and the user's stored profile (segment, features, attributes,
    consent). Unknown users are decided for with the request context only."""
    engine = _engine(services)
    engine.expire()
    profile = store.get(principal.tenant, body.user_id)
    d = engine.decide(
        body.user_id, body.decision_point, body.context, profile, tenant=principal.tenant
    )
    return PersonalizePublic(
        decision_id=d.decision_id,
        decision_point=d.decision_point,
        user_id=body.user_id,
        segment=d.segment,
        action=d.action,
        params=d.params,
        candidates=d.candidates,
        propensity=d.propensity,
        policy=d.policy,
        policy_version=d.policy_version,
        exploration=d.exploration,
        explanation=d.explanation,
    )


@router.post(
    "/api/decisions/{decision_id}/reward",
    response_model=RewardPublic,
    summary="Reward a decision (a value in [0, 1] or raw outcomes)",
    responses={
        **BODY_RESPONSES,
        400: error_doc("Both or neither of 'reward' and 'outcomes', or no outcome given."),
        404: error_doc("Unknown, expired or another tenant's decision."),
        409: error_doc("The decision already has its reward."),
        503: error_doc("No decision engine is configured."),
    },
)
def reward_decision(
    decision_id: DecisionIdPath, body: RewardCreate, services: ServicesDep, principal: WriterDep
) -> RewardPublic:
    """Apply a reward; the policy learns from it at once. 404 for an unknown (or another
    tenant's, or expired) decision, 409 when it already has its reward."""
    engine = _engine(services)
    outcomes = body.outcomes.model_dump(exclude_none=True) if body.outcomes is not None else None
    if outcomes == {}:
        raise ApiError(400, "no_outcome", "'outcomes' must hold at least one outcome.")
    res = engine.reward(decision_id, body.reward, outcomes, tenant=principal.tenant)
    return RewardPublic(
        decision_id=res.decision_id,
        decision_point=res.decision_point,
        reward=res.reward,
        source=res.source,
    )


def setup(app: FastAPI, settings: Settings) -> None:
    """Put a :class:`DecisionEngine` into ``app.state.services["decisions"]`` unless one
    was given (configured from ``settings.extra``)."""
    services: dict[str, Any] = app.state.services
    if services.get("decisions") is not None:
        return
    from chatpersona.decide.log import JsonlDecisionLog

    extra = settings.extra or {}
    log_path = extra.get("decision_log")
    sink = JsonlDecisionLog(log_path, flush_every=1) if log_path else None
    engine = DecisionEngine.from_yaml(
        extra.get("decision_points"), sink=sink, seed=int(extra.get("decision_seed", 0))
    )
    state = extra.get("decision_state")
    if state and (Path(state) / "state.json").exists():
        engine.load_state(state)
    services["decisions"] = engine

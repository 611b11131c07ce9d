"""Events resource: ``POST /api/events`` validates a batch (up to 500) and publishes the
valid events to the configured transport, answering event by event.

The tenant of every event is the caller's key tenant (a body ``tenant`` is overwritten),
so a key can never write into another tenant. When ``app.state.services["pipeline"]`` is
wired (embedded mode, like the chat router), the valid events run through it
synchronously and the answer also carries what the pipeline said (``duplicate``, or a
rejection such as ``too_late``); otherwise they go to ``services["transport"]``, which
:func:`setup` opens from ``settings.bus_url`` when the app was given none.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field

from chatpersona.api.deps import Principal, require_scope
from chatpersona.api.errors import BODY_RESPONSES, ERROR_RESPONSES, ApiError
from chatpersona.config import Settings
from chatpersona.exceptions import BackendError, ChatpersonaError
from chatpersona.stream.base import Transport, open_transport
from chatpersona.stream.events import Event, EventRejected, parse_event

__all__ = [
    "MAX_BATCH",
    "EventBatchCreate",
    "EventBatchPublic",
    "EventOutcome",
    "router",
    "setup",
]

MAX_BATCH = 500
"""At most this many events per request."""

router = APIRouter(prefix="/api/events", tags=["events"], responses=ERROR_RESPONSES)
WriterDep = Annotated[Principal, Depends(require_scope("events:write"))]


class EventBatchCreate(BaseModel):
    """Body of ``POST /api/events``: the events, each validated on its own."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "events": [
                        {
                            "event_id": "e-1",
                            "user_id": "u42",
                            "type": "feedback",
                            "ts": "2026-05-03T14:22:05Z",
                            "channel": "web",
                            "device": "mobile",
                            "payload": {"chat_id": "c-9", "csat": 5, "nps": 9},
                        }
                    ]
                }
            ]
        },
    )
    events: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH)


class EventOutcome(BaseModel):
    """What happened to one event of the batch (``index`` is its position)."""

    index: int
    event_id: str | None
    status: str
    """``accepted`` or ``rejected``."""
    outcome: str | None = None
    """With an in-process pipeline: ``processed`` or ``duplicate``."""
    reason: str | None = None
    field: str | None = None
    message: str | None = None


class EventBatchPublic(BaseModel):
    """The per-event answer; ``accepted + rejected == len(events)``."""

    accepted: int
    rejected: int
    results: list[EventOutcome]


def _transport(request: Request) -> Transport:
    transport: Transport | None = request.app.state.services.get("transport")
    if transport is None:
        raise ApiError(503, "no_transport", "No event transport is configured (bus_url).")
    return transport


@router.post(
    "",
    response_model=EventBatchPublic,
    status_code=202,
    summary="Publish a batch of interaction events",
    responses=BODY_RESPONSES,
)
def publish_events(
    body: EventBatchCreate, request: Request, principal: WriterDep
) -> EventBatchPublic:
    """Validate each event (schema, type, size), stamp the caller's tenant, and publish the
    valid ones; invalid ones are answered with a reason code and are not published."""
    services = request.app.state.services
    pipeline = services.get("pipeline")
    transport = None if pipeline is not None else _transport(request)
    results: list[EventOutcome] = []
    valid: list[Event] = []
    for i, raw in enumerate(body.events):
        eid = raw.get("event_id") if isinstance(raw.get("event_id"), str) else None
        try:
            event = parse_event({**raw, "tenant": principal.tenant})
        except EventRejected as exc:
            results.append(
                EventOutcome(
                    index=i,
                    event_id=eid,
                    status="rejected",
                    reason=exc.code,
                    field=exc.fields.get("field"),
                    message=exc.message,
                )
            )
            continue
        valid.append(event)
        results.append(EventOutcome(index=i, event_id=event.event_id, status="accepted"))
    if valid and pipeline is not None:
        try:
            done = pipeline.process(valid)
        except ChatpersonaError as exc:
            raise ApiError(503, "pipeline_unavailable", f"Processing failed: {exc}") from exc
        accepted = [r for r in results if r.status == "accepted"]
        for outcome, res in zip(accepted, done, strict=True):
            if res.status == "rejected":
                outcome.status, outcome.reason, outcome.message = (
                    "rejected",
                    res.reason,
                    res.detail,
                )
            else:
                outcome.outcome = res.status
    elif valid:
        assert transport is not None
        try:
            transport.publish(valid)
        except BackendError as exc:
            raise ApiError(503, "transport_unavailable", f"Publishing failed: {exc}") from exc
    n_ok = sum(1 for r in results if r.status == "accepted")
    return EventBatchPublic(accepted=n_ok, rejected=len(results) - n_ok, results=results)


def setup(app: FastAPI, settings: Settings) -> None:
    """Open the transport named by ``settings.bus_url`` unless the app already has one
    (or has an in-process pipeline instead)."""
    services = app.state.services
    if services.get("transport") is None and services.get("pipeline") is None and settings.bus_url:
        services["transport"] = open_transport(settings.bus_url)
    if services.get("transport") is not None and "event_log" not in services:
        # erasure / export reach the user's events not yet consumed and their dead letters
        from chatpersona.stream.erasure import TransportEraser

        services["event_log"] = TransportEraser(services["transport"])

"""Operations resource: liveness, readiness and Prometheus metrics (no API key needed;
they carry no personal data — bind the server to a private interface)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from chatpersona.api.deps import StoreDep
from chatpersona.api.metrics import Metrics
from chatpersona.api.schemas import HealthPublic, ReadyPublic

__all__ = ["router"]

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=HealthPublic, summary="Liveness")
async def healthz() -> Any:
    """``{"status": "ok"}`` while the process serves requests."""
    return HealthPublic()


@router.get(
    "/readyz",
    response_model=ReadyPublic,
    responses={503: {"model": ReadyPublic, "description": "The store does not answer."}},
    summary="Readiness (checks the profile store)",
)
async def readyz(store: StoreDep) -> Any:
    """200 when the profile store answers a ping, 503 otherwise."""
    try:
        ok = bool(await run_in_threadpool(store.ping))
    except Exception:  # any failure to answer means not ready; never log its details
        ok = False
    body = ReadyPublic(status="ok" if ok else "unavailable", store="ok" if ok else "down")
    if ok:
        return body
    return JSONResponse(status_code=503, content=body.model_dump())


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    summary="Prometheus metrics",
)
async def metrics(request: Request) -> PlainTextResponse:
    """Request counts and latency histograms per route template (this process)."""
    registry: Metrics = request.app.state.metrics
    return PlainTextResponse(
        registry.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
    )

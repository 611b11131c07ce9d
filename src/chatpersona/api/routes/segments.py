"""Segments resource: the segments of the active segment model, read from its
``report.json`` (``"segments": [{id, name, size, share, description, top_features}]``).

The source is ``services["segments"]`` when set (an object with ``report() -> dict``, or a
directory), else ``settings.model_dir``: either a model directory holding ``report.json``
or a :class:`~chatpersona.segment.registry.ModelRegistry` root (``ACTIVE`` +
``versions/<version>/``) whose active version holds it. The report is re-read when its
file changes, so activating a new model version needs no restart.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Request
from fastapi import Path as PathParam

from chatpersona.api.deps import ProfileReaderDep
from chatpersona.api.errors import ERROR_RESPONSES, ApiError, error_doc
from chatpersona.api.schemas import SegmentListPublic, SegmentPublic
from chatpersona.config import Settings
from chatpersona.exceptions import DataError

__all__ = ["SegmentCatalog", "router", "setup"]

router = APIRouter(prefix="/api/segments", tags=["segments"], responses=ERROR_RESPONSES)

SegmentIdPath = Annotated[str, PathParam(min_length=1, max_length=64)]


class SegmentCatalog:
    """The segments of the active model, from a ``report()`` provider or a directory.

    Parameters
    ----------
    source:
        An object with ``report() -> dict``, a model directory, a registry root, or
        ``None`` (no model: no segments).

    Examples
    --------
    >>> SegmentCatalog(None).load()
    (None, [])
    """

    def __init__(self, source: Any) -> None:
        self.source = source
        self._lock = threading.Lock()
        self._cached: tuple[tuple[str, float], str | None, list[dict[str, Any]]] | None = None

    def load(self) -> tuple[str | None, list[dict[str, Any]]]:
        """``(model_version, segments)`` of the active model; ``(None, [])`` if none."""
        if self.source is None:
            return None, []
        report_fn = getattr(self.source, "report", None)
        if callable(report_fn):
            return _parse(report_fn(), None)
        path = _report_path(Path(self.source))
        if path is None:
            return None, []
        stamp = (str(path), path.stat().st_mtime)
        with self._lock:
            if self._cached is not None and self._cached[0] == stamp:
                return self._cached[1], self._cached[2]
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError("Cannot read the segment report", file=str(path)) from exc
        in_registry = path.parent.parent.name == "versions"
        version, segments = _parse(report, path.parent.name if in_registry else None)
        with self._lock:
            self._cached = (stamp, version, segments)
        return version, segments


def _report_path(root: Path) -> Path | None:
    if (root / "report.json").is_file():
        return root / "report.json"
    active = _active_dir(root)
    if active is not None and (active / "report.json").is_file():
        return active / "report.json"
    return None


def _active_dir(root: Path) -> Path | None:
    """The active version's directory when ``root`` is a model registry root."""
    if not (root / "ACTIVE").is_file():
        return None
    from chatpersona.segment.registry import ModelRegistry

    registry = ModelRegistry(root)
    version = registry.active_version()
    return registry.path(version) if version is not None else None


def _parse(report: Any, default_version: str | None) -> tuple[str | None, list[dict[str, Any]]]:
    if not isinstance(report, dict):
        return default_version, []
    model = report.get("model")
    if not isinstance(model, dict):
        model = {}
    version = report.get("model_version") or model.get("version") or default_version
    segments = [s for s in report.get("segments", []) if isinstance(s, dict)]
    out = []
    for seg in segments:
        item = dict(seg)
        item["id"] = str(item.get("id", ""))
        item["name"] = str(item.get("name", item["id"]))
        out.append(item)
    return (str(version) if version is not None else None), out


def setup(app: FastAPI, settings: Settings) -> None:
    """Attach the catalog: ``services["segments"]`` if given, else ``settings.model_dir``."""
    source = app.state.services.get("segments", settings.model_dir)
    app.state.segment_catalog = SegmentCatalog(source)


def _catalog(request: Request) -> SegmentCatalog:
    catalog: SegmentCatalog = request.app.state.segment_catalog
    return catalog


@router.get("", response_model=SegmentListPublic, summary="List the active model's segments")
async def list_segments(request: Request, principal: ProfileReaderDep) -> Any:
    """Every segment of the active model (scope ``profile:read``); empty if none is active."""
    version, segments = _catalog(request).load()
    return SegmentListPublic(
        model_version=version, segments=[SegmentPublic.model_validate(s) for s in segments]
    )


@router.get(
    "/{segment_id}",
    response_model=SegmentPublic,
    responses={404: error_doc("Unknown segment id.")},
    summary="Describe one segment",
)
async def read_segment(
    segment_id: SegmentIdPath, request: Request, principal: ProfileReaderDep
) -> Any:
    """One segment: name, size, share, description, top features (scope ``profile:read``)."""
    _, segments = _catalog(request).load()
    for seg in segments:
        if seg["id"] == segment_id:
            return SegmentPublic.model_validate(seg)
    raise ApiError(404, "not_found", "No such segment in the active model.")

"""Request metrics in the Prometheus text format, an access log without personal data, and
a last-resort 500 that logs no values.

Everything is labelled by the route *template* (``/api/user/{user_id}/profile``), never by
the concrete path, so that label sets stay bounded and user ids never reach metrics or
logs. Counters live in one process; with several uvicorn workers each worker reports its
own (scrape each one, or run one worker per container).
"""

from __future__ import annotations

import bisect
import logging
import re
import time
from typing import Any

from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatpersona.api.errors import error_body

__all__ = ["BUCKETS", "Metrics", "ObservabilityMiddleware", "route_templates"]

access_log = logging.getLogger("chatpersona.api.access")
error_log = logging.getLogger("chatpersona.api.error")

BUCKETS: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
"""Upper bounds (seconds) of the latency histogram buckets; ``+Inf`` is implied."""

UNMATCHED = "<unmatched>"


class Metrics:
    """Request counters and latency histograms per ``(method, route)``.

    Examples
    --------
    >>> m = Metrics()
    >>> m.observe("GET", "/healthz", 200, 0.002)
    >>> 'http_requests_total{method="GET",route="/healthz",status="200"} 1' in m.render()
    True
    """

    def __init__(self, buckets: tuple[float, ...] = BUCKETS) -> None:
        self.buckets = buckets
        self.counts: dict[tuple[str, str, str], int] = {}
        # (method, route) -> [per-bucket counts (last is +Inf)..., sum, count]
        self.histograms: dict[tuple[str, str], list[float]] = {}
        self.started = time.time()

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one finished request."""
        key = (method, route, str(status))
        self.counts[key] = self.counts.get(key, 0) + 1
        hist = self.histograms.get((method, route))
        if hist is None:
            hist = self.histograms[(method, route)] = [0.0] * (len(self.buckets) + 3)
        hist[bisect.bisect_left(self.buckets, seconds)] += 1
        hist[-2] += seconds
        hist[-1] += 1

    def render(self) -> str:
        """The exposition text (``text/plain; version=0.0.4``)."""
        lines = [
            "# HELP chatpersona_http_requests_total Requests served, by method, route template and status.",
            "# TYPE chatpersona_http_requests_total counter",
        ]
        for (method, route, status), n in sorted(self.counts.items()):
            lines.append(
                f'chatpersona_http_requests_total{{{_labels(method, route)},status="{status}"}} {n}'
            )
        lines += [
            "# HELP chatpersona_http_request_duration_seconds Request latency, by method and route template.",
            "# TYPE chatpersona_http_request_duration_seconds histogram",
        ]
        name = "chatpersona_http_request_duration_seconds"
        for (method, route), hist in sorted(self.histograms.items()):
            labels = _labels(method, route)
            cumulative = 0.0
            bounds: tuple[float, ...] = (*self.buckets, float("inf"))
            for bound, in_bucket in zip(bounds, hist, strict=False):
                cumulative += in_bucket
                le = "+Inf" if bound == float("inf") else repr(bound)
                lines.append(f'{name}_bucket{{{labels},le="{le}"}} {int(cumulative)}')
            lines.append(f"{name}_sum{{{labels}}} {hist[-2]!r}")
            lines.append(f"{name}_count{{{labels}}} {int(hist[-1])}")
        lines += [
            "# HELP chatpersona_process_start_time_seconds Start time of the process.",
            "# TYPE chatpersona_process_start_time_seconds gauge",
            f"chatpersona_process_start_time_seconds {self.started!r}",
        ]
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(method: str, route: str) -> str:
    return f'method="{_escape(method)}",route="{_escape(route)}"'


class ObservabilityMiddleware:
    """Pure ASGI middleware: times each request, records it in :class:`Metrics`, writes
    one access-log line (method, route template, status, milliseconds, key id) and turns
    an unhandled exception into a JSON 500 that logs only the exception's type.

    The key id is the public half of an API key (it names the key in ``keys list``); the
    secret, the concrete path, the query and the body are never logged.
    """

    def __init__(
        self, app: ASGIApp, *, metrics: Metrics, templates: list[tuple[re.Pattern[str], str]]
    ) -> None:
        self.app = app
        self.metrics = metrics
        # Filled by create_app once the routers are included (the list is shared).
        self.templates = templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status = message["status"]
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:
            status = 500
            error_log.error(
                "unhandled %s on %s %s", type(exc).__name__, scope["method"], self._route(scope)
            )
            if not started:
                payload = error_body(
                    500, "internal_error", "The server could not complete the request."
                )
                await send(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": payload})
        elapsed = time.perf_counter() - start
        route = self._route(scope)
        self.metrics.observe(scope["method"], route, status, elapsed)
        if access_log.isEnabledFor(logging.INFO):
            state = scope.get("state") or {}
            access_log.info(
                "%s %s %d %.2fms key=%s",
                scope["method"],
                route,
                status,
                elapsed * 1000.0,
                state.get("key_id", "-"),
            )

    def _route(self, scope: Scope) -> str:
        route = scope.get("route")
        path = getattr(route, "path", None)
        if isinstance(path, str):
            return path
        # Rejected before routing (413/400 from the body limit): find the template now.
        path = scope.get("path", "")
        for regex, template in self.templates:
            if regex.match(path):
                return template
        return UNMATCHED


def route_templates(routes: Any) -> list[tuple[re.Pattern[str], str]]:
    """``(regex, template)`` for every route with a path template (for :class:`ObservabilityMiddleware`)."""
    out = []
    for route in routes:
        template = getattr(route, "path", None)
        if isinstance(template, str):
            regex, _, _ = compile_path(template)
            out.append((regex, template))
    return out

"""Request limits: body size (413, chunked bodies too), JSON depth (400) and a per-key
token-bucket rate limit (429 with ``Retry-After``).

The body check is a pure ASGI middleware: it counts bytes as they stream in and answers
413 as soon as the limit is passed, before any parser sees the body, so neither a large
``Content-Length`` nor an endless chunked upload can make the server buffer more than
the limit. The buffered body (at most the limit) is then scanned for nesting depth,
because a deeply nested document could exhaust the JSON parser's recursion.
"""

from __future__ import annotations

import math
import re
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatpersona.api.errors import error_body

__all__ = ["BodyLimitMiddleware", "TokenBucketLimiter", "json_depth_exceeds"]

_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_NO_BODY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """``True`` when the JSON text ``body`` nests arrays/objects deeper than ``limit``.

    Brackets inside strings do not count. Invalid JSON is not judged here (the parser
    rejects it later); only its nesting is.

    Examples
    --------
    >>> json_depth_exceeds(b'{"a": [[1]]}', 3), json_depth_exceeds(b'{"a": [[1]]}', 2)
    (False, True)
    >>> json_depth_exceeds(b'{"a": "[[[[[["}', 1)
    False
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    for match in _TOKENS.finditer(body):
        first = match.group()[0]
        if first == 0x22:  # a whole string token
            continue
        if first in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


class BodyLimitMiddleware:
    """Reject bodies over ``max_bytes`` (413) and JSON nested deeper than ``max_depth`` (400).

    Parameters
    ----------
    app:
        The wrapped ASGI app.
    max_bytes:
        Largest accepted body, counted as it arrives (chunked transfer included).
    max_depth:
        Deepest accepted nesting of JSON arrays/objects.
    route_limits:
        Larger limits for exact paths: ``POST /api/events`` takes a batch of up to 500
        events (each bounded at 32 KiB by the event schema), far more than one profile.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int = 64 * 1024,
        max_depth: int = 32,
        route_limits: dict[str, int] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth
        self.route_limits = dict(route_limits or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        has_body = b"content-length" in headers or b"transfer-encoding" in headers
        if scope["method"] in _NO_BODY_METHODS and not has_body:
            await self.app(scope, receive, send)
            return
        limit = self.route_limits.get(scope.get("path", ""), self.max_bytes)
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > limit
            except ValueError:
                too_big = False  # the server itself rejects a malformed length
            if too_big:
                await _reject(send, 413, "body_too_large", self._too_large(limit))
                return

        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _reject(send, 413, "body_too_large", self._too_large(limit))
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)

        content_type = headers.get(b"content-type", b"")
        if (
            body
            and (not content_type or b"json" in content_type)
            and json_depth_exceeds(body, self.max_depth)
        ):
            await _reject(
                send,
                400,
                "json_too_deep",
                f"The JSON body nests deeper than {self.max_depth} levels.",
            )
            return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _too_large(self, limit: int) -> str:
        return f"The request body is larger than {limit} bytes."


def _headers(scope: Scope) -> dict[bytes, bytes]:
    return {name.lower(): value for name, value in scope.get("headers", ())}


async def _reject(send: Send, status: int, code: str, message: str) -> None:
    payload = error_body(status, code, message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class TokenBucketLimiter:
    """A token bucket per key: ``per_minute`` tokens refill evenly over a minute and the
    bucket holds at most ``per_minute`` (so a fresh key may burst one minute's worth).

    One bucket set per process: with ``W`` uvicorn workers a key may get up to ``W`` times
    the limit. ``per_minute <= 0`` disables limiting.

    Examples
    --------
    >>> clock = iter([0.0, 0.0, 0.0, 30.0]).__next__
    >>> limiter = TokenBucketLimiter(2, clock=clock)
    >>> limiter.take("k"), limiter.take("k"), limiter.take("k") > 0, limiter.take("k")
    (0.0, 0.0, True, 0.0)
    """

    def __init__(self, per_minute: int, *, clock: Any = time.monotonic) -> None:
        self.per_minute = per_minute
        self.rate = per_minute / 60.0
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        """Spend one token of ``key``; return 0.0, or the seconds until a token is free."""
        if self.per_minute <= 0:
            return 0.0
        now = self.clock()
        tokens, last = self._buckets.get(key, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate

    @staticmethod
    def retry_after(wait_seconds: float) -> str:
        """The ``Retry-After`` header value (whole seconds, at least 1)."""
        return str(max(1, math.ceil(wait_seconds)))

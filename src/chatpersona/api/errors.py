"""API errors: one exception type rendered as :class:`~chatpersona.api.schemas.ErrorPublic`.

Routes raise :class:`ApiError`; package errors (:class:`~chatpersona.exceptions.ChatpersonaError`)
map to a status by class. Bodies never carry secrets or profile values, and the 404 for a
user of another tenant is the very same object as the 404 for an unknown user.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from chatpersona.api.schemas import ErrorPublic
from chatpersona.exceptions import (
    BackendError,
    ChatpersonaError,
    ConfigError,
    ConflictError,
    InputError,
    NotFoundError,
    ValidationError,
)

__all__ = [
    "BODY_RESPONSES",
    "ERROR_RESPONSES",
    "NOT_FOUND_RESPONSE",
    "ApiError",
    "error_doc",
    "install_error_handlers",
    "not_found",
]


class ApiError(Exception):
    """An HTTP error with a stable ``code``; rendered as ``{"error", "code", "message"}``.

    Examples
    --------
    >>> err = ApiError(403, "missing_scope", "This key lacks the 'admin' scope.")
    >>> err.status_code, err.code
    (403, 'missing_scope')
    """

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        error: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.error = error or _REASONS.get(status_code, "Error")


_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    413: "PayloadTooLarge",
    422: "UnprocessableEntity",
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def not_found() -> ApiError:
    """The one 404 for a user: identical for an unknown id and another tenant's user."""
    return ApiError(404, "not_found", "No such user.")


def error_body(status_code: int, code: str, message: str, error: str | None = None) -> bytes:
    """The JSON bytes of an error body (used by the ASGI middlewares too)."""
    return (
        ErrorPublic(error=error or _REASONS.get(status_code, "Error"), code=code, message=message)
        .model_dump_json()
        .encode()
    )


def _render(err: ApiError) -> JSONResponse:
    return JSONResponse(
        status_code=err.status_code,
        content={"error": err.error, "code": err.code, "message": err.message},
        headers=err.headers or None,
    )


def _allowed_methods(request: Request) -> list[str]:
    path = request.scope.get("path", "")
    methods: set[str] = set()
    for regex, route_methods in getattr(request.app.state, "route_methods", ()):
        if regex.match(path):
            methods |= route_methods
    return sorted(methods)


def _status_of(exc: ChatpersonaError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConflictError):
        return 409
    if isinstance(exc, ValidationError | InputError):
        # 400, not 422: FastAPI documents 422 as its own request-validation body.
        return 400
    if isinstance(exc, BackendError):
        return 503
    if isinstance(exc, ConfigError):
        return 500
    return 500


def install_error_handlers(app: FastAPI) -> None:
    """Render :class:`ApiError`, package errors and HTTP errors as :class:`ErrorPublic`."""

    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return _render(exc)

    async def on_package_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ChatpersonaError)
        status = _status_of(exc)
        # Store messages can quote values; only 4xx messages go back, never into logs.
        message = exc.message if status < 500 else "The server could not complete the request."
        return _render(ApiError(status, exc.code, message))

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # One route per method: the framework's Allow names only the first one found.
            allowed = _allowed_methods(request)
            if allowed:
                headers["Allow"] = ", ".join(allowed)
        return _render(
            ApiError(
                exc.status_code,
                _snake(_REASONS.get(exc.status_code, "HttpError")),
                str(exc.detail),
                headers=headers,
            )
        )

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(ChatpersonaError, on_package_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)


def error_doc(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"model": ErrorPublic, "description": description}
    if headers:
        out["headers"] = headers
    return out


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: error_doc(
        "Missing or unknown API key.",
        {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "Always 'Bearer'."}},
    ),
    403: error_doc("The key lacks the scope this route needs."),
    429: error_doc(
        "Per-key rate limit exceeded.",
        {"Retry-After": {"schema": {"type": "string"}, "description": "Seconds to wait."}},
    ),
}
"""Responses every authenticated route can give (documented in the OpenAPI schema)."""

BODY_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: error_doc("The JSON body is nested too deeply."),
    413: error_doc("The body is larger than the limit (64 KiB by default)."),
}
"""Responses every route with a request body can give."""

NOT_FOUND_RESPONSE: dict[int | str, dict[str, Any]] = {
    404: error_doc("Unknown user (or a user of another tenant: the answer is the same).")
}

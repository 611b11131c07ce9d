"""The one exception hierarchy of chatpersona.

Every error raised on purpose by the package is a :class:`ChatpersonaError`. Subclasses
carry structured fields (file, column, row, value, code ...) so that faces (CLI, API) can
render them precisely and tests can assert on them without parsing messages.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BackendError",
    "ChatpersonaError",
    "ConfigError",
    "ConflictError",
    "DataError",
    "InputError",
    "NotFittedError",
    "NotFoundError",
    "ParameterError",
    "PlanError",
    "UnknownBackendError",
    "ValidationError",
]


class ChatpersonaError(Exception):
    """Root of every error chatpersona raises on purpose.

    Parameters
    ----------
    message:
        A complete sentence saying what went wrong, with which value, and how to fix it.
    code:
        A short machine-readable reason code (``missing_required``, ``unknown_column`` ...).
    **fields:
        Structured context (``file``, ``column``, ``row``, ``value`` ...). ``None`` values
        are dropped.

    Examples
    --------
    >>> err = ChatpersonaError("bad thing", code="bad", column="age")
    >>> err.code, err.fields["column"]
    ('bad', 'age')
    """

    default_code = "error"

    def __init__(self, message: str, *, code: str | None = None, **fields: Any) -> None:
        super().__init__(message)
        self.message = message
        self.code = code or self.default_code
        self.fields: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}

    def __getattr__(self, name: str) -> Any:
        # Structured fields read as attributes (err.column, err.row) without declaring
        # every combination on every subclass.
        fields = self.__dict__.get("fields", {})
        if name in fields:
            return fields[name]
        raise AttributeError(name)

    def to_dict(self) -> dict[str, Any]:
        """The error as a JSON-friendly dict: ``{"error", "code", "message", **fields}``."""
        return {
            "error": type(self).__name__,
            "code": self.code,
            "message": self.message,
            **{k: _jsonable(v) for k, v in self.fields.items()},
        }


def _jsonable(value: Any) -> Any:
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)


class ConfigError(ChatpersonaError):
    """A setting, a settings file or an environment variable is invalid."""

    default_code = "config_invalid"


class ParameterError(ChatpersonaError, ValueError):
    """An estimator parameter is invalid; raised when ``fit`` validates its parameters.

    The message shape is fixed: ``The 'eps' parameter of DBSCANSegmenter must be a
    float > 0. Got -1 instead.``
    """

    default_code = "invalid_parameter"

    def __init__(self, owner: str, parameter: str, constraint: str, value: Any) -> None:
        super().__init__(
            f"The {parameter!r} parameter of {owner} must be {constraint}. Got {value!r} instead.",
            owner=owner,
            parameter=parameter,
            constraint=constraint,
            value=value,
        )


class NotFittedError(ChatpersonaError, AttributeError):
    """A fitted-only method was called before ``fit``."""

    default_code = "not_fitted"

    def __init__(self, owner: str) -> None:
        super().__init__(
            f"This {owner} instance is not fitted yet. Call 'fit' with appropriate "
            "arguments before using this method.",
            owner=owner,
        )


class InputError(ChatpersonaError):
    """Input data cannot be read or parsed: names the file, column, row and value."""

    default_code = "bad_input"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        file: str | None = None,
        column: str | None = None,
        row: int | None = None,
        value: Any = None,
        **fields: Any,
    ) -> None:
        where = []
        if file is not None:
            where.append(f"file {file}")
        if column is not None:
            where.append(f"column {column!r}")
        if row is not None:
            where.append(f"row {row}")
        if value is not None:
            where.append(f"value {value!r}")
        full = f"{message} ({', '.join(where)})" if where else message
        super().__init__(full, code=code, file=file, column=column, row=row, value=value, **fields)


class DataError(InputError):
    """Data is readable but unusable for the requested step (constant column, NaN left,
    fewer rows than clusters ...)."""

    default_code = "unusable_data"


class PlanError(ChatpersonaError):
    """A cleaning plan, feature spec or policy file is invalid (unknown key or column,
    wrong kind, missing field)."""

    default_code = "invalid_plan"


class ValidationError(ChatpersonaError):
    """A record (event, profile update) failed validation; ``reason`` is the code."""

    default_code = "invalid_record"


class NotFoundError(ChatpersonaError, KeyError):
    """A resource does not exist (or is not visible to the caller's tenant)."""

    default_code = "not_found"

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.message


class ConflictError(ChatpersonaError):
    """An optimistic concurrency check failed (the stored version moved on)."""

    default_code = "conflict"


class BackendError(ChatpersonaError):
    """A backend (store, transport, state) failed or is unreachable."""

    default_code = "backend_error"


class UnknownBackendError(ConfigError):
    """No backend is registered for a URL's scheme."""

    default_code = "unknown_backend"

    def __init__(self, family: str, url: str, known: list[str]) -> None:
        scheme = url.split("://", 1)[0] if "://" in url else url
        super().__init__(
            f"No {family} backend for URL scheme {scheme!r} (URL {url!r}). "
            f"Known schemes: {', '.join(sorted(known))}.",
            family=family,
            url=url,
            known=sorted(known),
        )

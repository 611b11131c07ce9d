"""Helpers shared by every store: cursors, argument checks, key bookkeeping."""

from __future__ import annotations

import base64
import binascii

from chatpersona.exceptions import ValidationError

MAX_SCAN_LIMIT = 1000


def encode_cursor(user_id: str) -> str:
    """An opaque cursor for "the page after ``user_id``"."""
    return base64.urlsafe_b64encode(user_id.encode("utf-8")).decode("ascii").rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    """The user id a cursor points after; a clear error for anything not made here."""
    if cursor is None or cursor == "":
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise ValidationError(
            f"Invalid cursor {cursor!r}: pass back the next_cursor of the previous page.",
            code="invalid_cursor",
            field="cursor",
            value=cursor,
        ) from exc
    if not raw or encode_cursor(raw) != cursor.rstrip("="):
        raise ValidationError(
            f"Invalid cursor {cursor!r}: pass back the next_cursor of the previous page.",
            code="invalid_cursor",
            field="cursor",
            value=cursor,
        )
    return raw


def check_limit(limit: int) -> int:
    """``limit`` if it is an int in 1..MAX_SCAN_LIMIT, else a ValidationError."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_SCAN_LIMIT:
        raise ValidationError(
            f"limit must be an integer between 1 and {MAX_SCAN_LIMIT}. Got {limit!r} instead.",
            code="invalid_limit",
            field="limit",
            value=limit,
        )
    return limit


def check_ids(tenant: str, user_id: str) -> None:
    """Reject empty or oversized identifiers before they reach a backend."""
    for name, value in (("tenant", tenant), ("user_id", user_id)):
        if not isinstance(value, str) or not 1 <= len(value) <= 128:
            raise ValidationError(
                f"{name} must be a string of 1-128 characters. Got {value!r} instead.",
                code=f"invalid_{name}",
                field=name,
                value=value,
            )


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe for messages and logs)."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = (parts.username or "") + ":***"
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc[-1]}"))

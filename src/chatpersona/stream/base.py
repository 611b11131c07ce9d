"""The event transport contract: one small base class and a registry from URL scheme to class.

Every transport (``memory://``, ``redis://``, ``kafka://``) passes the shared suite in
``tests/conformance/test_transports.py``. Delivery is at least once; the pipeline's
event-id dedupe makes effects exactly once. Events of one user keep their order: each
transport routes a user to one partition (shard) consumed by one consumer at a time.
"""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qsl, urlsplit

from chatpersona.exceptions import ParameterError, UnknownBackendError
from chatpersona.stream.events import Event

__all__ = [
    "DeadLetter",
    "Delivery",
    "Transport",
    "open_transport",
    "register_transport",
    "shard_of",
    "transport_schemes",
]


def shard_of(user_id: str, shards: int) -> int:
    """The partition of a user: a stable hash, the same in every process."""
    return zlib.crc32(user_id.encode()) % shards


def user_of(raw: bytes) -> str:
    """The ``user_id`` of a raw event for routing; unparseable events route by their bytes."""
    import json

    try:
        data = json.loads(raw)
        uid = data.get("user_id") if isinstance(data, dict) else None
    except (ValueError, UnicodeDecodeError):
        uid = None
    return uid if isinstance(uid, str) else raw[:64].decode("utf-8", "replace")


@dataclass(frozen=True)
class Delivery:
    """One received message: the original bytes and where it came from.

    ``id`` is transport specific (a stream entry id, ``partition:offset`` ...);
    ``attempt`` counts deliveries (1 the first time); ``published_at`` is the UNIX time
    the transport accepted it (for event-to-profile latency).
    """

    id: str
    raw: bytes
    shard: str
    attempt: int = 1
    published_at: float | None = None


@dataclass(frozen=True)
class DeadLetter:
    """A message that will not be processed: the reason code, a detail and the original bytes."""

    reason: str
    detail: str
    raw: bytes
    source_id: str = ""
    attempts: int = 1
    extra: dict[str, Any] = field(default_factory=dict)


class Transport(ABC):
    """An at-least-once, per-user-ordered event channel with a dead-letter place.

    Required: :meth:`publish`, :meth:`receive`, :meth:`ack`, :meth:`nack`,
    :meth:`dead_letter`. A message never acked is delivered again (after a crash, to
    another consumer); a message delivered ``max_deliveries`` times without an ack goes to
    the dead-letter place with reason ``max_deliveries`` instead of being retried forever.
    """

    scheme: ClassVar[str]
    max_deliveries: int = 5

    @classmethod
    @abstractmethod
    def from_url(cls, url: str, **options: Any) -> Transport:
        """Open the transport named by ``url``."""

    @abstractmethod
    def publish(self, items: Sequence[Event | bytes]) -> int:
        """Append events (or raw bytes, which are routed by their ``user_id`` when they have
        one) and return how many were written."""

    @abstractmethod
    def receive(self, max_messages: int = 500, timeout: float = 1.0) -> list[Delivery]:
        """Up to ``max_messages`` deliveries, waiting at most ``timeout`` seconds."""

    @abstractmethod
    def ack(self, deliveries: Sequence[Delivery]) -> None:
        """Mark deliveries done (call only after their effects are stored)."""

    @abstractmethod
    def nack(self, deliveries: Sequence[Delivery]) -> None:
        """Give deliveries back for another attempt (counted toward ``max_deliveries``)."""

    @abstractmethod
    def dead_letter(self, delivery: Delivery, reason: str, detail: str = "") -> None:
        """Move a delivery to the dead-letter place (with its original bytes) and ack it."""

    def dead_letters(self, limit: int = 1000) -> list[DeadLetter]:
        """What the dead-letter place holds (oldest first)."""
        return []

    def stats(self) -> dict[str, int]:
        """Operational figures: ``pending`` (delivered, not acked), ``lag`` (not yet
        delivered), ``dead_letters``; a transport may omit what it cannot know."""
        return {}

    def close(self) -> None:
        """Release connections; unacked deliveries stay for redelivery."""
        return None


def parse_options(url: str) -> tuple[str, str, dict[str, str]]:
    """``(netloc, path-without-slash, query options)`` of a transport or state URL."""
    parts = urlsplit(url)
    return parts.netloc, parts.path.lstrip("/"), dict(parse_qsl(parts.query))


def int_option(owner: str, options: dict[str, Any], name: str, default: int, low: int = 1) -> int:
    """An integer option ``>= low`` from a URL query or keyword options."""
    raw = options.get(name, default)
    try:
        value = int(raw)
    except (TypeError, ValueError):
        value = low - 1
    if value < low:
        raise ParameterError(owner, name, f"an int >= {low}", raw)
    return value


T = TypeVar("T", bound=type[Transport])
_REGISTRY: dict[str, type[Transport]] = {}


def register_transport(*schemes: str) -> Callable[[T], T]:
    """Class decorator: make :func:`open_transport` use this class for these URL schemes."""

    def deco(cls: T) -> T:
        for scheme in schemes:
            _REGISTRY[scheme] = cls
        return cls

    return deco


def _load_builtin() -> None:
    import importlib

    for mod in ("memory", "redis_streams", "kafka"):
        importlib.import_module(f"chatpersona.stream.{mod}")


def transport_schemes() -> list[str]:
    """The URL schemes :func:`open_transport` knows."""
    _load_builtin()
    return sorted(_REGISTRY)


def open_transport(url: str, **options: Any) -> Transport:
    """Open a transport by URL.

    ``memory://NAME``, ``redis://host:port/STREAM?shards=8&group=workers``,
    ``kafka://host:port/TOPIC?group=workers&partitions=8``.

    Examples
    --------
    >>> t = open_transport("memory://doc-example")
    >>> type(t).__name__
    'MemoryTransport'
    """
    _load_builtin()
    scheme = url.split("://", 1)[0] if "://" in url else ""
    cls = _REGISTRY.get(scheme)
    if cls is None:
        raise UnknownBackendError("transport", url, list(_REGISTRY))
    return cls.from_url(url, **options)

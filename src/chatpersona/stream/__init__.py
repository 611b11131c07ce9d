"""chatpersona.stream — events, transports (memory, Redis Streams, Kafka) and real-time state.

The adapters of the real-time path: :class:`Event` is what flows, :func:`open_transport`
carries it, :func:`open_state` keeps per-user windowed state with TTLs.
"""

from chatpersona.stream.base import (
    DeadLetter,
    Delivery,
    Transport,
    open_transport,
    register_transport,
    shard_of,
    transport_schemes,
)
from chatpersona.stream.events import (
    EVENT_TYPES,
    MAX_EVENT_BYTES,
    Event,
    EventRejected,
    parse_event,
)
from chatpersona.stream.memory import MemoryTransport
from chatpersona.stream.state import (
    MemoryStateStore,
    RedisStateStore,
    StateStore,
    open_state,
    register_state,
    state_schemes,
)
from chatpersona.stream.state_cluster import RedisClusterStateStore
from chatpersona.stream.windows import (
    WindowConfig,
    apply_event,
    is_late,
    new_window_state,
    prune_state,
    window_features,
    window_summary,
)

__all__ = [
    "EVENT_TYPES",
    "MAX_EVENT_BYTES",
    "DeadLetter",
    "Delivery",
    "Event",
    "EventRejected",
    "MemoryStateStore",
    "MemoryTransport",
    "RedisClusterStateStore",
    "RedisStateStore",
    "StateStore",
    "Transport",
    "WindowConfig",
    "apply_event",
    "is_late",
    "new_window_state",
    "open_state",
    "open_transport",
    "parse_event",
    "prune_state",
    "register_state",
    "register_transport",
    "shard_of",
    "state_schemes",
    "transport_schemes",
    "window_features",
    "window_summary",
]

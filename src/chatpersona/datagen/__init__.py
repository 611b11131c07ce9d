"""chatpersona.datagen: a seeded generator of messy support data with known latent segments.

``generate(n_users, seed, out_dir)`` writes ``users.csv``, ``events.jsonl`` and ``truth.csv``;
``generate_users`` / ``generate_events`` / ``generate_truth`` return the same data as Polars
frames without touching disk. ``SEGMENTS`` holds the hidden behaviour of the five segments.
"""

from chatpersona.datagen.generator import (
    DEFAULT_END,
    DEFAULT_MONTHS,
    EVENTS_SCHEMA,
    MESS_RATES,
    USER_COLUMNS,
    GenerationResult,
    ProgressCallback,
    expected_events_per_user,
    generate,
    generate_events,
    generate_truth,
    generate_users,
    load_utterances,
    read_events,
)
from chatpersona.datagen.segments import (
    CATEGORIES,
    CHANNELS,
    COUNTRIES,
    DEVICES,
    EVENT_TYPES,
    GENDERS,
    PLANS,
    REGIONS,
    SEGMENT_NAMES,
    SEGMENTS,
    SegmentProfile,
    get_segment,
)

__all__ = [
    "CATEGORIES",
    "CHANNELS",
    "COUNTRIES",
    "DEFAULT_END",
    "DEFAULT_MONTHS",
    "DEVICES",
    "EVENTS_SCHEMA",
    "EVENT_TYPES",
    "GENDERS",
    "MESS_RATES",
    "PLANS",
    "REGIONS",
    "SEGMENTS",
    "SEGMENT_NAMES",
    "USER_COLUMNS",
    "GenerationResult",
    "ProgressCallback",
    "SegmentProfile",
    "expected_events_per_user",
    "generate",
    "generate_events",
    "generate_truth",
    "generate_users",
    "get_segment",
    "load_utterances",
    "read_events",
]

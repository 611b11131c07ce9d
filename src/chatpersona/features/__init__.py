"""chatpersona.features: one feature definition, fitted once, applied in batch and online.

``FeatureSpec`` (YAML) -> ``fit`` -> ``FittedFeatureSpec`` with ``transform`` (Polars, all
users) and ``transform_one`` (one user from the stream worker's aggregates).
"""

from chatpersona.features.batch import (
    Preprocessor,
    event_features_frame,
    flatten_events,
    read_events,
)
from chatpersona.features.online import (
    EVENT_FEATURES,
    FAMILIES,
    event_features,
    new_aggregates,
    update_aggregates,
)
from chatpersona.features.spec import ColumnSpec, FeatureSpec, FittedFeatureSpec

__all__ = [
    "EVENT_FEATURES",
    "FAMILIES",
    "ColumnSpec",
    "FeatureSpec",
    "FittedFeatureSpec",
    "Preprocessor",
    "event_features",
    "event_features_frame",
    "flatten_events",
    "new_aggregates",
    "read_events",
    "update_aggregates",
]

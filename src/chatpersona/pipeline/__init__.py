"""chatpersona.pipeline — the stream worker: a declared pipeline of named steps, fed by a
transport, writing windowed state, features, segment and profile per event."""

from chatpersona.pipeline.metrics import PipelineMetrics, serve_metrics
from chatpersona.pipeline.steps import (
    STEP_NAMES,
    Assigner,
    Cleaner,
    EventResult,
    FeatureTransformer,
    ModelSource,
    ProfileSink,
    StepError,
)
from chatpersona.pipeline.worker import (
    ModelDir,
    Pipeline,
    RegistryModels,
    StaticModel,
    Worker,
    WorkerReport,
)

__all__ = [
    "STEP_NAMES",
    "Assigner",
    "Cleaner",
    "EventResult",
    "FeatureTransformer",
    "ModelDir",
    "ModelSource",
    "Pipeline",
    "PipelineMetrics",
    "ProfileSink",
    "RegistryModels",
    "StaticModel",
    "StepError",
    "Worker",
    "WorkerReport",
    "serve_metrics",
]

"""chatpersona.segment: segmenters (K-Means, DBSCAN, HDBSCAN, hierarchical), the choice of
algorithm and k with evidence, readable segment descriptions, the deployable
:class:`SegmentModel` (``assign_one`` in microseconds) and its versioned registry.
"""

from chatpersona.segment import registry
from chatpersona.segment.base import NOISE, UNSEGMENTED, BaseSegmenter, check_matrix
from chatpersona.segment.density import DBSCANSegmenter, HDBSCANSegmenter, knee_eps
from chatpersona.segment.describe import describe_segments
from chatpersona.segment.hierarchical import HierarchicalSegmenter
from chatpersona.segment.kmeans import BisectingKMeansSegmenter, KMeansSegmenter
from chatpersona.segment.model import Assignment, SegmentModel
from chatpersona.segment.registry import ModelRegistry
from chatpersona.segment.run import (
    ALGORITHMS,
    SEGMENTERS,
    SegmentationResult,
    make_segmenter,
    run_segmentation,
)
from chatpersona.segment.select import choose_algorithm, choose_k, compare_segmenters

__all__ = [
    "ALGORITHMS",
    "NOISE",
    "SEGMENTERS",
    "UNSEGMENTED",
    "Assignment",
    "BaseSegmenter",
    "BisectingKMeansSegmenter",
    "DBSCANSegmenter",
    "HDBSCANSegmenter",
    "HierarchicalSegmenter",
    "KMeansSegmenter",
    "ModelRegistry",
    "SegmentModel",
    "SegmentationResult",
    "check_matrix",
    "choose_algorithm",
    "choose_k",
    "compare_segmenters",
    "describe_segments",
    "knee_eps",
    "make_segmenter",
    "registry",
    "run_segmentation",
]

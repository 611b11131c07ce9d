"""chatpersona.scale — the batch stages on Apache Spark, meaning exactly what they mean on
Polars: the same cleaning plans and fitted-plan JSON, the same segment model artifact.

>>> from chatpersona.scale import clean_file_spark, run_segmentation_spark
"""

from chatpersona.scale.clean_spark import clean_file_spark, clean_frame_spark, fit_plan_spark
from chatpersona.scale.segment_spark import (
    SPARK_ALGORITHMS,
    build_features_spark,
    run_segmentation_spark,
)
from chatpersona.scale.spark import (
    DEFAULT_MASTER,
    SparkUnavailableError,
    get_spark,
    read_spark_table,
    spark_session,
    stop_spark,
)

__all__ = [
    "DEFAULT_MASTER",
    "SPARK_ALGORITHMS",
    "SparkUnavailableError",
    "build_features_spark",
    "clean_file_spark",
    "clean_frame_spark",
    "fit_plan_spark",
    "get_spark",
    "read_spark_table",
    "run_segmentation_spark",
    "spark_session",
    "stop_spark",
]

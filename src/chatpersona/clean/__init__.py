"""chatpersona.clean — fitted cleaning plans applied to tables (Polars) and to one record.

>>> from chatpersona.clean import CleaningPlan, FittedPlan, infer_plan
"""

from chatpersona.clean.fitted import CleanResult, FittedPlan, RecordResult
from chatpersona.clean.infer import infer_plan
from chatpersona.clean.io import read_table, write_table
from chatpersona.clean.plan import (
    KINDS,
    CleaningPlan,
    ColumnRule,
    DuplicateRule,
    Normalization,
    OutlierRule,
)
from chatpersona.clean.report import render_html

__all__ = [
    "KINDS",
    "CleanResult",
    "CleaningPlan",
    "ColumnRule",
    "DuplicateRule",
    "FittedPlan",
    "Normalization",
    "OutlierRule",
    "RecordResult",
    "infer_plan",
    "read_table",
    "render_html",
    "write_table",
]

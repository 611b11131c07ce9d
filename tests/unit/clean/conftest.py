"""Shared plans and tables for the clean-stage tests."""

from __future__ import annotations

import polars as pl
import pytest

from chatpersona.clean import CleaningPlan

MESSY_PLAN = {
    "columns": {
        "user_id": {"kind": "id"},
        "age": {
            "kind": "integer",
            "missing": "median",
            "outliers": {"method": "zscore", "action": "quarantine"},
        },
        "height": {
            "kind": "numeric",
            "missing": "mean",
            "outliers": {"method": "iqr", "action": "clip"},
        },
        "score": {
            "kind": "numeric",
            "missing": "none",
            "on_invalid": "null",
            "outliers": {"method": "mad", "action": "flag"},
        },
        "is_vip": {"kind": "boolean", "missing": "mode"},
        "gender": {
            "kind": "categorical",
            "missing": "unknown",
            "synonyms": {"f": "female", "m": "male"},
            "fuzzy_threshold": 0.8,
        },
        "region": {"kind": "categorical", "missing": "mode"},
        "signup": {"kind": "date", "dayfirst": True},
        "seen_at": {"kind": "datetime", "dayfirst": False},
        "spend": {"kind": "currency", "missing": "median", "default_currency": "USD"},
        "notes": {"kind": "text", "missing": "constant", "fill_value": "n/a text"},
    },
    "duplicates": {"exact_rows": False},
}


def messy_base() -> pl.DataFrame:
    """A deterministic messy table to fit on (every column has valid values)."""
    n = 60
    return pl.DataFrame(
        {
            "user_id": [f"u{i}" for i in range(n)],
            "age": [str(20 + i % 40) if i % 11 else "" for i in range(n - 1)] + ["420"],
            "height": [f"{150 + (i * 7) % 45}.5" for i in range(n - 2)] + ["", "999"],
            "score": [str((i * 13) % 17) for i in range(n - 1)] + ["abc"],
            "is_vip": ["Y", "no", " yes", "N", "true", "0", "1", ""] * 7 + ["Y"] * 4,
            "gender": ["F", "female", " Female ", "M", "male", "MALE", "Non-binary", ""] * 7
            + ["femal"] * 4,
            "region": ["North", "north ", "NORTH", "South", "East"] * 12,
            "signup": ["2024-03-05", "05/03/2024", "Mar 5 2024", "1709596800", "5 March 2024"] * 12,
            "seen_at": ["2024-03-05T10:00:00Z", "03/05/2024 10:00", "2024-03-05 12:00:00+02:00"]
            * 20,
            "spend": ["$1,234.50", "1.234,50 €", "USD 12", "€ 45,00", "", "12", "£3"] * 8
            + ["9"] * 4,
            "notes": ["  Hello   World ", "ﬁne", "", "ok"] * 15,
        }
    )


@pytest.fixture
def messy_plan() -> CleaningPlan:
    return CleaningPlan.from_dict(MESSY_PLAN)


@pytest.fixture
def base_table() -> pl.DataFrame:
    return messy_base()

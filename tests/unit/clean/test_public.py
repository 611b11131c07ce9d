"""Every public name of chatpersona.clean imports, and the contract names exist."""

from __future__ import annotations

import importlib

import chatpersona.clean as clean


def test_all_names_import() -> None:
    module = importlib.import_module("chatpersona.clean")
    for name in clean.__all__:
        assert getattr(module, name) is not None, name


def test_contract_surface() -> None:
    from chatpersona.clean import CleaningPlan, FittedPlan, infer_plan

    assert callable(infer_plan)
    for attr in ("fit", "to_yaml", "from_yaml", "columns"):
        assert hasattr(CleaningPlan, attr) or attr == "columns"
    for attr in ("transform", "transform_record", "to_json", "from_json"):
        assert hasattr(FittedPlan, attr)
    assert set(clean.KINDS) == {
        "id",
        "numeric",
        "integer",
        "boolean",
        "categorical",
        "date",
        "datetime",
        "currency",
        "text",
    }

"""CleaningPlan: YAML round trip and strict validation (unknown keys/columns are named)."""

from __future__ import annotations

import polars as pl
import pytest

from chatpersona.clean import CleaningPlan, ColumnRule
from chatpersona.exceptions import PlanError


def test_yaml_round_trip_keeps_every_rule(messy_plan: CleaningPlan, tmp_path) -> None:
    path = tmp_path / "plan.yaml"
    text = messy_plan.to_yaml(path)
    assert path.read_text() == text
    again = CleaningPlan.from_yaml(path)
    assert again == messy_plan
    assert again.columns["gender"].synonyms == {"f": "female", "m": "male"}
    assert again.columns["height"].outliers.method == "iqr"
    assert CleaningPlan.from_yaml(text) == messy_plan


@pytest.mark.parametrize(
    ("plan", "named"),
    [
        pytest.param({"columns": {"age": {"kind": "integer", "mising": "x"}}}, "mising", id="rule"),
        pytest.param({"colums": {"age": "integer"}}, "colums", id="top-level"),
        pytest.param(
            {"columns": {"a": {"kind": "numeric", "outliers": {"methd": "iqr"}}}},
            "methd",
            id="outliers",
        ),
        pytest.param(
            {"columns": {"a": {"kind": "text", "normalize": {"lowercase": True}}}},
            "lowercase",
            id="normalize",
        ),
        pytest.param({"columns": {"a": "id"}, "duplicates": {"key": "a"}}, "key", id="duplicates"),
    ],
)
def test_unknown_keys_are_named(plan: dict, named: str) -> None:
    with pytest.raises(PlanError, match=named) as info:
        CleaningPlan.from_dict(plan)
    assert info.value.code == "unknown_key"
    assert info.value.keys == [named]


@pytest.mark.parametrize(
    ("rule", "match"),
    [
        pytest.param({"kind": "money"}, "kind must be one of", id="bad-kind"),
        pytest.param({"kind": "text", "missing": "median"}, "does not apply", id="median-text"),
        pytest.param({"kind": "numeric", "missing": "constant"}, "needs a fill_value", id="const"),
        pytest.param({"kind": "text", "outliers": "zscore"}, "outliers apply", id="outlier-text"),
        pytest.param(
            {"kind": "numeric", "outliers": {"method": "zscore", "threshold": -1}},
            "threshold must be a number > 0",
            id="threshold",
        ),
        pytest.param(
            {"kind": "boolean", "true_values": ["y"], "false_values": ["y", "n"]},
            "both true_values and false_values",
            id="vocab",
        ),
        pytest.param({"kind": "currency", "default_currency": "dollars"}, "3-letter", id="code"),
    ],
)
def test_invalid_rules_are_plan_errors(rule: dict, match: str) -> None:
    with pytest.raises(PlanError, match=match):
        CleaningPlan.from_dict({"columns": {"c": rule}})


def test_duplicates_must_name_planned_columns() -> None:
    with pytest.raises(PlanError, match="'uid'") as info:
        CleaningPlan.from_dict({"columns": {"id": "id"}, "duplicates": {"id_column": "uid"}})
    assert info.value.column == "uid"


def test_plan_column_missing_from_table_is_named(messy_plan: CleaningPlan) -> None:
    table = pl.DataFrame({"user_id": ["a"], "age": ["3"]})
    with pytest.raises(PlanError, match=r"\['height', 'score'") as info:
        messy_plan.fit(table)
    assert info.value.code == "unknown_column"
    assert info.value.column == "height"


def test_bad_yaml_and_missing_file_are_plan_errors(tmp_path) -> None:
    with pytest.raises(PlanError, match="not valid YAML"):
        CleaningPlan.from_yaml("columns: [a\n  b: }")
    with pytest.raises(PlanError, match="Cannot read plan file"):
        CleaningPlan.from_yaml(tmp_path / "nope.yaml")


def test_constant_fill_must_parse_as_the_kind() -> None:
    plan = CleaningPlan([ColumnRule(name="d", kind="date", missing="constant", fill_value="soon")])
    with pytest.raises(PlanError, match="fill value 'soon' is not a valid date"):
        plan.fit(pl.DataFrame({"d": ["2024-01-01"]}))

"""FeatureSpec parsing, inference, encodings and the scaling + PCA step."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatpersona.exceptions import DataError, NotFittedError, ParameterError, PlanError
from chatpersona.features import FeatureSpec, FittedFeatureSpec, Preprocessor

AS_OF = datetime(2026, 5, 1, tzinfo=UTC)


def users() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "user_id": ["a", "b", "c", "d"],
            "age": [20, None, 40, 50],
            "plan": ["basic", "pro", "premium", None],
            "email": ["a@x", "b@x", "c@x", "d@x"],
            "churn": ["Yes", "No", "No", "Yes"],
        }
    )


def test_yaml_round_trip() -> None:
    spec = FeatureSpec.from_yaml(
        """
id_column: user_id
columns:
  age: numeric
  plan: {kind: categorical, encoding: ordinal, order: [basic, pro, premium]}
events: [behavioral]
scaling: robust
pca: 3
"""
    )
    again = FeatureSpec.from_yaml(spec.to_yaml())
    assert again == spec
    assert again.columns["plan"].order == ("basic", "pro", "premium")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colums: {}", "unknown key"),
        ("columns: {age: {kind: number}}", "kind must be one of"),
        ("columns: {plan: {kind: categorical, encoding: ordinal}}", "needs 'order"),
        ("events: [social]", "unknown event family"),
    ],
    ids=["unknown-key", "bad-kind", "ordinal-without-order", "bad-family"],
)
def test_bad_spec_is_a_plan_error(text: str, message: str) -> None:
    with pytest.raises(PlanError, match=message):
        FeatureSpec.from_yaml(text)


def test_infer_encodes_by_kind_and_reports_exclusions() -> None:
    spec, excluded = FeatureSpec.infer(users(), max_categories=3)
    assert spec.columns["age"].kind == "numeric"
    assert spec.columns["plan"].kind == "categorical"
    assert "email" in excluded and "4 distinct values" in excluded["email"]
    assert spec.outcomes == ("churn",) and "churn" in excluded


def test_onehot_and_ordinal_encodings_and_imputation() -> None:
    spec = FeatureSpec.from_dict(
        {"columns": {"age": "numeric", "plan": "categorical"}, "pca": None}
    )
    fitted = spec.fit(users(), as_of=AS_OF)
    out = fitted.transform(users(), as_of=AS_OF)
    assert fitted.feature_names_ == ["age", "plan=basic", "plan=premium", "plan=pro"]
    assert out["age"].to_list() == [20.0, 40.0, 40.0, 50.0]  # median of 20, 40, 50
    assert out.row(3) == ("d", 50.0, 0.0, 0.0, 0.0)  # missing category: all zeros
    ordinal = FeatureSpec.from_dict(
        {
            "columns": {
                "plan": {
                    "kind": "categorical",
                    "encoding": "ordinal",
                    "order": ["basic", "pro", "premium"],
                }
            }
        }
    ).fit(users(), as_of=AS_OF)
    assert ordinal.transform(users(), as_of=AS_OF)["plan"].to_list() == [0.0, 1.0, 2.0, 1.0]


def test_numeric_declared_on_text_names_the_column() -> None:
    spec = FeatureSpec.from_dict({"columns": {"email": "numeric"}})
    with pytest.raises(DataError) as err:
        spec.fit(users(), as_of=AS_OF)
    assert err.value.column == "email" and err.value.code == "non_numeric"


def test_missing_spec_column_and_unfitted_use() -> None:
    with pytest.raises(DataError) as err:
        FeatureSpec.from_dict({"columns": {"income": "numeric"}}).fit(users(), as_of=AS_OF)
    assert err.value.column == "income"
    with pytest.raises(NotFittedError):
        FittedFeatureSpec(FeatureSpec()).transform(users())


def test_fitted_spec_json_round_trip() -> None:
    spec = FeatureSpec.from_dict({"columns": {"age": "numeric", "plan": "categorical"}})
    fitted = spec.fit(users(), as_of=AS_OF)
    again = FittedFeatureSpec.from_json(fitted.to_json())
    row = users().row(1, named=True)
    assert again.transform_one(row, None, AS_OF) == fitted.transform_one(row, None, AS_OF)


def test_pca_variance_target_and_count() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(500, 2))
    X = np.column_stack([base, base @ rng.normal(size=(2, 3)) + 0.01 * rng.normal(size=(500, 3))])
    names = [f"x{i}" for i in range(5)]
    pre = Preprocessor(pca=0.9).fit(X, names)
    assert pre.n_components_ == 2
    assert pre.explained_variance_ratio_.sum() >= 0.9
    assert Preprocessor(pca=3).fit(X, names).transform(X).shape == (500, 3)


@pytest.mark.parametrize(
    ("params", "param"),
    [({"pca": 1.5}, "pca"), ({"pca": 9}, "pca"), ({"scaling": "minmax"}, "scaling")],
)
def test_preprocessor_parameters_validated_at_fit(params: dict, param: str) -> None:
    pre = Preprocessor(**params)
    with pytest.raises(ParameterError, match=f"The '{param}' parameter of Preprocessor"):
        pre.fit(np.random.default_rng(0).normal(size=(20, 3)), ["a", "b", "c"])


def test_preprocessor_constant_and_nan_columns_are_named() -> None:
    X = np.random.default_rng(0).normal(size=(20, 3))
    X[:, 1] = 7.0
    with pytest.raises(DataError) as err:
        Preprocessor().fit(X, ["a", "tenure", "c"])
    assert err.value.column == "tenure" and err.value.code == "constant_column"
    X[:, 1] = 1.0
    X[3, 1] = np.nan
    with pytest.raises(DataError) as err:
        Preprocessor().fit(X, ["a", "tenure", "c"])
    assert err.value.column == "tenure"


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 1000), st.sampled_from(["standard", "robust"]))
def test_projection_of_one_row_equals_the_matrix_row(seed: int, scaling: str) -> None:
    X = np.random.default_rng(seed).normal(size=(50, 4)) * [1, 10, 100, 0.1]
    pre = Preprocessor(scaling=scaling, pca=0.8).fit(X, list("abcd"))
    full = pre.transform(X)
    for i in (0, 17, 49):
        np.testing.assert_allclose(pre.transform(X[i : i + 1])[0], full[i], atol=1e-9)


def test_transform_one_names_a_non_numeric_value() -> None:
    fitted = FeatureSpec.from_dict({"columns": {"age": "numeric"}}).fit(users(), as_of=AS_OF)
    with pytest.raises(DataError) as err:
        fitted.transform_one({"user_id": "x", "age": "old"}, None, AS_OF)
    assert err.value.column == "age" and err.value.value == "old"
    assert fitted.transform_one({"user_id": "x"}, None, AS_OF) == {"age": 40.0}

"""Featurization layout and condition semantics (shared by rules and guardrails)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatpersona.decide import Condition, ContextSchema, Featurizer
from chatpersona.exceptions import PlanError

SCHEMA = ContextSchema(
    segments=("a", "b"), intents=("x", "y"), channels=("web",), numeric=("n",), cross=True
)


def test_vector_layout_one_hot_numeric_and_cross() -> None:
    f = Featurizer(SCHEMA)
    x = f.transform_one({"segment": "b", "intent": "x", "channel": "web", "features": {"n": 2.5}})
    names = SCHEMA.feature_names()
    assert len(x) == SCHEMA.dim == len(names)
    on = {names[i] for i in np.flatnonzero(x)}
    assert on == {
        "bias",
        "segment=b",
        "intent=x",
        "channel=web",
        "features.n",
        "segment=b&intent=x",
    }
    assert x[names.index("features.n")] == 2.5


def test_unknown_values_go_to_unknown_slots_and_missing_numbers_to_zero() -> None:
    f = Featurizer(SCHEMA)
    x = f.transform_one({"segment": "zzz", "features": {"n": float("nan")}})
    names = SCHEMA.feature_names()
    assert x[names.index("segment=__unknown__")] == 1.0
    assert x[names.index("intent=__unknown__")] == 1.0
    assert x[names.index("features.n")] == 0.0
    # a feature missing from "features" falls back to the top-level key
    assert f.transform_one({"n": 2.0})[names.index("features.n")] == 2.0
    assert f.transform_one({"features": {"n": None}, "n": "3"})[names.index("features.n")] == 3.0
    assert f.transform_one({"features": {"n": "x"}, "n": 3})[names.index("features.n")] == 0.0


@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "segment": st.sampled_from(["a", "b", "c", None]),
                "intent": st.sampled_from(["x", "y", "q"]),
                "features": st.dictionaries(
                    st.just("n"),
                    st.none()
                    | st.booleans()
                    | st.integers(-5, 5)
                    | st.floats(allow_nan=True, allow_infinity=True)
                    | st.text(max_size=3),
                    max_size=1,
                ),
                "n": st.none() | st.floats(-3, 3) | st.text(max_size=2),
            }
        ),
        min_size=1,
        max_size=20,
    )
)
def test_batch_equals_one_at_a_time(contexts: list[dict]) -> None:
    f = Featurizer(SCHEMA)
    X = f.transform(contexts)
    for i, c in enumerate(contexts):
        np.testing.assert_array_equal(X[i], f.transform_one(c))
    assert np.isfinite(X).all()
    # bias + one segment, one intent, one channel and one cross slot per row
    numeric = SCHEMA.feature_names().index("features.n")
    onehots = np.delete(X, numeric, axis=1)
    assert set(np.unique(onehots)) <= {0.0, 1.0}
    assert (onehots.sum(axis=1) == 5).all()


def test_schema_round_trip_and_infer() -> None:
    assert ContextSchema.from_dict(SCHEMA.to_dict()) == SCHEMA
    inferred = ContextSchema.infer(
        [{"segment": "s2", "intent": "i", "features": {"z": 1}}, {"segment": "s1"}]
    )
    assert inferred.segments == ("s1", "s2") and inferred.numeric == ("z",)
    with pytest.raises(PlanError, match="Unknown key"):
        ContextSchema.from_dict({"segmnets": []})


@pytest.mark.parametrize(
    ("when", "context", "expected"),
    [
        ({"segment": "vip*"}, {"segment": "VIP gold"}, True),
        ({"segment": ["a", "b"]}, {"segment": "c"}, False),
        ({"intent": "*cancel*"}, {"intent": "cancel_order"}, True),
        ({"attributes.is_vip": True}, {"attributes": {"is_vip": "yes"}}, True),
        ({"attributes.is_vip": True}, {"attributes": {}}, False),
        ({"consent.marketing": False}, {"consent": {"marketing": False}}, True),
        ({"features.csat": {"lt": 3}}, {"features": {"csat": 2.9}}, True),
        ({"features.csat": {"lt": 3}}, {"features": {"csat": 3}}, False),
        ({"features.csat": {"ge": 3, "le": 4}}, {"features": {"csat": 3.5}}, True),
        ({"hour": {"between": [22, 6]}}, {"hour": 23}, True),
        ({"hour": {"between": [22, 6]}}, {"hour": 12}, False),
        ({"hour": {"between": [9, 17]}}, {"hour": 12}, True),
        ({"channel": {"ne": "phone"}}, {}, True),
        ({"channel": {"not_in": ["phone", "email"]}}, {"channel": "web"}, True),
        ({"channel": {"exists": False}}, {"channel": "web"}, False),
        ({}, {"anything": 1}, True),
    ],
)
def test_condition_semantics(when: dict, context: dict, expected: bool) -> None:
    assert Condition(when)(context) is expected


@pytest.mark.parametrize(
    ("when", "message"),
    [
        ({"hour": {"around": 3}}, "Unknown operator(s) around in condition when.hour"),
        ({"hour": {"lt": "soon"}}, "Operator 'lt' of condition when.hour needs a number"),
        ({"hour": {"between": [1]}}, "Operator 'between' of condition when.hour needs [low, high]"),
        ({"segment": {"in": "a"}}, "Operator 'in' of condition when.segment needs a list"),
    ],
)
def test_invalid_conditions_name_the_key(when: dict, message: str) -> None:
    with pytest.raises(PlanError) as info:
        Condition(when)
    assert info.value.message.startswith(message)

"""The intent model: held-out accuracy, calibrated low confidence, persistence, caching."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chatpersona.chat import IntentModel, load_dataset, load_or_train, train_test_split
from chatpersona.exceptions import NotFittedError, ParameterError


def test_bundled_data_sizes_and_licences() -> None:
    bitext = load_dataset("bitext")
    assert len(bitext) == 4514
    assert len(set(bitext.labels)) == 27
    assert len(set(bitext.categories.values())) == 11
    assert len(load_dataset("banking77", "train")) == 10003
    assert len(load_dataset("banking77", "test")) == 3080
    data = Path(__file__).resolve().parents[3] / "src/chatpersona/chat/data"
    assert (data / "banking77/LICENSE").is_file()
    assert (data / "bitext/LICENSE.txt").is_file()
    assert (data / "ORIGIN.md").is_file()


def test_split_is_stratified_and_seeded() -> None:
    ds = load_dataset("bitext")
    tr, te = train_test_split(ds, 0.2, seed=3)
    _, te2 = train_test_split(ds, 0.2, seed=3)
    assert te.texts == te2.texts and len(tr) + len(te) == len(ds)
    assert set(te.labels) == set(ds.labels)
    _, te3 = train_test_split(ds, 0.2, seed=4)
    assert te3.texts != te.texts


def test_bitext_held_out_accuracy() -> None:
    ds = load_dataset("bitext")
    tr, te = train_test_split(ds, 0.2, seed=0)
    model = IntentModel(seed=0).fit(tr.texts, tr.labels, tr.categories)
    assert model.score(te.texts, te.labels) >= 0.97


@pytest.mark.slow
def test_banking77_test_accuracy_at_least_088() -> None:
    """The issue's target: >= 0.88 on the official BANKING77 test split (seeded)."""
    train = load_dataset("banking77", "train")
    test = load_dataset("banking77", "test")
    model = IntentModel(seed=0).fit(train.texts, train.labels)
    assert model.score(test.texts, test.labels) >= 0.88


@pytest.mark.parametrize(
    "text", ["hello", "asdf qwerty", "what's the weather like today?", "zzz qqq"]
)
def test_out_of_domain_is_not_confident(intent_model: IntentModel, text: str) -> None:
    assert not intent_model.predict_one(text).confident


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("I want my money back", "REFUND"),
        ("I need to talk to a person", "CONTACT"),
        ("where can I find my bill", "INVOICE"),
        ("how long does delivery take", "DELIVERY"),
    ],
)
def test_in_domain_is_confident(intent_model: IntentModel, text: str, category: str) -> None:
    p = intent_model.predict_one(text)
    assert (p.category, p.confident) == (category, True)
    assert 0.0 <= p.confidence <= 1.0
    assert all(conf <= p.confidence for _, conf in p.alternatives)


def test_parameters_validated_at_fit() -> None:
    with pytest.raises(ParameterError) as err:
        IntentModel(C=-1).fit(["a", "b"], ["x", "y"])
    assert str(err.value) == "The 'C' parameter of IntentModel must be a float > 0. Got -1 instead."
    with pytest.raises(ParameterError, match="'threshold' parameter of IntentModel"):
        IntentModel(threshold=2.0).fit(["a", "b"], ["x", "y"])


def test_not_fitted() -> None:
    with pytest.raises(NotFittedError, match="This IntentModel instance is not fitted yet"):
        IntentModel().predict_one("hi")


def test_save_load_round_trip(intent_model: IntentModel, tmp_path: Path) -> None:
    intent_model.save(tmp_path / "m")
    loaded = IntentModel.load(tmp_path / "m")
    texts = ["refund please", "change my address", "cancel order 12"]
    assert loaded.predict(texts) == intent_model.predict(texts)
    assert loaded.categories_ == intent_model.categories_
    assert loaded.threshold == intent_model.threshold


def test_load_or_train_caches(tmp_path: Path) -> None:
    first = load_or_train(tmp_path)
    (cached,) = list(tmp_path.iterdir())
    stamp = (cached / "model.joblib").stat().st_mtime_ns
    second = load_or_train(tmp_path)
    assert (cached / "model.joblib").stat().st_mtime_ns == stamp  # loaded, not retrained
    assert second.predict(["where is my refund"]) == first.predict(["where is my refund"])
    assert os.listdir(tmp_path) == [cached.name]

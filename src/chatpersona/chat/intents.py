"""The reference chatbot's intent model: TF-IDF word + character n-grams and a calibrated
linear SVM, trained on the bundled real support utterances in a few seconds on one CPU.

The chatbot asks a clarifying question instead of guessing when the calibrated confidence
of the best intent is below :attr:`IntentModel.threshold` (see ``docs/chatbot.md``).
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from chatpersona.exceptions import DataError, InputError, NotFittedError, ParameterError

__all__ = [
    "DEFAULT_THRESHOLD",
    "IntentDataset",
    "IntentModel",
    "IntentPrediction",
    "load_dataset",
    "load_or_train",
    "train_test_split",
]

DEFAULT_THRESHOLD = 0.35
"""Below this calibrated probability of the best intent, the bot asks to clarify.

Chosen on the Bitext held-out split (``bench/bench_intents.py``): at 0.35 almost every
in-domain message passes (coverage is reported there) while small talk and out-of-domain
messages ("what's the weather?") fall below it."""

DatasetName = Literal["support", "bitext", "banking77"]
_DATA = Path(__file__).parent / "data"
_MODEL_FORMAT = 1


@dataclass(frozen=True)
class IntentDataset:
    """Utterances with their intent labels and each intent's category."""

    name: str
    texts: list[str]
    labels: list[str]
    categories: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)

    def fingerprint(self) -> str:
        """A short hash of the content (used as part of the cache key)."""
        h = hashlib.sha256()
        for text, label in zip(self.texts, self.labels, strict=True):
            h.update(text.encode())
            h.update(b"\x1f")
            h.update(label.encode())
            h.update(b"\x1e")
        return h.hexdigest()[:16]


@dataclass(frozen=True)
class IntentPrediction:
    """The best intent of one message, its calibrated confidence and the runners-up."""

    text: str
    intent: str
    category: str
    confidence: float
    confident: bool
    alternatives: tuple[tuple[str, float], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The prediction as JSON-serialisable data (without the text)."""
        return {
            "intent": self.intent,
            "category": self.category,
            "confidence": round(self.confidence, 4),
            "confident": self.confident,
            "alternatives": [[i, round(p, 4)] for i, p in self.alternatives],
        }


def _read_csv(path: Path, text_col: str, label_col: str, cat_col: str | None) -> IntentDataset:
    texts: list[str] = []
    labels: list[str] = []
    cats: dict[str, str] = {}
    with path.open("r", encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        for row_no, row in enumerate(reader, start=2):
            text = (row.get(text_col) or "").strip()
            label = (row.get(label_col) or "").strip()
            if not text or not label:
                raise InputError(
                    f"Empty {text_col!r} or {label_col!r} in {path} row {row_no}.",
                    file=str(path),
                    row=row_no,
                    column=text_col if not text else label_col,
                    value=row,
                )
            texts.append(text)
            labels.append(label)
            if cat_col is not None:
                cats[label] = (row.get(cat_col) or "").strip()
    return IntentDataset(name=str(path), texts=texts, labels=labels, categories=cats)


def load_dataset(
    name: DatasetName = "bitext", split: Literal["train", "test", "all"] = "all"
) -> IntentDataset:
    """Load a bundled intent data set.

    Parameters
    ----------
    name : {"support", "bitext", "banking77"}
        ``bitext``: 4,514 customer-support utterances, 27 intents in 11 categories (only one
        split: ``all``; use :func:`train_test_split`). ``support``: the bot's training set,
        Bitext plus 135 Spanish utterances written for this project (5 per intent), so
        Spanish-speaking customers are understood too. ``banking77``: 77 banking intents
        with the official ``train`` (10,003) and ``test`` (3,080) splits.
    split : {"train", "test", "all"}

    Examples
    --------
    >>> ds = load_dataset("bitext")
    >>> len(ds), ds.categories["get_refund"]
    (4514, 'REFUND')
    """
    root = _DATA
    if name == "support":
        if split != "all":
            raise ParameterError("load_dataset", "split", "'all' for the support data set", split)
        en = load_dataset("bitext")
        es = _read_csv(root / "es_seed.csv", "text", "intent", "category")
        return IntentDataset(
            "support",
            en.texts + es.texts,
            en.labels + es.labels,
            {**en.categories, **es.categories},
        )
    if name == "bitext":
        if split != "all":
            raise ParameterError("load_dataset", "split", "'all' for the bitext data set", split)
        ds = _read_csv(root / "bitext" / "intents.csv", "text", "intent", "category")
        return IntentDataset("bitext", ds.texts, ds.labels, ds.categories)
    if name == "banking77":
        parts = ["train", "test"] if split == "all" else [split]
        if any(p not in ("train", "test") for p in parts):
            raise ParameterError("load_dataset", "split", "one of 'train', 'test', 'all'", split)
        texts: list[str] = []
        labels: list[str] = []
        for part in parts:
            ds = _read_csv(root / "banking77" / f"{part}.csv", "text", "category", None)
            texts += ds.texts
            labels += ds.labels
        return IntentDataset(f"banking77-{split}", texts, labels, {lab: lab for lab in labels})
    raise ParameterError("load_dataset", "name", "one of 'support', 'bitext', 'banking77'", name)


def train_test_split(
    data: IntentDataset, test_size: float = 0.2, seed: int = 0
) -> tuple[IntentDataset, IntentDataset]:
    """A seeded split stratified by label (every label keeps the same share in test)."""
    if not 0.0 < test_size < 1.0:
        raise ParameterError("train_test_split", "test_size", "a float in (0, 1)", test_size)
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(data.labels):
        by_label.setdefault(label, []).append(i)
    test_idx: set[int] = set()
    for label in sorted(by_label):
        idx = np.array(by_label[label])
        rng.shuffle(idx)
        n_test = max(1, round(len(idx) * test_size))
        test_idx.update(int(i) for i in idx[:n_test])

    def pick(keep: bool) -> IntentDataset:
        rows = [i for i in range(len(data)) if (i in test_idx) != keep]
        return IntentDataset(
            f"{data.name}-{'train' if keep else 'test'}",
            [data.texts[i] for i in rows],
            [data.labels[i] for i in rows],
            dict(data.categories),
        )

    return pick(True), pick(False)


class IntentModel:
    """Intent classifier: TF-IDF word n-grams + character n-grams, then a linear SVM whose
    scores are calibrated into probabilities (``CalibratedClassifierCV``, sigmoid).

    Parameters
    ----------
    word_ngrams : tuple of int
        Word n-gram range.
    char_ngrams : tuple of int
        Character n-gram range (within word boundaries; robust to typos).
    C : float
        Inverse regularisation strength of the SVM (> 0).
    calibration_folds : int
        Folds used to calibrate confidences (>= 2).
    threshold : float
        Minimum calibrated confidence to act on the best intent (in [0, 1]).
    seed : int
        Seed of the SVM's coordinate descent.

    Examples
    --------
    >>> ds = load_dataset("bitext")
    >>> model = IntentModel(seed=0).fit(ds.texts, ds.labels, ds.categories)
    >>> p = model.predict_one("I want my money back for order 123")
    >>> p.category, p.confident
    ('REFUND', True)
    """

    def __init__(
        self,
        word_ngrams: tuple[int, int] = (1, 2),
        char_ngrams: tuple[int, int] = (2, 5),
        C: float = 0.5,
        calibration_folds: int = 3,
        threshold: float = DEFAULT_THRESHOLD,
        seed: int = 0,
    ) -> None:
        self.word_ngrams = word_ngrams
        self.char_ngrams = char_ngrams
        self.C = C
        self.calibration_folds = calibration_folds
        self.threshold = threshold
        self.seed = seed

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters (JSON-serialisable)."""
        return {
            "word_ngrams": list(self.word_ngrams),
            "char_ngrams": list(self.char_ngrams),
            "C": self.C,
            "calibration_folds": self.calibration_folds,
            "threshold": self.threshold,
            "seed": self.seed,
        }

    def _validate(self) -> None:
        owner = type(self).__name__
        for name in ("word_ngrams", "char_ngrams"):
            rng = getattr(self, name)
            if (
                len(rng) != 2
                or not all(isinstance(v, int) for v in rng)
                or not 1 <= rng[0] <= rng[1]
            ):
                raise ParameterError(owner, name, "a pair of ints 1 <= lo <= hi", rng)
        if not isinstance(self.C, int | float) or self.C <= 0:
            raise ParameterError(owner, "C", "a float > 0", self.C)
        if not isinstance(self.calibration_folds, int) or self.calibration_folds < 2:
            raise ParameterError(owner, "calibration_folds", "an int >= 2", self.calibration_folds)
        if not isinstance(self.threshold, int | float) or not 0.0 <= self.threshold <= 1.0:
            raise ParameterError(owner, "threshold", "a float in [0, 1]", self.threshold)

    def fit(
        self,
        texts: Sequence[str],
        labels: Sequence[str],
        categories: Mapping[str, str] | None = None,
    ) -> IntentModel:
        """Learn intents from utterances; ``categories`` maps each intent to its category."""
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import make_pipeline, make_union
        from sklearn.svm import LinearSVC

        self._validate()
        if len(texts) != len(labels):
            raise DataError(
                f"texts and labels differ in length ({len(texts)} != {len(labels)}).",
                column="labels",
                value=len(labels),
            )
        if len(set(labels)) < 2:
            raise DataError("An intent model needs at least two intents.", column="labels")
        features = make_union(
            TfidfVectorizer(ngram_range=tuple(self.word_ngrams), sublinear_tf=True),
            TfidfVectorizer(
                analyzer="char_wb", ngram_range=tuple(self.char_ngrams), sublinear_tf=True, min_df=2
            ),
        )
        svm = LinearSVC(C=self.C, random_state=self.seed)
        clf = CalibratedClassifierCV(svm, cv=self.calibration_folds, method="sigmoid")
        self.pipeline_ = make_pipeline(features, clf).fit(list(texts), list(labels))
        self.classes_ = [str(c) for c in self.pipeline_.classes_]
        cats = dict(categories or {})
        self.categories_ = {c: cats.get(c, c) for c in self.classes_}
        self.n_train_ = len(texts)
        return self

    def _check(self) -> None:
        if not hasattr(self, "pipeline_"):
            raise NotFittedError(type(self).__name__)

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Calibrated probabilities, one row per text, columns in :attr:`classes_` order."""
        self._check()
        return np.asarray(self.pipeline_.predict_proba(list(texts)))

    def predict(self, texts: Sequence[str]) -> list[str]:
        """The most likely intent of each text (no threshold applied)."""
        proba = self.predict_proba(texts)
        return [self.classes_[i] for i in proba.argmax(axis=1)]

    def score(self, texts: Sequence[str], labels: Sequence[str]) -> float:
        """Accuracy of :meth:`predict` against ``labels``."""
        pred = self.predict(texts)
        return float(np.mean([p == y for p, y in zip(pred, labels, strict=True)]))

    def predict_one(self, text: str, *, top: int = 3) -> IntentPrediction:
        """The best intent of one message, with ``confident`` set from :attr:`threshold`."""
        if not isinstance(text, str):
            raise InputError(
                f"A message must be text. Got {type(text).__name__} instead.", value=text
            )
        proba = self.predict_proba([text])[0]
        order = np.argsort(-proba)[: max(1, top)]
        best = int(order[0])
        intent = self.classes_[best]
        conf = float(proba[best])
        return IntentPrediction(
            text=text,
            intent=intent,
            category=self.categories_[intent],
            confidence=conf,
            confident=bool(text.strip()) and conf >= self.threshold,
            alternatives=tuple((self.classes_[int(i)], float(proba[int(i)])) for i in order[1:]),
        )

    # -- persistence ---------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the fitted model to ``path`` (a directory: ``model.joblib`` + ``meta.json``)."""
        import joblib

        self._check()
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / "model.joblib.tmp"
        joblib.dump(self.pipeline_, tmp)
        tmp.replace(out / "model.joblib")
        meta = {
            "format": _MODEL_FORMAT,
            "params": self.get_params(),
            "classes": self.classes_,
            "categories": self.categories_,
            "n_train": self.n_train_,
        }
        (out / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
        return out

    @classmethod
    def load(cls, path: str | Path) -> IntentModel:
        """Read a model written by :meth:`save`."""
        import joblib

        src = Path(path)
        try:
            meta = json.loads((src / "meta.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(
                f"No intent model at {src}: {exc}", file=str(src / "meta.json")
            ) from exc
        if meta.get("format") != _MODEL_FORMAT:
            raise InputError(
                f"Intent model at {src} has format {meta.get('format')!r}; expected "
                f"{_MODEL_FORMAT}. Retrain it with `chatpersona intents train`.",
                file=str(src / "meta.json"),
                value=meta.get("format"),
            )
        p = meta["params"]
        model = cls(
            word_ngrams=tuple(p["word_ngrams"]),
            char_ngrams=tuple(p["char_ngrams"]),
            C=p["C"],
            calibration_folds=p["calibration_folds"],
            threshold=p["threshold"],
            seed=p["seed"],
        )
        model.pipeline_ = joblib.load(src / "model.joblib")
        model.classes_ = list(meta["classes"])
        model.categories_ = dict(meta["categories"])
        model.n_train_ = int(meta["n_train"])
        return model


def cache_key(data: IntentDataset, model: IntentModel) -> str:
    """Cache key of a (data, parameters, scikit-learn version) combination."""
    import sklearn

    blob = json.dumps(
        {"data": data.fingerprint(), "params": model.get_params(), "sk": sklearn.__version__},
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_or_train(
    cache_dir: str | Path,
    *,
    dataset: DatasetName = "support",
    seed: int = 0,
    threshold: float = DEFAULT_THRESHOLD,
    retrain: bool = False,
) -> IntentModel:
    """The bot's intent model: loaded from ``cache_dir`` when a model trained on the same
    data with the same parameters is there, trained (a few seconds) and cached otherwise.

    ``cache_dir`` is passed in by the caller (the CLI uses the user's cache directory);
    this function reads no environment variables.
    """
    data = load_dataset(dataset, "train" if dataset == "banking77" else "all")
    model = IntentModel(threshold=threshold, seed=seed)
    where = Path(cache_dir) / f"intents-{dataset}-{cache_key(data, model)}"
    if not retrain and (where / "meta.json").is_file():
        return IntentModel.load(where)
    model.fit(data.texts, data.labels, data.categories)
    model.save(where)
    return model

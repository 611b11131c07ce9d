"""The k rule, the algorithm rule and segment descriptions."""

from __future__ import annotations

import numpy as np
import pytest

from chatpersona.segment import choose_algorithm, choose_k, describe_segments
from chatpersona.segment.describe import feature_phrase
from chatpersona.segment.select import internal_scores


def row(k: int, sil: float, db: float, ch: float) -> dict:
    return {"k": k, "silhouette": sil, "davies_bouldin": db, "calinski_harabasz": ch}


def test_choose_k_prefers_clear_silhouette_winner() -> None:
    rows = [row(2, 0.30, 0.5, 900), row(3, 0.60, 0.9, 100), row(4, 0.40, 0.4, 1000)]
    assert choose_k(rows) == 3


def test_choose_k_breaks_near_ties_with_db_and_ch() -> None:
    rows = [row(4, 0.500, 0.9, 300), row(5, 0.495, 0.6, 400), row(6, 0.30, 0.1, 900)]
    assert choose_k(rows) == 5


def test_choose_k_equal_ranks_go_to_higher_silhouette() -> None:
    rows = [row(4, 0.157, 2.08, 385), row(5, 0.158, 2.07, 367)]
    assert choose_k(rows) == 5


def comp(algo: str, n: int, sil: float | None, noise: float, stab: float) -> dict:
    return {
        "algorithm": algo,
        "n_segments": n,
        "silhouette": sil,
        "noise_share": noise,
        "stability": stab,
    }


def test_choose_algorithm_rule() -> None:
    rows = [
        comp("kmeans", 5, 0.50, 0.0, 0.95),
        comp("dbscan", 5, 0.70, 0.40, 0.99),  # too much noise
        comp("hdbscan", 4, 0.60, 0.10, 0.50),  # unstable
        comp("hierarchical", 5, 0.55, 0.0, 0.90),
    ]
    assert choose_algorithm(rows) == "hierarchical"
    rows[3]["silhouette"] = 0.51  # within 0.02: more stable kmeans wins
    assert choose_algorithm(rows) == "kmeans"


def test_choose_algorithm_without_eligible_takes_most_stable() -> None:
    rows = [comp("kmeans", 2, 0.1, 0.0, 0.5), comp("dbscan", 1, None, 0.0, 0.7)]
    assert choose_algorithm(rows) == "dbscan"


def test_internal_scores_ignore_noise_and_need_two_segments() -> None:
    X = np.array([[0.0, 0], [0, 1], [10, 10], [10, 11], [50, 50]])
    s = internal_scores(X, np.array([0, 0, 1, 1, -1]))
    assert s["silhouette"] is not None and s["silhouette"] > 0.8
    assert internal_scores(X, np.array([0, 0, 0, 0, -1]))["silhouette"] is None


@pytest.mark.parametrize(
    ("feature", "d", "phrase"),
    [
        ("contacts_30d", 1.0, "frequent contacts"),
        ("device_mobile", 0.9, "mobile users"),
        ("issue_invoice", 0.8, "billing issues"),
        ("csat_mean", -1.1, "low CSAT"),
        ("tenure", -0.7, "low tenure"),
        ("Contract=Month-to-month", 0.6, "Contract Month-to-month"),
    ],
)
def test_feature_phrases(feature: str, d: float, phrase: str) -> None:
    assert feature_phrase(feature, d) == phrase


def test_describe_segments_sizes_differences_names_outcomes() -> None:
    rng = np.random.default_rng(0)
    n = 300
    labels = np.repeat([0, 1, -1], [200, 90, 10])
    contacts = np.where(labels == 1, 12.0, 2.0) + rng.normal(0, 0.5, n)
    csat = np.where(labels == 1, 1.5, 4.5) + rng.normal(0, 0.2, n)
    mobile = rng.uniform(0, 1, n)
    X = np.column_stack([contacts, csat, mobile])
    churn = np.where(labels == 1, 1.0, 0.0)
    churn[:5] = np.nan
    segs = describe_segments(
        X,
        ["contacts_30d", "csat_mean", "device_mobile"],
        labels,
        ["s0", "s1"],
        outcomes={"churn": churn},
    )
    assert [s["id"] for s in segs] == ["s0", "s1", "unsegmented"]
    assert [s["size"] for s in segs] == [200, 90, 10]
    assert sum(s["share"] for s in segs) == pytest.approx(1.0)
    s1 = segs[1]
    assert {t["feature"] for t in s1["top_features"][:2]} == {"contacts_30d", "csat_mean"}
    expected = (X[labels == 1, 0].mean() - X[:, 0].mean()) / X[:, 0].std()
    assert s1["profile"]["contacts_30d"] == pytest.approx(expected)
    assert s1["name"] in ("frequent contacts, low CSAT", "low CSAT, frequent contacts")
    assert s1["outcomes"]["churn"] == 1.0 and segs[0]["outcomes"]["churn"] == 0.0
    assert "90 users" in s1["description"]

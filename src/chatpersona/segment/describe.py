"""Segment descriptions: size, share, standardized differences, top features, a readable
name and outcome figures (CSAT, NPS, churn) where the data has them.

The standardized difference of a feature for a segment is
``(segment mean - population mean) / population standard deviation``, on the encoded
but unscaled features (so means are in the features' own units). The top features are the
largest absolute differences; the name is built from the top ones with ``|d| >= 0.4``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from chatpersona.segment.base import NOISE, UNSEGMENTED

__all__ = ["describe_segments", "feature_phrase"]

NAME_THRESHOLD = 0.4
TOP_N = 5

_ISSUE_WORDS = {
    "invoice": "billing",
    "payment": "billing",
    "refund": "refund",
    "account": "account",
    "order": "order",
    "shipping": "shipping",
    "delivery": "delivery",
    "cancel": "cancellation",
    "contact": "contact-us",
    "feedback": "feedback",
    "subscription": "subscription",
}


def feature_phrase(feature: str, d: float) -> str:
    """A few words for "this segment is high/low on ``feature``" (``d`` its std. difference).

    Examples
    --------
    >>> feature_phrase("contacts_30d", 1.2), feature_phrase("csat_mean", -0.9)
    ('frequent contacts', 'low CSAT')
    >>> feature_phrase("Contract=Month-to-month", 0.8)
    'Contract Month-to-month'
    """
    high = d > 0
    f = feature
    if f.startswith("contacts_"):
        return "frequent contacts" if high else "rare contacts"
    if f.startswith("device_"):
        dev = f.removeprefix("device_")
        return f"{dev} users" if high else f"few {dev} users"
    if f.startswith("channel_"):
        ch = f.removeprefix("channel_").replace("_", " ")
        return f"{ch} channel" if high else f"little {ch}"
    if f.startswith("issue_"):
        word = _ISSUE_WORDS.get(f.removeprefix("issue_"), f.removeprefix("issue_"))
        return f"{word} issues" if high else f"few {word} issues"
    if f.startswith("tod_"):
        return (
            f"{f.removeprefix('tod_')} contacts"
            if high
            else f"few {f.removeprefix('tod_')} contacts"
        )
    if f.startswith("csat"):
        return "high CSAT" if high else "low CSAT"
    if f == "nps_last":
        return "high NPS" if high else "low NPS"
    if f.startswith("nps_") and f != "nps_last":
        kind = f.removeprefix("nps_")
        return f"{kind}s" if high else f"few {kind}s"
    simple = {
        "recency_days": ("dormant", "recently active"),
        "repeat_contact_rate": ("repeat contacts", "one-off contacts"),
        "avg_handle_time_s": ("long chats", "short chats"),
        "resolved_rate": ("resolved", "unresolved"),
        "weekend_share": ("weekend contacts", "weekday contacts"),
        "age": ("older", "younger"),
    }
    if f in simple:
        return simple[f][0 if high else 1]
    if "=" in f:
        col, val = f.split("=", 1)
        return f"{col} {val}" if high else f"not {col} {val}"
    if f.endswith("_days_ago"):
        base = f.removesuffix("_days_ago")
        return f"old {base}" if high else f"recent {base}"
    return f"high {f}" if high else f"low {f}"


def describe_segments(
    features: np.ndarray,
    feature_names: Sequence[str],
    labels: np.ndarray,
    label_ids: Sequence[str],
    *,
    outcomes: Mapping[str, np.ndarray] | None = None,
    top_n: int = TOP_N,
) -> list[dict[str, Any]]:
    """One description dict per segment (``s0``..., then ``unsegmented`` if any noise).

    Parameters
    ----------
    features : rows x features, encoded and unscaled.
    labels : integer labels (``-1`` noise), rows aligned with ``features``.
    label_ids : segment id of each label (index = label).
    outcomes : optional per-row outcome arrays (NaN = unknown), e.g. ``{"churn": ...}``.
    """
    X = np.asarray(features, dtype=np.float64)
    n = len(X)
    mu = X.mean(axis=0)
    sd = X.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    order = sorted(range(len(label_ids)), key=lambda lab: label_ids[lab])
    order.sort(key=lambda lab: int(label_ids[lab][1:]) if label_ids[lab][1:].isdigit() else 0)
    groups: list[tuple[str, np.ndarray]] = [(label_ids[lab], labels == lab) for lab in order]
    if (labels == NOISE).any():
        groups.append((UNSEGMENTED, labels == NOISE))
    out: list[dict[str, Any]] = []
    used: dict[str, int] = {}
    for sid, mask in groups:
        size = int(mask.sum())
        means = mu.copy() if size == 0 else X[mask].mean(axis=0)
        diff = (means - mu) / sd
        top = np.argsort(-np.abs(diff), kind="stable")[:top_n]
        top_features = [
            {
                "feature": feature_names[j],
                "mean": float(means[j]),
                "population_mean": float(mu[j]),
                "std_diff": float(diff[j]),
            }
            for j in top
        ]
        if sid == UNSEGMENTED:
            name = "unsegmented"
        else:
            phrases: list[str] = []
            mentioned: set[str] = set()
            for j in top:
                if abs(diff[j]) < NAME_THRESHOLD or len(phrases) >= 3:
                    break
                fname = feature_names[j]
                col = fname.split("=", 1)[0] if "=" in fname else None
                if col is not None and diff[j] < 0 and col in mentioned:
                    continue  # "fiber optic" already says "not DSL"
                p = feature_phrase(fname, float(diff[j]))
                if p not in phrases:
                    phrases.append(p)
                    if col is not None:
                        mentioned.add(col)
            name = ", ".join(phrases) if phrases else "typical users"
            used[name] = used.get(name, 0) + 1
            if used[name] > 1:
                name = f"{name} ({used[name]})"
        outcome_figures: dict[str, float | None] = {}
        for oname, values in (outcomes or {}).items():
            v = np.asarray(values, dtype=np.float64)[mask]
            v = v[np.isfinite(v)]
            outcome_figures[oname] = float(v.mean()) if len(v) else None
        bits = [
            f"{t['feature']} {t['mean']:.3g} vs {t['population_mean']:.3g} "
            f"({t['std_diff']:+.2f} sd)"
            for t in top_features[:3]
        ]
        desc = f"{size} users ({size / max(n, 1):.1%}). Most distinctive: " + "; ".join(bits) + "."
        if outcome_figures:
            desc += (
                " Outcomes: "
                + ", ".join(f"{k} {v:.3g}" for k, v in outcome_figures.items() if v is not None)
                + "."
            )
        out.append(
            {
                "id": sid,
                "name": name,
                "size": size,
                "share": size / max(n, 1),
                "description": desc,
                "top_features": top_features,
                "profile": {feature_names[j]: float(diff[j]) for j in range(len(feature_names))},
                "outcomes": outcome_figures,
            }
        )
    return out

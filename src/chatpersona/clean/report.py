"""The cleaning report: the accounting (every input row accepted, duplicate or quarantined)
and per-column facts, as a JSON-friendly dict and a self-contained HTML page."""

from __future__ import annotations

import html
import json
import math
from typing import Any

import polars as pl

__all__ = ["build_report", "render_html"]

HIST_BINS = 20
MAX_LABELS = 30


def _label_map(raw: pl.Series, value: pl.Series, missing: pl.Series) -> list[dict[str, Any]]:
    df = pl.DataFrame({"raw": raw, "value": value.cast(pl.Utf8), "m": missing})
    df = df.filter(~pl.col("m") & (pl.col("raw") != pl.col("value")).fill_null(True))
    if df.height == 0:
        return []
    counts = (
        df.group_by(["raw", "value"])
        .len("count")
        .sort(["count", "raw"], descending=[True, False])
        .head(MAX_LABELS)
    )
    return [{"from": r, "to": v, "count": int(n)} for r, v, n in counts.iter_rows()]


def _histogram(values: pl.Series, counts: pl.Series | None = None) -> dict[str, Any] | None:
    """numpy's 20-bin histogram of the finite ``values``; with ``counts``, of each value
    repeated that many times (the same edges and counts, computed on the distinct values)."""
    import numpy as np  # the clean command imports numpy beside its first pass

    present = values.is_not_null()
    arr = values.filter(present).cast(pl.Float64).to_numpy()
    finite = np.isfinite(arr)
    arr = arr[finite]
    weights = None if counts is None else counts.filter(present).cast(pl.Float64).to_numpy()[finite]
    if arr.size == 0:
        return None
    try:
        hist, edges = np.histogram(arr, bins=HIST_BINS, weights=weights)
    except ValueError:  # a range too wide for 20 finite bins (e.g. -6e16 .. 1e308)
        lo, hi = float(arr.min()), float(arr.max())
        n = arr.size if weights is None else weights.sum()
        return {"edges": [lo, hi], "counts": [int(n)]}
    return {"edges": [float(e) for e in edges], "counts": [int(c) for c in hist]}


def build_report(
    fitted: Any,
    frame: pl.DataFrame,
    text: pl.DataFrame,
    accepted: pl.DataFrame,
    out_map: dict[str, list[tuple[str, str]]],
    acc_mask: pl.Expr,
) -> dict[str, Any]:
    """Accounting and per-column facts of one batch transform (see ``docs/cleaning.md``)."""
    plan = fitted.plan
    n_q = frame.select(pl.col("_reason").is_not_null().sum()).item()
    n_d = frame.select(pl.col("_dup").is_not_null().sum()).item()
    reasons: dict[str, int] = {}
    from chatpersona.clean.polars_engine import REASON_CODES

    for col in ("_reason", "_dup"):
        vc = frame.select(pl.col(col).drop_nulls().value_counts(sort=True)).unnest(col)
        for code, n in vc.iter_rows():
            key = REASON_CODES[code] if col == "_reason" else str(code)
            reasons[key] = reasons.get(key, 0) + int(n)
    aggs: list[pl.Expr] = []
    for i, (_name, rule) in enumerate(plan.columns.items()):
        has_fill = fitted.stats_[rule.name].get("fill") is not None
        aggs += [
            pl.col(f"__m{i}").sum().alias(f"missing_before{i}"),
            pl.col(f"__x{i}").sum().alias(f"invalid{i}"),
            pl.col(f"__u{i}").sum().alias(f"outliers{i}"),
            (pl.col(f"__n{i}") & acc_mask & pl.lit(has_fill)).sum().alias(f"imputed{i}"),
            (pl.col(f"__s{i}") & acc_mask).sum().alias(f"standardized{i}"),
        ]
    sums = frame.select(aggs).row(0, named=True)
    columns: dict[str, Any] = {}
    for i, (name, rule) in enumerate(plan.columns.items()):
        entry: dict[str, Any] = {
            "kind": rule.kind,
            "inferred": rule.inferred,
            "rule": rule.to_dict(),
            "missing_before": int(sums[f"missing_before{i}"]),
            "invalid": int(sums[f"invalid{i}"]),
            "missing_after": int(accepted[name].null_count()),
            "imputed": int(sums[f"imputed{i}"]),
            "fill_value": fitted.stats_[name].get("fill"),
            "standardized": int(sums[f"standardized{i}"]),
            "outliers": int(sums[f"outliers{i}"]),
            "stats": fitted.stats_[name],
        }
        if rule.note:
            entry["note"] = rule.note
        if rule.kind in ("categorical", "boolean"):
            entry["label_map"] = _label_map(text[name], frame[f"__v{i}"], frame[f"__m{i}"])
        if rule.kind in ("numeric", "integer", "currency"):
            entry["bounds"] = [fitted.stats_[name].get("lo"), fitted.stats_[name].get("hi")]
            entry["histogram"] = _histogram(accepted[name])
        columns[name] = entry
    return {
        "rows_in": frame.height,
        "rows_accepted": accepted.height,
        "rows_duplicate": int(n_d),
        "rows_quarantined": int(n_q),
        "reasons": reasons,
        "columns": columns,
        "duplicates": plan.duplicates.to_dict(),
    }


def merge_reports(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Sum the counts of reports of consecutive batches of one input (statistics are the
    same fitted ones in every part; histograms and label maps are summed or merged)."""
    if len(parts) == 1:
        return parts[0]
    out = json.loads(json.dumps(parts[0]))
    for part in parts[1:]:
        for key in ("rows_in", "rows_accepted", "rows_duplicate", "rows_quarantined"):
            out[key] += part[key]
        for code, n in part["reasons"].items():
            out["reasons"][code] = out["reasons"].get(code, 0) + n
        for name, col in part["columns"].items():
            dst = out["columns"][name]
            for key in (
                "missing_before",
                "invalid",
                "missing_after",
                "imputed",
                "standardized",
                "outliers",
            ):
                dst[key] += col[key]
            if "label_map" in col:
                merged = {(e["from"], e["to"]): e["count"] for e in dst["label_map"]}
                for e in col["label_map"]:
                    merged[(e["from"], e["to"])] = merged.get((e["from"], e["to"]), 0) + e["count"]
                top = sorted(merged.items(), key=lambda kv: (-kv[1], str(kv[0][0])))[:MAX_LABELS]
                dst["label_map"] = [{"from": f, "to": t, "count": n} for (f, t), n in top]
            # Histograms of later batches have their own edges; keep the first batch's.
    return out


def _svg_histogram(hist: dict[str, Any] | None, bounds: list[Any] | None) -> str:
    if not hist:
        return "<em>no values</em>"
    counts, edges = hist["counts"], hist["edges"]
    width, height = 300, 80
    top = max(counts) or 1
    bar_w = width / len(counts)
    bars = []
    for j, c in enumerate(counts):
        h = 0 if c == 0 else max(1.0, height * c / top)
        bars.append(
            f'<rect x="{j * bar_w:.1f}" y="{height - h:.1f}" width="{bar_w - 1:.1f}" '
            f'height="{h:.1f}" fill="#4c78a8"><title>[{edges[j]:.4g}, {edges[j + 1]:.4g}): '
            f"{c}</title></rect>"
        )
    lo_x = edges[0]
    span = (edges[-1] - edges[0]) or 1.0
    lines = []
    for b in bounds or []:
        if b is not None and edges[0] <= b <= edges[-1]:
            x = (b - lo_x) / span * width
            lines.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{height}" stroke="#e45756" '
                'stroke-dasharray="3,2"/>'
            )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height + 14}" '
        f'role="img">{"".join(bars)}{"".join(lines)}'
        f'<text x="0" y="{height + 12}" font-size="10">{edges[0]:.4g}</text>'
        f'<text x="{width}" y="{height + 12}" font-size="10" text-anchor="end">'
        f"{edges[-1]:.4g}</text></svg>"
    )


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.6g}" if math.isfinite(v) else str(v)
    return html.escape(str(v))


def render_html(report: dict[str, Any], title: str = "chatpersona cleaning report") -> str:
    """A self-contained HTML page (inline CSS and SVG, no network) for a report dict."""
    e = html.escape
    rows_in = report["rows_in"]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{e(title)}</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2rem;color:#222}"
        "table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;"
        "padding:.2rem .5rem;text-align:left;vertical-align:top}"
        ".col{border:1px solid #ddd;border-radius:6px;padding:.5rem 1rem;margin:1rem 0}"
        ".tag{background:#eef;border-radius:4px;padding:0 .3rem;font-size:.8rem}",
        "</style></head><body>",
        f"<h1>{e(title)}</h1>",
        "<h2>Accounting</h2><table>",
        f"<tr><th>rows in</th><td>{rows_in}</td></tr>",
        f"<tr><th>accepted</th><td>{report['rows_accepted']}</td></tr>",
        f"<tr><th>duplicates</th><td>{report['rows_duplicate']}</td></tr>",
        f"<tr><th>quarantined</th><td>{report['rows_quarantined']}</td></tr>",
        "</table><h3>Reasons</h3><table><tr><th>reason</th><th>rows</th></tr>",
    ]
    for code, n in sorted(report["reasons"].items(), key=lambda kv: -kv[1]):
        parts.append(f"<tr><td>{e(code)}</td><td>{n}</td></tr>")
    parts.append("</table><h2>Columns</h2>")
    for name, col in report["columns"].items():
        tag = " <span class='tag'>inferred</span>" if col.get("inferred") else ""
        parts.append(
            f"<div class='col' id='col-{e(name)}'><h3>{e(name)} ({e(col['kind'])}){tag}</h3>"
        )
        if col.get("note"):
            parts.append(f"<p>{e(col['note'])}</p>")
        parts.append(
            "<table><tr><th>missing before</th><th>missing after</th><th>imputed</th>"
            "<th>imputed with</th><th>invalid</th><th>standardized</th><th>outliers</th></tr>"
            f"<tr><td>{col['missing_before']}</td><td>{col['missing_after']}</td>"
            f"<td>{col['imputed']}</td><td>{_fmt(col.get('fill_value'))}</td>"
            f"<td>{col['invalid']}</td><td>{col['standardized']}</td>"
            f"<td>{col['outliers']}</td></tr></table>"
        )
        if "bounds" in col:
            lo, hi = col["bounds"]
            parts.append(f"<p>outlier bounds: [{_fmt(lo)}, {_fmt(hi)}]</p>")
            parts.append(_svg_histogram(col.get("histogram"), col["bounds"]))
        if col.get("label_map"):
            parts.append("<table><tr><th>label</th><th>became</th><th>rows</th></tr>")
            for m in col["label_map"]:
                parts.append(
                    f"<tr><td>{e(repr(m['from']))}</td><td>{e(str(m['to']))}</td>"
                    f"<td>{m['count']}</td></tr>"
                )
            parts.append("</table>")
        sugg = col.get("stats", {}).get("fuzzy_suggestions")
        if sugg:
            parts.append("<p>Near-duplicate labels (for review, not applied):</p><ul>")
            for s in sugg:
                parts.append(
                    f"<li>{e(s['label'])} ({s['count']}) ≈ {e(s['suggest'])} "
                    f"({s['suggest_count']}), similarity {s['score']}</li>"
                )
            parts.append("</ul>")
        parts.append("</div>")
    parts.append("</body></html>")
    return "\n".join(parts)

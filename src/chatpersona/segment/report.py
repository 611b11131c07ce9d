"""The segmentation report: ``report.json`` (machine-readable) and a self-contained
``report.html`` (inline SVG only: no script, no external file, no network).

The page shows a 2-D PCA map of (a seeded sample of) users coloured by segment, segment
sizes, a heatmap of segment profiles (standardized differences) and the algorithm
comparison table.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["PALETTE", "render_html", "write_reports"]

PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#393b79",
    "#ad494a",
    "#637939",
)
NOISE_COLOUR = "#bbbbbb"


def _colour(sid: str, ids: Sequence[str]) -> str:
    if sid not in ids:
        return NOISE_COLOUR
    return PALETTE[ids.index(sid) % len(PALETTE)]


def _scatter(
    points: np.ndarray, seg: Sequence[str], ids: Sequence[str], w: int = 520, h: int = 420
) -> str:
    pad = 20
    if len(points) == 0:
        return "<p>no points</p>"
    pts = np.asarray(points, dtype=float)
    if pts.shape[1] == 1:
        pts = np.column_stack([pts[:, 0], np.zeros(len(pts))])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    xy = (pts - lo) / span
    circles = []
    for (x, y), s in zip(xy, seg, strict=True):
        cx = pad + x * (w - 2 * pad)
        cy = h - pad - y * (h - 2 * pad)
        circles.append(
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="2.2" fill="{_colour(s, ids)}" fill-opacity="0.7"/>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" '
        f'aria-label="PCA map of users by segment"><rect width="{w}" height="{h}" fill="#fff" '
        f'stroke="#ccc"/>{"".join(circles)}'
        f'<text x="{w / 2}" y="{h - 4}" font-size="11" text-anchor="middle">PC1</text>'
        f'<text x="10" y="{h / 2}" font-size="11" transform="rotate(-90 10 {h / 2})">PC2</text></svg>'
    )


def _bars(segments: Sequence[Mapping[str, Any]], ids: Sequence[str], w: int = 520) -> str:
    row = 24
    h = row * len(segments) + 10
    biggest = max((s["size"] for s in segments), default=1) or 1
    parts = []
    for i, s in enumerate(segments):
        y = 5 + i * row
        bw = (w - 260) * s["size"] / biggest
        label = html.escape(f"{s['id']} {s['name']}"[:38])
        parts.append(
            f'<text x="0" y="{y + 15}" font-size="11">{label}</text>'
            f'<rect x="250" y="{y + 3}" width="{bw:.1f}" height="{row - 8}" fill="{_colour(s["id"], ids)}"/>'
            f'<text x="{255 + bw:.1f}" y="{y + 15}" font-size="11">{s["size"]} ({s["share"]:.1%})</text>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" '
        f'aria-label="segment sizes">{"".join(parts)}</svg>'
    )


def _heat_colour(d: float) -> str:
    t = max(-1.0, min(1.0, d / 2.0))
    if t >= 0:
        r, g, b = 255, int(255 * (1 - t)), int(255 * (1 - t))
    else:
        r, g, b = int(255 * (1 + t)), int(255 * (1 + t)), 255
    return f"#{r:02x}{g:02x}{b:02x}"


def _heatmap(segments: Sequence[Mapping[str, Any]], max_features: int = 24) -> str:
    segs = [s for s in segments if s.get("profile")]
    if not segs:
        return "<p>no profile</p>"
    strength: dict[str, float] = {}
    for s in segs:
        for f, d in s["profile"].items():
            strength[f] = max(strength.get(f, 0.0), abs(d))
    feats = sorted(strength, key=lambda f: -strength[f])[:max_features]
    cw, ch, left, top = 34, 22, 200, 10
    w = left + cw * len(segs) + 10
    h = top + ch * len(feats) + 30
    parts = []
    for j, s in enumerate(segs):
        parts.append(
            f'<text x="{left + j * cw + cw / 2}" y="{h - 8}" font-size="11" text-anchor="middle">'
            f"{html.escape(s['id'])}</text>"
        )
    for i, f in enumerate(feats):
        y = top + i * ch
        parts.append(
            f'<text x="{left - 6}" y="{y + 15}" font-size="11" text-anchor="end">{html.escape(f[:30])}</text>'
        )
        for j, s in enumerate(segs):
            d = float(s["profile"].get(f, 0.0))
            parts.append(
                f'<rect x="{left + j * cw}" y="{y}" width="{cw - 2}" height="{ch - 2}" '
                f'fill="{_heat_colour(d)}"><title>{html.escape(s["id"])} {html.escape(f)}: '
                f"{d:+.2f} sd</title></rect>"
            )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" role="img" '
        f'aria-label="segment profile heatmap">{"".join(parts)}</svg>'
    )


def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}"
    return html.escape(str(v))


def _table(rows: Sequence[Mapping[str, Any]], chosen: str | None) -> str:
    if not rows:
        return "<p>single algorithm run (no comparison)</p>"
    cols = list(rows[0].keys())
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for r in rows:
        mark = ' class="chosen"' if r.get("algorithm") == chosen else ""
        body.append(f"<tr{mark}>" + "".join(f"<td>{_fmt(r.get(c))}</td>" for c in cols) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_html(
    report: Mapping[str, Any], points: np.ndarray, point_segments: Sequence[str]
) -> str:
    """The self-contained HTML page for a report dict and sampled 2-D points."""
    segments = report["segments"]
    ids = [s["id"] for s in segments if s["id"] != "unsegmented"]
    cards = []
    for s in segments:
        outcomes = ", ".join(
            f"{html.escape(k)} {v:.3g}"
            for k, v in (s.get("outcomes") or {}).items()
            if v is not None
        )
        cards.append(
            f'<div class="card" style="border-left:6px solid {_colour(s["id"], ids)}">'
            f"<h3>{html.escape(s['id'])}: {html.escape(s['name'])}</h3>"
            f"<p>{html.escape(s['description'])}</p>"
            + (f"<p><b>Outcomes:</b> {outcomes}</p>" if outcomes else "")
            + "</div>"
        )
    pca = report.get("pca", {})
    evr = pca.get("explained_variance_ratio", [])
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Segmentation report</title>
<style>
body{{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}}
table{{border-collapse:collapse;font-size:13px}} td,th{{border:1px solid #ddd;padding:4px 8px}}
tr.chosen{{background:#e8f4e8;font-weight:bold}} .card{{padding:4px 12px;margin:8px 0;background:#fafafa}}
.row{{display:flex;gap:24px;flex-wrap:wrap}}
</style></head><body>
<h1>Segmentation report</h1>
<p>Model {html.escape(str(report["model"]["version"]))} · algorithm <b>{html.escape(str(report["algorithm"]))}</b>
 · {report["n_segments"]} segments · {report["n_users"]} users · created {html.escape(str(report["model"]["created_at"]))}</p>
<p>PCA: {pca.get("n_components")} components explain {sum(evr):.1%} of the variance.</p>
<div class="row"><div><h2>Users on the first two principal components</h2>{_scatter(points, point_segments, ids)}</div>
<div><h2>Segment sizes</h2>{_bars(segments, ids)}</div></div>
<h2>Segment profiles (standardized difference from the population)</h2>{_heatmap(segments)}
<h2>Algorithm comparison</h2>{_table(report.get("comparison", []), report.get("algorithm"))}
<p>{html.escape(str(report.get("choice_rule", "")))}</p>
<h2>Segments</h2>{"".join(cards)}
</body></html>
"""


def write_reports(
    directory: str | Path,
    report: Mapping[str, Any],
    points: np.ndarray,
    point_segments: Sequence[str],
) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` into ``directory``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    pj = d / "report.json"
    pj.write_text(json.dumps(report, indent=2, default=_default), encoding="utf-8")
    ph = d / "report.html"
    ph.write_text(render_html(report, points, point_segments), encoding="utf-8")
    return pj, ph


def _default(v: Any) -> Any:
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)

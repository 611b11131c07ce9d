"""A self-contained HTML report of a simulation: cumulative reward and regret curves as
inline SVG (no scripts, no network), plus the summary table."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from chatpersona.decide.simulate import SimulationResult

__all__ = ["render_simulation_html", "write_simulation_html"]

_COLORS = ("#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#ff7f0e")


def _svg_chart(
    title: str, xs: Sequence[float], series: Sequence[tuple[str, Sequence[float]]], ylabel: str
) -> str:
    w, h, ml, mr, mt, mb = 640, 320, 64, 150, 30, 40
    pw, ph = w - ml - mr, h - mt - mb
    x_max = max(xs) if xs else 1.0
    ys = [v for _, vals in series for v in vals]
    y_min, y_max = min([0.0, *ys]), max([1e-9, *ys])
    if y_max == y_min:
        y_max = y_min + 1.0

    def sx(x: float) -> float:
        return ml + pw * x / x_max

    def sy(y: float) -> float:
        return mt + ph * (1 - (y - y_min) / (y_max - y_min))

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" role="img" aria-label="{html.escape(title)}">',
        f'<text x="{ml}" y="18" font-size="14" font-weight="bold">{html.escape(title)}</text>',
        f'<line x1="{ml}" y1="{mt + ph}" x2="{ml + pw}" y2="{mt + ph}" stroke="#333"/>',
        f'<line x1="{ml}" y1="{mt}" x2="{ml}" y2="{mt + ph}" stroke="#333"/>',
    ]
    for k in range(5):
        yv = y_min + (y_max - y_min) * k / 4
        xv = x_max * k / 4
        parts.append(
            f'<text x="{ml - 6}" y="{sy(yv) + 4:.1f}" font-size="10" text-anchor="end">{yv:,.0f}</text>'
        )
        parts.append(
            f'<text x="{sx(xv):.1f}" y="{mt + ph + 14}" font-size="10" text-anchor="middle">{xv:,.0f}</text>'
        )
    parts.append(
        f'<text x="{ml + pw / 2}" y="{h - 6}" font-size="11" text-anchor="middle">chats</text>'
    )
    parts.append(
        f'<text x="14" y="{mt + ph / 2}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 14 {mt + ph / 2})">{html.escape(ylabel)}</text>'
    )
    for i, (name, vals) in enumerate(series):
        color = _COLORS[i % len(_COLORS)]
        pts = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in zip(xs, vals, strict=True))
        parts.append(
            f'<polyline class="series" data-name="{html.escape(name)}" fill="none" '
            f'stroke="{color}" stroke-width="2" points="{pts}"/>'
        )
        ly = mt + 14 + 18 * i
        parts.append(
            f'<line x1="{ml + pw + 10}" y1="{ly}" x2="{ml + pw + 30}" y2="{ly}" '
            f'stroke="{color}" stroke-width="2"/>'
        )
        parts.append(
            f'<text x="{ml + pw + 34}" y="{ly + 4}" font-size="11">{html.escape(name)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def render_simulation_html(result: SimulationResult) -> str:
    """The report as one HTML string (inline SVG charts, no external resources)."""
    t = result.curve_t
    reward_chart = _svg_chart(
        "Cumulative expected reward",
        t,
        [
            ("oracle", result.curve_oracle),
            (result.policy, result.curve_policy),
            (f"best fixed ({result.best_fixed_action})", result.curve_best_fixed),
        ],
        "cumulative reward",
    )
    regret = [o - p for o, p in zip(result.curve_oracle, result.curve_policy, strict=True)]
    regret_fixed = [
        o - f for o, f in zip(result.curve_oracle, result.curve_best_fixed, strict=True)
    ]
    regret_chart = _svg_chart(
        "Cumulative regret against the oracle",
        t,
        [(result.policy, regret), (f"best fixed ({result.best_fixed_action})", regret_fixed)],
        "cumulative regret",
    )
    rows = [
        ("policy", result.policy),
        ("chats", f"{result.chats:,}"),
        ("seed", str(result.seed)),
        ("mean reward (realized)", f"{result.mean_reward:.4f}"),
        ("mean reward (expected)", f"{result.expected_mean_reward:.4f}"),
        ("oracle mean reward", f"{result.oracle_mean_reward:.4f}"),
        ("best fixed action", result.best_fixed_action),
        ("best fixed mean reward", f"{result.best_fixed_mean_reward:.4f}"),
        ("share of oracle", f"{result.ratio_to_oracle:.1%}"),
        ("lift over best fixed", f"{result.lift_over_best_fixed:+.1%}"),
        ("cumulative regret", f"{result.cumulative_regret:,.1f}"),
    ]
    table = "\n".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows
    )
    counts = "\n".join(
        f"<tr><th>{html.escape(a)}</th><td>{c:,}</td><td>{result.fixed_mean_rewards[a]:.4f}</td></tr>"
        for a, c in result.action_counts.items()
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>chatpersona simulation: {html.escape(result.policy)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
th, td {{ border: 1px solid #ccc; padding: 4px 10px; text-align: left; }}
</style></head><body>
<h1>Simulation: {html.escape(result.policy)}</h1>
<p>Chats drawn from the simulator's world (the generator's five latent segments, hidden
reward rates per segment, intent and action). Expected rewards use the hidden rates.</p>
<table>{table}</table>
{reward_chart}
{regret_chart}
<h2>Actions</h2>
<table><tr><th>action</th><th>times chosen</th><th>mean reward if always chosen</th></tr>
{counts}</table>
</body></html>
"""


def write_simulation_html(result: SimulationResult, path: str | Path) -> Path:
    """Write :func:`render_simulation_html` to ``path`` and return it."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_simulation_html(result), encoding="utf-8")
    return out

"""CLI commands of the decide stage: ``simulate`` and ``evaluate-policy``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["register"]

console = Console()


def _simulate(
    policy: Annotated[
        str,
        typer.Option(
            "--policy",
            help="A policy name (linucb, thompson, epsilon_greedy, rules, fixed, random) or a "
            "policy YAML file ({type: linucb, alpha: 0.5, ...}).",
        ),
    ] = "linucb",
    chats: Annotated[
        int, typer.Option("--chats", min=1, help="How many chats to simulate.")
    ] = 5000,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the simulated chats and of the policy.")
    ] = 0,
    log: Annotated[
        Path | None,
        typer.Option("--log", help="Write every decision and reward to this JSONL decision log."),
    ] = None,
    report_html: Annotated[
        Path | None,
        typer.Option(
            "--report-html",
            help="Write a self-contained HTML report (cumulative reward and regret curves).",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON (without the curves).")
    ] = False,
) -> None:
    """Simulate support chats with hidden reward rates and run a policy on them.

    Prints the policy's mean reward next to the oracle's (always the best action) and the
    best single fixed action's.
    """
    from rich.progress import Progress

    from chatpersona.decide.log import JsonlDecisionLog
    from chatpersona.decide.points import load_policy_spec, make_policy
    from chatpersona.decide.report import write_simulation_html
    from chatpersona.decide.simulate import Simulator

    spec = load_policy_spec(policy)
    sim = Simulator(seed=seed)
    from chatpersona.decide.context import ContextSchema

    ctx = spec.pop("context", None)
    schema = ContextSchema.from_dict(ctx) if ctx else sim.schema
    spec.pop("actions", None)
    pol = make_policy(spec, sim.world.actions, schema=schema, seed=seed, decision_point="simulated")
    sink = JsonlDecisionLog(log) if log is not None else None
    try:
        with Progress(console=Console(stderr=True), transient=True, disable=as_json) as progress:
            task = progress.add_task(f"simulating {pol.name}", total=chats)
            result = sim.run(pol, chats, log=sink, progress=lambda k: progress.advance(task, k))
    finally:
        if sink is not None:
            sink.close()
    if report_html is not None:
        write_simulation_html(result, report_html)
    out: dict[str, Any] = result.to_dict()
    out.pop("curves")
    if log is not None:
        out["log"] = str(log)
    if report_html is not None:
        out["report_html"] = str(report_html)
    if as_json:
        typer.echo(json.dumps(out, indent=2))
        return
    table = Table(title=f"simulation: {result.policy}, {chats:,} chats, seed {seed}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("mean reward (realized)", f"{result.mean_reward:.4f}")
    table.add_row("mean reward (expected)", f"{result.expected_mean_reward:.4f}")
    table.add_row("oracle mean reward", f"{result.oracle_mean_reward:.4f}")
    table.add_row(
        f"best fixed mean reward ({result.best_fixed_action})",
        f"{result.best_fixed_mean_reward:.4f}",
    )
    table.add_row("share of oracle", f"{result.ratio_to_oracle:.1%}")
    table.add_row("lift over best fixed", f"{result.lift_over_best_fixed:+.1%}")
    console.print(table)


def _evaluate_policy(
    decision_log: Annotated[
        Path, typer.Argument(help="A JSONL decision log (decisions with propensities + rewards).")
    ],
    policy: Annotated[
        str,
        typer.Option(
            "--policy", help="The candidate: a policy name or a policy YAML file to evaluate."
        ),
    ],
    decision_point: Annotated[
        str | None,
        typer.Option(
            "--decision-point", help="Which decision point (needed when the log has several)."
        ),
    ] = None,
    confidence: Annotated[
        float, typer.Option("--confidence", help="Level of the confidence intervals.")
    ] = 0.95,
    bootstrap: Annotated[
        int,
        typer.Option(
            "--bootstrap", min=0, help="Bootstrap resamples (0: normal-approximation intervals)."
        ),
    ] = 0,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the candidate policy and the bootstrap.")
    ] = 0,
    decision_points: Annotated[
        Path | None,
        typer.Option(
            "--decision-points",
            help="The decision-points YAML the log came from: the candidate uses its context "
            "schema and the point's guardrails (default: schema inferred from the log).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the estimates as JSON.")] = False,
) -> None:
    """Estimate a candidate policy's value from a decision log (IPS, SNIPS, doubly robust).

    Refuses a log without propensities, naming the first line that lacks one.
    """
    from chatpersona.decide.evaluate import evaluate_policy
    from chatpersona.decide.points import DecisionConfig, load_policy_spec

    spec = load_policy_spec(policy)
    result = evaluate_policy(
        decision_log,
        spec,
        decision_point=decision_point,
        confidence=confidence,
        bootstrap=bootstrap,
        seed=seed,
        config=DecisionConfig.load(decision_points) if decision_points is not None else None,
    )
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    table = Table(
        title=f"{result.policy} on {decision_log.name}: {result.n_rewarded:,} rewarded decisions"
    )
    table.add_column("estimator")
    table.add_column("value", justify="right")
    table.add_column(f"{confidence:.0%} interval", justify="right")
    for name in ("ips", "snips", "dr"):
        est = getattr(result, name)
        table.add_row(name.upper(), f"{est.estimate:.4f}", f"[{est.ci_low:.4f}, {est.ci_high:.4f}]")
    table.add_row("logged policy (on-policy mean)", f"{result.logged_value:.4f}", "")
    console.print(table)
    console.print(
        f"effective sample size {result.effective_sample_size:,.0f}, "
        f"max weight {result.max_weight:.1f}, {result.n_unrewarded:,} decisions without reward"
    )
    if result.unsupported_mass > 0.01:
        console.print(
            f"[yellow]warning[/] the candidate puts {result.unsupported_mass:.1%} of its choices "
            "on actions the logging policy never chose: the estimates cannot see those."
        )


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    app.command("simulate")(_simulate)
    app.command("evaluate-policy")(_evaluate_policy)

"""``chatpersona simulate`` / ``evaluate-policy`` contract and the HTML report."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from chatpersona.cli.main import app

runner = CliRunner()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatpersona.cli.main", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_simulate_json_log_and_report(tmp_path: Path) -> None:
    log, html = tmp_path / "d.jsonl", tmp_path / "r.html"
    res = runner.invoke(
        app,
        [
            "simulate",
            "--policy",
            "epsilon_greedy",
            "--chats",
            "600",
            "--seed",
            "4",
            "--log",
            str(log),
            "--report-html",
            str(html),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    for key in ("mean_reward", "oracle_mean_reward", "best_fixed_mean_reward"):
        assert 0 < out[key] <= 1
    assert out["oracle_mean_reward"] >= out["best_fixed_mean_reward"]
    lines = log.read_text().splitlines()
    kinds = [json.loads(line)["type"] for line in lines]
    assert kinds.count("decision") == kinds.count("reward") == 600
    page = html.read_text()
    assert (
        page.count("<svg") == 2
        and "<script" not in page
        and "http" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )
    assert 'data-name="oracle"' in page and "regret" in page
    # evaluate the logged run: ips, snips, dr each with an interval
    res = runner.invoke(app, ["evaluate-policy", str(log), "--policy", "random", "--json"])
    assert res.exit_code == 0, res.output
    est = json.loads(res.output)
    for name in ("ips", "snips", "dr"):
        assert est[name]["ci_low"] <= est[name]["estimate"] <= est[name]["ci_high"]
    assert est["n_rewarded"] == 600


def test_simulate_policy_yaml(tmp_path: Path) -> None:
    spec = tmp_path / "p.yaml"
    spec.write_text(yaml.safe_dump({"type": "fixed", "action": "formal"}))
    res = runner.invoke(app, ["simulate", "--policy", str(spec), "--chats", "300", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["action_counts"]["formal"] == 300
    assert out["expected_mean_reward"] == pytest.approx(out["fixed_mean_rewards"]["formal"])


def test_evaluate_refuses_log_without_propensities(tmp_path: Path) -> None:
    log = tmp_path / "old.jsonl"
    good = {
        "decision_id": "a",
        "action": "x",
        "candidates": ["x", "y"],
        "context": {},
        "propensity": 0.5,
        "decision_point": "p",
    }
    bad = {**good, "decision_id": "b"}
    del bad["propensity"]
    log.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    proc = run_cli("evaluate-policy", str(log), "--policy", "fixed", "--json")
    assert proc.returncode == 2
    msg = re.sub(r"\s+", " ", proc.stderr)
    assert "Line 2 of the decision log has no propensity" in msg
    assert "old.jsonl" in msg and "row 2" in msg


def test_unknown_policy_name_is_a_clear_error() -> None:
    proc = run_cli("simulate", "--policy", "ucb2", "--chats", "10")
    assert proc.returncode == 2
    assert "--policy must be a policy name" in re.sub(r"\s+", " ", proc.stderr)


def test_help_texts() -> None:
    for cmd in ("simulate", "evaluate-policy"):
        res = runner.invoke(app, [cmd, "--help"])
        assert res.exit_code == 0
        assert "--policy" in res.output and "--json" in res.output

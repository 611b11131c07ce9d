"""docs/decisions.md really runs: its YAML parses as decision points, its python blocks
run in order (one namespace) after its bash blocks, in a temp directory."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from chatpersona.decide import DecisionConfig, DecisionEngine

DOC = Path(__file__).resolve().parents[2] / "docs" / "decisions.md"
BLOCK = re.compile(r"```(python|bash|yaml)\n(.*?)```", re.S)


def _blocks(lang: str) -> list[str]:
    return [code for kind, code in BLOCK.findall(DOC.read_text(encoding="utf-8")) if kind == lang]


def test_doc_has_examples() -> None:
    assert len(_blocks("python")) >= 4 and len(_blocks("bash")) >= 2 and _blocks("yaml")


def test_yaml_example_is_a_valid_config() -> None:
    (text,) = _blocks("yaml")
    config = DecisionConfig.from_dict(yaml.safe_load(text))
    engine = DecisionEngine(config, seed=0)
    assert engine.policy("tone").version == "2"
    d = engine.decide("u", "content", {"consent": {"marketing": False}})
    assert d.action == "help_article"


@pytest.fixture
def ran_bash(tmp_path: Path) -> list[str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    outputs = []
    for code in _blocks("bash"):
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", code],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    return outputs


def test_bash_then_python_examples_run(
    ran_bash: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "'ips'" in ran_bash[0] and "'dr'" in ran_bash[0]
    assert ran_bash[1].strip().splitlines()[-1] == "2"  # two inline SVG charts
    assert (tmp_path / "sim.html").exists() and (tmp_path / "eg.jsonl").exists()
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "docs_decisions"}
    for i, code in enumerate(_blocks("python")):
        exec(compile(code, f"{DOC.name}[python {i}]", "exec"), namespace)
    assert (tmp_path / "decisions.jsonl").read_text().count('"type":"reward"') == 3

"""The root CLI: --version and --help on every command."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from chatpersona import __version__
from chatpersona.cli.main import app

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"chatpersona {__version__}"


def test_every_command_has_help() -> None:
    import typer.main

    group = typer.main.get_command(app)
    names = list(getattr(group, "commands", {}))
    for name in names:
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        assert "Usage" in result.output


def test_console_script_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "chatpersona.cli.main", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert __version__ in out.stdout

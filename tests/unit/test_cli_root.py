"""The root CLI: --version and --help on every command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def _command(*args: str) -> subprocess.CompletedProcess[str]:
    """The ``chatpersona`` entry point (:func:`run`) in a fresh process."""
    code = "import sys; from chatpersona.cli.main import run; sys.argv[0] = 'chatpersona'; run()"
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
    )


def test_usage_errors_exit_2_with_a_message_not_a_traceback() -> None:
    for args in (["clean", "--bogus"], ["no-such-command"]):
        out = _command(*args)
        assert out.returncode == 2, (args, out.stderr)
        assert "Traceback" not in out.stderr
        assert "No such" in out.stderr


def test_the_entry_point_flushes_output_and_keeps_exit_codes(tmp_path: Path) -> None:
    """``run`` leaves without the interpreter's teardown: what was printed must still
    arrive, and the exit code must be the command's."""
    ok = _command("--version")
    assert ok.returncode == 0 and ok.stdout.strip() == f"chatpersona {__version__}"
    missing = _command("clean", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "o.csv"))
    assert missing.returncode == 2
    assert "file_not_found" in missing.stderr


def test_a_command_runs_in_an_app_holding_only_its_module() -> None:
    """``main`` builds only the invoked command's module; its help and behaviour are the
    whole app's."""
    import typer.main

    from chatpersona.cli.main import COMMANDS, MODULES, _module, app_for

    full = set(getattr(typer.main.get_command(app), "commands", {}))
    assert set(COMMANDS) == full  # every command and group has its module
    for name, module in COMMANDS.items():  # ... and it is the module that registers it
        scratch = typer.Typer()
        _module(module).register(scratch)
        names = [c.name for c in scratch.registered_commands]
        names += [g.name for g in scratch.registered_groups]
        assert name in names, (name, module)
    assert set(COMMANDS.values()) == set(MODULES)
    for args in ([], ["--version"], ["nope"]):
        assert set(getattr(typer.main.get_command(app_for(args)), "commands", {})) == full
    for name in ("clean", "plan", "serve", "keys"):
        narrow = app_for([name, "--help"])
        commands = getattr(typer.main.get_command(narrow), "commands", {})
        assert name in commands and len(commands) < len(full)
        for args in ([name, "--help"], ["--version"]):
            a, b = runner.invoke(app, args), runner.invoke(narrow, args)
            assert (a.exit_code, a.output) == (b.exit_code, b.output), args


def test_a_command_imports_only_its_own_module() -> None:
    """``chatpersona clean`` does not import the other commands' modules (nor what they
    print with)."""
    code = (
        "import sys; from chatpersona.cli.main import app_for; app_for(['clean']); "
        "print(sorted(m for m in sys.modules if m.startswith('chatpersona.cli.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['chatpersona.cli.clean_cmd', 'chatpersona.cli.main']"


def test_main_runs_a_command_and_reports_its_errors(tmp_path: Path) -> None:
    import pytest

    from chatpersona.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["clean", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "o.csv")])
    assert exc.value.code == 2


def test_a_quiet_clean_loads_no_terminal_library(tmp_path: Path) -> None:
    """``chatpersona clean -q`` prints nothing, so it does not import rich; a failure still
    prints its message (rich is loaded for it then)."""
    src = tmp_path / "t.csv"
    src.write_text("id,x\na,1\nb,2\n")
    code = (
        "import sys; from chatpersona.cli.main import main\n"
        "try:\n"
        f"    main(['clean', {str(src)!r}, '-o', {str(tmp_path / 'o.csv')!r}, '-q'])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'rich', 'pydantic'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert (tmp_path / "o.csv").is_file()
    failed = _command("clean", str(tmp_path / "nope.csv"), "-o", str(tmp_path / "o2.csv"), "-q")
    assert failed.returncode == 2 and "file_not_found" in failed.stderr


def test_the_clean_modules_leave_numpy_to_a_background_import_and_never_load_pyarrow(
    tmp_path: Path,
) -> None:
    """Importing the cleaning stage loads neither numpy nor pyarrow: a streamed clean imports
    numpy on a thread beside its first pass (it is first needed after it), and writes its
    Parquet outputs with Polars, so pyarrow (~65 MB of libraries) is never loaded."""
    src = tmp_path / "in.csv"
    src.write_text(
        "user_id,age,plan\n" + "".join(f"u{k},{20 + k % 50},Basic \n" for k in range(300))
    )
    code = (
        "import sys\n"
        "import chatpersona.cli.clean_cmd, chatpersona.clean.runner, chatpersona.clean.streamed\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'pyarrow'}))\n"
        "from chatpersona.clean import streamed\n"
        "streamed._import_later_needs()\n"
        "assert 'numpy.ma' in sys.modules  # np.median's own lazy import\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'pyarrow'}))\n"
        "from chatpersona.cli.main import main\n"
        f"sys.argv = ['chatpersona', 'clean', {str(src)!r}, '-o', {str(tmp_path / 'o.parquet')!r},"
        " '--infer', '-q']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'pyarrow'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:3] == ["[]", "['numpy']", "['numpy']"]
    assert (tmp_path / "o.parquet").is_file()

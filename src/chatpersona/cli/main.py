"""The ``chatpersona`` command: one typer app; each stage registers its own commands.

Every command module exposes ``register(app)``; heavy imports happen inside the
commands so that ``chatpersona --help`` stays fast.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import os
import sys
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from chatpersona import __version__
from chatpersona.exceptions import ChatpersonaError

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["app", "main"]  # noqa: F822 (``app`` comes from the module's __getattr__)

HELP = "Personalize a support chatbot from data: clean, segment, stream, profile, decide."
MODULES: tuple[str, ...] = (
    "generate_cmd",
    "clean_cmd",
    "segment_cmd",
    "features_cmd",
    "serve_cmd",
    "admin_cmd",
    "stream_cmd",
    "decide_cmd",
    "chat_cmd",
    "demo_cmd",
)
"""The command modules (in ``chatpersona.cli``), in the order of the root help."""
COMMANDS: dict[str, str] = {
    "generate": "generate_cmd",
    "clean": "clean_cmd",
    "plan": "clean_cmd",
    "segment": "segment_cmd",
    "features": "features_cmd",
    "serve": "serve_cmd",
    "db": "admin_cmd",
    "keys": "admin_cmd",
    "worker": "stream_cmd",
    "replay": "stream_cmd",
    "simulate": "decide_cmd",
    "evaluate-policy": "decide_cmd",
    "chat": "chat_cmd",
    "intents": "chat_cmd",
    "demo": "demo_cmd",
}
"""Which module registers each top-level command or group (a test checks it against the
modules): a command imports only its own module."""


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"chatpersona.cli.{name}")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"chatpersona {__version__}")
        raise typer.Exit()


def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Personalize a support chatbot from data: clean, segment, stream, profile, decide."""


def build_app(modules: tuple[str, ...] = MODULES) -> typer.Typer:
    """A root app holding the commands of ``modules``."""
    built = typer.Typer(
        name="chatpersona",
        help=HELP,
        no_args_is_help=True,
        add_completion=False,
        context_settings={"help_option_names": ["-h", "--help"]},
        pretty_exceptions_enable=False,
    )
    built.callback()(_root)
    for name in modules:
        _module(name).register(built)
    return built


def __getattr__(name: str) -> Any:
    """``app``, the whole app (every command), built on first use."""
    if name == "app":
        whole = build_app()
        globals()["app"] = whole
        return whole
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def app_for(args: list[str]) -> typer.Typer:
    """The app to run ``args`` with: when they start with a command's name, an app holding
    only that command's module (Typer turns every registered command into a click command
    before running any, and the modules import what their commands print with: ~0.2 s for
    all of them, measured), else the whole app (root help, ``--version``, an unknown
    command's error listing the others)."""
    module = COMMANDS.get(args[0]) if args else None
    return build_app((module,)) if module is not None else build_app()


def _err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the app and turns a :class:`ChatpersonaError` into a clear
    message on stderr and exit code 2 (1 is left for unexpected failures)."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        app_for(args)(args=args, standalone_mode=False)
    except ChatpersonaError as exc:
        from rich.markup import escape

        _err_console().print(
            f"[bold red]error[/] {escape(f'[{exc.code}]')} {escape(exc.message)}", highlight=False
        )
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        _err_console().print("Aborted.")
        sys.exit(130)
    except Exception as exc:  # click usage errors carry their own exit code
        # Typer vendors its own copy of click (``typer._click``), whose exceptions are not
        # click's: recognise a usage error by what it can do.
        show, exit_code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):
            show()
            sys.exit(exit_code)
        raise


def run() -> None:
    """The ``chatpersona`` command: :func:`main`, then an exit without the interpreter's
    teardown.

    Freeing every module, thread pool and buffer at exit does nothing useful for a command
    that has finished (its outputs are written and closed, its temporary files removed)
    and takes ~0.15 s after a large clean (measured at 1M rows). Exit handlers still run
    and the standard streams are flushed; an unexpected exception still ends the normal
    way, with its traceback."""
    try:
        main()
        code = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:  # a message: printed as the interpreter would
            print(exc.code, file=sys.stderr)
            code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    run()

"""The `ssmd` command.

Each command group lives in its own module under ssmd.cli and exposes a
`typer.Typer` named `app`; this module only mounts them. Modules stay thin:
parse arguments, call a service, print.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import typer

app = typer.Typer(
    name="ssmd",
    help="ssmd: capture, stream and archive prediction-market data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _print_version(wanted: bool) -> None:
    if not wanted:
        return
    from ssmd import __version__
    from ssmd.exceptions import CoreVersionError

    try:
        from ssmd import core
    except CoreVersionError as exc:
        typer.echo(f"ssmd {__version__}")
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"ssmd {__version__}, core {core.version} ({core.build_profile} build)")
    raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the versions of the package and of its Rust core, then exit.",
    ),
) -> None:
    """ssmd: capture, stream and archive prediction-market data."""


# (module under ssmd.cli, group name); a group named "" mounts its commands at the top level.
_GROUPS: list[tuple[str, str]] = [
    ("demo", ""),
    ("meta", ""),
    ("feed", "feed"),
    ("schema", "schema"),
    ("env", "env"),
    ("sim", "sim"),
    ("connector", "connector"),
    ("market", "market"),
    ("archiver", "archiver"),
    ("data", "data"),
    ("gateway", "gateway"),
    ("signal", "signal"),
    ("key", "key"),
    ("mcp", "mcp"),
    ("tui", ""),
    ("up", ""),
    ("worker", "worker"),
    ("ops", "ops"),
    ("day", "day"),
    ("deploy", "deploy"),
]

for _module, _name in _GROUPS:
    _sub = importlib.import_module(f"ssmd.cli.{_module}").app
    if _name:
        app.add_typer(_sub, name=_name)
    else:
        app.registered_commands.extend(_sub.registered_commands)


def main() -> None:
    try:
        app()
    except SystemExit as exc:
        _exit(exc.code)
    _exit(0)


def _exit(code: object) -> None:
    """Leave with `code`; skip interpreter teardown when the Temporal client was loaded.

    temporalio's Rust bridge keeps Tokio threads that may still touch the GIL while
    CPython finalizes, which aborts a command that has already finished its work
    (SIGABRT, "PyGILState_Release ... must be current"; temporalio/sdk-python#300).
    Once the command's output is flushed there is nothing left for teardown to do.
    """
    if "temporalio.bridge.temporal_sdk_bridge" not in sys.modules:
        raise SystemExit(code)
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else 0)

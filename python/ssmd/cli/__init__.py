"""The `ssmd` command.

Each command group lives in its own module under ssmd.cli and exposes a
`typer.Typer` named `app`; this module only mounts them. Modules stay thin:
parse arguments, call a service, print.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="ssmd",
    help="ssmd: capture, stream and archive prediction-market data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
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
    ("up", ""),
]

for _module, _name in _GROUPS:
    _sub = importlib.import_module(f"ssmd.cli.{_module}").app
    if _name:
        app.add_typer(_sub, name=_name)
    else:
        app.registered_commands.extend(_sub.registered_commands)


def main() -> None:
    app()

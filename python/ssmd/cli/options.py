"""The options commands share, defined once so that every command spells, types and
documents them alike.

Every command that works on an environment requires --env, or takes it from
$SSMD_ENV; none guesses one. --data-dir defaults to $SSMD_DATA_DIR, else ./data
(read by ssmd.config, which records where each value came from), and --feed to
the environment's feed.
"""

from __future__ import annotations

from typing import Annotated, Final

import typer

from ssmd.cli.output import ConfigDirOption, JsonOption

__all__ = [
    "ENV_VAR",
    "ConfigDirOption",
    "DataDirOption",
    "EnvOption",
    "FeedOption",
    "JsonOption",
    "LogLevelOption",
    "NatsUrlOption",
]

ENV_VAR: Final = "SSMD_ENV"

EnvOption = Annotated[
    str,
    typer.Option(
        "--env",
        envvar=ENV_VAR,
        metavar="NAME",
        help="Environment under exchanges/environments/.",
        show_default=False,
    ),
]
DataDirOption = Annotated[
    str | None,
    typer.Option(
        "--data-dir",
        metavar="DIR",
        help="Where data is kept (default: $SSMD_DATA_DIR, else ./data).",
        show_default=False,
    ),
]
FeedOption = Annotated[
    str | None,
    typer.Option(
        "--feed", metavar="NAME", help="Feed (default: the environment's).", show_default=False
    ),
]
NatsUrlOption = Annotated[
    str | None,
    typer.Option("--nats-url", help="Override the NATS URL (`embedded` only under `ssmd up`)."),
]
LogLevelOption = Annotated[str, typer.Option("--log-level", help="Log level.")]

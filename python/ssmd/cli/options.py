"""Options the component commands (connector, archiver, gateway, up) share."""

from __future__ import annotations

from typing import Annotated

import typer

from ssmd.cli.output import ConfigDirOption

__all__ = ["ConfigDirOption", "EnvOption", "LogLevelOption", "NatsUrlOption"]

EnvOption = Annotated[str, typer.Option("--env", help="Environment under exchanges/environments/.")]
NatsUrlOption = Annotated[
    str | None,
    typer.Option("--nats-url", help="Override the NATS URL (`embedded` only under `ssmd up`)."),
]
LogLevelOption = Annotated[str, typer.Option("--log-level", help="Log level.")]

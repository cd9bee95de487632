"""How a long-running component command runs (connector, archiver, gateway): logging for
the component, its settings read from the environment (a bad one exits 2 with its
message, exits.py), then its work until SIGTERM or SIGINT sets `stop`.

`hard_exit_after`: seconds after the signal at which the process exits 1 whatever it is
doing (a shutdown that hangs must not keep a pod or `ssmd up` waiting).
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import typer

from ssmd.cli.exits import component_errors
from ssmd.obs import logs

__all__ = ["run_component"]

S = TypeVar("S")


def run_component(
    name: str,
    log_level: str,
    settings: Callable[[], S],
    work: Callable[[S, asyncio.Event], Awaitable[None]],
    *,
    hard_exit_after: float | None = None,
) -> None:
    logs.setup(log_level, component=name)
    with component_errors():
        ready = settings()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            stop.set()
            if hard_exit_after is not None:
                timer = threading.Timer(hard_exit_after, lambda: os._exit(1))
                timer.daemon = True
                timer.start()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        await work(ready, stop)

    try:
        with component_errors():
            asyncio.run(main())
    except OSError as exc:  # NATS unreachable, a port taken
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None

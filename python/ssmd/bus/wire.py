"""One NATS connection for the hot path, on ssmd's own protocol core.

`Wire` owns a socket to one server of a list and speaks the client protocol through
`ssmd._core.NatsProtocol` (no I/O there): a batch of publishes or acks is encoded in
one call and written in one go, and each read from the socket is parsed in one call
that hands back its PubAcks and keeps a pull consumer's deliveries in Rust. It carries
the two hot paths, the publisher's (ssmd.bus.publisher) and the archiver's pulls
(ssmd.archiver.consumer); nats-py stays the client for everything else (JetStream
administration, subscriptions), where a Python call, a message object and a callback
per message cost nothing that matters.

What production NATS needs, and how:
- servers: a comma-separated URL list; after a connection is lost the next server is
  tried, then the next, every `RECONNECT_WAIT` per round, forever. Servers that INFO
  announces (`connect_urls`, a cluster's members) are added to the list.
- lame-duck mode: an INFO with `ldm` makes the wire leave for another server at once.
- auth and TLS as ssmd.bus.auth reads them from the URL and the environment.
- liveness: a PING every `ping_interval`; two unanswered and the connection is dropped.

Nothing is buffered across connections: what was written to a socket that died is the
caller's to send again (the publisher replays every unacked message; the puller's
request and acks are made again, and JetStream redelivers what was not acked).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from typing import Any

import orjson

import ssmd
from ssmd import core
from ssmd.bus.auth import CREDS_ENV, Server, credentials, parse_servers, tls_context
from ssmd.bus.connection import RECONNECT_WAIT, Outage
from ssmd.exceptions import BusAuthError

__all__ = ["Wire"]

log = logging.getLogger(__name__)

_READ = 256 * 1024
_AUTH_ERRORS = ("authorization violation", "authentication", "user authentication")


class Wire:
    def __init__(
        self,
        url: str,
        name: str,
        reply_prefix: str,
        *,
        deliver_subject: str = "",
        on_received: Callable[[core.Received], None],
        on_lost: Callable[[str], None],
        connect_timeout: float = 5.0,
        ping_interval: float = 10.0,
        summary_every: float = 60.0,
    ) -> None:
        self.servers = parse_servers(url)
        self.name = name
        self.protocol = core.NatsProtocol(reply_prefix, deliver_subject)
        self._on_received = on_received
        self._on_lost = on_lost
        self._creds = credentials()
        self.connect_timeout = connect_timeout
        self.ping_interval = ping_interval
        self._outage = Outage.of(url, summary_every)
        self._writer: asyncio.StreamWriter | None = None
        self._reader: asyncio.StreamReader | None = None
        self._index = 0  # the server in use, or tried last
        self._connected = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._unanswered_pings = 0
        self.max_payload = 1024 * 1024
        self.server_info: dict[str, Any] = {}

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    @property
    def server(self) -> Server:
        return self.servers[self._index]

    async def start(self) -> None:
        """Connect to the first server that answers (each tried once); then keep
        connected until `close`. Raises the last error when none answers."""
        error: Exception | None = None
        for i in range(len(self.servers)):
            try:
                await self._open(i)
                break
            except BusAuthError:
                raise
            except (OSError, TimeoutError, ConnectionError, ssl.SSLError) as exc:
                error = exc
        else:
            assert error is not None
            raise error
        self._task = asyncio.create_task(self._run(), name=f"nats-wire-{self.name}")

    async def close(self) -> None:
        self._closing = True
        self._outage.leave(self)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._drop()

    async def wait_connected(self) -> None:
        await self._connected.wait()

    async def write(self, data: bytes) -> None:
        """Write `data` to the server; waits while the socket's buffer is full.
        ConnectionError when not connected (nothing of `data` is kept)."""
        writer = self._writer
        if writer is None or not self._connected.is_set():
            raise ConnectionError("not connected to NATS")
        writer.write(data)
        await writer.drain()

    # ---- connection --------------------------------------------------------------------

    async def _open(self, index: int) -> None:
        server = self.servers[index]
        self._index = index
        async with asyncio.timeout(self.connect_timeout):
            reader, writer = await asyncio.open_connection(server.host, server.port, limit=_READ)
            try:
                self.protocol.reset()
                info = await self._read_info(reader)
                if server.tls or info.get("tls_required"):
                    await writer.start_tls(tls_context(), server_hostname=server.host)
                writer.write(
                    b"CONNECT %b\r\nPING\r\n" % orjson.dumps(self._connect_options(server, info))
                )
                await writer.drain()
                await self._read_pong(reader, server)
                self.protocol.set_max_payload(int(info.get("max_payload") or 0) + 4096)
                subs = f"SUB {self.protocol.reply_prefix}* 1\r\n"
                if self.protocol.deliver_subject:
                    subs += f"SUB {self.protocol.deliver_subject} 2\r\n"
                writer.write(subs.encode())
                await writer.drain()
            except BaseException:
                writer.close()
                raise
        self.server_info = info
        self.max_payload = int(info.get("max_payload") or self.max_payload)
        self._learn_servers(info)
        self._reader, self._writer = reader, writer
        self._unanswered_pings = 0
        self._connected.set()

    async def _read_info(self, reader: asyncio.StreamReader) -> dict[str, Any]:
        while True:
            data = await reader.read(_READ)
            if not data:
                raise ConnectionError("the server closed the connection before INFO")
            got = self.protocol.receive(data)
            if got.infos:
                info = orjson.loads(got.infos[0])
                return info if isinstance(info, dict) else {}

    async def _read_pong(self, reader: asyncio.StreamReader, server: Server) -> None:
        while True:
            data = await reader.read(_READ)
            if not data:
                raise ConnectionError("the server closed the connection after CONNECT")
            got = self.protocol.receive(data)
            for err in got.errors:
                if any(a in err.lower() for a in _AUTH_ERRORS):
                    raise BusAuthError(
                        f"the NATS server at {server.address} refused the credentials: {err}. "
                        f"Fix: the user and password or token in the URL, or {CREDS_ENV}"
                    )
                raise ConnectionError(f"the NATS server at {server.address} said: {err}")
            if got.pongs:
                return

    def _connect_options(self, server: Server, info: dict[str, Any]) -> dict[str, Any]:
        opts: dict[str, Any] = {
            "verbose": False,
            "pedantic": False,
            "tls_required": server.tls or bool(info.get("tls_required")),
            "name": self.name,
            "lang": "python3-ssmd",
            "version": ssmd.__version__,
            "protocol": 1,
            "echo": False,
            "headers": True,
            "no_responders": True,
        }
        if server.token is not None:
            opts["auth_token"] = server.token
        elif server.user is not None:
            opts["user"], opts["pass"] = server.user, server.password
        if self._creds is not None:
            opts["jwt"] = self._creds.jwt
            opts["sig"] = self._creds.sign(str(info.get("nonce", "")))
        return opts

    def _learn_servers(self, info: dict[str, Any]) -> None:
        urls = info.get("connect_urls")
        if not isinstance(urls, list):
            return
        known = {s.address for s in self.servers}
        auth = self.servers[0]
        for u in urls:
            host, _, port = str(u).rpartition(":")
            if host and port.isdigit() and f"{host}:{port}" not in known:
                self.servers.append(
                    Server(host, int(port), auth.tls, auth.user, auth.password, auth.token)
                )
                known.add(f"{host}:{port}")

    def _drop(self) -> None:
        self._connected.clear()
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()

    # ---- the connection's life -----------------------------------------------------------

    async def _run(self) -> None:
        while not self._closing:
            why = await self._serve()
            if self._closing:
                return
            self._drop()
            self._on_lost(why)
            self._outage.begin(self)
            await self._reconnect()
            self._outage.end(self)

    async def _serve(self) -> str:
        """Read until the connection is lost or must be left; returns why."""
        reader = self._reader
        assert reader is not None
        pinger = asyncio.create_task(self._ping_loop())
        try:
            while True:
                try:
                    data = await reader.read(_READ)
                except (OSError, ssl.SSLError) as exc:
                    return f"read failed: {exc}"
                if not data:
                    return "the server closed the connection"
                got = self.protocol.receive(data)
                if got.pings:
                    assert self._writer is not None
                    self._writer.write(b"PONG\r\n" * got.pings)
                if got.pongs:
                    self._unanswered_pings = 0
                for err in got.errors:
                    log.warning("nats server %s: %s", self.server.address, err)
                if got.replies or got.confirmations or got.delivered or got.statuses:
                    self._on_received(got)
                for raw in got.infos:
                    info = orjson.loads(raw)
                    if isinstance(info, dict):
                        self._learn_servers(info)
                        if info.get("ldm"):
                            return f"{self.server.address} entered lame-duck mode"
                if self._unanswered_pings > 2:
                    return "no PONG for two pings"
        except Exception as exc:  # a protocol error: this connection cannot go on
            return f"protocol error: {exc}"
        finally:
            pinger.cancel()

    async def _ping_loop(self) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            writer = self._writer
            if writer is None:
                return
            self._unanswered_pings += 1
            if self._unanswered_pings > 2:
                writer.close()  # the read loop then ends
                return
            writer.write(b"PING\r\n")

    async def _reconnect(self) -> None:
        """Try the servers after the one just lost, in turn, until one takes us."""
        while not self._closing:
            for step in range(1, len(self.servers) + 1):
                i = (self._index + step) % len(self.servers)
                try:
                    await self._open(i)
                    return
                except BusAuthError as exc:
                    self._outage.attempt_failed(exc)
                except (OSError, TimeoutError, ConnectionError, ssl.SSLError, ValueError) as exc:
                    self._outage.attempt_failed(exc)
            await asyncio.sleep(RECONNECT_WAIT)

"""The gateway's listener: its own WebSocket connections for `/v1/stream`, uvicorn for
everything else, on one port.

Every connection's request head is read here. A WebSocket upgrade of `/v1/stream` is
served by the gateway's own connection (`StreamConnection`): the handshake, the client's
frames, pings and the close go through websockets' sans-I/O `ServerProtocol`, and the
hub's frames, encoded once for every client (wire.text_frame), are written to the
socket as they are, everything a client has waiting in one write. Any other request is
relayed, bytes as they come, to uvicorn serving the FastAPI app on a Unix socket of its
own (`--fd`): REST, the page, the docs and, for `stream=False`, the stream on uvicorn's
stock WebSocket protocol (one write per message per client).

    server = gw.server(port=0)       # GatewayServer, not started
    task = asyncio.create_task(server.serve())
    ... server.started, server.port ...
    server.should_exit = True        # stop: the listener, uvicorn, the gateway, the clients
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import parse_qsl, urlsplit

import uvicorn
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from ssmd.gateway import stream
from ssmd.wsmessages import DATA_OPCODES, MessageAssembler

if TYPE_CHECKING:
    from ssmd.gateway.service import Gateway

__all__ = ["GatewayServer", "StreamConnection"]

log = logging.getLogger(__name__)
# websockets' protocol logs the request line and headers at DEBUG: keys are masked on
# both loggers (service.redact_keys).
WS_LOGGER: Final = f"{__name__}.ws"

STREAM_PATH: Final = b"/v1/stream"
_MAX_HEAD: Final = 64 * 1024  # a request head larger than this is refused (431)
_INBOX: Final = 64  # client messages waiting for the session before reading pauses
_SHUTDOWN_WAIT: Final = 5.0
_KEEP_ALIVE: Final = 75  # seconds an idle HTTP connection is kept open
_POLL: Final = 0.05  # how often `serve` looks at should_exit (uvicorn's own loop: 0.1 s)


class GatewayServer:
    """The listener (module docstring). `started`, `should_exit` and `servers` as on a
    uvicorn.Server."""

    def __init__(self, gw: Gateway, host: str, port: int, *, stream: bool = True) -> None:
        self.gw = gw
        self.host, self.bind_port = host, port
        self.own_stream = stream
        self.started = False
        self.should_exit = False
        self.servers: list[asyncio.Server] = []
        self.streams: set[StreamConnection] = set()
        self.relays: set[_Relay] = set()
        self.app_address: str | bytes = ""

    @property
    def port(self) -> int:
        return int(self.servers[0].sockets[0].getsockname()[1])

    def uvicorn_config(self, fd: int) -> uvicorn.Config:
        s = self.gw.settings
        return uvicorn.Config(
            self.gw.app,
            fd=fd,
            lifespan="on",
            log_config=None,
            access_log=False,
            ws="websockets-sansio",
            # Compression would cost CPU per client per message, and every message is
            # rendered once for all clients.
            ws_per_message_deflate=False,
            ws_max_size=s.max_message_bytes,
            ws_ping_interval=s.ws_ping_interval,
            ws_ping_timeout=s.ws_ping_interval,
            timeout_graceful_shutdown=int(_SHUTDOWN_WAIT),
            # Longer than HTTP clients keep idle connections (httpx: 5 s, the same as
            # uvicorn's default): with equal times a client polling every ~5 s reuses a
            # connection the gateway is closing and gets "disconnected" for a request.
            timeout_keep_alive=_KEEP_ALIVE,
        )

    async def serve(self) -> None:
        """Listen until `should_exit`; then stop accepting, stop uvicorn (the app's
        lifespan stops the gateway, which closes the stream's clients) and close what is
        left. Returns at once when the app fails to start, like uvicorn."""
        with _app_socket() as (sock, address):
            self.app_address = address
            inner = _Uvicorn(self.uvicorn_config(sock.fileno()))
            app_task = asyncio.create_task(inner.serve(), name="gateway-uvicorn")
            while not inner.started and not app_task.done():
                await asyncio.sleep(0.01)
            if app_task.done():
                app_task.result()
                return
            pinger = None
            try:
                loop = asyncio.get_running_loop()
                listener = await loop.create_server(
                    lambda: _Front(self), self.host, self.bind_port, backlog=2048
                )
                self.servers = [listener]
                pinger = asyncio.create_task(self._ping(), name="gateway-ws-ping")
                self.started = True
                while not self.should_exit and not app_task.done():
                    await asyncio.sleep(_POLL)
                listener.close()
            finally:
                if pinger is not None:
                    pinger.cancel()
                inner.should_exit = True
                with contextlib.suppress(Exception):
                    await app_task
                await self._close_streams()
                for relay in list(self.relays):
                    relay.close()

    async def _close_streams(self) -> None:
        """The gateway closed its clients (1001) when it stopped; wait for their close
        handshakes, then drop what is left."""
        deadline = time.monotonic() + _SHUTDOWN_WAIT
        while self.streams and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for conn in list(self.streams):
            conn.abort()

    async def _ping(self) -> None:
        """Every `ws_ping_interval`: a ping to every stream connection; one that did not
        answer the previous ping is closed (1011)."""
        interval = self.gw.settings.ws_ping_interval
        if interval <= 0:
            return
        while True:
            await asyncio.sleep(interval)
            for conn in list(self.streams):
                conn.keepalive()


@contextlib.contextmanager
def _app_socket() -> Generator[tuple[socket.socket, str | bytes], None, None]:
    """A listening Unix socket for uvicorn: in the abstract namespace on Linux (no file),
    else in a private temporary directory."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    tmp = None
    try:
        if sys.platform == "linux":
            address: str | bytes = f"\0ssmd-gateway-{os.getpid()}-{id(sock):x}".encode()
        else:
            tmp = tempfile.mkdtemp(prefix="ssmd-gw-")
            address = str(Path(tmp) / "app.sock")
        sock.bind(address)
        sock.listen(2048)
        yield sock, address
    finally:
        sock.close()
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(Path(tmp) / "app.sock")
                os.rmdir(tmp)


class _Uvicorn(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # Signals are the caller's (service.serve): uvicorn would install its own handlers
        # in whatever process embeds the gateway, and re-raise SIGTERM after a clean stop,
        # which turns a clean exit into death by signal.
        yield


def _peer(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address or "-")


def _is_stream_upgrade(head: bytes) -> bool:
    """A GET of /v1/stream asking for a WebSocket (the protocol checks the rest)."""
    line, _, rest = head.partition(b"\r\n")
    parts = line.split(b" ")
    if len(parts) != 3 or parts[0] != b"GET" or parts[1].split(b"?", 1)[0] != STREAM_PATH:
        return False
    for header in rest.split(b"\r\n"):
        name, _, value = header.partition(b":")
        if name.strip().lower() == b"upgrade" and b"websocket" in value.lower():
            return True
    return False


class _Front(asyncio.Protocol):
    """One accepted connection: reads the request head, then hands the connection to a
    StreamConnection or a _Relay."""

    def __init__(self, server: GatewayServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.head = bytearray()
        self.handler: StreamConnection | _Relay | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.handler is not None:
            self.handler.data_received(data)
            return
        assert self.transport is not None
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            if len(self.head) > _MAX_HEAD:
                self.transport.write(
                    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                    b"content-length: 0\r\nconnection: close\r\n\r\n"
                )
                self.transport.close()
            return
        data, self.head = bytes(self.head), bytearray()
        if self.server.own_stream and _is_stream_upgrade(data[:end]):
            self.handler = StreamConnection(self.server, self.transport)
        else:
            self.handler = _Relay(self.server, self.transport)
        self.handler.start(data)

    def eof_received(self) -> bool | None:
        if self.handler is not None:
            return self.handler.eof_received()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.handler is not None:
            self.handler.connection_lost()

    def pause_writing(self) -> None:
        if self.handler is not None:
            self.handler.pause_writing()

    def resume_writing(self) -> None:
        if self.handler is not None:
            self.handler.resume_writing()


class _Relay:
    """Bytes both ways between a client and uvicorn's socket, with flow control: a side
    that cannot take more pauses reading from the other."""

    def __init__(self, server: GatewayServer, transport: asyncio.Transport) -> None:
        self.server = server
        self.transport = transport
        self.upstream: asyncio.Transport | None = None
        self.pending: list[bytes] = []
        self.client_eof = False
        self.closed = False

    def start(self, data: bytes) -> None:
        self.server.relays.add(self)
        self.pending.append(data)
        self.transport.pause_reading()
        asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            upstream, _ = await loop.create_unix_connection(
                lambda: _Upstream(self),
                self.server.app_address,  # type: ignore[arg-type]  # bytes: an abstract address
            )
        except OSError as exc:
            log.warning("the app's socket refused a connection: %s", exc)
            self.transport.write(
                b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n"
                b"connection: close\r\n\r\n"
            )
            self.close()
            return
        assert isinstance(upstream, asyncio.Transport)
        if self.closed:
            upstream.close()
            return
        self.upstream = upstream
        for data in self.pending:
            upstream.write(data)
        self.pending = []
        if self.client_eof and upstream.can_write_eof():
            upstream.write_eof()
        self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.upstream is None:
            self.pending.append(data)
        else:
            self.upstream.write(data)

    def eof_received(self) -> bool:
        self.client_eof = True
        if self.upstream is not None and self.upstream.can_write_eof():
            self.upstream.write_eof()
        return True  # keep the client's half open until uvicorn is done

    def pause_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.pause_reading()

    def resume_writing(self) -> None:
        if self.upstream is not None:
            self.upstream.resume_reading()

    def connection_lost(self) -> None:
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.server.relays.discard(self)
        self.transport.close()
        if self.upstream is not None:
            self.upstream.close()


class _Upstream(asyncio.Protocol):
    def __init__(self, relay: _Relay) -> None:
        self.relay = relay

    def data_received(self, data: bytes) -> None:
        self.relay.transport.write(data)

    def eof_received(self) -> bool:
        return False  # uvicorn is done with the connection: close it (connection_lost)

    def connection_lost(self, exc: Exception | None) -> None:
        self.relay.close()

    def pause_writing(self) -> None:
        self.relay.transport.pause_reading()

    def resume_writing(self) -> None:
        self.relay.transport.resume_reading()


class StreamConnection:
    """One `/v1/stream` WebSocket on the gateway's own protocol shell (stream.Connection)."""

    def __init__(self, server: GatewayServer, transport: asyncio.Transport) -> None:
        self.server = server
        self.transport = transport
        settings = server.gw.settings
        self.protocol = ServerProtocol(
            max_size=settings.max_message_bytes, logger=logging.getLogger(WS_LOGGER)
        )
        self.headers: dict[str, str] = {}
        self.query: dict[str, str] = {}
        self.inbox: deque[str | bytes] = deque()
        self.messages = MessageAssembler()
        self.arrived = asyncio.Event()
        self.lost = False
        self.gone = asyncio.Event()
        self.paused = False
        self.reading_paused = False
        self.ping_waiting = False
        self._resume: Callable[[], None] = lambda: None
        self.task: asyncio.Task[None] | None = None

    # ---- the transport's side -----------------------------------------------------------

    def start(self, data: bytes) -> None:
        self.server.streams.add(self)
        self.data_received(data)

    def data_received(self, data: bytes) -> None:
        self.protocol.receive_data(data)
        self._events()

    def eof_received(self) -> bool:
        self.protocol.receive_eof()
        self._events()
        return False

    def connection_lost(self) -> None:
        self.lost = True
        self.server.streams.discard(self)
        self.arrived.set()
        self.gone.set()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._resume()

    def _events(self) -> None:
        for event in self.protocol.events_received():
            if isinstance(event, Request):
                self._handshake(event)
            elif isinstance(event, Frame):
                self._frame(event)
        self._send_pending()
        if self.protocol.state is State.CLOSED:
            self.arrived.set()

    def _handshake(self, request: Request) -> None:
        response = self.protocol.accept(request)
        self.protocol.send_response(response)
        peer = self.transport.get_extra_info("peername")
        log.info('%s - "WebSocket %s" %d', _peer(peer), request.path, response.status_code)
        if response.status_code != 101:
            return
        self.headers = {k.lower(): v for k, v in request.headers.raw_items()}
        self.query = dict(parse_qsl(urlsplit(request.path).query))
        self.task = asyncio.get_running_loop().create_task(self._session())

    def _frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.PONG:
            self.ping_waiting = False
            return
        if frame.opcode not in DATA_OPCODES:
            return  # pings are answered and closes handled by the protocol
        try:
            message = self.messages.feed(frame)
        except UnicodeDecodeError:
            self.protocol.fail(1007, "invalid UTF-8 in a text message")
            return
        if message is None:
            return
        self.inbox.append(message)
        self.arrived.set()
        if len(self.inbox) >= _INBOX and not self.reading_paused:
            self.reading_paused = True
            self.transport.pause_reading()

    def _send_pending(self) -> None:
        for data in self.protocol.data_to_send():
            if data:
                self.transport.write(data)
            else:  # the protocol is done with the connection
                self.transport.close()

    def keepalive(self) -> None:
        if self.protocol.state is not State.OPEN:
            return
        if self.ping_waiting:
            self.protocol.fail(1011, "keepalive ping timeout")
            self._send_pending()
            self.transport.close()
            return
        self.ping_waiting = True
        self.protocol.send_ping(os.urandom(4))
        self._send_pending()

    def abort(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.transport.abort()

    async def _session(self) -> None:
        try:
            await stream.session(self.server.gw, self)
        except Exception:
            log.exception("a stream session failed")
        finally:
            if not self.lost and self.protocol.state is State.OPEN:
                self.protocol.send_close(1000)
                self._send_pending()
            if not self.lost:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(stream.CLOSE_WAIT):
                        await self.gone.wait()
                self.transport.close()

    # ---- the session's side (stream.Connection) -----------------------------------------

    def bind(self, resume: Callable[[], None]) -> None:
        self._resume = resume

    def writable(self) -> bool:
        return not self.paused and not self.lost and self.protocol.state is State.OPEN

    def write(self, frames: list[bytes]) -> None:
        self.transport.write(b"".join(frames))

    async def receive(self) -> str | bytes | None:
        while not self.inbox:
            if self.lost or self.protocol.state is not State.OPEN:
                return None
            self.arrived.clear()
            await self.arrived.wait()
        message = self.inbox.popleft()
        if self.reading_paused and len(self.inbox) < _INBOX // 2:
            self.reading_paused = False
            self.transport.resume_reading()
        return message

    async def close(self, code: int, reason: str) -> None:
        if self.lost or self.protocol.state is not State.OPEN:
            return
        self.protocol.send_close(code, reason)
        self._send_pending()
        await self.gone.wait()

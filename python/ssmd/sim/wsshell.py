"""The simulators' WebSocket shell: websockets' sans-I/O protocol under an asyncio
protocol of the project's own, as a server (HTTP and WebSocket on one port) and as a
raw client for tests.

A simulator has to misbehave the way a real venue does, and a test client the way a
bad client does: leave pings unanswered, write a batch of frames in one go, drop the
socket without a close, watch the control frames. Those are the shell's own switches
and calls (`answer_pings`, `on_control`, `send_texts`, `abort`), so nothing here needs
more of websockets than its sans-I/O protocol.

    server = await serve(handler, process_request, host, port)
    ... server.port ...
    server.close(); await server.wait_closed()

`process_request(request)` answers a plain HTTP request, or refuses an upgrade, with a
`Response`; None accepts the upgrade and `handler(socket)` then serves the connection.
When the handler returns the connection is closed (1000).

    sock = await connect(url, headers)    # HandshakeRefused unless the server said 101
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Final

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from ssmd.exceptions import HandshakeRefused
from ssmd.wsmessages import DATA_OPCODES, MessageAssembler

__all__ = ["SimServer", "SimSocket", "connect", "serve"]

log = logging.getLogger(__name__)

Handler = Callable[["SimSocket"], Awaitable[None]]
ProcessRequest = Callable[[Request], Response | None]

# Seconds a close handshake may take before the socket is dropped: the peer answers the
# close frame only once it has read every frame written before it.
CLOSE_TIMEOUT: Final = 1.0
_PONG_HEAD: Final = bytes([0x80 | Opcode.PONG])  # FIN and the opcode: a pong frame's first byte


def _address(info: object) -> tuple[str, int] | None:
    if isinstance(info, tuple) and len(info) >= 2:
        return (str(info[0]), int(info[1]))
    return None


class SimSocket(asyncio.Protocol):
    """One connection: on a server, the request and then the WebSocket if it was
    upgraded; on a client (`connect`), the handshake and then the WebSocket.

    Incoming messages wait in a queue of `max_queue`; when it is full the socket stops
    reading, so a peer that floods messages is held back by TCP.
    """

    def __init__(
        self,
        protocol: ServerProtocol | ClientProtocol,
        max_queue: int,
        server: SimServer | None = None,
        close_timeout: float = CLOSE_TIMEOUT,
    ) -> None:
        self.protocol = protocol
        self.max_queue = max_queue
        self.close_timeout = close_timeout
        self._server = server
        self.transport: asyncio.Transport | None = None
        self.request: Request | None = None
        self.response: Response | None = None
        self.peer: tuple[str, int] | None = None
        self.local: tuple[str, int] | None = None
        self.answer_pings = True  # False: the peer's pings go unanswered
        self.on_control: Callable[[Frame], None] | None = None  # sees each ping and pong
        self._handshaken = asyncio.Event()
        self._messages = MessageAssembler()
        self._inbox: deque[str | bytes] = deque()
        self._arrived = asyncio.Event()
        self._lost = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self._reading_paused = False
        self._closing = False  # this side sent a close: messages arriving now are dropped
        self._pongs: deque[tuple[bytes, asyncio.Future[None]]] = deque()
        self._task: asyncio.Task[None] | None = None

    # ---- state ----------------------------------------------------------------------

    @property
    def open(self) -> bool:
        """The WebSocket is open and frames written now reach the client's socket."""
        return (
            self.transport is not None
            and not self._lost.is_set()
            and not self.transport.is_closing()
            and self.protocol.state is State.OPEN
        )

    # ---- the transport's side -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.peer = _address(transport.get_extra_info("peername"))
        self.local = _address(transport.get_extra_info("sockname"))
        if self._server is not None:
            self._server.sockets.add(self)

    def data_received(self, data: bytes) -> None:
        self.protocol.receive_data(data)
        self._process()

    def eof_received(self) -> None:
        self.protocol.receive_eof()
        self._process()

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost.set()
        self._arrived.set()
        self._writable.set()
        self._handshaken.set()
        if self._server is not None:
            self._server.sockets.discard(self)
        while self._pongs:
            self._pongs.popleft()[1].cancel()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def _process(self) -> None:
        unanswered = 0
        for event in self.protocol.events_received():
            if isinstance(event, Request):
                self._handshake(event)
            elif isinstance(event, Response):
                self.response = event
                self._handshaken.set()
            elif event.opcode in DATA_OPCODES:
                self._data(event)
            else:
                if self.on_control is not None:
                    self.on_control(event)
                if event.opcode is Opcode.PONG:
                    self._pong(bytes(event.data))
                elif event.opcode is Opcode.PING and not self.answer_pings:
                    unanswered += 1
        self._flush(unanswered)
        if self.protocol.state is State.CLOSED:
            self._arrived.set()

    def _handshake(self, request: Request) -> None:
        server, protocol = self._server, self.protocol
        assert server is not None and isinstance(protocol, ServerProtocol)
        self.request = request
        response = server.process_request(request)
        if response is None:
            response = protocol.accept(request)
        protocol.send_response(response)
        if response.status_code == 101:
            self._task = asyncio.get_running_loop().create_task(self._serve(server))
            server.tasks.add(self._task)
            self._task.add_done_callback(server.tasks.discard)

    def _data(self, frame: Frame) -> None:
        try:
            message = self._messages.feed(frame)
        except UnicodeDecodeError:
            self.protocol.fail(1007, "invalid UTF-8 in a text message")
            return
        if message is None or self._closing:
            return  # a whole message, unless this side started to close
        self._inbox.append(message)
        self._arrived.set()
        if len(self._inbox) >= self.max_queue and not self._reading_paused:
            self._reading_paused = True
            assert self.transport is not None
            self.transport.pause_reading()

    def _pong(self, data: bytes) -> None:
        """A pong answers the ping with its payload and every ping sent before it."""
        if not any(payload == data for payload, _ in self._pongs):
            return
        while self._pongs:
            payload, waiter = self._pongs.popleft()
            if not waiter.done():
                waiter.set_result(None)
            if payload == data:
                return

    def _flush(self, unanswered: int = 0) -> None:
        """Write what the protocol has to send, less the pongs to `unanswered` pings: the
        protocol answers every ping as it reads it, one frame per item, and the shell
        itself never sends a pong, so they are the first items that are pong frames."""
        assert self.transport is not None
        out: list[bytes] = []
        done = False
        for data in self.protocol.data_to_send():
            if unanswered and data[:1] == _PONG_HEAD:
                unanswered -= 1
            elif data:
                out.append(data)
            else:  # the protocol is done with the connection
                done = True
        if out:
            self.transport.write(b"".join(out))  # one write for a batch of frames
        if done:
            self.transport.close()

    async def handshake(self, request: Request) -> None:
        """A client's side: send the upgrade request and wait for the answer."""
        assert isinstance(self.protocol, ClientProtocol)
        self.protocol.send_request(request)
        self._flush()
        await self._handshaken.wait()
        if self.response is None or self.response.status_code != 101:
            self.abort()
            raise HandshakeRefused(self.response.status_code if self.response else 0)

    async def _serve(self, server: SimServer) -> None:
        try:
            await server.handler(self)
        except Exception:
            log.exception("a simulator connection handler failed")
            await self.close(1011, "internal error")
        finally:
            await self.close(1000, "")

    # ---- the handler's side ---------------------------------------------------------

    async def recv(self) -> str | bytes | None:
        """The next message, or None once the connection is closed."""
        while not self._inbox:
            if self._lost.is_set() or self.protocol.state is not State.OPEN:
                return None
            self._arrived.clear()
            await self._arrived.wait()
        message = self._inbox.popleft()
        if self._reading_paused and len(self._inbox) < self.max_queue // 2:
            self._reading_paused = False
            assert self.transport is not None
            self.transport.resume_reading()
        return message

    async def messages(self) -> AsyncIterator[str | bytes]:
        while (message := await self.recv()) is not None:
            yield message

    def send_texts(self, frames: Iterable[bytes]) -> bool:
        """Write text frames (UTF-8) in one go; False when the connection is gone and
        nothing was written. `drain` waits for the socket to take them."""
        if not self.open:
            return False
        for data in frames:
            self.protocol.send_text(data)
        self._flush()
        return True

    async def drain(self) -> None:
        """Wait until the socket's write buffer is below its high-water mark."""
        await self._writable.wait()

    async def send(self, text: str) -> bool:
        if not self.send_texts([text.encode()]):
            return False
        await self.drain()
        return True

    def ping(self, payload: bytes) -> asyncio.Future[None] | None:
        """Send a ping; the future is done when its pong arrives and cancelled when the
        connection is lost first. None when the connection is gone."""
        if not self.open:
            return None
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pongs.append((payload, waiter))
        self.protocol.send_ping(payload)
        self._flush()
        return waiter

    @property
    def close_code(self) -> int | None:
        """The code of the peer's close frame; None when none came (an abrupt close)."""
        received = self.protocol.close_rcvd
        return received.code if received is not None else None

    def begin_close(self, code: int, reason: str) -> None:
        """Send a close frame; the peer's answer ends the connection. Messages that
        arrive from now on are dropped, so a full queue cannot hold up the answer."""
        if not self.open:
            return
        self.protocol.send_close(code, reason)
        self._flush()
        self._closing = True
        self._inbox.clear()
        if self._reading_paused:
            self._reading_paused = False
            assert self.transport is not None
            self.transport.resume_reading()

    async def close(self, code: int, reason: str) -> None:
        """The close handshake; the socket is dropped if the client does not answer."""
        self.begin_close(code, reason)
        if self._lost.is_set():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.close_timeout):
                await self._lost.wait()
        self.abort()

    async def wait_lost(self) -> None:
        await self._lost.wait()

    def abort(self) -> None:
        """Drop the socket at once, without a close frame."""
        if self.transport is not None:
            self.transport.abort()


class SimServer:
    """The listening socket and its connections (see `serve`)."""

    def __init__(
        self, handler: Handler, process_request: ProcessRequest, close_timeout: float
    ) -> None:
        self.handler = handler
        self.process_request = process_request
        self.close_timeout = close_timeout
        self.sockets: set[SimSocket] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.listener: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self.listener is not None, "the server is not listening"
        return int(self.listener.sockets[0].getsockname()[1])

    def close(self) -> None:
        """Stop listening and start closing every connection (1001, going away)."""
        if self.listener is not None:
            self.listener.close()
        for sock in list(self.sockets):
            sock.begin_close(1001, "server shutting down")

    async def wait_closed(self) -> None:
        """Wait for the connections to close (dropping those that do not answer in time)
        and for their handlers to return."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.close_timeout):
                while self.sockets:
                    await next(iter(self.sockets)).wait_lost()
        for sock in list(self.sockets):
            sock.abort()
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.listener is not None:
            await self.listener.wait_closed()


async def serve(
    handler: Handler,
    process_request: ProcessRequest,
    host: str,
    port: int,
    *,
    max_queue: int = 16,
    max_size: int = 2**20,
    close_timeout: float = CLOSE_TIMEOUT,
) -> SimServer:
    """Listen on host:port (0: a free port) until `close`."""
    server = SimServer(handler, process_request, close_timeout)
    loop = asyncio.get_running_loop()
    server.listener = await loop.create_server(
        lambda: SimSocket(
            ServerProtocol(max_size=max_size, logger=log), max_queue, server, close_timeout
        ),
        host,
        port,
    )
    return server


async def connect(
    url: str, headers: Mapping[str, str] | None = None, *, max_queue: int = 1024
) -> SimSocket:
    """A client connection to `url` (ws://), with extra request headers; no limit on
    the size of a message received."""
    uri = parse_uri(url)
    protocol = ClientProtocol(uri, max_size=None, logger=log)
    loop = asyncio.get_running_loop()
    _, sock = await loop.create_connection(
        lambda: SimSocket(protocol, max_queue), uri.host, uri.port
    )
    request = protocol.connect()
    for name, value in (headers or {}).items():
        request.headers[name] = value
    await sock.handshake(request)
    return sock

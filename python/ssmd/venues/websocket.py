"""What every venue's WebSocket session shares: connect, read, liveness, close.

A venue's session subclasses `WebSocketSession` and says only what differs: the headers
of its upgrade request (`_headers`), `_refused` for an HTTP status answering it, its
keep-alive (`_keep_alive`), which messages it looks at after handing them on (`WATCH`:
those containing one of these byte strings go to `_inspect`) and what it settles when
the connection ends (`_ended`).

Every read's messages go to `on_frames(messages, receive_ns)` first, exactly as received
(bytes, never decoded and re-encoded), in order. Liveness never keys on market data alone: the
keep-alive records each answer in `last_pong`, and a watchdog closes the socket when
neither a frame nor an answer came for `stale_after`; a half-open socket is found within
it. TCP keepalive is on as well.

The socket is the session's own asyncio protocol. The opening handshake and every frame
the client writes go through websockets' sans-I/O client; every read from the socket
goes through the core's frame reader (`ssmd._core.WsReader`) in one call, which hands
back the read's whole messages and picks out those the venue watches for, so nothing
runs per message in Python.
No extension is offered, so servers send frames uncompressed. Server pings are answered
with pongs as they are read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Callable
from functools import partial
from typing import Final

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus
from websockets.http11 import Response
from websockets.uri import parse_uri

from ssmd import core
from ssmd.exceptions import SessionError
from ssmd.venues.base import DEFAULT_LIVENESS, MAX_FRAME_BYTES, Liveness

__all__ = ["WebSocketSession"]

log = logging.getLogger(__name__)

MESSAGE_TOO_BIG: Final = 1009
_HEAD_END: Final = b"\r\n\r\n"


class WebSocketSession:
    """One connection. `await open()`, then `await run()` until it returns why it ended."""

    def __init__(
        self,
        url: str,
        on_frames: Callable[[list[bytes], int], None],
        *,
        liveness: Liveness = DEFAULT_LIVENESS,
        max_frame_bytes: int = MAX_FRAME_BYTES,
    ) -> None:
        self.url = url
        self.on_frames = on_frames
        self.liveness = liveness
        self.max_frame_bytes = max_frame_bytes
        self.socket: _Socket | None = None
        self.opened_at = 0.0
        self.last_frame = 0.0
        self.last_pong = 0.0
        self.frames = 0
        self.close_reason = ""

    # ---- what a venue says ----------------------------------------------------------

    # The messages `_inspect` sees: those containing one of these (replies, errors,
    # keep-alive answers), found by the core as it reads; market data never comes here.
    WATCH: tuple[bytes, ...] = ()

    def _headers(self) -> dict[str, str]:
        """Extra headers of the upgrade request (a venue's sign-in)."""
        return {}

    def _refused(self, status: int) -> Exception:
        """The error for an HTTP status answering the upgrade."""
        return SessionError(f"HTTP {status} on the WebSocket upgrade")

    async def _keep_alive(self) -> None:
        """Runs for the connection's life: the venue's pings, each answer in last_pong."""
        raise NotImplementedError

    def _inspect(self, data: bytes, now: float) -> None:
        """A watched message, after on_frames had it: the venue's replies and errors."""

    def _ended(self) -> None:
        """The connection ended (close_reason is set): settle whatever waits on it."""

    # ---- the connection -------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.socket is not None

    def abort(self, reason: str) -> None:
        if self.socket is not None:
            self.close_reason = self.close_reason or reason
            self.socket.abort()

    async def open(self) -> None:
        try:
            uri = parse_uri(self.url)
            protocol = ClientProtocol(uri, max_size=self.max_frame_bytes, logger=log)
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(self.liveness.open_timeout):
                _, sock = await loop.create_connection(
                    lambda: _Socket(self, protocol),
                    uri.host,
                    uri.port,
                    ssl=ssl.create_default_context() if uri.secure else None,
                    server_hostname=uri.host if uri.secure else None,
                )
                self.socket = sock
                await sock.handshake(self._headers())
        except InvalidStatus as exc:
            self._drop()
            raise self._refused(exc.response.status_code) from None
        except Exception as exc:  # OSError, TimeoutError, handshake errors
            self._drop()
            raise SessionError(f"connect failed: {exc!r}") from None
        now = time.monotonic()
        self.opened_at = self.last_frame = self.last_pong = now

    def _drop(self) -> None:
        if self.socket is not None:
            self.socket.abort()
            self.socket = None

    async def run(self) -> str:
        """Read until the connection ends; returns why. Messages go to on_frames first."""
        sock = self.socket
        if sock is None:
            raise SessionError("not connected")
        tasks = [
            asyncio.create_task(self._keep_alive(), name="ws-keep-alive"),
            asyncio.create_task(self._watchdog(), name="ws-watchdog"),
        ]
        try:
            await sock.lost
            if sock.error is not None:
                raise sock.error
            if not self.close_reason:
                self.close_reason = "connection lost (no close frame)"
            return self.close_reason
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            self._ended()

    def _messages(self, read: core.WsRead) -> None:
        """One read's messages, in order (the socket calls this)."""
        now = time.monotonic()
        messages = read.messages
        self.last_frame = now
        self.frames += len(messages)
        self.on_frames(messages, time.time_ns())
        for data in read.watched:
            self._inspect(data, now)

    def _read_end(self, end: core.WsEnd) -> None:
        """The server closed, or broke the protocol (the socket calls this)."""
        if self.close_reason:
            return
        if end.by_server:
            self.close_reason = f"closed by server: {end.code} {end.reason}".strip()
        elif end.code == MESSAGE_TOO_BIG:
            self.close_reason = (
                f"a frame over {self.max_frame_bytes:,} bytes (the most one NATS message "
                "carries) closed the connection (WebSocket 1009)"
            )
        else:
            self.close_reason = f"protocol error: {end.reason} (WebSocket {end.code})"

    async def send_text(self, text: str, what: str) -> None:
        """Sends one text message within ping_timeout; SessionError naming `what` if not."""
        try:
            await self._write_within(lambda p: p.send_text(text.encode()))
        except (TimeoutError, ConnectionError) as exc:
            raise SessionError(f"{what} send failed: {exc!r}") from None

    async def _keep_alive_send(self, what: str, text: bytes | None = None) -> bool:
        """One keep-alive: the text message `text`, or a WebSocket ping if None. False
        once the connection is gone, or the write blocked for ping_timeout (the connection
        is then dropped)."""

        def write(p: ClientProtocol) -> None:
            if text is None:
                p.send_ping(b"")
            else:
                p.send_text(text)

        try:
            await self._write_within(write)
        except TimeoutError:
            self._kill(f"{what} send blocked for {self.liveness.ping_timeout}s")
            return False
        except ConnectionError:
            return False
        return True

    async def _write_within(self, write: Callable[[ClientProtocol], None]) -> None:
        sock = self.socket
        if sock is None:
            raise ConnectionError("not connected")
        async with asyncio.timeout(self.liveness.ping_timeout):
            await sock.send(write)

    def _kill(self, reason: str) -> None:
        if not self.close_reason:
            self.close_reason = reason
            log.warning("websocket %s: %s", self.url, reason)
        if self.socket is not None:
            self.socket.abort()

    async def _watchdog(self) -> None:
        lv = self.liveness
        while True:
            await asyncio.sleep(min(1.0, lv.stale_after / 4))
            age = time.monotonic() - max(self.last_frame, self.last_pong)
            if age > lv.stale_after:
                self._kill(f"no frame and no pong for {age:.1f}s")
                return

    async def close(self) -> None:
        if self.socket is not None:
            try:
                async with asyncio.timeout(2):
                    await self.socket.close()
            except TimeoutError:
                self.socket.abort()


class _Socket(asyncio.Protocol):
    """The socket of one session: the handshake through websockets' sans-I/O client,
    then every read through the core's frame reader."""

    def __init__(self, session: WebSocketSession, protocol: ClientProtocol) -> None:
        self.session = session
        self.protocol = protocol
        self.reader = core.WsReader(session.max_frame_bytes, list(session.WATCH))
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.response: asyncio.Future[Response] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.error: BaseException | None = None  # raised by on_frames: run() raises it
        self._head_seen = False
        self._tail = b""  # the last bytes of the response read, for a split blank line
        self._writable = asyncio.Event()
        self._writable.set()
        self._closing = False

    # ---- asyncio's calls ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        _tcp_keepalive(transport)

    def data_received(self, data: bytes) -> None:
        if not self.response.done():
            data = self._handshake_data(data)
            if not data:
                return
        read = self.reader.read(data)
        try:
            if read.messages:
                self.session._messages(read)
        except Exception as exc:  # a bug downstream: run() raises it
            self.error = exc
            self.abort()
            return
        for payload in read.pings:
            self._write(partial(ClientProtocol.send_pong, data=payload))
        if read.pongs:
            self.session.last_pong = time.monotonic()
        if read.end is not None:
            self.session._read_end(read.end)
            self._close_with(read.end.code, "" if read.end.by_server else read.end.reason)

    def eof_received(self) -> bool | None:
        if not self.response.done():
            self.protocol.receive_eof()
            self._settle_handshake()
        return None  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._writable.set()
        if not self.response.done():
            self.response.set_exception(ConnectionError(f"closed during the handshake: {exc!r}"))
        if not self.lost.done():
            self.lost.set_result(None)

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    # ---- the handshake --------------------------------------------------------------

    async def handshake(self, headers: dict[str, str]) -> None:
        request = self.protocol.connect()
        for name, value in headers.items():
            request.headers[name] = value
        self.protocol.send_request(request)
        self._flush()
        await self.response
        if self.protocol.handshake_exc is not None:
            raise self.protocol.handshake_exc

    def _handshake_data(self, data: bytes) -> bytes:
        """Feeds websockets the response (never a frame after it); returns the rest."""
        rest = b""
        if not self._head_seen:
            probe = self._tail + data
            cut = probe.find(_HEAD_END)
            if cut >= 0:
                used = cut + len(_HEAD_END) - len(self._tail)
                data, rest = data[:used], data[used:]
                self._head_seen = True
            else:
                self._tail = probe[-3:]
        self.protocol.receive_data(data)
        self._settle_handshake()
        if self.response.done():
            return rest if self.protocol.handshake_exc is None else b""
        if rest:  # a refusal's body follows its head
            self.protocol.receive_data(rest)
            self._settle_handshake()
        return b""

    def _settle_handshake(self) -> None:
        for event in self.protocol.events_received():
            if isinstance(event, Response) and not self.response.done():
                self.response.set_result(event)
        if not self.response.done() and self.protocol.handshake_exc is not None:
            self.response.set_exception(self.protocol.handshake_exc)

    # ---- writing --------------------------------------------------------------------

    async def send(self, write: Callable[[ClientProtocol], None]) -> None:
        """Writes a frame; waits while the transport's buffer is full."""
        if self._closing or self.transport is None or self.transport.is_closing():
            raise ConnectionError("the connection is closed")
        self._write(write)
        await self._writable.wait()
        if self.lost.done():
            raise ConnectionError("the connection is closed")

    def _write(self, write: Callable[[ClientProtocol], None]) -> None:
        if self._closing:
            return
        write(self.protocol)
        self._flush()

    def _flush(self) -> None:
        assert self.transport is not None
        for chunk in self.protocol.data_to_send():
            if chunk:  # an empty chunk is websockets' "half-close": the close follows
                self.transport.write(chunk)

    def _send_close(self, code: int, reason: str) -> None:
        """Our close frame, once per connection."""
        if not self._closing:
            self._write(lambda p: p.send_close(code, reason))
            self._closing = True

    def _close_with(self, code: int, reason: str) -> None:
        """Answers (or starts) the closing handshake and closes the socket."""
        code = 1000 if code in (1005, 1006) else code
        self._send_close(code, reason.encode()[:120].decode(errors="ignore"))
        if self.transport is not None:
            self.transport.close()

    async def close(self) -> None:
        """A normal close: our close frame, then what the server sent before its answer
        is still read, until it closes."""
        if self.lost.done():
            return
        self._send_close(1000, "")
        await self.lost

    def abort(self) -> None:
        self._closing = True
        if self.transport is not None:
            self.transport.abort()


def _tcp_keepalive(transport: asyncio.Transport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 30)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)

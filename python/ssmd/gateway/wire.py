"""WebSocket frames encoded once for every client, and written in batches.

A server's frames are not masked (RFC 6455, 5.1), so the frame of a message is the same
bytes for every client: the hub encodes it once (`text_frame`) and a client's writer
sends everything it has waiting as one write. uvicorn's protocol would encode each
message again for each client and make one socket write per message, which is where the
time of a fan-out went.

`FramesProtocol` is uvicorn's websockets (sans-I/O) protocol, given to uvicorn as its
`ws` protocol class, with one ASGI extension (`FRAMES`): it is listed in the WebSocket
scope's `extensions`, and a `websocket.send` message with a `frames` key (bytes: whole
text frames, as `text_frame` makes them) writes those bytes to the connection as they
are, once the connection takes writes (the same flow control as any send). Without the
extension in the scope (another ASGI server), the app sends each message on its own
(`payload`).
"""

from __future__ import annotations

import struct
from typing import Any, Final

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

__all__ = ["FRAMES", "FramesProtocol", "payload", "text_frame"]

FRAMES: Final = "ssmd.websocket.frames"

_FIN_TEXT: Final = 0x81  # FIN + opcode 1 (text)
_LEN16: Final = struct.Struct("!BBH")
_LEN64: Final = struct.Struct("!BBQ")


def text_frame(data: bytes) -> bytes:
    """One unfragmented, unmasked text frame carrying `data` (UTF-8 JSON)."""
    n = len(data)
    if n < 126:
        return bytes((_FIN_TEXT, n)) + data
    if n < 1 << 16:
        return _LEN16.pack(_FIN_TEXT, 126, n) + data
    return _LEN64.pack(_FIN_TEXT, 127, n) + data


def payload(frame: bytes) -> str:
    """The text a frame made by `text_frame` carries."""
    n = frame[1]
    start = 2 if n < 126 else 4 if n == 126 else 10
    return frame[start:].decode()


class FramesProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol plus the `FRAMES` extension (module docstring)."""

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        # The app runs in a task that has not started yet: it sees the extension.
        if self.response.status_code == 101:
            self.scope["extensions"] = {**(self.scope.get("extensions") or {}), FRAMES: {}}

    async def send(self, message: Any) -> None:
        frames = message.get("frames") if message["type"] == "websocket.send" else None
        if not isinstance(frames, bytes):
            await super().send(message)
            return
        await self.writable.wait()
        if self.disconnected or self.close_sent or not self.handshake_complete:
            raise ClientDisconnected()
        self.transport.write(frames)

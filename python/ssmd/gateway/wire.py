"""WebSocket frames encoded once for every client.

A server's frames are not masked (RFC 6455, 5.1), so the frame of a message is the same
bytes for every client: the hub encodes it once (`text_frame`), and the gateway's own
WebSocket connections (listener.py) write a client's waiting frames to its socket as
they are, in one write. `payload` gives the text back, for a connection that sends one
message at a time (stream.AsgiConnection).
"""

from __future__ import annotations

import struct
from typing import Final

__all__ = ["payload", "text_frame"]

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

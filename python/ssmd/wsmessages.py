"""Whole WebSocket messages out of the frames that websockets' sans-I/O protocol
returns, for the project's own servers on that protocol (the gateway's stream listener,
the simulators)."""

from __future__ import annotations

from websockets.frames import Frame, Opcode

__all__ = ["DATA_OPCODES", "MessageAssembler"]

DATA_OPCODES = frozenset({Opcode.TEXT, Opcode.BINARY, Opcode.CONT})


class MessageAssembler:
    """Joins the frames of one fragmented message."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._text = False

    def feed(self, frame: Frame) -> str | bytes | None:
        """The whole message when `frame` (a data frame) ends one; None while one is in
        progress. Raises UnicodeDecodeError for a text message that is not UTF-8."""
        if frame.opcode is not Opcode.CONT:
            self._text = frame.opcode is Opcode.TEXT
            self._parts = []
        self._parts.append(bytes(frame.data))
        if not frame.fin:
            return None
        data = b"".join(self._parts)
        self._parts = []
        return data.decode() if self._text else data

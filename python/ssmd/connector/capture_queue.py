"""The capture queue between the WebSocket readers and the publisher.

Policy when full (docs/connector.md), in order:
  1. memory: up to `memory_bytes` of frames in a deque (the normal path);
  2. spool: once memory is full, every new item goes to an append-only local file
     (`spool_path`) until the file has been read back completely, so order is kept;
  3. drop: once the spool holds `spool_bytes`, new items are dropped and counted;
     the runner turns each of these transitions into a `buffer_full` connector event
     and a metric. Nothing is dropped silently.
Readers never block on this queue (a blocked reader makes Kalshi kill the subscription
with error 25, which loses more than it saves).

A spool left behind by a crash is read back first at the next start: its items keep
their connection ids and frame numbers, so their message ids are unchanged and a
re-publish of what NATS already stored is a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["CaptureQueue", "Item"]

log = logging.getLogger(__name__)

_HEADER = struct.Struct("<IQQQH")


@dataclass(slots=True)
class Item:
    """A frame as received (`event` empty) or a connector event (`event` = its kind)."""

    conn_id: int
    frame_no: int
    receive_ns: int
    data: bytes
    event: str = ""


class CaptureQueue:
    def __init__(
        self,
        spool_path: Path,
        *,
        memory_bytes: int = 64 * 1024 * 1024,
        spool_bytes: int = 1024 * 1024 * 1024,
    ) -> None:
        self.memory_bytes = memory_bytes
        self.spool_bytes = spool_bytes
        self.path = spool_path
        self._mem: deque[Item] = deque()
        self._mem_size = 0
        self._nonempty = asyncio.Event()
        self._writer: BinaryIO | None = None
        self._reader: BinaryIO | None = None
        self._spool_written = 0  # bytes appended
        self._spool_read = 0  # bytes consumed
        self.spooled_items = 0
        self.dropped = 0
        self.state = "memory"  # memory | spool | dropping: the runner reports changes
        self.transitions: deque[tuple[str, str]] = deque(maxlen=64)
        path = spool_path
        if path.exists() and path.stat().st_size > 0:
            self._spool_written = path.stat().st_size
            self._open()
            self._nonempty.set()
            log.warning(
                "spool %s holds %d bytes from a previous run; replaying", path, self._spool_written
            )

    # ---- state ----------------------------------------------------------------------

    @property
    def memory_used(self) -> int:
        return self._mem_size

    @property
    def spool_used(self) -> int:
        return self._spool_written - self._spool_read

    def __len__(self) -> int:
        return len(self._mem) + (1 if self.spool_used else 0)

    def empty(self) -> bool:
        return not self._mem and self.spool_used == 0

    def _set_state(self, state: str, detail: str) -> None:
        if state != self.state:
            self.state = state
            self.transitions.append((state, detail))

    # ---- put (never blocks) -----------------------------------------------------------

    def put(self, item: Item) -> bool:
        """Queue `item`; False when it had to be dropped (spool full)."""
        size = len(item.data) + 64
        if self._fits(size):
            self._keep((item,), size)
            return True
        if self.spool_used + size > self.spool_bytes:
            self.dropped += 1
            self._set_state("dropping", f"spool {self.path} full at {self.spool_bytes} bytes")
            return False
        self._append(item)
        self._set_state(
            "spool", f"memory full at {self.memory_bytes} bytes; spooling to {self.path}"
        )
        return True

    def put_many(self, items: list[Item]) -> int:
        """Queue `items` in order, each as `put` would; returns how many were dropped."""
        size = sum(len(item.data) for item in items) + 64 * len(items)
        if self._fits(size):
            self._keep(items, size)
            return 0
        return sum(not self.put(item) for item in items)

    def _fits(self, size: int) -> bool:
        return self.spool_used == 0 and self._mem_size + size <= self.memory_bytes

    def _keep(self, items: Iterable[Item], size: int) -> None:
        self._mem.extend(items)
        self._mem_size += size
        self._nonempty.set()
        if self.state != "memory":
            self._set_state("memory", "back to memory")

    def put_event(self, item: Item) -> None:
        """A connector event: small and rare, so it is queued in order even past the bounds."""
        if self.spool_used == 0:
            self._mem.append(item)
            self._mem_size += len(item.data) + 64
            self._nonempty.set()
        else:
            self._append(item)

    # ---- get ------------------------------------------------------------------------

    async def get_batch(self, max_items: int, linger: float = 0.002) -> list[Item]:
        """Up to `max_items`, oldest first; waits for the first, then `linger` for more."""
        while self.empty():
            self._nonempty.clear()
            await self._nonempty.wait()
        if len(self._mem) < max_items and self.spool_used == 0 and linger > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(linger):
                    while len(self._mem) < max_items:
                        self._nonempty.clear()
                        await self._nonempty.wait()
        out: list[Item] = []
        mem = self._mem
        while mem and len(out) < max_items:
            item = mem.popleft()
            self._mem_size -= len(item.data) + 64
            out.append(item)
        if not out and self.spool_used:
            out = self._read_spool(max_items)
        return out

    # ---- spool file -------------------------------------------------------------------

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._writer is None:
            self._writer = open(self.path, "ab")  # noqa: SIM115 - kept open while spooling
        if self._reader is None:
            self._reader = open(self.path, "rb")  # noqa: SIM115

    def _append(self, item: Item) -> None:
        self._open()
        assert self._writer is not None
        ev = item.event.encode()
        self._writer.write(
            _HEADER.pack(len(item.data), item.conn_id, item.frame_no, item.receive_ns, len(ev))
        )
        self._writer.write(ev)
        self._writer.write(item.data)
        self._spool_written += _HEADER.size + len(ev) + len(item.data)
        self.spooled_items += 1
        self._nonempty.set()

    def _read_spool(self, max_items: int) -> list[Item]:
        assert self._writer is not None and self._reader is not None
        self._writer.flush()
        out: list[Item] = []
        r = self._reader
        while len(out) < max_items and self._spool_read < self._spool_written:
            head = r.read(_HEADER.size)
            if len(head) < _HEADER.size:
                self._spool_written = self._spool_read  # truncated tail of a crashed run
                break
            n, conn_id, frame_no, receive_ns, ev_len = _HEADER.unpack(head)
            ev = r.read(ev_len)
            data = r.read(n)
            if len(ev) < ev_len or len(data) < n:
                self._spool_written = self._spool_read
                break
            self._spool_read += _HEADER.size + ev_len + n
            out.append(Item(conn_id, frame_no, receive_ns, data, ev.decode()))
        if self._spool_read >= self._spool_written:
            self._reset_spool()
        return out

    def _reset_spool(self) -> None:
        for f in (self._writer, self._reader):
            if f is not None:
                f.close()
        self._writer = self._reader = None
        self.path.unlink(missing_ok=True)
        self._spool_written = self._spool_read = 0

    def close(self) -> None:
        """Close the files; a non-empty spool stays on disk for the next start."""
        if self._writer is not None:
            self._writer.flush()
        for f in (self._writer, self._reader):
            if f is not None:
                f.close()
        self._writer = self._reader = None

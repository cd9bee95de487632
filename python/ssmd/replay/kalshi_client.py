"""One client of the `kalshi` target: its subscriptions, commands and outbound frames.

The commands and their errors are Kalshi's, answered as the simulator answers them
(the same code: ssmd.sim.commands): subscribe, unsubscribe, update_subscription
(add_markets, delete_markets, get_snapshot) and list_subscriptions. A market the archive
does not hold that day is error 16, "Market not found".

Archived frames reach a client on its own subscription: the `sid` is the client's,
and `seq` counts the frames its subscription was sent, one more for each frame the
original subscription lost (a gap in the capture is a gap for the client too). A
client that subscribes to what the capture subscribed to therefore receives the
captured frames byte for byte, sids included when it subscribes in the same order.
An `orderbook_snapshot` is computed from the archive's books at the moment a market
is subscribed (or asked for with get_snapshot) and takes the next seq.

Outbound frames wait in a deque of at most `max_queue`; the replay waits for room
(policy: block, so a slow client slows the replay rather than losing frames).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Container
from typing import Any

from ssmd.sim.commands import Commands, Sub
from ssmd.sim.wsshell import SimSocket

__all__ = ["Client"]

# A snapshot frame for a ticker and the seq it takes, or None when no book is known.
Snapshot = Callable[[str, int], bytes | None]


class Client(Commands):
    def __init__(
        self,
        ws: SimSocket,
        markets: set[str],
        snapshot: Snapshot,
        authenticated: bool,
        max_queue: int = 10_000,
    ) -> None:
        super().__init__(authenticated)
        self.ws = ws
        self.markets = markets
        self.snapshot = snapshot
        self.max_queue = max_queue
        self.missing: dict[int, int] = {}  # sid -> seqs lost by the capture, not yet skipped
        self.out: deque[bytes] = deque()
        self.wake = asyncio.Event()
        self.room = asyncio.Event()
        self.room.set()
        self.subscribed = asyncio.Event()  # set by the first subscription naming markets
        self.closed = False
        self.sent = 0

    # ---- archived frames ------------------------------------------------------------

    def deliver(
        self, channel: str, ticker: str | None, tail: bytes, typ: bytes, sequenced: bool
    ) -> None:
        """An archived frame of `channel`: `tail` is the frame after its type, sid and seq."""
        sub = self.by_channel.get(channel)
        if sub is None or (sub.tickers is not None and ticker not in sub.tickers):
            return
        if sequenced:
            sub.seq += 1 + self.missing.pop(sub.sid, 0)
            frame = b'{"type":"%b","sid":%d,"seq":%d,%b' % (typ, sub.sid, sub.seq, tail)
        else:
            frame = b'{"type":"%b","sid":%d,%b' % (typ, sub.sid, tail)
        self._push(frame)

    def lost(self, channel: str, count: int) -> None:
        """The capture lost `count` frames of `channel`: the next seq skips them."""
        sub = self.by_channel.get(channel)
        if sub is not None:
            self.missing[sub.sid] = self.missing.get(sub.sid, 0) + count

    def _push(self, frame: bytes) -> None:
        if self.closed:
            return
        self.out.append(frame)
        self.wake.set()
        if len(self.out) >= self.max_queue:
            self.room.clear()

    async def wait_room(self) -> None:
        if not self.closed:
            await self.room.wait()

    # ---- commands (ssmd.sim.commands) ---------------------------------------------

    def push_control(self, frame: bytes) -> None:
        self._push(frame)

    def _markets(self) -> Container[str]:
        return self.markets

    def _after_add(self, sub: Sub, new: list[str], params: dict[str, Any]) -> None:
        self._snapshots(sub, new)
        if new:
            self.subscribed.set()

    def _snapshots(self, sub: Sub, tickers: list[str]) -> None:
        if sub.channel != "orderbook_delta":
            return
        for t in tickers:
            frame = self.snapshot(t, sub.seq + 1)
            if frame is not None:
                sub.seq += 1
                self._push(frame.replace(b'"sid":0,', b'"sid":%d,' % sub.sid, 1))

    # ---- the socket -----------------------------------------------------------------

    async def run(self) -> None:
        writer = asyncio.create_task(self._writer())
        try:
            async for raw in self.ws.messages():
                self.on_command(raw)
        finally:
            self.closed = True
            self.room.set()
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _writer(self) -> None:
        ws, out = self.ws, self.out
        while True:
            await self.wake.wait()
            self.wake.clear()
            while out:
                # One write for up to 1,024 frames, then wait for the socket to take them.
                batch = [out.popleft() for _ in range(min(len(out), 1024))]
                if not ws.send_texts(batch):
                    return  # the connection is gone
                await ws.drain()
                self.sent += len(batch)
                if len(out) < self.max_queue // 2:
                    self.room.set()
            self.room.set()

    async def drop(self, reason: str) -> None:
        """Close the connection (a gap in the archive): the client reconnects and
        subscribes again, and gets the books as they are then."""
        self.closed = True
        self.room.set()
        await self.ws.close(1011, reason[:120])

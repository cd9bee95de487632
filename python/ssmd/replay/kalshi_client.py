"""One client of the `kalshi` target: its subscriptions, commands and outbound frames.

The commands and their errors are Kalshi's, as the simulator answers them
(ssmd.sim.ws: channels, codes, `error_frame`): subscribe, unsubscribe,
update_subscription (add_markets, delete_markets, get_snapshot) and
list_subscriptions. A market the archive does not hold that day is error 16,
"Market not found".

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
from collections.abc import Callable
from typing import Any

import orjson

from ssmd.exceptions import CommandError
from ssmd.sim.frames import error_frame
from ssmd.sim.ws import ACTIONS, AUTH_REQUIRED, CHANNELS, GLOBAL_ONLY, UPDATABLE, Sub
from ssmd.sim.wsshell import SimSocket

__all__ = ["Client"]

# A snapshot frame for a ticker and the seq it takes, or None when no book is known.
Snapshot = Callable[[str, int], bytes | None]


class Client:
    def __init__(
        self,
        ws: SimSocket,
        markets: set[str],
        snapshot: Snapshot,
        authenticated: bool,
        max_queue: int = 10_000,
    ) -> None:
        self.ws = ws
        self.markets = markets
        self.snapshot = snapshot
        self.authenticated = authenticated
        self.max_queue = max_queue
        self.subs: dict[int, Sub] = {}
        self.by_channel: dict[str, Sub] = {}
        self.missing: dict[int, int] = {}  # sid -> seqs lost by the capture, not yet skipped
        self._next_sid = 1
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

    # ---- commands -------------------------------------------------------------------

    def on_command(self, raw: str | bytes) -> None:
        cid: int | None = None
        try:
            try:
                cmd = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raise CommandError(1, "Unable to process message") from None
            if not isinstance(cmd, dict):
                raise CommandError(1, "Unable to process message")
            raw_id = cmd.get("id")
            ok_id = isinstance(raw_id, int) and not isinstance(raw_id, bool) and raw_id != 0
            cid = raw_id if ok_id else None
            name, params = cmd.get("cmd"), cmd.get("params")
            if name == "list_subscriptions":
                subs = [{"channel": s.channel, "sid": s.sid} for s in self.subs.values()]
                self._reply({"id": cid, "type": "ok", "msg": subs})
                return
            if name not in ("subscribe", "unsubscribe", "update_subscription"):
                raise CommandError(5, "Unknown command")
            if not isinstance(params, dict):
                raise CommandError(2, "Params required")
            if name == "subscribe":
                self._subscribe(cid, params)
            elif name == "unsubscribe":
                self._unsubscribe(cid, params)
            else:
                self._update(cid, params)
        except CommandError as exc:
            self._push(error_frame(cid, exc.code, exc.text, **exc.extra))

    def _reply(self, frame: dict[str, Any]) -> None:
        self._push(orjson.dumps(frame))

    def _tickers(self, params: dict[str, Any]) -> list[str] | None:
        if "market_tickers" in params:
            raw = params["market_tickers"]
            if not isinstance(raw, list) or not all(isinstance(t, str) for t in raw):
                raise CommandError(11, "Invalid parameter")
        elif "market_ticker" in params:
            if not isinstance(params["market_ticker"], str):
                raise CommandError(11, "Invalid parameter")
            raw = [params["market_ticker"]]
        else:
            return None
        for t in raw:
            if t not in self.markets:
                raise CommandError(16, "Market not found", market_ticker=t)
        return list(dict.fromkeys(raw))

    def _subscribe(self, cid: int | None, params: dict[str, Any]) -> None:
        channels = params.get("channels")
        if not isinstance(channels, list) or not channels:
            raise CommandError(3, "Channels required")
        for ch in channels:
            if ch not in CHANNELS:
                raise CommandError(8, "Unknown channel name")
        tickers = self._tickers(params)
        for ch in channels:
            try:
                self._subscribe_one(cid, ch, tickers)
            except CommandError as exc:
                self._push(error_frame(cid, exc.code, exc.text, **exc.extra))
        if tickers:
            self.subscribed.set()

    def _subscribe_one(self, cid: int | None, ch: str, tickers: list[str] | None) -> None:
        if ch in AUTH_REQUIRED and not self.authenticated:
            raise CommandError(9, "Authentication required")
        if ch == "orderbook_delta" and not tickers:
            raise CommandError(14, "Market Ticker required")
        wanted = None if ch in GLOBAL_ONLY else (set(tickers) if tickers else None)
        sub = self.by_channel.get(ch)
        if sub is not None:
            new = (
                []
                if sub.tickers is None or wanted is None
                else [t for t in tickers or [] if t not in sub.tickers]
            )
            if wanted is None:
                sub.tickers = None
            elif sub.tickers is not None:
                sub.tickers.update(new)
            self._ok(cid, sub)
            self._snapshots(sub, new)
            return
        sub = Sub(self._next_sid, ch, wanted)
        self._next_sid += 1
        self.subs[sub.sid] = sub
        self.by_channel[ch] = sub
        self._reply({"id": cid, "type": "subscribed", "msg": {"channel": ch, "sid": sub.sid}})
        self._snapshots(sub, list(tickers or []) if wanted is not None else [])

    def _snapshots(self, sub: Sub, tickers: list[str]) -> None:
        if sub.channel != "orderbook_delta":
            return
        for t in tickers:
            frame = self.snapshot(t, sub.seq + 1)
            if frame is not None:
                sub.seq += 1
                self._push(frame.replace(b'"sid":0,', b'"sid":%d,' % sub.sid, 1))

    def _ok(self, cid: int | None, sub: Sub) -> None:
        msg: dict[str, Any] = {}
        if sub.tickers is not None:
            msg["market_tickers"] = sorted(sub.tickers)
        self._reply({"id": cid, "sid": sub.sid, "seq": sub.seq, "type": "ok", "msg": msg})

    def _unsubscribe(self, cid: int | None, params: dict[str, Any]) -> None:
        sids = params.get("sids")
        if not isinstance(sids, list) or not sids:
            raise CommandError(4, "Subscription IDs required")
        if any(sid not in self.subs for sid in sids):
            raise CommandError(7, "Unknown subscription ID")
        for sid in sids:
            sub = self.subs.pop(sid)
            if self.by_channel.get(sub.channel) is sub:
                del self.by_channel[sub.channel]
            self._reply({"id": cid, "sid": sid, "seq": sub.seq, "type": "unsubscribed"})

    def _update(self, cid: int | None, params: dict[str, Any]) -> None:
        sids = params.get("sids")
        if isinstance(sids, list) and len(sids) == 1:
            sid = sids[0]
        elif "sid" in params:
            sid = params["sid"]
        else:
            raise CommandError(12, "Exactly one subscription ID is required")
        sub = self.subs.get(sid)
        if sub is None:
            raise CommandError(7, "Unknown subscription ID")
        action = params.get("action")
        if action is None:
            raise CommandError(15, "Action required")
        if action not in ACTIONS or sub.channel not in UPDATABLE:
            raise CommandError(13, "Unsupported action")
        if action == "get_snapshot" and sub.channel != "orderbook_delta":
            raise CommandError(13, "Unsupported action")
        tickers = self._tickers(params)
        if not tickers:
            raise CommandError(14, "Market Ticker required")
        if action == "add_markets" and sub.tickers is not None:
            new = [t for t in tickers if t not in sub.tickers]
            sub.tickers.update(new)
            self._snapshots(sub, new)
        elif action == "delete_markets" and sub.tickers is not None:
            sub.tickers.difference_update(tickers)
        elif action == "get_snapshot":
            self._snapshots(sub, [t for t in tickers if sub.tickers is None or t in sub.tickers])
        self._ok(cid, sub)

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

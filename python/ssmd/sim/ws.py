"""The WebSocket side: one `Connection` per client with its subscriptions, sids and seqs,
commands and their replies, server pings, and the per-connection faults.

Outbound frames go through one bounded deque per connection (`max_queue` frames). When
a data frame finds it full the subscription it belongs to is killed with error 25
(Kalshi's "Subscription buffer overflow"), unless the hub runs in `block` mode, where the
flow engine waits for room instead (used at maximum rate, so a benchmark measures the
client, not the overflow policy). Replies and error frames are never refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import deque
from collections.abc import Container, Iterable
from typing import TYPE_CHECKING, Any

import orjson

from ssmd.exceptions import CommandError
from ssmd.sim.commands import Commands, Sub
from ssmd.sim.faults import Fault, FaultKind
from ssmd.sim.frames import Msg, envelope, error_frame, register_opaque
from ssmd.sim.truth import ConnectionRecord, SidRecord
from ssmd.sim.wsshell import SimSocket

if TYPE_CHECKING:
    from ssmd.sim.server import Simulator

__all__ = ["Connection"]

log = logging.getLogger(__name__)

UNKNOWN_TYPE = "market_heartbeat_v3"
register_opaque(UNKNOWN_TYPE)


class Connection(Commands):
    def __init__(
        self,
        sim: Simulator,
        ws: SimSocket,
        number: int,
        rec: ConnectionRecord,
        authenticated: bool,
    ) -> None:
        super().__init__(authenticated)
        self.sim = sim
        self.ws = ws
        self.number = number
        self.rec = rec
        self.out: deque[bytes] = deque()
        self.max_queue = sim.max_queue
        self.wake = asyncio.Event()
        self.room = asyncio.Event()
        self.room.set()
        self.data_frames = 0
        self.dropped_while_stalled = 0
        self.stalled = False
        self.withhold_pongs = False
        self.closed = False
        self.writing = False
        self._ping_outstanding = False  # a heartbeat is in flight, its pong not yet back
        self._seq_faults: dict[int, list[FaultKind]] = {}
        self._held: dict[int, bytes] = {}
        self._cmd_times: deque[float] = deque()
        self.pongs_received = 0  # pongs that answered the server's heartbeat pings
        self.pings_sent = 0
        self.next_trigger = 1 << 62  # data-frame count at which a scheduled fault fires

    # ---- outbound ---------------------------------------------------------------------

    def _set_link(self, *, stalled: bool | None = None, withhold_pongs: bool | None = None) -> None:
        """A stalled link, or one withholding pongs, leaves the client's pings unanswered."""
        if stalled is not None:
            self.stalled = stalled
        if withhold_pongs is not None:
            self.withhold_pongs = withhold_pongs
        self.ws.answer_pings = not (self.stalled or self.withhold_pongs)

    def push_control(self, frame: bytes) -> None:
        if self.stalled or self.closed:
            return
        self.out.append(frame)
        self.wake.set()

    def _push_data(self, sub: Sub, frame: bytes) -> None:
        if self.stalled:
            self.dropped_while_stalled += 1
            return
        bounded = self.sim.output_open.is_set()  # held output has no bound
        if len(self.out) >= self.max_queue and bounded and not self.sim.block_when_full:
            self._kill_sub(sub, 25, "Subscription buffer overflow")
            return
        self.out.append(frame)
        self.wake.set()
        self.data_frames += 1
        if self.data_frames >= self.next_trigger:
            self.sim.fire_frame_faults(self)
        if len(self.out) >= self.max_queue and bounded:
            self.room.clear()

    def _drop_sub(self, sub: Sub) -> None:
        self.subs.pop(sub.sid, None)
        if self.by_channel.get(sub.channel) is sub:
            del self.by_channel[sub.channel]

    def _kill_sub(self, sub: Sub, code: int, text: str) -> None:
        self._drop_sub(sub)
        self.out.append(
            orjson.dumps({"type": "error", "sid": sub.sid, "msg": {"code": code, "msg": text}})
        )
        self.wake.set()
        self.sim.truth.fault("buffer_overflow", self.number, self.sim.clock.now(), f"sid {sub.sid}")

    def emit(self, sub: Sub, msg: Msg) -> None:
        seq: int | None = None
        if msg.sequenced:
            sub.seq += 1
            seq = sub.seq
        frame = msg.frame(self.sim.era, sub.sid, seq, sub.use_yes_price)
        r = self.rec.sids.get(sub.sid)
        if r is not None:
            r.frames += 1
            if seq is not None:
                if r.first_seq is None:
                    r.first_seq = seq
                r.last_seq = seq
        pending = self._seq_faults.get(sub.sid)
        held = self._held.pop(sub.sid, None)
        if pending and seq is not None:
            kind = pending.pop(0)
            if not pending:
                del self._seq_faults[sub.sid]
            if kind is FaultKind.SEQ_GAP:
                sub.seq += (
                    1  # this frame takes a number one higher: the previous number is never sent
                )
                frame = msg.frame(self.sim.era, sub.sid, sub.seq, sub.use_yes_price)
            elif kind is FaultKind.SEQ_DUPLICATE:
                self._push_data(sub, frame)
            elif kind is FaultKind.SEQ_REORDER:
                self._held[sub.sid] = frame
                return
            elif kind is FaultKind.EMPTY_TICKER and msg.ticker is not None:
                named = b'"market_ticker":' + orjson.dumps(msg.ticker)
                frame = frame.replace(named, b'"market_ticker":""', 1)
        self._push_data(sub, frame)
        if held is not None:
            self._push_data(sub, held)

    def deliver(self, msgs: Iterable[Msg]) -> None:
        if self.closed:
            return
        by_channel = self.by_channel
        for msg in msgs:
            sub = by_channel.get(msg.channel)
            if sub is None or (sub.tickers is not None and msg.ticker not in sub.tickers):
                continue
            self.emit(sub, msg)

    async def writer(self) -> None:
        ws, out, sim = self.ws, self.out, self.sim
        while True:
            await self.wake.wait()
            self.wake.clear()
            while out:  # only frames queued before a stall: during one, nothing is queued
                await sim.output_open.wait()
                n = min(len(out), 1024)
                if sim.output_pace is not None:
                    # Half the bucket: a late wake-up's tokens are kept for the next.
                    n = min(n, max(1, int(sim.output_pace.capacity / 2)))
                    await sim.output_pace.take(n)
                batch = [out.popleft() for _ in range(n)]
                if not ws.send_texts(batch):
                    return  # the connection is gone: the batch was never sent
                self.sim.truth.sent(self.rec, batch)
                self.writing = True
                try:
                    await ws.drain()
                finally:
                    self.writing = False
                if len(out) < self.max_queue // 2:
                    self.room.set()
            if not out:
                self.room.set()

    def start_keepalive(self) -> None:
        """Put the first heartbeat on the simulator's timeline (then one every interval)."""
        interval = self.sim.ping_interval
        if interval > 0:
            t = self.rec.opened_at + interval
            self.sim.schedule(t, functools.partial(self._heartbeat, t))

    def _heartbeat(self, t: float) -> None:
        if self.closed:
            return
        self.sim.schedule(
            t + self.sim.ping_interval,
            functools.partial(self._heartbeat, t + self.sim.ping_interval),
        )
        if self.stalled or self._ping_outstanding:
            return  # silent while stalled; one outstanding heartbeat at a time
        waiter = self.ws.ping(b"heartbeat")
        if waiter is None:
            return  # the connection is going
        self._ping_outstanding = True
        self.pings_sent += 1
        waiter.add_done_callback(self._on_pong)
        timeout = self.sim.pong_timeout
        if timeout is not None:
            self.sim.schedule(t + timeout, functools.partial(self._pong_deadline, waiter))

    def _on_pong(self, fut: asyncio.Future[None]) -> None:
        self._ping_outstanding = False
        if not fut.cancelled():
            self.pongs_received += 1

    def _pong_deadline(self, waiter: asyncio.Future[None]) -> None:
        if self.closed or waiter.done():
            return
        log.info("connection %d: no pong within %.1fs, closing", self.number, self.sim.pong_timeout)
        self.sim.truth.fault("pong_timeout_close", self.number, self.sim.clock.now())
        self.sim.spawn(self.ws.close(1011, "keepalive ping timeout"))

    # ---- faults -----------------------------------------------------------------------

    def apply(self, fault: Fault, now: float) -> None:
        """Apply a fault at clock time `now` (a duration counts from there)."""
        sim = self.sim
        sim.truth.fault(fault.kind.value, self.number, now, fault.channel)
        kind = fault.kind
        if kind is FaultKind.DISCONNECT:
            self.closed = True
            self.ws.abort()
        elif kind is FaultKind.STALL:
            self._set_link(stalled=True)
            if fault.duration is not None:
                sim.schedule(now + fault.duration, self._end_stall)
        elif kind is FaultKind.WITHHOLD_PONGS:
            self._set_link(withhold_pongs=True)
            if fault.duration is not None:
                sim.schedule(now + fault.duration, self._end_withhold)
        elif kind in (
            FaultKind.SEQ_GAP,
            FaultKind.SEQ_DUPLICATE,
            FaultKind.SEQ_REORDER,
            FaultKind.EMPTY_TICKER,
        ):
            sub = self.by_channel.get(fault.channel)
            if sub is not None:
                reps = fault.count if kind is FaultKind.SEQ_GAP else 1
                self._seq_faults.setdefault(sub.sid, []).extend([kind] * reps)
        elif kind is FaultKind.MALFORMED_FRAME:
            sub = self.by_channel.get(fault.channel)
            sid = sub.sid if sub else 1
            self.push_control(b'{"type":"orderbook_delta","sid":%d,"seq":' % sid)
        elif kind is FaultKind.UNKNOWN_TYPE:
            sub = self.by_channel.get(fault.channel)
            self.push_control(
                envelope(UNKNOWN_TYPE, sub.sid if sub else 1, None, b'{"note":"unknown type"}')
            )
        elif kind is FaultKind.OVERSIZE_FRAME:
            sub = self.by_channel.get(fault.channel)
            sid = sub.sid if sub else 1
            pad = fault.size - len(envelope(UNKNOWN_TYPE, sid, None, b'{"note":""}'))
            self.push_control(envelope(UNKNOWN_TYPE, sid, None, b'{"note":"%s"}' % (b"x" * pad)))
        elif kind is FaultKind.BUFFER_OVERFLOW:
            sub = self.by_channel.get(fault.channel)
            if sub is not None:
                self.subs.pop(sub.sid, None)
                del self.by_channel[sub.channel]
                self.push_control(
                    orjson.dumps(
                        {
                            "type": "error",
                            "sid": sub.sid,
                            "msg": {"code": 25, "msg": "Subscription buffer overflow"},
                        }
                    )
                )

    def _end_stall(self) -> None:
        self._set_link(stalled=False)
        self.sim.truth.fault(
            "stall_end",
            self.number,
            self.sim.clock.now(),
            f"{self.dropped_while_stalled} frames lost",
        )

    def _end_withhold(self) -> None:
        self._set_link(withhold_pongs=False)

    # ---- commands ---------------------------------------------------------------------

    async def reader(self) -> None:
        async for raw in self.ws.messages():
            self.rec.commands += 1
            if self.stalled:
                continue  # lost on the dead link
            self.on_command(raw)

    def _reply(self, frame: dict[str, Any], subscribe_ack: bool = False) -> None:
        """Queue a reply; acknowledgements of `subscribe` wait `ack_delay` when one is set.
        An armed `drop_reply` of the reply's channel loses it."""
        channel = self._channel_of(frame)
        if channel is not None and self.sim.spend(FaultKind.DROP_REPLY, channel, self.number):
            now = self.sim.clock.now()
            self.sim.truth.fault("drop_reply", self.number, now, f"{frame['type']} {channel}")
            return
        data = orjson.dumps(frame)
        delay = self.sim.scenario.ack_delay
        if subscribe_ack and delay > 0:
            self.sim.schedule(
                self.sim.clock.now() + delay, functools.partial(self.push_control, data)
            )
        else:
            self.push_control(data)

    def _channel_of(self, frame: dict[str, Any]) -> str | None:
        """The channel a reply answers for: named in a `subscribed`, else its sid's."""
        msg = frame.get("msg")
        if isinstance(msg, dict) and isinstance(msg.get("channel"), str):
            return str(msg["channel"])
        sub = self.subs.get(frame.get("sid", 0))
        return sub.channel if sub is not None else None

    def _resubscribed(self, cid: int | None, sub: Sub) -> None:
        if self.sim.spend(FaultKind.ALREADY_SUBSCRIBED, sub.channel, self.number):
            self.sim.truth.fault(
                "already_subscribed", self.number, self.sim.clock.now(), sub.channel
            )
            self.push_control(error_frame(cid, 6, "Already subscribed"))
            return
        super()._resubscribed(cid, sub)

    def _unsubscribe(self, cid: int | None, params: dict[str, Any]) -> None:
        self._lose_sids(params)
        super()._unsubscribe(cid, params)

    def _update(self, cid: int | None, params: dict[str, Any]) -> None:
        self._lose_sids(params)
        super()._update(cid, params)

    def _lose_sids(self, params: dict[str, Any]) -> None:
        """An armed `unknown_sid` of the channel of a sid the command names: the server
        lost that subscription before the command came, so the command finds no such
        sid and gets error 7 (Commands), as the exchange answers it."""
        sids = params.get("sids")
        for sid in sids if isinstance(sids, list) else [params.get("sid")]:
            sub = self.subs.get(sid) if isinstance(sid, int) else None
            if sub is not None and self.sim.spend(FaultKind.UNKNOWN_SID, sub.channel, self.number):
                self._drop_sub(sub)
                now = self.sim.clock.now()
                self.sim.truth.fault("unknown_sid", self.number, now, f"sid {sid} {sub.channel}")

    def _rate_check(self) -> None:
        rate = self.sim.scenario.command_rate
        if rate is None:
            return
        now = self.sim.clock.now()
        times = self._cmd_times
        while times and times[0] <= now - rate.per_seconds:
            times.popleft()
        if len(times) >= rate.max_commands:
            self.sim.truth.fault("command_rate_limited", self.number, now)
            raise CommandError(27, "Too many requests")
        times.append(now)

    def _markets(self) -> Container[str]:
        return self.sim.universe.markets

    def _cap(self, n: int) -> None:
        cap = self.sim.scenario.market_cap
        if cap is not None and n > cap:
            self.sim.truth.fault("market_cap", self.number, self.sim.clock.now(), str(n))
            raise CommandError(26, "Subscription market limit exceeded")

    def _new_sub(self, sub: Sub) -> None:
        self.rec.sids.setdefault(sub.sid, SidRecord(sub.channel))

    def _after_add(self, sub: Sub, new: list[str], params: dict[str, Any]) -> None:
        sim = self.sim
        now = sim.clock.now()
        if sub.channel == "orderbook_delta":
            for t in new:
                self.emit(sub, sim.flow.snapshot_msg(sim.universe.markets[t], now))
        elif sub.channel == "ticker" and params.get("send_initial_snapshot"):
            for t in new:
                self.emit(sub, sim.flow.ticker_msg(sim.universe.markets[t], now))

    def _snapshots(self, sub: Sub, tickers: list[str]) -> None:
        now = self.sim.clock.now()
        for t in tickers:
            self.emit(sub, self.sim.flow.snapshot_msg(self.sim.universe.markets[t], now))

    async def run(self) -> None:
        self.start_keepalive()
        tasks = [asyncio.create_task(self.writer())]
        try:
            await self.reader()
        finally:
            self.closed = True
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await t

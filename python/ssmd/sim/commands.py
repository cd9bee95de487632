"""Kalshi's WebSocket commands, sans I/O: subscribe, unsubscribe, update_subscription
(add_markets, delete_markets, get_snapshot) and list_subscriptions, with the sids, the
replies and the numbered errors Kalshi gives. The simulator's connections
(ssmd.sim.ws) and the replay's `kalshi` target (ssmd.replay.kalshi_client) are both
`Commands`: they say which markets exist and what a subscription to new markets sends
first, and they carry the frames; the protocol is this module's.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from typing import Any

import orjson

from ssmd.exceptions import CommandError
from ssmd.sim.frames import error_frame

__all__ = [
    "ACTIONS",
    "AUTH_REQUIRED",
    "CHANNELS",
    "GLOBAL_ONLY",
    "PRIVATE",
    "PUBLIC",
    "UPDATABLE",
    "Commands",
    "Sub",
]

PUBLIC = {
    "orderbook_delta",
    "ticker",
    "trade",
    "market_lifecycle_v2",
    "multivariate",
    "multivariate_market_lifecycle",
}
PRIVATE = {"fill", "market_positions", "user_orders", "order_group_updates", "communications"}
CHANNELS = PUBLIC | PRIVATE
AUTH_REQUIRED = PRIVATE | {"orderbook_delta"}
GLOBAL_ONLY = {
    "market_lifecycle_v2",
    "multivariate",
    "multivariate_market_lifecycle",
    "communications",
    "order_group_updates",
}
UPDATABLE = {"orderbook_delta", "ticker", "trade", "fill", "user_orders"}
ACTIONS = {"add_markets", "delete_markets", "get_snapshot"}


@dataclass
class Sub:
    sid: int
    channel: str
    tickers: set[str] | None  # None: every market
    use_yes_price: bool = False
    skip_ticker_ack: bool = False
    seq: int = 0


class Commands:
    """One connection's subscriptions and its answers to commands. A subclass sends the
    frames (`push_control`), names the markets that exist (`_markets`), and may add
    limits (`_rate_check`, `_cap`) and what follows a subscription (`_after_add`)."""

    def __init__(self, authenticated: bool) -> None:
        self.authenticated = authenticated
        self.subs: dict[int, Sub] = {}
        self.by_channel: dict[str, Sub] = {}
        self._next_sid = 1

    # ---- what a subclass provides ---------------------------------------------------

    def push_control(self, frame: bytes) -> None:
        """Queue a reply or an error frame (never refused)."""
        raise NotImplementedError

    def _markets(self) -> Container[str]:
        """The markets a subscription may name."""
        raise NotImplementedError

    def _reply(self, frame: dict[str, Any], subscribe_ack: bool = False) -> None:
        self.push_control(orjson.dumps(frame))

    def _rate_check(self) -> None:
        """CommandError when the connection sent too many commands (no limit here)."""

    def _cap(self, n: int) -> None:
        """CommandError when a subscription may not hold `n` markets (no limit here)."""

    def _new_sub(self, sub: Sub) -> None:
        """A subscription was made."""

    def _after_add(self, sub: Sub, new: list[str], params: dict[str, Any]) -> None:
        """Markets `new` joined `sub` (its first frames for them: a book snapshot...)."""

    def _snapshots(self, sub: Sub, tickers: list[str]) -> None:
        """get_snapshot: the books of `tickers` (markets of `sub`) again."""

    # ---- the protocol ---------------------------------------------------------------

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
            self._rate_check()
            name, params = cmd.get("cmd"), cmd.get("params")
            if name == "list_subscriptions":
                subs = sorted(self.subs.values(), key=lambda s: s.sid)
                msg = [{"channel": s.channel, "sid": s.sid} for s in subs]
                self._reply({"id": cid, "type": "ok", "msg": msg})
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
            self.push_control(error_frame(cid, exc.code, exc.text, **exc.extra))

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
        markets = self._markets()
        for t in raw:
            if t not in markets:
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
                self._subscribe_one(cid, ch, params, tickers)
            except CommandError as exc:
                self.push_control(error_frame(cid, exc.code, exc.text, **exc.extra))

    def _subscribe_one(
        self, cid: int | None, ch: str, params: dict[str, Any], tickers: list[str] | None
    ) -> None:
        if ch in AUTH_REQUIRED and not self.authenticated:
            raise CommandError(9, "Authentication required")
        if ch == "orderbook_delta" and not tickers:
            raise CommandError(14, "Market Ticker required")
        wanted = None if ch in GLOBAL_ONLY else (set(tickers) if tickers else None)
        existing = self.by_channel.get(ch)
        if existing is not None:
            if existing.tickers is None or wanted is None:
                new: list[str] = []
                if wanted is None:
                    existing.tickers = None
            else:
                new = [t for t in tickers or [] if t not in existing.tickers]
                self._cap(len(existing.tickers) + len(new))
                existing.tickers.update(new)
            self._after_add(existing, new, params)
            self._resubscribed(cid, existing)
            return
        if wanted is not None:
            self._cap(len(wanted))
        sub = Sub(
            self._next_sid,
            ch,
            wanted,
            bool(params.get("use_yes_price", False)),
            bool(params.get("skip_ticker_ack", False)),
        )
        self._next_sid += 1
        self.subs[sub.sid] = sub
        self.by_channel[ch] = sub
        self._new_sub(sub)
        self._reply(
            {"id": cid, "type": "subscribed", "msg": {"channel": ch, "sid": sub.sid}},
            subscribe_ack=True,
        )
        self._after_add(sub, list(tickers or []) if wanted is not None else [], params)

    def _resubscribed(self, cid: int | None, sub: Sub) -> None:
        """The answer to a subscribe of a channel the connection holds: `ok` (Kalshi's
        re-subscribe is idempotent)."""
        self._ok(cid, sub, subscribe_ack=True)

    def _ok(self, cid: int | None, sub: Sub, subscribe_ack: bool = False) -> None:
        msg: dict[str, Any] = {}
        if not sub.skip_ticker_ack and sub.tickers is not None:
            msg["market_tickers"] = sorted(sub.tickers)
        self._reply(
            {"id": cid, "sid": sub.sid, "seq": sub.seq, "type": "ok", "msg": msg}, subscribe_ack
        )

    def _unsubscribe(self, cid: int | None, params: dict[str, Any]) -> None:
        sids = params.get("sids")
        if not isinstance(sids, list) or not sids:
            raise CommandError(4, "Subscription IDs required")
        for sid in sids:
            if sid not in self.subs:
                raise CommandError(7, "Unknown subscription ID")
        for sid in sids:
            sub = self.subs.pop(sid)
            if self.by_channel.get(sub.channel) is sub:
                del self.by_channel[sub.channel]
            self._reply({"id": cid, "sid": sid, "seq": sub.seq, "type": "unsubscribed"})

    def _update(self, cid: int | None, params: dict[str, Any]) -> None:
        if "sids" in params:
            sids = params["sids"]
            if not isinstance(sids, list) or len(sids) != 1:
                raise CommandError(12, "Exactly one subscription ID is required")
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
        if action == "add_markets":
            if sub.tickers is not None:
                new = [t for t in tickers if t not in sub.tickers]
                self._cap(len(sub.tickers) + len(new))
                sub.tickers.update(new)
                self._after_add(sub, new, params)
        elif action == "delete_markets":
            if sub.tickers is not None:
                sub.tickers.difference_update(tickers)
        else:
            self._snapshots(sub, [t for t in tickers if sub.tickers is None or t in sub.tickers])
        self._ok(cid, sub)

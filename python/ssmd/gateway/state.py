"""The market state the gateway serves: books, recent trades, each market's status and
activity. It knows nothing of NATS: the feed (ssmd.gateway.feed) reads the stream and
hands it what Rust applied (`take`) and the start-up checkpoints (`restore`); the hub and
the REST API read it. Once `go_live` is called (the feed caught up with the stream), what
changes goes to the sink as it happens.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from ssmd import core
from ssmd.gateway import render
from ssmd.gateway.metrics import GatewayMetrics
from ssmd.gateway.settings import GatewaySettings
from ssmd.gateway.trades import TradeLog
from ssmd.secmaster.status import lifecycle_status

__all__ = ["ACTIVITY_MS", "Market", "MarketState", "Sink"]

ACTIVITY_MS: Final = 600_000  # the time constant of a market's activity (Market.activity)


class Sink(Protocol):
    """Where the state sends what clients see (the hub), by symbol: the ticker after
    the state's `symbol_prefix` (ssmd.gateway.symbols)."""

    def books_changed(self, symbols: Iterable[str]) -> None: ...
    def trade(self, symbol: str, text: str) -> None: ...
    def status(self, symbol: str, text: str) -> None: ...
    def caught_up(self, venue: str) -> None: ...


@dataclass
class Market:
    """What the stream said about a market (the REST fallback without a security master)."""

    ticker: str
    status: str | None = None
    status_ms: int = 0
    event_ticker: str | None = None
    title: str | None = None
    open_ns: int = 0
    close_ns: int = 0
    last_price_e6: int | None = None
    last_trade_ms: int = 0
    trades_weight: float = 0.0  # the market's activity as of trades_weight_ms
    trades_weight_ms: int = 0

    def count_trade(self, ms: int) -> None:
        """Add a trade of time `ms` (Unix ms) to the market's activity."""
        if ms >= self.trades_weight_ms:
            self.trades_weight = self.activity(ms) + 1.0
            self.trades_weight_ms = ms
        else:  # older than the newest trade counted (trades can arrive out of order)
            self.trades_weight += math.exp((ms - self.trades_weight_ms) / ACTIVITY_MS)

    def activity(self, now_ms: int) -> float:
        """Recent trades at `now_ms`: each trade weighs e^(-age / 10 min), so one that just
        happened counts 1, one 10 minutes old 0.37, one an hour old 0.0025. A market
        trading r times a minute for a while reaches about 10 r. Kept as one number per
        market, updated per trade: no trade is held for it."""
        age = max(0, now_ms - self.trades_weight_ms)
        return self.trades_weight * math.exp(-age / ACTIVITY_MS)


class MarketState:
    def __init__(
        self,
        settings: GatewaySettings,
        metrics: GatewayMetrics,
        sink: Sink | None = None,
        symbol_prefix: str = "",
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.sink = sink
        self.symbol_prefix = symbol_prefix  # before each ticker in what clients see
        self.books = core.BookSet()
        self.book_ms: dict[str, int] = {}
        self.trades = TradeLog(settings.trades_per_ticker, settings.trades_total)
        self.markets: OrderedDict[str, Market] = OrderedDict()
        self.live = False  # changes go to the sink as they happen
        self.last_receive_ns = 0  # the connector's receive time of the newest record
        self.last_event: tuple[str, int] | None = None  # (kind, connector receive ns)
        self.trade_floor_ns = 0  # trades older than this are not kept before going live

    def reset(self) -> None:
        """Everything forgotten: the feed reads the stream again from the start."""
        self.books = core.BookSet()
        self.book_ms.clear()
        self.trades = TradeLog(self.settings.trades_per_ticker, self.settings.trades_total)
        self.markets.clear()

    def go_live(self) -> None:
        self.live = True
        if self.sink is not None:
            self.sink.caught_up(self.settings.feed)

    # ---- what the feed hands over -------------------------------------------------------

    def restore(self, data: bytes, recs: list[dict[str, Any]]) -> None:
        """Book checkpoints (`data`, one record each, decoded as `recs`), applied in order."""
        dirty = {str(r["ticker"]): render.record_ms(r) for r in recs if r.get("ticker")}
        for t in dirty:
            self._market(t)
        for ev in self.books.apply(data):
            self.metrics.book_events.labels(core.BOOK_EVENT_KINDS[type(ev)]).inc()
        self.book_ms.update(dirty)

    def take(self, batch: core.FeedBatch) -> None:
        """What Rust applied to the books (batch.books) and what it left to this state."""
        self.last_receive_ns = max(self.last_receive_ns, batch.last_receive_ns)
        for typ, n in batch.counts:
            self.metrics.stream_messages.labels(typ).inc(n)
        for kind, n in batch.book_events:
            self.metrics.book_events.labels(kind).inc(n)
        if batch.undecodable:
            self.metrics.decode_errors.inc(batch.undecodable)
        dirty = dict(batch.books)
        for t in dirty:
            self._market(t)
        for trade in batch.trades:
            self._trade(trade)
        for rec in batch.records:
            ticker = rec.get("ticker")
            kind = rec["kind"]
            if kind == "connector_event":
                self.last_event = (str(rec["event"]), int(rec["receive_ts"]))
            elif kind == "status" and ticker:
                self._status(ticker, str(rec["status"]), render.record_ms(rec))
            elif kind == "lifecycle" and ticker:
                self._lifecycle(ticker, rec)
        if dirty:
            self.book_ms.update(dirty)
            if self.live and self.sink is not None:
                p = self.symbol_prefix
                self.sink.books_changed([p + t for t in dirty] if p else dirty)

    def _market(self, ticker: str) -> Market:
        m = self.markets.get(ticker)
        if m is None:
            m = self.markets[ticker] = Market(ticker)
            while len(self.markets) > self.settings.markets_max:
                old, _ = self.markets.popitem(last=False)
                self.books.remove(old)
                self.book_ms.pop(old, None)
        else:
            self.markets.move_to_end(ticker)
        return m

    def _trade(self, trade: core.TradeMessage) -> None:
        ticker, ms, text = trade.ticker, trade.ms, trade.text
        m = self._market(ticker)
        if ms >= m.last_trade_ms:
            m.last_trade_ms, m.last_price_e6 = ms, trade.price_e6
        m.count_trade(ms)
        if self.live:
            self.trades.add(ticker, text)
            if self.sink is not None:
                self.sink.trade(self.symbol_prefix + ticker, text)
        elif trade.receive_ns >= self.trade_floor_ns:  # connector receive time
            self.trades.add(ticker, text)

    def _status(self, ticker: str, status: str, ms: int) -> None:
        m = self._market(ticker)
        if m.status == status:
            return
        m.status, m.status_ms = status, ms
        if status == "settled":
            # Settled markets trade no more: their books are dropped to bound memory.
            self.books.remove(ticker)
            self.book_ms.pop(ticker, None)
        if self.live and self.sink is not None:
            symbol = self.symbol_prefix + ticker
            self.sink.status(symbol, render.status(symbol, status, ms))

    def _lifecycle(self, ticker: str, rec: dict[str, Any]) -> None:
        m = self._market(ticker)
        for attr, key in (("event_ticker", "event_ticker"), ("title", "title")):
            if rec.get(key):
                setattr(m, attr, str(rec[key]))
        m.open_ns = int(rec.get("open_ts") or m.open_ns)
        m.close_ns = int(rec.get("close_ts") or m.close_ns)
        event = str(rec.get("event_type") or "")
        change = lifecycle_status(event, rec.get("is_deactivated", True))
        status = change[0] if change is not None else None
        if event == "created" and m.status is None:
            status = "initialized"
        if status is not None:
            self._status(ticker, status, render.record_ms(rec))

    # ---- reads for the hub and the REST API ---------------------------------------------

    def knows(self, ticker: str) -> bool:
        return ticker in self.markets

    def view(self, ticker: str) -> tuple[list[tuple[int, int]], list[tuple[int, int]], bool, int]:
        """(bids, asks, valid, ts ms) of a market's book; an empty invalid book when none."""
        v = self.books.view(ticker, self.settings.book_depth)
        if v is None:
            return [], [], False, self.book_ms.get(ticker) or int(time.time() * 1000)
        return v.bids, v.asks, v.valid, self.book_ms.get(ticker, 0)

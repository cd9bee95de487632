"""Order flow: turns the universe's schedule and random order activity into consistent messages.

Every book change is a delta; every trade consumes the best level of the opposite bid book
(a taker buying YES hits the best NO bid) and emits a delta, a trade and a ticker; a
ticker goes out whenever the top of book or the last trade changes. Determined markets
have their resting orders cancelled (negative deltas down to an empty book).
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any

from ssmd.sim.book import ONE
from ssmd.sim.frames import Msg
from ssmd.sim.universe import Market, Transition, Universe

__all__ = ["FlowEngine", "TradeRecord"]

TradeRecord = dict[str, Any]


def _snap(p: int, structure: str) -> int:
    if structure == "tapered_deci_cent" and (p < 1000 or p > 9000):
        return max(10, min(9990, round(p / 10) * 10))
    return max(100, min(9900, round(p / 100) * 100))


class FlowEngine:
    """Deterministic order flow for a universe (seeded independently of the universe)."""

    def __init__(
        self, universe: Universe, seed: int, fractional: bool = True, trade_history: int = 10_000
    ) -> None:
        self.u = universe
        self.rng = random.Random(seed * 7919 + 17)
        self.fractional = fractional
        self.clock_counter = 6_600_000_000
        self.trades: deque[TradeRecord] = deque(maxlen=trade_history)  # oldest dropped
        self._announced: set[str] = set(universe.events)
        self._active: list[str] = sorted(m.ticker for m in universe.active())
        for t in self._active:  # markets already open at start have a book already
            m = universe.markets[t]
            self._seed(m, universe.start)
        self.frames_generated = 0

    # ---- helpers ----------------------------------------------------------------------

    def _top(self, m: Market) -> tuple[Any, ...]:
        return (m.book.best("yes"), m.book.best("no"), m.last_price, m.last_trade_size)

    def _size(self, lo: int, hi: int) -> int:
        s = self.rng.randint(lo, hi) * 100
        if self.fractional and self.rng.random() < 0.3:
            s += self.rng.randrange(1, 100)
        return s

    def _delta(self, m: Market, side: str, price: int, delta: int, ts: float) -> Msg:
        m.book.apply(side, price, delta)
        return Msg(
            "orderbook_delta",
            "orderbook_delta",
            m.ticker,
            ts,
            {"market_id": m.market_id, "side": side, "price": price, "delta": delta},
        )

    def ticker_msg(self, m: Market, ts: float) -> Msg:
        yb, nb = m.book.best("yes"), m.book.best("no")
        self.clock_counter += self.rng.randint(1, 5000)
        return Msg(
            "ticker",
            "ticker",
            m.ticker,
            ts,
            {
                "market_id": m.market_id,
                "last": m.last_price,
                "bid": yb[0] if yb else None,
                "bid_size": yb[1] if yb else 0,
                "ask": ONE - nb[0] if nb else None,
                "ask_size": nb[1] if nb else 0,
                "last_size": m.last_trade_size,
                "volume": m.volume,
                "oi": m.open_interest,
                "dollar_volume": m.dollar_volume // 1_000_000,
                "dollar_oi": m.open_interest * m.fair // 1_000_000,
                "clock": self.clock_counter,
            },
        )

    def snapshot_msg(self, m: Market, ts: float) -> Msg:
        return Msg(
            "orderbook_delta",
            "orderbook_snapshot",
            m.ticker,
            ts,
            {
                "market_id": m.market_id,
                "yes": m.book.levels("yes"),
                "no": m.book.levels("no"),
            },
        )

    def _lifecycle(self, m: Market, ts: float, **fields: Any) -> Msg:
        return Msg(
            "market_lifecycle_v2",
            "market_lifecycle_v2",
            None,
            ts,
            {"market_ticker": m.ticker, **fields},
        )

    # ---- lifecycle --------------------------------------------------------------------

    def transition(self, tr: Transition) -> list[Msg]:
        m = self.u.markets.get(tr.ticker)
        ts = tr.ts
        out: list[Msg] = []
        if m is None:
            self._announced = {e for e in self._announced if e in self.u.events}
            return out
        if tr.kind == "create":
            ev = self.u.events[m.event_ticker]
            if ev.event_ticker not in self._announced:
                self._announced.add(ev.event_ticker)
                data: dict[str, Any] = {
                    "event_ticker": ev.event_ticker,
                    "title": ev.title,
                    "subtitle": ev.sub_title,
                    "collateral_return_type": ev.collateral_return_type,
                    "series_ticker": ev.series_ticker,
                }
                if ev.strike_date is not None:
                    data["strike_date"] = ev.strike_date
                out.append(Msg("market_lifecycle_v2", "event_lifecycle", None, ts, data))
            out.append(
                self._lifecycle(
                    m,
                    ts,
                    event_type="created",
                    open_ts=m.open_ts,
                    close_ts=m.close_ts,
                    additional_metadata={
                        "name": m.title,
                        "title": m.title,
                        "yes_sub_title": m.yes_sub_title,
                        "no_sub_title": m.no_sub_title,
                        "rules_primary": f"If {m.yes_sub_title}, resolves Yes.",
                        "rules_secondary": "",
                        "can_close_early": False,
                        "event_ticker": m.event_ticker,
                        "expected_expiration_ts": m.close_ts,
                        "strike_type": m.strike_type,
                        **({"floor_strike": m.floor_strike} if m.floor_strike is not None else {}),
                    },
                )
            )
        elif tr.kind == "open":
            self._set_active(m)
            if m.series_ticker.endswith("15M"):
                out.append(
                    self._lifecycle(
                        m,
                        ts,
                        event_type="metadata_updated",
                        additional_metadata={"yes_sub_title": m.yes_sub_title},
                    )
                )
            out.extend(self._seed(m, ts))
        elif tr.kind in ("close", "pause"):
            self._set_active(m)
            if tr.kind == "pause":
                out.append(self._lifecycle(m, ts, event_type="deactivated", is_deactivated=True))
        elif tr.kind == "resume":
            self._set_active(m)
            out.append(self._lifecycle(m, ts, event_type="activated", is_deactivated=False))
        elif tr.kind == "close_date_updated":
            out.append(self._lifecycle(m, ts, event_type="close_date_updated", close_ts=m.close_ts))
        elif tr.kind == "determine":
            self._set_active(m)
            for side in ("yes", "no"):
                for p, s in m.book.levels(side):
                    out.append(self._delta(m, side, p, -s, ts))
            out.append(self.ticker_msg(m, ts))
            value = ONE if m.result == "yes" else 0
            if self.rng.random() < 0.2:  # seen live: result only in additional_metadata
                out.append(
                    self._lifecycle(
                        m,
                        ts,
                        event_type="determined",
                        settlement=value,
                        determination_ts=m.determination_ts,
                        additional_metadata={"result": m.result},
                    )
                )
            else:
                out.append(
                    self._lifecycle(
                        m,
                        ts,
                        event_type="determined",
                        result=m.result,
                        settlement=value,
                        determination_ts=m.determination_ts,
                    )
                )
        elif tr.kind == "settle":
            out.append(self._lifecycle(m, ts, event_type="settled", settled_ts=m.settled_ts))
        elif tr.kind == "prune":
            self._set_active(m)
        return out

    def _set_active(self, m: Market) -> None:
        present = m.ticker in self.u.markets and m.tradable
        if present and m.ticker not in self._active:
            self._active.append(m.ticker)
            self._active.sort()
        elif not present and m.ticker in self._active:
            self._active.remove(m.ticker)

    def _seed(self, m: Market, ts: float) -> list[Msg]:
        out = []
        for k in range(1, 4):
            out.append(
                self._delta(
                    m,
                    "yes",
                    _snap(m.fair - 100 * k, m.price_level_structure),
                    self._size(5, 200),
                    ts,
                )
            )
            out.append(
                self._delta(
                    m,
                    "no",
                    _snap(ONE - m.fair - 100 * k, m.price_level_structure),
                    self._size(5, 200),
                    ts,
                )
            )
        out.append(self.ticker_msg(m, ts))
        return out

    # ---- order flow -------------------------------------------------------------------

    def step(self, ts: float) -> list[Msg]:
        """One order-flow action on a random tradable market."""
        if not self._active:
            return []
        rng = self.rng
        m = self.u.markets[self._active[rng.randrange(len(self._active))]]
        before = self._top(m)
        out: list[Msg] = []
        r = rng.random()
        if r < 0.05:
            m.fair = max(100, min(9900, m.fair + rng.choice((-100, -50, 50, 100))))
        book = m.book
        if r < 0.47 or not (book.yes or book.no):
            side = "yes" if rng.random() < 0.5 else "no"
            anchor = m.fair if side == "yes" else ONE - m.fair
            p = _snap(
                anchor - rng.randint(1, 6) * (100 if rng.random() < 0.8 else 10),
                m.price_level_structure,
            )
            opp = book.best("no" if side == "yes" else "yes")
            if opp is not None and p + opp[0] >= ONE:
                out.extend(self._take(m, "yes" if side == "yes" else "no", ts))
            else:
                out.append(self._delta(m, side, p, self._size(1, 150), ts))
        elif r < 0.75:
            side = "yes" if rng.random() < 0.5 else "no"
            levels = book.side(side) or book.side("no" if side == "yes" else "yes")
            side = "yes" if levels is book.yes else "no"
            prices = sorted(levels)
            p = prices[rng.randrange(len(prices))]
            s = levels[p]
            cut = s if rng.random() < 0.4 else max(1, s * rng.randint(1, 9) // 10)
            out.append(self._delta(m, side, p, -cut, ts))
        else:
            out.extend(self._take(m, "yes" if rng.random() < 0.5 else "no", ts))
        if self._top(m) != before:
            out.append(self.ticker_msg(m, ts))
        self.frames_generated += len(out)
        return out

    def _take(self, m: Market, taker: str, ts: float) -> list[Msg]:
        """A taker buying `taker` consumes the best bid of the other side."""
        hit = "no" if taker == "yes" else "yes"
        best = m.book.best(hit)
        if best is None:
            return []
        p, s = best
        count = min(s, self._size(1, 80))
        yes_price = ONE - p if hit == "no" else p
        out = [self._delta(m, hit, p, -count, ts)]
        m.last_price = yes_price
        m.last_trade_size = count
        m.volume += count
        m.open_interest += count // 2
        m.dollar_volume += count * yes_price
        raw = f"{self.rng.getrandbits(128):032x}"
        tid = f"{raw[:8]}-{raw[8:12]}-4{raw[13:16]}-a{raw[17:20]}-{raw[20:32]}"
        out.append(
            Msg(
                "trade",
                "trade",
                m.ticker,
                ts,
                {
                    "trade_id": tid,
                    "yes_price": yes_price,
                    "count": count,
                    "taker": taker,
                },
            )
        )
        self.trades.append(
            {
                "trade_id": tid,
                "ticker": m.ticker,
                "yes_price": yes_price,
                "count": count,
                "taker": taker,
                "ts": ts,
            }
        )
        return out

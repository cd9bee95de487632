"""The generated universe: series, events and markets, deterministic from a seed and a start time.

Rolling 15-minute crypto markets and hourly strike ladders are created ahead of their
open time, open silently at `open_ts`, close, are determined and settled, and are
pruned a while after settlement so memory stays bounded. Long-lived markets of other
categories (sports, politics, economics, climate, mentions) fill the universe up to the
requested size. With `hostile=True` (scenario `hostile_tickers: true`) a series of
long-lived markets whose tickers are built to break whatever turns a ticker into a
subject, a path or a file name is added (HOSTILE_TICKERS).
"""

from __future__ import annotations

import heapq
import itertools
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from ssmd.sim.book import ONE, Book

__all__ = [
    "HOSTILE_SERIES",
    "HOSTILE_TICKERS",
    "Event",
    "Market",
    "Series",
    "Transition",
    "Universe",
]

WINDOW_15M = 900
HOUR = 3600
SETTLE_DELAY = 60  # seconds between determination and settlement
DETERMINE_DELAY = 6
PRUNE_AFTER = 1800  # settled markets stay visible (REST, truth) this long


@dataclass
class Series:
    ticker: str
    title: str
    category: str
    frequency: str
    tags: list[str]
    fee_type: str = "quadratic"
    fee_multiplier: float = 1.0


@dataclass
class Event:
    event_ticker: str
    series_ticker: str
    title: str
    sub_title: str
    mutually_exclusive: bool
    strike_date: int | None
    collateral_return_type: str = ""


@dataclass
class Market:
    ticker: str
    event_ticker: str
    series_ticker: str
    market_id: str
    title: str
    yes_sub_title: str
    no_sub_title: str
    created_ts: int
    open_ts: int
    close_ts: int
    strike_type: str
    floor_strike: float | None
    cap_strike: float | None
    price_level_structure: str
    fair: int
    status: str = "initialized"  # initialized, active, closed, determined, settled
    paused: bool = False
    result: str = ""
    determination_ts: int | None = None
    settled_ts: int | None = None
    updated_ts: int = 0
    book: Book = field(default_factory=Book)
    last_price: int | None = None
    last_trade_size: int = 0
    volume: int = 0  # 1e-2 contracts
    open_interest: int = 0
    dollar_volume: int = 0  # 1e-4 dollars * 1e-2 contracts / 100 -> tracked in 1e-6 dollars
    previous_price: int | None = None

    @property
    def tradable(self) -> bool:
        return self.status == "active" and not self.paused


@dataclass(frozen=True)
class Transition:
    """A scheduled change of the universe. `kind` is one of: create, open, close, determine,
    settle, prune, pause, resume, close_date_updated, metadata_updated."""

    ts: float
    kind: str
    ticker: str


EXCHANGE_TZ = ZoneInfo("America/New_York")  # Kalshi's tickers and titles use US Eastern time


def _tk(ts: float, fmt: str) -> str:
    """A ticker date/hour code in US Eastern time: `_tk(ts, "%y%b%d%H")` -> "26JUL2017"."""
    return datetime.fromtimestamp(ts, EXCHANGE_TZ).strftime(fmt).upper()


_COINS = {"BTC": 118_412.55, "ETH": 3_812.40, "SOL": 182.37}
_STATIC = [
    ("KXNBAGAME", "Sports", "Professional Basketball Game", "daily"),
    ("KXSENATE", "Politics", "Senate race winner", "custom"),
    ("KXFED", "Economics", "Fed funds target rate", "monthly"),
    ("KXHIGHNY", "Climate and Weather", "Highest temperature in NYC", "daily"),
    ("KXMENTIONEARNINGSCALL", "Mentions", "What will be said on the earnings call", "custom"),
]
_TEAMS = ["BOS", "LAL", "NYK", "GSW", "MIA", "DEN", "PHX", "DAL", "MIL", "CHI", "SAC", "BKN"]
_WORDS = [
    "ARTIFICIALGENERALINTELLIGENCEANDSUPERINTELLIGENCE",
    "DATACENTERCAPACITYEXPANSIONROADMAP",
    "TARIFFS",
    "SOVEREIGNAI",
]


HOSTILE_SERIES = "KXODDITY"
# Each one is trouble for some consumer of tickers; real Kalshi tickers are short,
# upper-case ASCII with '-' and '.', but nothing in the protocol promises that.
HOSTILE_TICKERS = (
    "KXODDITY-" + "VERYLONG" * 37,  # 305 characters: longer than a file name may be
    "KXODDITY-ÜBER-東京-€",  # non-ASCII
    "",  # empty
    "../../../etc/passwd",  # a relative path that climbs out
    "..",
    "KXODDITY/26JUL20/A",  # path separators
    "KXODDITY\\WIN",
    "KXODDITY.*.>",  # NATS token separator and wildcards
    ">",
    "KXODDITY WITH SPACE",
    "KXODDITY-100%",  # the escape character of subjects and key segments
)


class Universe:
    """All series, events and markets, and the schedule of their lifecycle transitions."""

    def __init__(
        self,
        seed: int,
        start: float,
        markets: int = 200,
        subpenny: bool = True,
        ladder_size: int = 8,
        hostile: bool = False,
    ) -> None:
        self.rng = random.Random(seed)
        self.start = start
        self.subpenny = subpenny
        self.ladder_size = ladder_size
        self.series: dict[str, Series] = {}
        self.events: dict[str, Event] = {}
        self.markets: dict[str, Market] = {}
        self._schedule: list[tuple[float, int, str, str]] = []
        self._order = itertools.count()
        self._build(markets)
        if hostile:
            self._create_hostile(start)

    # ---- ids and schedule -------------------------------------------------------------

    def new_uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _at(self, ts: float, kind: str, key: str) -> None:
        heapq.heappush(self._schedule, (ts, next(self._order), kind, key))

    def next_time(self) -> float | None:
        return self._schedule[0][0] if self._schedule else None

    def pop_due(self, now: float) -> Transition | None:
        """Apply and return the next transition due at or before `now` (None if none)."""
        if not self._schedule or self._schedule[0][0] > now:
            return None
        ts, _, kind, key = heapq.heappop(self._schedule)
        return self._apply(ts, kind, key)

    # ---- building ---------------------------------------------------------------------

    def _build(self, n_markets: int) -> None:
        t0 = self.start
        for coin in _COINS:
            self.series[f"KX{coin}15M"] = Series(
                f"KX{coin}15M",
                f"{coin} price up or down in 15 minutes",
                "Crypto",
                "fifteen_min",
                ["Crypto", coin],
            )
            self.series[f"KX{coin}D"] = Series(
                f"KX{coin}D",
                f"{coin} price at the top of the hour",
                "Crypto",
                "hourly",
                ["Crypto", coin],
            )
        for st, cat, title, freq in _STATIC:
            self.series[st] = Series(st, title, cat, freq, [cat])
        # Rolling 15-minute windows: the current one, the previous one (closing) and 4 ahead.
        w0 = int(t0 // WINDOW_15M) * WINDOW_15M
        for coin in _COINS:
            for k in range(-1, 5):
                self._create_15m(coin, w0 + k * WINDOW_15M, t0)
            self._at(w0 + WINDOW_15M, "roll15", coin)
        # Hourly ladders for BTC and ETH: the hour just closed, the current one and the
        # next one (listed ahead, so that it opens on the hour as the flow expects).
        h0 = int(t0 // HOUR) * HOUR
        for coin in ("BTC", "ETH"):
            for k in range(0, 3):
                self._create_ladder(coin, h0 + k * HOUR, t0)
            self._at(h0 + HOUR, "rollH", coin)
        # Long-lived markets up to the requested size.
        i = 0
        while len(self.markets) < n_markets:
            self._create_static(i, t0)
            i += 1

    def _add_market(self, m: Market, now: float) -> None:
        self.markets[m.ticker] = m
        m.updated_ts = int(now)
        if m.open_ts <= now < m.close_ts:
            m.status = "active"
        elif now >= m.close_ts:
            m.status = "closed"
        if m.status == "initialized":
            self._at(m.open_ts, "open", m.ticker)
        if m.close_ts > now:
            self._at(m.close_ts, "close", m.ticker)
        self._at(max(m.close_ts, now) + DETERMINE_DELAY, "determine", m.ticker)

    def _create_15m(self, coin: str, win_start: int, now: float) -> Market | None:
        series = f"KX{coin}15M"
        close = win_start + WINDOW_15M
        event_ticker = f"{series}-{_tk(close, '%y%b%d%H%M')}"
        if event_ticker in self.events:
            return None  # the repeated hour when daylight saving time ends: the code is taken
        strike = round(_COINS[coin] * (1 + self.rng.uniform(-0.002, 0.002)), 2)
        self.events[event_ticker] = Event(
            event_ticker,
            series,
            f"{coin} price up in next 15 mins?",
            datetime.fromtimestamp(close, EXCHANGE_TZ).strftime("%b %d, %H:%M ET"),
            False,
            close,
        )
        m = Market(
            ticker=f"{event_ticker}-{_tk(close, '%M')}",
            event_ticker=event_ticker,
            series_ticker=series,
            market_id=self.new_uuid(),
            title=f"{coin} price up in next 15 mins?",
            yes_sub_title=f"Target Price: ${strike:,.2f}",
            no_sub_title=f"Target Price: ${strike:,.2f}",
            created_ts=int(min(now, win_start - 2 * HOUR)),
            open_ts=win_start,
            close_ts=close,
            strike_type="greater_or_equal",
            floor_strike=strike,
            cap_strike=None,
            price_level_structure="tapered_deci_cent" if self.subpenny else "linear_cent",
            fair=self.rng.randrange(3500, 6500, 100),
        )
        self._add_market(m, now)
        return m

    def _create_ladder(self, coin: str, hour_close: int, now: float) -> list[Market]:
        series = f"KX{coin}D"
        event_ticker = f"{series}-{_tk(hour_close, '%y%b%d%H')}"
        if event_ticker in self.events:
            return []  # the repeated hour when daylight saving time ends: the code is taken
        self.events[event_ticker] = Event(
            event_ticker,
            series,
            f"{coin} price on {_tk(hour_close, '%b %d, %H:00')} ET?",
            "At the top of the hour",
            False,
            hour_close,
        )
        base = _COINS[coin]
        step = 250.0 if coin == "BTC" else 20.0
        centre = round(base / step) * step
        out = []
        for j in range(self.ladder_size):
            strike = centre + (j - self.ladder_size // 2) * step - 0.01
            m = Market(
                ticker=f"{event_ticker}-T{strike:.2f}",
                event_ticker=event_ticker,
                series_ticker=series,
                market_id=self.new_uuid(),
                title=f"{coin} price at {_tk(hour_close, '%H:00')} ET",
                yes_sub_title=f"${strike + 0.01:,.0f} or above",
                no_sub_title=f"${strike + 0.01:,.0f} or above",
                created_ts=int(min(now, hour_close - 2 * HOUR)),
                open_ts=hour_close - HOUR,
                close_ts=hour_close,
                strike_type="greater",
                floor_strike=strike,
                cap_strike=None,
                price_level_structure="linear_cent",
                fair=max(300, min(9700, 5000 - (j - self.ladder_size // 2) * 1100)) // 100 * 100,
            )
            self._add_market(m, now)
            out.append(m)
        return out

    def _create_static(self, i: int, now: float) -> None:
        kind = _STATIC[i % len(_STATIC)][0]
        t0 = int(now)
        close = t0 + 3 * 86_400 + 3600 * (i % 24)
        day = _tk(close, "%y%b%d")
        fair = self.rng.randrange(1000, 9000, 100)
        tickers: list[tuple[str, str, str]]  # (ticker suffix, yes_sub_title, strike info)
        if kind == "KXNBAGAME":
            a, b = _TEAMS[(2 * i) % len(_TEAMS)], _TEAMS[(2 * i + 1) % len(_TEAMS)]
            ev = f"{kind}-{day}{a}{b}{i}"
            tickers = [(a, f"{a} wins", ""), (b, f"{b} wins", "")]
            title, me = f"{a} vs {b}", True
        elif kind == "KXSENATE":
            ev = f"{kind}{['PA', 'GA', 'AZ', 'NV', 'WI', 'MI'][i % 6]}-26-{i}"
            tickers = [("D", "Democratic party", ""), ("R", "Republican party", "")]
            title, me = "Senate race winner", True
        elif kind == "KXFED":
            ev = f"{kind}-{_tk(close, '%y%b')}-{i}"
            tickers = [(f"T{r:.2f}", f"Above {r:.2f}%", "") for r in (3.75, 4.00, 4.25)]
            title, me = "Fed funds upper bound", False
        elif kind == "KXHIGHNY":
            ev = f"{kind}-{day}-{i}"
            tickers = [
                ("B85.5", "85 to 86", ""),
                ("B87.5", "87 to 88", ""),
                ("T88", "89 or above", ""),
            ]
            title, me = "Highest temperature in NYC", True
        else:
            ev = f"{kind}-{day}NVDA{i}"
            tickers = [(w, w.title(), "") for w in _WORDS[:2]]
            title, me = "Earnings call mentions", False
        self.events[ev] = Event(ev, kind, title, day, me, close)
        for suffix, sub, _ in tickers:
            m = Market(
                ticker=f"{ev}-{suffix}",
                event_ticker=ev,
                series_ticker=kind,
                market_id=self.new_uuid(),
                title=title,
                yes_sub_title=sub,
                no_sub_title=sub,
                created_ts=t0 - 86_400,
                open_ts=t0 - 86_400,
                close_ts=close,
                strike_type="custom" if me else "greater",
                floor_strike=None,
                cap_strike=None,
                price_level_structure="linear_cent",
                fair=fair,
            )
            self._add_market(m, now)
            fair = max(500, min(9500, ONE - fair + self.rng.randrange(-500, 500, 100)))
        if i % 7 == 3:  # a pause and resume, and a moved close date, on some markets
            first = f"{ev}-{tickers[0][0]}"
            self._at(now + 120 + i, "pause", first)
            self._at(now + 180 + i, "resume", first)
            self._at(now + 240 + i, "close_date_updated", first)

    def _create_hostile(self, now: float) -> None:
        """The HOSTILE_TICKERS markets: open, long-lived, one event, after everything else
        so that the rest of the universe is what the same seed makes without them."""
        t0 = int(now)
        close = t0 + 7 * 86_400
        ev = f"{HOSTILE_SERIES}-{_tk(close, '%y%b%d')}"
        self.series[HOSTILE_SERIES] = Series(
            HOSTILE_SERIES, "Markets with hostile tickers", "Oddities", "custom", ["Oddities"]
        )
        self.events[ev] = Event(ev, HOSTILE_SERIES, "Hostile tickers", "", False, close)
        for i, ticker in enumerate(HOSTILE_TICKERS):
            m = Market(
                ticker=ticker,
                event_ticker=ev,
                series_ticker=HOSTILE_SERIES,
                market_id=self.new_uuid(),
                title=f"Hostile ticker {i}",
                yes_sub_title=f"Hostile ticker {i}",
                no_sub_title=f"Hostile ticker {i}",
                created_ts=t0 - 86_400,
                open_ts=t0 - 86_400,
                close_ts=close,
                strike_type="custom",
                floor_strike=None,
                cap_strike=None,
                price_level_structure="linear_cent",
                fair=2000 + 500 * i,
            )
            self._add_market(m, now)

    # ---- transitions ------------------------------------------------------------------

    def _apply(self, ts: float, kind: str, key: str) -> Transition | None:
        if kind == "roll15":
            w = int(ts)
            self._at(w + WINDOW_15M, "roll15", key)
            m = self._create_15m(key, w + 4 * WINDOW_15M, ts)
            return None if m is None else Transition(ts, "create", m.ticker)
        if kind == "rollH":
            h = int(ts)
            self._at(h + HOUR, "rollH", key)
            ms = self._create_ladder(key, h + 2 * HOUR, ts)
            if not ms:
                return None
            for extra in ms[1:]:
                self._at(ts, "created", extra.ticker)
            return Transition(ts, "create", ms[0].ticker)
        if kind == "created":
            return Transition(ts, "create", key)
        found = self.markets.get(key)
        if found is None:
            return None
        m = found
        if kind in ("close", "determine") and ts < m.close_ts:
            return None  # superseded by a close_date_updated
        if kind == "determine" and m.status in ("determined", "settled"):
            return None
        m.updated_ts = int(ts)
        if kind == "open":
            m.status = "active"
        elif kind == "close":
            if m.status == "active":
                m.status = "closed"
        elif kind == "determine":
            m.status = "determined"
            yes = m.fair >= ONE // 2
            m.result = "yes" if yes else "no"
            m.determination_ts = int(ts)
            self._at(ts + SETTLE_DELAY, "settle", key)
        elif kind == "settle":
            m.status = "settled"
            m.settled_ts = int(ts)
            self._at(ts + PRUNE_AFTER, "prune", key)
        elif kind == "prune":
            del self.markets[key]
            ev = self.events.get(m.event_ticker)
            if ev is not None and not any(
                x.event_ticker == ev.event_ticker for x in self.markets.values()
            ):
                del self.events[ev.event_ticker]
        elif kind == "pause":
            m.paused = True
        elif kind == "resume":
            m.paused = False
        elif kind == "close_date_updated":
            m.close_ts += 3600
            self._at(m.close_ts, "close", key)
            self._at(m.close_ts + DETERMINE_DELAY, "determine", key)
        return Transition(ts, kind, key)

    def active(self) -> list[Market]:
        return [m for m in self.markets.values() if m.tradable]

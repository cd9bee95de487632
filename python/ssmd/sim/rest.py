"""REST under /trade-api/v2: markets, orderbooks, trades, events and series, era-consistent.

`RestApi.handle(path, query)` returns (status, JSON body). Rate limiting and the
scheduled 429 faults live in the server, in front of this.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from ssmd.sim.book import ONE, cents, price_str, size_str
from ssmd.sim.frames import rfc3339
from ssmd.sim.universe import Event, Market

if TYPE_CHECKING:
    from ssmd.sim.server import Simulator

__all__ = ["RestApi"]

BASE = "/trade-api/v2"
Query = dict[str, list[str]]
Response = tuple[int, bytes]

_FILTER_STATUS = {
    "unopened": {"initialized"},
    "open": {"active"},
    "paused": {"inactive"},
    "closed": {"closed", "determined"},
    "settled": {"settled"},
}
_RANGES = {
    "linear_cent": [{"start": "0.0000", "end": "1.0000", "step": "0.0100"}],
    "tapered_deci_cent": [
        {"start": "0.0000", "end": "0.1000", "step": "0.0010"},
        {"start": "0.1000", "end": "0.9000", "step": "0.0100"},
        {"start": "0.9000", "end": "1.0000", "step": "0.0010"},
    ],
}


class _BadRequest(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def iso(ts: float) -> str:
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _one(q: Query, name: str) -> str | None:
    v = q.get(name)
    return v[-1] if v else None


def _int(q: Query, name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = _one(q, name)
    if raw is None or raw == "":
        return default
    try:
        v = int(raw)
    except ValueError:
        raise _BadRequest(400, "invalid_parameters", f"{name} must be an integer") from None
    if not lo <= v <= hi:
        raise _BadRequest(400, "invalid_parameters", f"{name} must be between {lo} and {hi}")
    return v


def _cursor_in(q: Query, kind: str) -> int:
    raw = _one(q, "cursor")
    if not raw:
        return 0
    try:
        data = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        if data["k"] != kind:
            raise ValueError
        return int(data["o"])
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise _BadRequest(400, "invalid_parameters", "invalid cursor") from None


def _cursor_out(kind: str, offset: int, total: int) -> str:
    if offset >= total:
        return ""
    return base64.urlsafe_b64encode(orjson.dumps({"k": kind, "o": offset})).decode().rstrip("=")


def _trade_cursor_in(q: Query) -> str | None:
    """The trade id a trades cursor continues after; None for the first page."""
    raw = _one(q, "cursor")
    if not raw:
        return None
    try:
        data = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        if data["k"] != "trades" or not isinstance(data["after"], str):
            raise ValueError
        return str(data["after"])
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        raise _BadRequest(400, "invalid_parameters", "invalid cursor") from None


def _trade_cursor_out(after: str) -> str:
    return (
        base64.urlsafe_b64encode(orjson.dumps({"k": "trades", "after": after})).decode().rstrip("=")
    )


def _page(items: list[Any], q: Query, kind: str, default: int, cap: int) -> tuple[list[Any], str]:
    limit = _int(q, "limit", default, 1, cap)
    assert limit is not None
    start = _cursor_in(q, kind)
    page = items[start : start + limit]
    return page, _cursor_out(kind, start + limit, len(items))


class RestApi:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    @property
    def era(self) -> str:
        return self.sim.era

    def handle(self, path: str, q: Query) -> Response:
        if not path.startswith(BASE + "/"):
            return 404, orjson.dumps({"error": {"code": "not_found", "message": "not found"}})
        parts = path[len(BASE) + 1 :].rstrip("/").split("/")
        routes: dict[tuple[str, ...], Callable[[Query], Any]] = {
            ("markets",): self.markets,
            ("markets", "trades"): self.trades,
            ("events",): self.events,
            ("series",): self.series_list,
            ("exchange", "status"): lambda _q: {"exchange_active": True, "trading_active": True},
        }
        try:
            fn = routes.get(tuple(parts))
            if fn is not None:
                body = fn(q)
            elif len(parts) == 2 and parts[0] == "markets":
                body = {"market": self.market_json(self._market(parts[1]))}
            elif len(parts) == 3 and parts[0] == "markets" and parts[2] == "orderbook":
                body = self.orderbook(self._market(parts[1]), q)
            elif len(parts) == 2 and parts[0] == "events":
                body = self.event(parts[1], q)
            elif len(parts) == 2 and parts[0] == "series":
                s = self.sim.universe.series.get(parts[1])
                if s is None:
                    raise _BadRequest(404, "not_found", "series not found")
                body = {"series": self.series_json(s.ticker, q)}
            else:
                raise _BadRequest(404, "not_found", "not found")
        except _BadRequest as exc:
            return exc.status, orjson.dumps({"error": {"code": exc.code, "message": exc.message}})
        return 200, orjson.dumps(body)

    def _market(self, ticker: str) -> Market:
        m = self.sim.universe.markets.get(ticker)
        if m is None:
            raise _BadRequest(404, "market_not_found", "market not found")
        return m

    # ---- markets ----------------------------------------------------------------------

    def status_of(self, m: Market) -> str:
        if m.paused and m.status == "active":
            return "inactive" if self.era == "C" else "active"
        return m.status

    def market_json(self, m: Market) -> dict[str, Any]:
        era = self.era
        yb, nb = m.book.best("yes"), m.book.best("no")
        bid = yb[0] if yb else 0
        ask = ONE - nb[0] if nb else ONE
        last = m.last_price or 0
        sv = (ONE if m.result == "yes" else 0) if m.result else None
        out: dict[str, Any] = {
            "ticker": m.ticker,
            "event_ticker": m.event_ticker,
            "market_type": "binary",
            "title": m.title,
            "subtitle": "",
            "yes_sub_title": m.yes_sub_title,
            "no_sub_title": m.no_sub_title,
            "created_time": iso(m.created_ts),
            "updated_time": iso(m.updated_ts),
            "open_time": iso(m.open_ts),
            "close_time": iso(m.close_ts),
            "expected_expiration_time": iso(m.close_ts + 300),
            "expiration_time": iso(m.close_ts + 7 * 86_400),
            "latest_expiration_time": iso(m.close_ts + 7 * 86_400),
            "settlement_timer_seconds": 60,
            "status": self.status_of(m),
        }
        if era in ("A", "B"):
            out.update(
                {
                    "response_price_units": "usd_cent",
                    "yes_bid": cents(bid),
                    "yes_ask": cents(ask),
                    "no_bid": cents(ONE - ask),
                    "no_ask": cents(ONE - bid),
                    "last_price": cents(last),
                    "volume": m.volume // 100,
                    "volume_24h": m.volume // 100,
                    "open_interest": m.open_interest // 100,
                    "notional_value": 100,
                    "previous_yes_bid": cents(bid),
                    "previous_yes_ask": cents(ask),
                    "previous_price": cents(last),
                    "liquidity": 0,
                    "category": self.sim.universe.series[m.series_ticker].category,
                    "risk_limit_cents": 0,
                    "tick_size": 1,
                }
            )
            if sv is not None:
                out["settlement_value"] = sv // 100
        if era in ("B", "C"):
            out.update(
                {
                    "yes_bid_dollars": price_str(bid),
                    "yes_bid_size_fp": size_str(yb[1] if yb else 0),
                    "yes_ask_dollars": price_str(ask),
                    "yes_ask_size_fp": size_str(nb[1] if nb else 0),
                    "no_bid_dollars": price_str(ONE - ask),
                    "no_ask_dollars": price_str(ONE - bid),
                    "last_price_dollars": price_str(last),
                    "volume_fp": size_str(m.volume),
                    "volume_24h_fp": size_str(m.volume),
                    "open_interest_fp": size_str(m.open_interest),
                    "notional_value_dollars": "1.0000",
                    "previous_yes_bid_dollars": price_str(bid),
                    "previous_yes_ask_dollars": price_str(ask),
                    "previous_price_dollars": price_str(last),
                    "liquidity_dollars": "0.0000",
                }
            )
            if sv is not None:
                out["settlement_value_dollars"] = price_str(sv)
        out.update(
            {
                "result": m.result,
                "can_close_early": False,
                "fractional_trading_enabled": era == "C",
                "expiration_value": "",
                "strike_type": m.strike_type,
                "rules_primary": f"If {m.yes_sub_title}, resolves Yes.",
                "rules_secondary": "",
                "price_level_structure": m.price_level_structure,
                "price_ranges": _RANGES[m.price_level_structure],
            }
        )
        if m.floor_strike is not None:
            out["floor_strike"] = m.floor_strike
        if m.settled_ts is not None:
            out["settlement_ts"] = iso(m.settled_ts)
        return out

    def markets(self, q: Query) -> dict[str, Any]:
        u = self.sim.universe
        status = _one(q, "status")
        if status is not None and status not in _FILTER_STATUS:
            raise _BadRequest(
                400,
                "invalid_parameters",
                "status must be one of unopened, open, paused, closed, settled",
            )
        groups = {
            "created": ("min_created_ts", "max_created_ts"),
            "close": ("min_close_ts", "max_close_ts"),
            "settled": ("min_settled_ts", "max_settled_ts"),
            "updated": ("min_updated_ts", "max_updated_ts"),
        }
        used = {g for g, names in groups.items() if any(_one(q, n) for n in names)}
        allowed: dict[str, set[str | None]] = {
            "created": {None, "unopened", "open"},
            "close": {None, "closed"},
            "settled": {None, "settled"},
            "updated": {None},
        }
        if len(used) > 1 or any(status not in allowed[g] for g in used):
            raise _BadRequest(
                400,
                "invalid_parameters",
                "timestamp filters are mutually exclusive and restrict status",
            )
        bounds = {n: _int(q, n, None, 0, 2**42) for names in groups.values() for n in names}
        ev, series = _one(q, "event_ticker"), _one(q, "series_ticker")
        tickers = {t for v in q.get("tickers", []) for t in v.split(",") if t}
        wanted = _FILTER_STATUS.get(status or "")

        def keep(m: Market) -> bool:
            if (ev and m.event_ticker != ev) or (series and m.series_ticker != series):
                return False
            if tickers and m.ticker not in tickers:
                return False
            if (
                wanted is not None
                and self.status_of(m) not in wanted
                and not (status == "open" and m.status == "active")
            ):
                return False
            for field, val in (
                ("created", m.created_ts),
                ("close", m.close_ts),
                ("settled", m.settled_ts),
                ("updated", m.updated_ts),
            ):
                lo, hi = bounds[groups[field][0]], bounds[groups[field][1]]
                if (lo is not None or hi is not None) and val is None:
                    return False
                if (lo is not None and val is not None and val < lo) or (
                    hi is not None and val is not None and val > hi
                ):
                    return False
            return True

        items = sorted((m for m in u.markets.values() if keep(m)), key=lambda m: m.ticker)
        page, cursor = _page(items, q, "markets", 100, 1000)
        return {"markets": [self.market_json(m) for m in page], "cursor": cursor}

    def orderbook(self, m: Market, q: Query) -> dict[str, Any]:
        depth = _int(q, "depth", 0, 0, 100) or 0

        def side(s: str) -> list[tuple[int, int]]:
            lv = m.book.levels(s)
            return lv[-depth:] if depth else lv

        fp = {
            s + "_dollars": [[price_str(p), size_str(n)] for p, n in side(s)] for s in ("yes", "no")
        }
        if self.era == "C":
            return {"orderbook_fp": fp}
        legacy: dict[str, Any] = {
            s: [[cents(p), n // 100] for p, n in side(s)] for s in ("yes", "no")
        }
        if self.era == "B":
            legacy.update(fp)
            return {"orderbook": legacy, "orderbook_fp": fp}
        return {"orderbook": legacy}

    def trades(self, q: Query) -> dict[str, Any]:
        """`GET /markets/trades`: newest first, `ticker`, `min_ts`/`max_ts` (Unix seconds,
        inclusive), `limit` 1..1000 (default 100). The cursor names the last trade given,
        so pages hold still while new trades come in."""
        ticker = _one(q, "ticker")
        lo = _int(q, "min_ts", None, 0, 2**42)
        hi = _int(q, "max_ts", None, 0, 2**42)
        limit = _int(q, "limit", 100, 1, 1000)
        assert limit is not None
        after = _trade_cursor_in(q)
        items = [
            t
            for t in reversed(self.sim.flow.trades)
            if (not ticker or t["ticker"] == ticker)
            and (lo is None or t["ts"] >= lo)
            and (hi is None or t["ts"] <= hi)
        ]
        if after is not None:
            at = next((i for i, t in enumerate(items) if t["trade_id"] == after), None)
            if at is None:
                raise _BadRequest(400, "invalid_parameters", "invalid cursor")
            items = items[at + 1 :]
        page = items[:limit]
        cursor = _trade_cursor_out(page[-1]["trade_id"]) if len(items) > limit else ""
        era = self.era
        out = []
        for t in page:
            yp, n = t["yes_price"], t["count"]
            d: dict[str, Any] = {"trade_id": t["trade_id"], "ticker": t["ticker"]}
            if era in ("A", "B"):
                d.update(
                    {
                        "price": cents(yp),
                        "count": n // 100,
                        "yes_price": cents(yp),
                        "no_price": cents(ONE - yp),
                    }
                )
            if era in ("B", "C"):
                d.update(
                    {
                        "count_fp": size_str(n),
                        "yes_price_dollars": price_str(yp),
                        "no_price_dollars": price_str(ONE - yp),
                    }
                )
            d["taker_side"] = t["taker"]
            if era == "C":
                d.update(
                    {
                        "taker_outcome_side": t["taker"],
                        "taker_book_side": "bid" if t["taker"] == "yes" else "ask",
                        "is_block_trade": False,
                    }
                )
            d["created_time"] = rfc3339(t["ts"])
            out.append(d)
        return {"trades": out, "cursor": cursor}

    # ---- events and series ------------------------------------------------------------

    def event_json(self, e: Event, nested: bool) -> dict[str, Any]:
        u = self.sim.universe
        out: dict[str, Any] = {
            "event_ticker": e.event_ticker,
            "series_ticker": e.series_ticker,
            "sub_title": e.sub_title,
            "title": e.title,
            "collateral_return_type": e.collateral_return_type,
            "mutually_exclusive": e.mutually_exclusive,
            "category": u.series[e.series_ticker].category,
            "available_on_brokers": True,
            "product_metadata": None,
        }
        if e.strike_date is not None:
            out["strike_date"] = iso(e.strike_date)
        if nested:
            out["markets"] = [self.market_json(m) for m in self._event_markets(e.event_ticker)]
        return out

    def _event_markets(self, event_ticker: str) -> list[Market]:
        return sorted(
            (m for m in self.sim.universe.markets.values() if m.event_ticker == event_ticker),
            key=lambda m: m.ticker,
        )

    def events(self, q: Query) -> dict[str, Any]:
        u = self.sim.universe
        status = _one(q, "status")
        if status is not None and status not in ("unopened", "open", "closed", "settled"):
            raise _BadRequest(
                400, "invalid_parameters", "status must be one of unopened, open, closed, settled"
            )
        series = _one(q, "series_ticker")
        nested = (_one(q, "with_nested_markets") or "").lower() == "true"
        wanted = _FILTER_STATUS.get(status or "")
        items = []
        for e in sorted(u.events.values(), key=lambda e: e.event_ticker):
            if series and e.series_ticker != series:
                continue
            if wanted is not None and not any(
                m.status in wanted for m in self._event_markets(e.event_ticker)
            ):
                continue
            items.append(e)
        page, cursor = _page(items, q, "events", 200, 200)
        return {"events": [self.event_json(e, nested) for e in page], "cursor": cursor}

    def event(self, ticker: str, q: Query) -> dict[str, Any]:
        e = self.sim.universe.events.get(ticker)
        if e is None:
            raise _BadRequest(404, "not_found", "event not found")
        nested = (_one(q, "with_nested_markets") or "").lower() == "true"
        return {
            "event": self.event_json(e, nested),
            "markets": [self.market_json(m) for m in self._event_markets(ticker)],
        }

    def series_json(self, ticker: str, q: Query) -> dict[str, Any]:
        s = self.sim.universe.series[ticker]
        out: dict[str, Any] = {
            "ticker": s.ticker,
            "frequency": s.frequency,
            "title": s.title,
            "category": s.category,
            "tags": s.tags,
            "settlement_sources": [
                {"name": "Simulated source", "url": "https://example.invalid/source"}
            ],
            "contract_url": "https://example.invalid/contract.pdf",
            "contract_terms_url": "https://example.invalid/terms.pdf",
            "product_metadata": None,
            "fee_type": s.fee_type,
            "fee_multiplier": s.fee_multiplier,
            "additional_prohibitions": [],
        }
        if (_one(q, "include_volume") or "").lower() == "true":
            vol = sum(
                m.volume for m in self.sim.universe.markets.values() if m.series_ticker == s.ticker
            )
            if self.era == "C":
                out["volume_fp"] = size_str(vol)
            else:
                out["volume"] = vol // 100
        return out

    def series_list(self, q: Query) -> dict[str, Any]:
        cat = _one(q, "category")
        tags = {t for v in q.get("tags", []) for t in v.split(",") if t}
        out = []
        for t, s in sorted(self.sim.universe.series.items()):
            if (cat and s.category != cat) or (tags and not tags & set(s.tags)):
                continue
            out.append(self.series_json(t, q))
        return {"series": out}

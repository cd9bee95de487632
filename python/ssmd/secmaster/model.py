"""Kalshi REST objects (series, events, markets) to rows of the secmaster tables; the
other venues map their listings to market rows in their own folders
(ssmd.venues.<name>.markets).

Every value stored is text, an integer or null, never a float: prices and sizes are
integers in 1e-6 units, strikes are exact decimal text, times are ISO-8601 UTC text.
A value that cannot be read becomes null and is counted (`Problems`), never 0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import orjson

from ssmd.secmaster.status import map_status

__all__ = [
    "EVENT_FIELDS",
    "MARKET_FIELDS",
    "QUOTE_FIELDS",
    "SERIES_FIELDS",
    "Problems",
    "Value",
    "event_row",
    "iso_from_ns",
    "iso_from_seconds",
    "iso_time",
    "market_row",
    "now_iso",
    "series_of_ticker",
    "series_row",
    "to_e6",
]

Value = str | int | None
Row = dict[str, Value]

SERIES_FIELDS: Final = (
    "title",
    "category",
    "frequency",
    "tags",
    "fee_type",
    "fee_multiplier",
    "settlement_sources",
    "contract_url",
    "contract_terms_url",
)
EVENT_FIELDS: Final = (
    "series_ticker",
    "title",
    "sub_title",
    "category",
    "mutually_exclusive",
    "collateral_return_type",
    "strike_date",
    "strike_period",
)
# Reference data: every change is a market_history row and a journal entry.
MARKET_FIELDS: Final = (
    "venue",
    "venue_id",
    "event_ticker",
    "series_ticker",
    "category",
    "market_type",
    "title",
    "subtitle",
    "yes_sub_title",
    "no_sub_title",
    "status",
    "status_text",
    "open_time",
    "close_time",
    "expected_expiration_time",
    "expiration_time",
    "latest_expiration_time",
    "determination_time",
    "settlement_time",
    "created_time",
    "result",
    "settlement_value_e6",
    "can_close_early",
    "fractional_trading_enabled",
    "strike_type",
    "floor_strike",
    "cap_strike",
    "functional_strike",
    "custom_strike",
    "price_level_structure",
    "price_ranges",
    "rules_primary",
    "rules_secondary",
    "price_decimals",
    "size_decimals",
    "tick_size",
    "min_order_size",
    "venue_fields",
)
# Market data as of the sync: stored for convenience, updated without history or journal
# (the connector's stream is the record of prices; a history row per tick would swamp it).
QUOTE_FIELDS: Final = (
    "yes_bid_e6",
    "yes_ask_e6",
    "no_bid_e6",
    "no_ask_e6",
    "last_price_e6",
    "volume_e6",
    "volume_24h_e6",
    "open_interest_e6",
    "notional_value_e6",
    "venue_updated_time",
)

_E6: Final = Decimal(1_000_000)


@dataclass
class Problems:
    """Fields that could not be read, by name (the value was stored as null)."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def now_iso() -> str:
    return _fmt(datetime.now(UTC))


def _fmt(dt: datetime) -> str:
    dt = dt.astimezone(UTC)
    if dt.microsecond:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_from_seconds(ts: float) -> str:
    return _fmt(datetime.fromtimestamp(ts, UTC))


def iso_from_ns(ns: int | None) -> str | None:
    """Normalized records carry UTC nanoseconds; 0 or None means absent."""
    if not ns:
        return None
    return _fmt(
        datetime.fromtimestamp(ns // 1_000_000_000, UTC).replace(
            microsecond=(ns % 1_000_000_000) // 1000
        )
    )


def iso_time(value: Any, name: str = "", problems: Problems | None = None) -> str | None:
    """RFC 3339 text or Unix seconds to canonical UTC text; None when absent or unreadable."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, bool):
            raise ValueError(value)
        if isinstance(value, int | float):
            return iso_from_seconds(float(value))
        if isinstance(value, str):
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
            return _fmt(dt)
    except (ValueError, OverflowError, OSError):
        pass
    if problems is not None:
        problems.add(name)
    return None


def to_e6(
    value: Any, name: str = "", problems: Problems | None = None, scale: int = 1
) -> int | None:
    """An exact decimal (string "0.9990", or an integer in units of 1/scale) in 1e-6 units."""
    if value is None or value == "":
        return None
    try:
        if isinstance(value, bool):
            raise ValueError(value)
        if isinstance(value, int):
            d = Decimal(value) / scale
        elif isinstance(value, str):
            d = Decimal(value.strip())
        elif isinstance(value, float):
            d = Decimal(repr(value))
        else:
            raise ValueError(value)
        out = d * _E6
        if not out.is_finite() or out != out.to_integral_value():
            raise ValueError(value)
        return int(out)
    except (InvalidOperation, ValueError):
        if problems is not None:
            problems.add(name)
        return None


def _number_text(value: Any, name: str, problems: Problems | None) -> str | None:
    """A JSON number (strike) as exact decimal text: 119999.99 -> "119999.99"."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        if problems is not None:
            problems.add(name)
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        try:
            Decimal(value)
            return value
        except InvalidOperation:
            pass
    if problems is not None:
        problems.add(name)
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _flag(value: Any) -> int | None:
    if isinstance(value, bool):
        return int(value)
    return None


def series_of_ticker(ticker: str) -> str:
    """The series part of an event or market ticker (KXBTCD-26JUL2017-T1 -> KXBTCD)."""
    return ticker.split("-", 1)[0]


def series_row(s: Mapping[str, Any]) -> Row:
    return {
        "ticker": str(s["ticker"]),
        "title": _text(s.get("title")),
        "category": _text(s.get("category")),
        "frequency": _text(s.get("frequency")),
        "tags": _text(s.get("tags")),
        "fee_type": _text(s.get("fee_type")),
        "fee_multiplier": _number_text(s.get("fee_multiplier"), "fee_multiplier", None),
        "settlement_sources": _text(s.get("settlement_sources")),
        "contract_url": _text(s.get("contract_url")),
        "contract_terms_url": _text(s.get("contract_terms_url")),
    }


def event_row(e: Mapping[str, Any]) -> Row:
    sub = e.get("sub_title", e.get("subtitle"))
    strike = e.get("strike_date")
    return {
        "event_ticker": str(e["event_ticker"]),
        "series_ticker": _text(e.get("series_ticker")),
        "title": _text(e.get("title")),
        "sub_title": _text(sub),
        "category": _text(e.get("category")),
        "mutually_exclusive": _flag(e.get("mutually_exclusive")),
        "collateral_return_type": _text(e.get("collateral_return_type")),
        "strike_date": iso_time(strike),
        "strike_period": _text(e.get("strike_period")),
    }


_CENT_FIELDS: Final = {  # era A/B integer cents, used when the *_dollars string is absent
    "yes_bid_e6": ("yes_bid_dollars", "yes_bid"),
    "yes_ask_e6": ("yes_ask_dollars", "yes_ask"),
    "no_bid_e6": ("no_bid_dollars", "no_bid"),
    "no_ask_e6": ("no_ask_dollars", "no_ask"),
    "last_price_e6": ("last_price_dollars", "last_price"),
    "notional_value_e6": ("notional_value_dollars", "notional_value"),
}
_COUNT_FIELDS: Final = {
    "volume_e6": ("volume_fp", "volume"),
    "volume_24h_e6": ("volume_24h_fp", "volume_24h"),
    "open_interest_e6": ("open_interest_fp", "open_interest"),
}


def market_row(m: Mapping[str, Any], problems: Problems | None = None) -> Row:
    """A Kalshi Market object (any era) as a `markets` row without series_ticker/category.

    The caller fills `series_ticker` and `category` from the market's event and series
    (era-C markets carry neither).
    """
    status_word = m.get("status")
    row: Row = {
        "ticker": str(m["ticker"]),
        "venue": "kalshi",
        "venue_id": _text(m.get("id", m.get("market_id"))),
        "event_ticker": _text(m.get("event_ticker")),
        "series_ticker": _text(m.get("series_ticker")),
        "category": None,
        "market_type": _text(m.get("market_type")),
        "title": _text(m.get("title")),
        "subtitle": _text(m.get("subtitle")) or None,
        "yes_sub_title": _text(m.get("yes_sub_title")),
        "no_sub_title": _text(m.get("no_sub_title")),
        "status": map_status(status_word),
        "status_text": _text(status_word),
        "result": _text(m.get("result")) or None,
        "can_close_early": _flag(m.get("can_close_early")),
        "fractional_trading_enabled": _flag(m.get("fractional_trading_enabled")),
        "strike_type": _text(m.get("strike_type")),
        "floor_strike": _number_text(m.get("floor_strike"), "floor_strike", problems),
        "cap_strike": _number_text(m.get("cap_strike"), "cap_strike", problems),
        "functional_strike": _text(m.get("functional_strike")),
        "custom_strike": _text(m.get("custom_strike")),
        "price_level_structure": _text(m.get("price_level_structure")),
        "price_ranges": _text(m.get("price_ranges")),
        "rules_primary": _text(m.get("rules_primary")),
        "rules_secondary": _text(m.get("rules_secondary")),
    }
    for name, key in (
        ("open_time", "open_time"),
        ("close_time", "close_time"),
        ("expected_expiration_time", "expected_expiration_time"),
        ("expiration_time", "expiration_time"),
        ("latest_expiration_time", "latest_expiration_time"),
        ("settlement_time", "settlement_ts"),
        ("created_time", "created_time"),
        ("venue_updated_time", "updated_time"),
    ):
        row[name] = iso_time(m.get(key), name, problems)
    sv = m.get("settlement_value_dollars")
    if sv is not None and sv != "":
        row["settlement_value_e6"] = to_e6(sv, "settlement_value_dollars", problems)
    elif isinstance(m.get("settlement_value"), int):
        row["settlement_value_e6"] = to_e6(m["settlement_value"], "settlement_value", problems, 100)
    else:
        row["settlement_value_e6"] = None
    for col, (new, old) in _CENT_FIELDS.items():
        if m.get(new) not in (None, ""):
            row[col] = to_e6(m.get(new), new, problems)
        else:
            row[col] = (
                to_e6(m.get(old), old, problems, 100) if isinstance(m.get(old), int) else None
            )
    for col, (new, old) in _COUNT_FIELDS.items():
        if m.get(new) not in (None, ""):
            row[col] = to_e6(m.get(new), new, problems)
        else:
            row[col] = to_e6(m.get(old), old, problems) if isinstance(m.get(old), int) else None
    # Outcome fields REST may not carry yet (it lags the WebSocket): absent, not null, so a
    # sync never erases what a lifecycle event already recorded.
    for sticky in ("result", "settlement_value_e6", "settlement_time"):
        if row[sticky] is None:
            del row[sticky]
    return row

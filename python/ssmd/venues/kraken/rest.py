"""Kraken's public pair listing (`GET /0/public/AssetPairs`), for symbol discovery.

The answer is `{"error": [...], "result": {"<pair key>": {...}}}`: a non-empty `error`
list is the venue's refusal. Pair keys are legacy codes (`XXBTZUSD`); `wsname` is the
v1 WebSocket name (`XBT/USD`), which WebSocket v2 spells with `BTC` (and `DOGE` for
`XDG`). `pair_decimals` and `lot_decimals` are the price and quantity precisions the
book checksum is computed at. Dark-pool pairs (`.d`) carry no public book and are left
out. Rows that cannot be read are skipped and counted, never guessed: `Listing.skipped`
says why.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from ssmd.exceptions import RestError

__all__ = ["KrPair", "Listing", "list_pairs", "parse_pair", "v2_symbol"]

log = logging.getLogger(__name__)

ASSET_PAIRS = "/0/public/AssetPairs"
# v1 asset codes that WebSocket v2 spells differently.
V2_ASSETS = {"XBT": "BTC", "XDG": "DOGE"}


@dataclass(frozen=True)
class KrPair:
    key: str  # the REST pair key, e.g. XXBTZUSD
    symbol: str  # the WebSocket v2 symbol, e.g. BTC/USD
    altname: str
    base: str
    quote: str
    status: str
    price_decimals: int  # pair_decimals
    qty_decimals: int  # lot_decimals
    tick_size: str
    ordermin: str

    @property
    def tradable(self) -> bool:
        return self.status == "online"


@dataclass
class Listing:
    pairs: list[KrPair] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)


def v2_symbol(wsname: str) -> str:
    """The v2 spelling of a v1 `wsname` (XBT/USD -> BTC/USD)."""
    base, _, quote = wsname.partition("/")
    return f"{V2_ASSETS.get(base, base)}/{V2_ASSETS.get(quote, quote)}"


def _decimals(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 18:
        return None
    return value


def parse_pair(key: str, row: Any) -> KrPair | str:
    """One AssetPairs entry, or why it was skipped."""
    if not isinstance(row, dict):
        return "not an object"
    if key.endswith(".d"):
        return "dark pool"
    wsname = row.get("wsname")
    if not isinstance(wsname, str) or wsname.count("/") != 1:
        return "no wsname"
    price_decimals = _decimals(row.get("pair_decimals"))
    qty_decimals = _decimals(row.get("lot_decimals"))
    if price_decimals is None or qty_decimals is None:
        return "pair_decimals or lot_decimals unreadable"
    return KrPair(
        key=key,
        symbol=v2_symbol(wsname),
        altname=str(row.get("altname") or ""),
        base=str(row.get("base") or ""),
        quote=str(row.get("quote") or ""),
        status=str(row.get("status") or "online"),
        price_decimals=price_decimals,
        qty_decimals=qty_decimals,
        tick_size=str(row.get("tick_size") or ""),
        ordermin=str(row.get("ordermin") or ""),
    )


async def _get(client: httpx.AsyncClient, url: str, retries: int) -> Any:
    delay = 0.5
    why = ""
    for attempt in range(retries + 1):
        try:
            resp = await client.get(url)
        except httpx.HTTPError as exc:
            why = f"{exc!r}"
        else:
            if resp.status_code == 200:
                try:
                    return orjson.loads(resp.content)
                except orjson.JSONDecodeError as exc:
                    raise RestError(f"GET {url}: not JSON: {exc}") from None
            why = f"HTTP {resp.status_code}"
            if resp.status_code not in (429, 500, 502, 503, 504):
                raise RestError(f"GET {url}: {why}: {resp.text[:200]}")
        if attempt < retries:
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 30.0)
    raise RestError(f"GET {url}: {why} after {retries + 1} attempts")


async def list_pairs(
    rest_url: str, *, client: httpx.AsyncClient | None = None, retries: int = 5
) -> Listing:
    """Every pair of the listing (one request: the venue does not page it)."""
    own = client is None
    http = client or httpx.AsyncClient(timeout=30.0)
    url = rest_url.rstrip("/") + ASSET_PAIRS
    try:
        body = await _get(http, url, retries)
    finally:
        if own:
            await http.aclose()
    if not isinstance(body, dict):
        raise RestError(f"GET {url}: expected a JSON object, got {type(body).__name__}")
    errors = body.get("error")
    if errors:
        raise RestError(f"GET {url}: the venue answered {errors}")
    result = body.get("result")
    if not isinstance(result, dict):
        raise RestError(f"GET {url}: no result object")
    out = Listing()
    for key, row in result.items():
        parsed = parse_pair(str(key), row)
        if isinstance(parsed, str):
            out.skipped[parsed] = out.skipped.get(parsed, 0) + 1
        else:
            out.pairs.append(parsed)
    if out.skipped:
        log.warning("pair listing: skipped %s", out.skipped)
    return out

"""Polymarket's public market listing (Gamma `GET /markets`), for market discovery.

Gamma pages with `limit` (silently capped at 100) and `offset` (beyond 10,000 it answers
422); `closed` defaults to false. `clobTokenIds` and `outcomes` are strings that hold a
JSON array (index-aligned: token i belongs to outcome i). A market is on the order book
when `enableOrderBook` is true. Rows that cannot be read are skipped and counted, never
guessed: `Listing.skipped` says why.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from ssmd.exceptions import RestError

__all__ = ["GAMMA_MAX_OFFSET", "GAMMA_PAGE", "Listing", "PmMarket", "list_markets"]

log = logging.getLogger(__name__)

GAMMA_PAGE = 100
GAMMA_MAX_OFFSET = 10_000


@dataclass(frozen=True)
class PmMarket:
    condition_id: str
    gamma_id: str
    question: str
    slug: str
    tokens: tuple[str, ...]  # clobTokenIds, index-aligned with outcomes
    outcomes: tuple[str, ...]
    active: bool
    closed: bool
    order_book: bool
    neg_risk: bool
    min_order_size: str  # as the book hash writes it
    tick_size: str
    end_date: str = ""  # endDate as Gamma writes it (ISO-8601), "" when absent
    category: str = ""

    @property
    def tradable(self) -> bool:
        return self.active and not self.closed and self.order_book


@dataclass
class Listing:
    markets: list[PmMarket] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)
    complete: bool = True  # False: stopped at max_markets or at Gamma's last offset
    requests: int = 0


def _json_list(value: Any) -> list[Any] | None:
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        try:
            parsed = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
        return parsed if isinstance(parsed, list) else None
    return None


def _number_text(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def parse_market(row: Any) -> PmMarket | str:
    """One Gamma market, or why it was skipped."""
    if not isinstance(row, dict):
        return "not an object"
    cid = row.get("conditionId")
    if not isinstance(cid, str) or not cid:
        return "no conditionId"
    tokens = _json_list(row.get("clobTokenIds"))
    if not tokens or not all(isinstance(t, str) and t for t in tokens):
        return "clobTokenIds unreadable"
    outcomes = _json_list(row.get("outcomes")) or []
    return PmMarket(
        condition_id=cid,
        gamma_id=str(row.get("id", "")),
        question=str(row.get("question") or ""),
        slug=str(row.get("slug") or ""),
        tokens=tuple(tokens),
        outcomes=tuple(str(o) for o in outcomes),
        active=row.get("active") is True,
        closed=row.get("closed") is True,
        order_book=row.get("enableOrderBook") is True,
        neg_risk=row.get("negRisk") is True,
        min_order_size=_number_text(row.get("orderMinSize")),
        tick_size=_number_text(row.get("orderPriceMinTickSize")),
        end_date=str(row.get("endDate") or ""),
        category=str(row.get("category") or ""),
    )


async def _get(client: httpx.AsyncClient, url: str, params: dict[str, Any], retries: int) -> Any:
    delay = 0.5
    for attempt in range(retries + 1):
        try:
            resp = await client.get(url, params=params)
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
                raise RestError(f"GET {url} {params}: {why}: {resp.text[:200]}")
        if attempt < retries:
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 30.0)
    raise RestError(f"GET {url} {params}: {why} after {retries + 1} attempts")


async def list_markets(
    rest_url: str,
    *,
    closed: bool = False,
    condition_ids: Sequence[str] = (),
    max_markets: int | None = None,
    client: httpx.AsyncClient | None = None,
    retries: int = 5,
) -> Listing:
    """Every market of the listing (open ones unless `closed`; only those of
    `condition_ids`, at most 100, when given), page by page."""
    if len(condition_ids) > GAMMA_PAGE:
        raise ValueError(f"at most {GAMMA_PAGE} condition ids per listing")
    own = client is None
    http = client or httpx.AsyncClient(timeout=30.0)
    out = Listing(complete=False)
    url = rest_url.rstrip("/") + "/markets"
    try:
        offset = 0
        while offset <= GAMMA_MAX_OFFSET:
            params: dict[str, Any] = {
                "limit": GAMMA_PAGE,
                "offset": offset,
                "closed": str(closed).lower(),
            }
            if condition_ids:
                params["condition_ids"] = ",".join(condition_ids)
            page = await _get(http, url, params, retries)
            out.requests += 1
            if not isinstance(page, list):
                raise RestError(f"GET {url}: expected a JSON array, got {type(page).__name__}")
            for row in page:
                parsed = parse_market(row)
                if isinstance(parsed, str):
                    out.skipped[parsed] = out.skipped.get(parsed, 0) + 1
                else:
                    out.markets.append(parsed)
            if len(page) < GAMMA_PAGE:
                out.complete = True
                break
            if max_markets and len(out.markets) >= max_markets:
                break
            offset += GAMMA_PAGE
    finally:
        if own:
            await http.aclose()
    if max_markets and len(out.markets) > max_markets:
        del out.markets[max_markets:]
        out.complete = False
    if out.skipped:
        log.warning("market listing: skipped %s", out.skipped)
    return out

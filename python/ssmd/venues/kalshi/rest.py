"""A small Kalshi REST client for market discovery: token bucket, 429 backoff, pagination.

Kalshi's 429 carries no Retry-After, so the client backs off exponentially (capped,
jittered) and gives up after `max_retries` with RestError, never silently: a lookup
that failed is an error for the caller, not an empty answer.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from ssmd.exceptions import AuthenticationError, RestError
from ssmd.venues.kalshi.ws import Credentials

__all__ = ["RestClient", "TokenBucket"]

log = logging.getLogger(__name__)


class TokenBucket:
    def __init__(self, tokens_per_second: float, capacity: float | None = None) -> None:
        self.rate = tokens_per_second
        self.capacity = capacity if capacity is not None else tokens_per_second
        self.tokens = self.capacity
        self.t = time.monotonic()

    async def take(self, cost: float) -> None:
        while True:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.t) * self.rate)
            self.t = now
            if self.tokens >= cost:
                self.tokens -= cost
                return
            await asyncio.sleep((cost - self.tokens) / self.rate)


class RestClient:
    def __init__(
        self,
        base_url: str,
        credentials: Credentials | None = None,
        *,
        tokens_per_second: float = 200.0,
        cost_per_request: float = 10.0,
        max_retries: int = 8,
        backoff_base: float = 0.5,
        backoff_cap: float = 10.0,
        timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._path = urlsplit(self.base_url).path
        self.credentials = credentials
        self.bucket = TokenBucket(tokens_per_second)
        self.cost = cost_per_request
        self.max_retries = max_retries
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap
        self._http = httpx.AsyncClient(timeout=timeout)
        self.requests = 0
        self.throttled = 0

    async def __aenter__(self) -> RestClient:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        url = f"{self.base_url}{path}"
        for attempt in range(self.max_retries + 1):
            await self.bucket.take(self.cost)
            headers = self.credentials.sign("GET", self._path + path) if self.credentials else None
            self.requests += 1
            try:
                resp = await self._http.get(url, params=params, headers=headers)
            except httpx.HTTPError as exc:
                err = f"{exc!r}"
            else:
                if resp.status_code == 200:
                    data = orjson.loads(resp.content)
                    if not isinstance(data, dict):
                        raise RestError(f"GET {path}: expected a JSON object")
                    return data
                if resp.status_code == 401:
                    raise AuthenticationError(f"GET {url}: HTTP 401 (check the API key)")
                if resp.status_code not in (429, 500, 502, 503, 504):
                    raise RestError(f"GET {path}: HTTP {resp.status_code} {resp.text[:200]}")
                if resp.status_code == 429:
                    self.throttled += 1
                err = f"HTTP {resp.status_code}"
            if attempt == self.max_retries:
                break  # no wait before giving up
            delay = min(self.backoff_cap, self.backoff_base * 2**attempt) * random.uniform(0.5, 1)
            log.info("GET %s: %s; retry in %.2fs", path, err, delay)
            await asyncio.sleep(delay)
        raise RestError(f"GET {url}: gave up after {self.max_retries} retries (last: {err})")

    async def paged(
        self, path: str, key: str, params: dict[str, Any] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Every item of a cursor-paginated list endpoint."""
        q = dict(params or {})
        while True:
            page = await self.get(path, q)
            for item in page.get(key) or []:
                if isinstance(item, dict):
                    yield item
            cursor = page.get("cursor")
            if not cursor:
                return
            q["cursor"] = cursor

    async def markets(self, **filters: Any) -> AsyncIterator[dict[str, Any]]:
        async for m in self.paged("/markets", "markets", {"limit": 1000, **filters}):
            yield m

    async def series(self, category: str | None = None) -> list[dict[str, Any]]:
        page = await self.get("/series", {"category": category} if category else None)
        return [s for s in page.get("series") or [] if isinstance(s, dict)]

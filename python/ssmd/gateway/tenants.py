"""Tenants: who may see which markets, how much, and what each has used (docs/tenants.md).

A tenant comes from the environment's `spec.tenants`: its keys (a secret of its own, the
same lines as `gateway_api_keys`), its entitlements (venues, series and markets, as
names or patterns with * and ?) and its limits (connections, symbols per connection,
stream messages per second, history rows per request). Keys of `gateway_api_keys` are
the operator's: they see everything, as every key did before tenants.

A market's venue is the feed it comes from (the environment's own, or a further venue
whose symbols are `venue:ticker`, ssmd.gateway.symbols); its series the part of its
ticker before the first '-' (Kalshi's tickers are SERIES-EVENT-MARKET). Series and
markets compile to one regular expression over tickers, used as it is by Python and by
Polars (history rows of the own venue).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ssmd.gateway.symbols import Symbols
from ssmd.obs.metrics import CollectorRegistry, Sampled

if TYPE_CHECKING:
    import polars as pl

    from ssmd.config.models.environment import Entitlements, TenantLimits
    from ssmd.gateway.auth import ApiKey

__all__ = ["Bucket", "Policy", "Tenants", "Usage", "glob_regex"]

REFUSALS = ("entitlement", "connections", "symbols", "history_rows")


def glob_regex(pattern: str, *, within: str = "") -> str:
    """A glob (* any run, ? one character) as a regular expression; `within` excludes
    characters from what * and ? match (series stop at '-')."""
    star, one = (f"[^{re.escape(within)}]*", f"[^{re.escape(within)}]") if within else (".*", ".")
    return "".join(star if c == "*" else one if c == "?" else re.escape(c) for c in pattern)


def glob_like(pattern: str) -> str:
    """A glob as an SQL LIKE pattern (escape character '\\'). It may match more than the
    glob (LIKE's % also crosses a series' '-', and SQLite's LIKE ignores case), never less."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _matches(patterns: Iterable[str], value: str) -> bool:
    return any(re.fullmatch(glob_regex(p), value) for p in patterns)


class Bucket:
    """Messages per second: a token bucket holding one second of the rate. `take`
    returns how long to wait before sending (the debt at the rate)."""

    def __init__(self, rate: int) -> None:
        self.rate = float(rate)
        self.tokens = self.rate
        self.at = time.monotonic()

    def take(self, n: int) -> float:
        now = time.monotonic()
        self.tokens = min(self.rate, self.tokens + (now - self.at) * self.rate) - n
        self.at = now
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


@dataclass
class Usage:
    connections: int = 0
    messages: int = 0  # stream messages sent to the tenant's WebSocket clients
    requests: int = 0  # HTTP requests with the tenant's keys
    history_rows: int = 0  # rows asked for by history requests (their limit)
    throttled_seconds: float = 0.0  # writers waiting for the messages/s limit
    refused: dict[str, int] = field(default_factory=lambda: dict.fromkeys(REFUSALS, 0))

    def to_dict(self) -> dict[str, Any]:
        return {
            "connections": self.connections,
            "messages_sent": self.messages,
            "requests": self.requests,
            "history_rows_requested": self.history_rows,
            "throttled_seconds": round(self.throttled_seconds, 3),
            "refused": dict(self.refused),
        }


class Policy:
    """One tenant's entitlements, limits, usage and rate bucket."""

    def __init__(
        self,
        name: str,
        venue: str,
        entitlements: Entitlements,
        limits: TenantLimits,
        transform: str | None = None,
        keys: tuple[str, ...] = (),
        further: tuple[str, ...] = (),
    ) -> None:
        self.name, self.venue, self.transform, self.keys = name, venue, transform, keys
        self.entitlements, self.limits = entitlements, limits
        self.usage = Usage()
        self.bucket = Bucket(limits.messages_per_second) if limits.messages_per_second else None
        self.symbols = Symbols(venue, further)
        self.entitled_venues = [v for v in self.symbols.venues if _matches(entitlements.venues, v)]
        self.venue_ok = venue in self.entitled_venues
        parts = [glob_regex(m) for m in entitlements.markets]
        parts += [f"{glob_regex(s, within='-')}(?:-.*)?" for s in entitlements.series]
        self._pattern = "^(?:" + "|".join(parts) + ")$" if parts else None
        self._tickers = re.compile(self._pattern) if self._pattern is not None else None
        self.pattern = self.pattern_of(venue)

    def pattern_of(self, venue: str) -> str | None:
        """The entitled tickers of `venue` as one regular expression (archive rows):
        None, every one; "^$" matches none (no ticker is empty), in Python's re and in
        Polars (no look-ahead) alike."""
        return self._pattern if venue in self.entitled_venues else "^$"

    def ticker_likes(self) -> tuple[str, ...]:
        """LIKE patterns every entitled ticker matches (none: no narrowing), so that a
        listing asks the security master for those rows rather than paging through every
        market of the venue; `allows` still decides each one."""
        e = self.entitlements
        if not (e.series or e.markets):
            return ()
        series = [glob_like(s) for s in e.series]
        return (*(glob_like(m) for m in e.markets), *series, *(s + "-%" for s in series))

    def allows(self, symbol: str) -> bool:
        venue, ticker = self.symbols.split(symbol)
        if venue not in self.entitled_venues:
            return False
        return self._tickers is None or self._tickers.match(ticker) is not None

    def forbidden(self, symbols: Iterable[str]) -> list[str]:
        return [s for s in symbols if not self.allows(s)]

    def describe_entitlements(self) -> str:
        e, venues = self.entitlements, ", ".join(self.entitled_venues)
        if not self.entitled_venues:
            served = ", ".join(self.symbols.venues)
            return f"no market of venue {served} (venues: {', '.join(e.venues)})"
        if not (e.series or e.markets):
            return f"every market of venue {venues}"
        parts = []
        if e.series:
            parts.append("series " + ", ".join(e.series))
        if e.markets:
            parts.append("markets " + ", ".join(e.markets))
        scope = " or ".join(parts)
        return f"{scope} of venue {venues}" if self.symbols.further else scope

    def admit(self) -> str | None:
        """Take a WebSocket connection; why not (the 4429 reason) at the limit."""
        limit = self.limits.connections
        if limit is not None and self.usage.connections >= limit:
            self.refuse("connections")
            return f"tenant {self.name} has its {limit} connections open already"
        self.usage.connections += 1
        return None

    def release(self) -> None:
        self.usage.connections = max(0, self.usage.connections - 1)

    def forbidden_message(self, tickers: list[str]) -> str:
        shown = ", ".join(tickers[:20]) + (
            f" and {len(tickers) - 20} more" if len(tickers) > 20 else ""
        )
        return (
            f"tenant {self.name} is not entitled to {shown}; it may see "
            f"{self.describe_entitlements()}"
        )

    def entitled_rows(self, frame: pl.LazyFrame, venue: str | None = None) -> pl.LazyFrame:
        """The rows of an archive table (`ssmd.data.scan`) of `venue` (default the own)
        of the markets the tenant may see; the entitlements as one regular expression,
        run by Polars."""
        import polars as pl

        pattern = self.pattern_of(venue or self.venue)
        if pattern is None:
            return frame
        return frame.filter(pl.col("ticker").str.contains(pattern))

    def entitled_gaps(
        self, gaps: list[dict[str, Any]], venue: str | None = None
    ) -> list[dict[str, Any]]:
        """The gaps of `venue`'s archive (default the own) the tenant may see: those of
        every market (no `markets`), and those of its markets, naming only those."""
        prefix = self.symbols.prefix(venue or self.venue)
        out = []
        for gap in gaps:
            markets = gap.get("markets") or []
            mine = [m for m in markets if self.allows(prefix + m)]
            if not markets or mine:
                out.append({**gap, "markets": mine} if markets else gap)
        return out

    def refuse(self, reason: str) -> None:
        self.usage.refused[reason] = self.usage.refused.get(reason, 0) + 1

    @classmethod
    def from_dict(cls, body: Mapping[str, Any], venue: str) -> Policy:
        """A tenant as /v1/usage describes it to its own key (`to_dict`)."""
        from ssmd.config.models.environment import Entitlements, TenantLimits

        return cls(
            str(body["tenant"]),
            venue,
            Entitlements.model_validate(body["entitlements"]),
            TenantLimits.model_validate(body["limits"]),
            body.get("transform"),
            tuple(body.get("keys", ())),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.name,
            "keys": list(self.keys),
            "entitlements": self.entitlements.model_dump(mode="json"),
            "limits": self.limits.model_dump(mode="json"),
            "transform": self.transform,
            "usage": self.usage.to_dict(),
        }


class Tenants:
    """Every tenant of the gateway, by name; empty when the environment has none.
    `registry` holds the per-tenant usage series, served at /metrics/tenants to the
    operator's keys only (the open /metrics names no tenant)."""

    def __init__(self, policies: Mapping[str, Policy] | None = None) -> None:
        self.by_name: dict[str, Policy] = dict(policies or {})
        self.registry = CollectorRegistry()
        self._register(self.registry)

    def __bool__(self) -> bool:
        return bool(self.by_name)

    def of(self, key: ApiKey | None) -> Policy | None:
        if key is None or key.tenant is None:
            return None
        return self.by_name.get(key.tenant)

    def _register(self, registry: CollectorRegistry) -> None:
        """Per-tenant usage series, read when scraped."""

        def read(attr: str) -> Any:
            return lambda: {
                (n,): float(getattr(p.usage, attr)) for n, p in sorted(self.by_name.items())
            }

        for kind, name, attr, text in (
            ("gauge", "connections", "connections", "WebSocket connections open"),
            ("counter", "messages_sent_total", "messages", "Stream messages sent"),
            ("counter", "requests_total", "requests", "HTTP requests"),
            ("counter", "history_rows_total", "history_rows", "Rows asked by history requests"),
            (
                "counter",
                "throttled_seconds_total",
                "throttled_seconds",
                "Seconds writers waited for the messages/s limit",
            ),
        ):
            Sampled.register(
                registry,
                kind,  # type: ignore[arg-type]
                f"ssmd_gateway_tenant_{name}",
                f"{text}, by tenant",
                ("tenant",),
                read(attr),
            )
        Sampled.register(
            registry,
            "counter",
            "ssmd_gateway_tenant_refused_total",
            "Requests refused by a tenant's entitlements or limits, by tenant and reason",
            ("tenant", "reason"),
            lambda: {
                (n, r): float(c)
                for n, p in sorted(self.by_name.items())
                for r, c in p.usage.refused.items()
            },
        )

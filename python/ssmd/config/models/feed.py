"""Feed: one exchange data source (exchanges/feeds/<name>.yaml).

A feed lists named endpoint sets (prod, demo, ...), its channels, its limits
and its protocol versions. Environments pick one endpoint set by name.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field

from ssmd.config.models.common import (
    Document,
    Duration,
    HttpUrl,
    Key,
    Name,
    RecordType,
    StrictModel,
    Version,
    WsUrl,
)

# An environment that sets its own URLs says `endpoint: custom`; no feed may use the name.
CUSTOM_ENDPOINT = "custom"


class Alternates(StrictModel):
    """Other hosts that serve the same API (kept for reference and fail-over)."""

    ws_urls: list[WsUrl] = Field(default_factory=list)
    rest_urls: list[HttpUrl] = Field(default_factory=list)


class EndpointSet(StrictModel):
    ws_url: WsUrl = Field(description="WebSocket URL of the market-data API.")
    rest_url: HttpUrl = Field(description="Base URL of the REST API.")
    alternates: Alternates | None = None


class Channel(StrictModel):
    name: Key = Field(description="The exchange's channel name, e.g. orderbook_delta.")
    record_type: RecordType | None = Field(
        default=None,
        description="Normalized record type the channel produces; absent = forwarded raw only.",
    )
    auth_required: bool = Field(
        default=True, description="Whether subscribing needs a signed connection."
    )
    description: str | None = None


class WsLimits(StrictModel):
    markets_per_connection: int = Field(default=200, ge=1, le=10_000)
    subscribe_batch: int = Field(
        default=200, ge=1, le=10_000, description="Tickers per subscribe command."
    )
    connections_per_user: int = Field(default=200, ge=1)
    server_ping_interval: Duration = Field(
        default="10s", description="How often the exchange pings."
    )
    ping_interval: Duration = Field(default="30s", description="How often the client pings.")
    ping_timeout: Duration = Field(default="10s", description="Send timeout of a client ping.")
    stale_after: Duration = Field(
        default="90s", description="No data or pong for this long = dead."
    )


class TokenBucket(StrictModel):
    tokens_per_second: int = Field(ge=1)
    cost_per_request: int = Field(default=10, ge=1)
    burst_seconds: float = Field(default=1.0, gt=0, description="Bucket size in seconds of refill.")


class RestLimits(StrictModel):
    read: TokenBucket
    write: TokenBucket | None = None
    page_size: int = Field(
        default=200, ge=1, le=1000, description="Items per page on list endpoints."
    )


class Limits(StrictModel):
    ws: WsLimits = Field(default_factory=WsLimits)
    rest: RestLimits


class FeedVersion(StrictModel):
    version: Version
    effective_from: date = Field(description="First day (UTC) this protocol version applies.")
    description: str | None = None


class FeedSpec(StrictModel):
    display_name: str | None = None
    endpoints: dict[Name, EndpointSet] = Field(min_length=1, description="Named endpoint sets.")
    channels: list[Channel] = Field(min_length=1)
    limits: Limits
    versions: list[FeedVersion] = Field(min_length=1, description="Oldest first.")


class Feed(Document):
    kind: Literal["Feed"]
    spec: FeedSpec

    def channel(self, name: str) -> Channel | None:
        return next((c for c in self.spec.channels if c.name == name), None)

    def version_on(self, day: date) -> FeedVersion | None:
        """The protocol version in effect on `day`, or None before the first one."""
        current = None
        for version in self.spec.versions:
            if version.effective_from <= day:
                current = version
        return current

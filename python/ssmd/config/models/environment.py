"""Environment: one deployment (exchanges/environments/<name>.yaml).

An environment says which feed and endpoint to use (`spec.feed`, and any further
venues it captures at the same time under `spec.venues`), when to run, which markets
to capture, where records go (NATS) and where they are kept (local disk or S3).
Everything here is as written in the file; `ssmd.config.load_environment`
applies overrides and returns the effective values.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Discriminator, Field, StringConstraints, Tag

from ssmd.config.models.common import (
    PATTERN_HINTS,
    ClockTime,
    Document,
    Duration,
    HttpUrl,
    Key,
    Name,
    StrictModel,
    WsUrl,
)
from ssmd.config.models.deploy import Deploy

EMBEDDED_NATS: Final = "embedded"
EMBEDDED_TEMPORAL: Final = "embedded"
# Where `temporal: embedded` listens: the dev server's own default port, on loopback.
EMBEDDED_TEMPORAL_ADDRESS: Final = "127.0.0.1:7233"

NATS_URL_PATTERN: Final = r"^(embedded|(nats|tls|ws|wss)://[^\s,]+(,(nats|tls|ws|wss)://[^\s,]+)*)$"
STREAM_PATTERN: Final = r"^[A-Za-z0-9_-]{1,255}$"
BUCKET_PATTERN: Final = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
REDIS_URL_PATTERN: Final = r"^rediss?://\S+$"
DATABASE_URL_PATTERN: Final = r"^postgres(ql)?(\+[a-z0-9]+)?://\S+$"
HOST_PORT_PATTERN: Final = r"^[^\s:/]+:[0-9]{1,5}$"
SECRET_REF_PATTERN: Final = r"^(env:[A-Za-z_][A-Za-z0-9_]*|file:\S.*|sealed:[a-z0-9][a-z0-9.-]*)$"

PATTERN_HINTS.update(
    {
        NATS_URL_PATTERN: "embedded, or NATS URLs such as nats://127.0.0.1:4222 (comma-separated for a cluster)",
        STREAM_PATTERN: "a JetStream stream name of letters, digits, '_' and '-', e.g. SSMD_KALSHI_DEV",
        BUCKET_PATTERN: "an S3 bucket name (3-63 lower-case letters, digits, '.' and '-')",
        REDIS_URL_PATTERN: "a Redis URL such as redis://127.0.0.1:6379/0",
        DATABASE_URL_PATTERN: "a PostgreSQL URL such as postgresql://ssmd@127.0.0.1:5432/ssmd",
        HOST_PORT_PATTERN: "host:port, such as 127.0.0.1:7233",
        SECRET_REF_PATTERN: "a secret reference: env:VARIABLE_NAME, file:/path/to/file or sealed:KEY_NAME",
    }
)

NatsUrl = Annotated[str, StringConstraints(pattern=NATS_URL_PATTERN)]
SecretRefText = Annotated[str, StringConstraints(pattern=SECRET_REF_PATTERN)]
MarketStatusFilter = Literal["unopened", "open", "paused", "closed", "settled"]


def _check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name such as America/New_York or UTC"
        ) from None
    return name


TimeZoneName = Annotated[str, AfterValidator(_check_timezone)]


class FeedSelection(StrictModel):
    name: Name = Field(description="A feed under feeds/.")
    endpoint: Name = Field(description="An endpoint set of the feed (prod, demo, ...) or custom.")
    ws_url: WsUrl | None = Field(default=None, description="Only with endpoint: custom.")
    rest_url: HttpUrl | None = Field(default=None, description="Only with endpoint: custom.")
    channels: list[Key] | None = Field(
        default=None, description="Subset of the feed's channels; absent = all."
    )


class Schedule(StrictModel):
    timezone: TimeZoneName = "UTC"
    startup: ClockTime | None = Field(
        default=None, description="Daily start; absent = run continuously."
    )
    teardown: ClockTime | None = Field(
        default=None, description="Daily stop; absent = run continuously."
    )


def _open_markets() -> list[MarketStatusFilter]:
    return ["open"]


class Symbols(StrictModel):
    tickers: list[str] = Field(default_factory=list, description="Explicit market tickers.")
    series: list[str] = Field(default_factory=list, description="Series tickers, e.g. KXBTCD.")
    categories: list[str] = Field(default_factory=list, description="Categories, e.g. Crypto.")
    statuses: list[MarketStatusFilter] = Field(default_factory=_open_markets)
    sync: bool = Field(
        default=False, description="Expand series/categories to tickers via the secmaster."
    )
    sync_interval: Duration = "15m"


class VenueCapture(StrictModel):
    """One more venue captured by the environment, beside `spec.feed`: its own feed,
    endpoint and markets; transport, storage, database and schedule are shared."""

    feed: FeedSelection
    symbols: Symbols


class Transport(StrictModel):
    nats_url: NatsUrl = Field(
        description="NATS server URL(s), or embedded: `ssmd up` starts its own server."
    )
    stream: Annotated[str, StringConstraints(pattern=STREAM_PATTERN)] | None = Field(
        default=None, description="JetStream stream; absent = SSMD_<ENV>."
    )
    retention: Duration = "48h"
    duplicate_window: Duration = "2m"
    replicas: int = Field(default=1, ge=1, le=5)


class LocalStorage(StrictModel):
    path: str = Field(min_length=1, description="Directory; relative paths are under the data dir.")


class S3Storage(StrictModel):
    bucket: Annotated[str, StringConstraints(pattern=BUCKET_PATTERN)]
    endpoint: HttpUrl | None = Field(
        default=None, description="S3-compatible endpoint; absent = AWS."
    )
    region: str | None = None


def _storage_kind(value: Any) -> str:
    # Keys decide the kind, so a location with a typo gets the errors of the kind it meant.
    if isinstance(value, S3Storage) or (
        isinstance(value, dict) and {"bucket", "endpoint", "region"} & value.keys()
    ):
        return "S3Storage"
    return "LocalStorage"


StorageLocation = Annotated[
    Annotated[LocalStorage, Tag("LocalStorage")] | Annotated[S3Storage, Tag("S3Storage")],
    Discriminator(_storage_kind),
]


class Storage(StrictModel):
    raw: StorageLocation
    normalized: StorageLocation


class Cache(StrictModel):
    redis_url: Annotated[str, StringConstraints(pattern=REDIS_URL_PATTERN)]


class Database(StrictModel):
    url: Annotated[str, StringConstraints(pattern=DATABASE_URL_PATTERN)]


class Temporal(StrictModel):
    address: Annotated[str, StringConstraints(pattern=HOST_PORT_PATTERN)]
    namespace: str = "default"


# '/' for pairs such as Kraken's BTC/USD: a ticker, not a path (the REST routes take it).
GLOB_PATTERN: Final = r"^[A-Za-z0-9_./*?-]{1,128}$"
PATTERN_HINTS[GLOB_PATTERN] = (
    "a name or a pattern of letters, digits, '_', '.', '-', '/' with * (any run) and ? (one "
    "character), e.g. KXBTC*, BTC/USD or kalshi"
)
Glob = Annotated[str, StringConstraints(pattern=GLOB_PATTERN)]


def _every() -> list[str]:
    return ["*"]


class Entitlements(StrictModel):
    """What a tenant may see: a market is entitled when its venue matches `venues` and
    either neither `series` nor `markets` is given, or its series matches one of
    `series`, or its ticker one of `markets` (docs/tenants.md)."""

    venues: list[Glob] = Field(
        default_factory=_every, description="Feeds (venues) by name, e.g. kalshi; default all."
    )
    series: list[Glob] = Field(
        default_factory=list, description="Series tickers or patterns, e.g. KXBTC*."
    )
    markets: list[Glob] = Field(
        default_factory=list,
        description="Market tickers or patterns, e.g. KXBTCD-26DEC* or BTC/USD.",
    )


class TenantLimits(StrictModel):
    connections: int | None = Field(
        default=None, ge=1, description="WebSocket connections at once (all the tenant's keys)."
    )
    symbols: int | None = Field(default=None, ge=1, description="Symbols per WebSocket connection.")
    messages_per_second: int | None = Field(
        default=None,
        ge=1,
        description="Stream messages per second over all the tenant's connections.",
    )
    history_rows: int | None = Field(
        default=None, ge=1, description="Rows of one history request at most."
    )


class Tenant(StrictModel):
    api_keys: Key = Field(
        description="A secret under spec.secrets holding the tenant's key lines "
        "(`ssmd gateway new-key NAME`)."
    )
    entitlements: Entitlements = Field(default_factory=Entitlements)
    limits: TenantLimits = Field(default_factory=TenantLimits)
    transform: Name | None = Field(
        default=None,
        description="A Lua transform under spec.transforms for every key of the tenant.",
    )


class Transform(StrictModel):
    script: str = Field(
        min_length=1,
        description="A Lua file; relative paths are under the config dir (docs/transforms.md).",
    )
    max_instructions: int = Field(default=1_000_000, ge=1_000, le=1_000_000_000)
    max_memory: int = Field(
        default=16 << 20, ge=1 << 20, le=1 << 30, description="Bytes of Lua memory per client."
    )
    max_time: Duration = Field(default="10ms", description="CPU time per message.")


class EnvironmentSpec(StrictModel):
    feed: FeedSelection
    schedule: Schedule = Field(default_factory=Schedule)
    symbols: Symbols
    venues: list[VenueCapture] = Field(
        default_factory=list,
        description="More venues captured at once, each with its own feed and symbols; "
        "`--feed NAME` picks one for a component (docs/configuration.md).",
    )
    transport: Transport
    storage: Storage
    cache: Cache | None = None
    database: Database | None = None
    temporal: Temporal | Literal["embedded"] | None = Field(
        default=None,
        description="Temporal for `ssmd worker` and `ssmd ops`; embedded = the dev server "
        "`ssmd up` starts on 127.0.0.1:7233 (docs/operations.md).",
    )
    secrets: dict[Key, SecretRefText] = Field(
        default_factory=dict,
        description="Name -> env:VAR or file:/path; values are never stored here.",
    )
    deploy: Deploy | None = Field(
        default=None, description="Kubernetes layout for `ssmd deploy render` (docs/deploy.md)."
    )
    protected: bool = Field(
        default=False,
        description="`ssmd env teardown` refuses this environment unless given --force.",
    )
    tenants: dict[Name, Tenant] = Field(
        default_factory=dict,
        description="Gateway tenants: keys, entitlements and limits (docs/tenants.md).",
    )
    transforms: dict[Name, Transform] = Field(
        default_factory=dict,
        description="Lua scripts mapping gateway messages to a client's format "
        "(docs/transforms.md).",
    )


class Environment(Document):
    kind: Literal["Environment"]
    spec: EnvironmentSpec

"""Gateway settings from an environment, and the start-up checks on access.

Auth is on when the environment declares the `gateway_api_keys` secret, and off
otherwise; off is allowed only on a loopback address unless the operator passes
`--insecure-no-auth`, so a gateway never ends up open to a network by omission.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ssmd.config import NatsSettings, ResolvedEnvironment
from ssmd.exceptions import ConfigError
from ssmd.gateway.auth import KeyRing
from ssmd.gateway.symbols import Symbols
from ssmd.gateway.tenants import Policy, Tenants
from ssmd.gateway.transform import TransformSpec, load_spec

if TYPE_CHECKING:
    from ssmd.data.source import Dataset
    from ssmd.secmaster.db import Store

__all__ = ["KEYS_SECRET", "STATIC_DIR", "GatewaySettings", "is_loopback"]

KEYS_SECRET: Final = "gateway_api_keys"
STATIC_DIR: Final = Path(__file__).resolve().parent / "static"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class GatewaySettings:
    env: str
    feed: str
    nats: NatsSettings
    host: str = "127.0.0.1"
    port: int = 8080
    keys: KeyRing | None = None  # None: no auth (loopback, or --insecure-no-auth)
    # The environment's tenants (empty: none, every key sees everything) and Lua transforms.
    tenants: Tenants = field(default_factory=Tenants, compare=False)
    transforms: dict[str, TransformSpec] = field(default_factory=dict, compare=False)
    # The security master store, when the environment has one (None: markets come
    # from what the stream carries). Called per use: the store may appear after start.
    store: Callable[[], Store | None] | None = field(default=None, compare=False)
    static_dir: Path = STATIC_DIR
    # The environment's archive for the history routes (ssmd.data); None: not served.
    # Called per request (opened once, on first use).
    dataset: Callable[[], Dataset] | None = field(default=None, compare=False)
    history_limit: int = 10_000  # rows of a history request that names no limit
    history_max_limit: int = 100_000  # rows of a history request at most (400 beyond)
    # Start-up: book checkpoints older than this (behind the newest one) belong to
    # markets the connector no longer holds, and are not restored. Must exceed the
    # connector's period between full checkpoints (30 s x 120 rounds = 1 h).
    checkpoint_horizon: float = 7200.0
    trade_window: float = 600.0  # trades read back at start, seconds
    trades_per_ticker: int = 500
    trades_total: int = 200_000
    markets_max: int = 500_000  # markets remembered from the stream (LRU beyond)
    # Clients.
    client_queue: int = 2_000  # queued trades/statuses/replies per client before 4408
    # A client whose connection took no write, or whose oldest waiting message has
    # waited, this long: 4408.
    send_timeout: float = 30.0
    # Seconds the gateway may be behind the stream (two looks in a row, 0.1 s apart, while
    # its backlog grows) before its newest clients are closed with 1013 (shedding.py);
    # 0 never sheds.
    shed_after: float = 0.05
    # Seconds of writes to clients per round before the stream is read again (hub.py).
    write_slice: float = 0.005
    max_symbols: int = 10_000  # per connection, unless the key says otherwise
    max_message_bytes: int = 1 << 20
    book_depth: int = 0  # levels per side in orderbook messages; 0 = all
    ws_ping_interval: float = 20.0
    # NATS.
    # The live consumer's pull requests ask for a heartbeat this often while idle.
    idle_heartbeat: float = 2.0
    stream_wait: float = 1.0  # retry interval while the stream does not exist yet
    # Health.
    stale_after: float = 120.0  # no message for this long: the connector is stale
    max_lag: int = 50_000  # pending messages beyond this: unhealthy
    # The further venues this gateway serves (spec.venues), each with the settings of
    # its own feed (stream, subjects, store, archive); their symbols are `venue:ticker`
    # (ssmd.gateway.symbols).
    venues: tuple[GatewaySettings, ...] = field(default=(), compare=False)

    @property
    def symbols(self) -> Symbols:
        return Symbols(self.feed, tuple(v.feed for v in self.venues))

    @classmethod
    def from_environment(
        cls,
        env: ResolvedEnvironment,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        insecure_no_auth: bool = False,
        venues: Sequence[ResolvedEnvironment] = (),
        **changes: Any,
    ) -> GatewaySettings:
        """`env` resolved for the feed whose tickers are the symbols as they are (the
        environment's own), `venues` for each further venue the gateway serves too."""
        if env.nats.embedded and "nats" not in changes:
            raise ConfigError(
                f"environment {env.name} uses the embedded NATS server, which `ssmd up` starts; "
                "for `ssmd gateway run` pass --nats-url (or set SSMD_NATS_URL)"
            )
        keys = None
        if KEYS_SECRET in env.secrets:
            keys = KeyRing.parse(
                env.secret(KEYS_SECRET).reveal(), f"secret {KEYS_SECRET} of {env.name}"
            )
        further = tuple(v.feed.metadata.name for v in venues)
        tenants, transforms, keys = _tenants(env, keys, further)
        if keys is None and not is_loopback(host) and not insecure_no_auth:
            raise ConfigError(
                f"environment {env.name} configures no API keys, and the gateway would serve "
                f"{host} without authentication. Fix: declare `{KEYS_SECRET}: env:VAR` or "
                f"`{KEYS_SECRET}: file:/path` under spec.secrets (lines from `ssmd gateway "
                "new-key NAME`), bind 127.0.0.1, or pass --insecure-no-auth"
            )
        own = cls(
            env=env.name,
            feed=env.feed.metadata.name,
            nats=env.nats,
            host=host,
            port=port,
            keys=keys,
            tenants=tenants,
            transforms=transforms,
            store=_store_opener(env),
            **({"dataset": _dataset_opener(env)} | changes),
        )
        return replace(
            own,
            venues=tuple(
                replace(
                    own,
                    feed=v.feed.metadata.name,
                    nats=v.nats,
                    store=_store_opener(v),
                    dataset=_dataset_opener(v),
                )
                for v in venues
            ),
        )


def _tenants(
    env: ResolvedEnvironment, operator: KeyRing | None, further: tuple[str, ...]
) -> tuple[Tenants, dict[str, TransformSpec], KeyRing | None]:
    """The tenants' policies, the transforms' scripts, and one key ring of the operator's
    and every tenant's keys (None when there are neither)."""
    spec = env.environment.spec
    file = env.file
    transforms = {
        name: load_spec(name, t, env.config_dir, f"{file}: spec.transforms.{name}.script")
        for name, t in spec.transforms.items()
    }
    if not spec.tenants:
        rings: dict[str | None, KeyRing] = {}
    else:
        rings = {None: operator} if operator is not None else {}
    policies: dict[str, Policy] = {}
    for name, tenant in spec.tenants.items():
        ring = KeyRing.parse(
            env.secret(tenant.api_keys).reveal(),
            f"secret {tenant.api_keys} of tenant {name} in {env.name}",
        )
        rings[name] = ring
        policies[name] = Policy(
            name,
            env.feed.metadata.name,
            tenant.entitlements,
            tenant.limits,
            tenant.transform,
            tuple(k.name for k in ring.keys),
            further,
        )
    keys = KeyRing.merge(rings) if rings else operator
    for key in keys.keys if keys is not None else ():
        if key.transform is not None and key.transform not in transforms:
            known = ", ".join(sorted(transforms)) or "none"
            raise ConfigError(
                f"key {key.name}: transform={key.transform} is not under spec.transforms of "
                f"{file} (declared: {known}). Fix: declare it or correct the key's line"
            )
    return Tenants(policies), transforms, keys


def _store_opener(env: ResolvedEnvironment) -> Callable[[], Store | None]:
    from ssmd.secmaster.db import SQLITE_FILE, open_store

    def open_if_present() -> Store | None:
        if not env.database_url and not (env.data_dir / SQLITE_FILE).exists():
            return None
        return open_store(env, migrate=False)

    return open_if_present


def _dataset_opener(env: ResolvedEnvironment) -> Callable[[], Dataset]:
    import functools

    from ssmd.data.source import Dataset

    @functools.cache
    def open_once() -> Dataset:
        return Dataset.from_environment(env)

    return open_once

"""Entry points for other components and the CLI.

store = open_store(env)                                          # migrated, ready
tickers = selected_tickers(store, env.symbols, env.feed.name)    # the connector's selection
rows = list(store.markets(statuses={"open"}, series=["KXBTCD"]))  # the gateway's /v1/markets
report = await sync_environment(env)                             # one sync run (journal, Redis)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ssmd.config.resolve import mask_url
from ssmd.secmaster.cache import Cache
from ssmd.secmaster.db import SQLITE_FILE, Change, Store, open_store
from ssmd.secmaster.journal import RETENTION, Journal, journal_subject
from ssmd.secmaster.model import iso_from_seconds
from ssmd.secmaster.status import filter_to_statuses
from ssmd.secmaster.sync import SyncReport, SyncRun

if TYPE_CHECKING:
    from ssmd.bus.connection import NatsClient
    from ssmd.config import ResolvedEnvironment
    from ssmd.config.models.environment import Symbols

__all__ = ["Services", "open_markets", "selected_tickers", "services", "sync_environment"]

log = logging.getLogger(__name__)

CONNECT_WAIT: Final = 5.0  # seconds to reach NATS before the journal is left to the outbox


def selected_markets(store: Store, symbols: Symbols, venue: str) -> list[dict[str, Any]]:
    """Stored markets of `venue` an environment's `symbols` select: its tickers, series and
    categories (a union; nothing listed = every market), in the selected statuses. When open markets
    are wanted, markets not yet open are included too, so that a consumer knows their
    open_time ahead of Kalshi's silent opening."""
    words = {str(s) for s in symbols.statuses}
    if "open" in words:
        words.add("unopened")
    statuses = filter_to_statuses(words)
    return list(
        store.markets(
            statuses=statuses or None,
            series=symbols.series or None,
            categories=symbols.categories or None,
            tickers=symbols.tickers or None,
            venue=venue,
        )
    )


def selected_tickers(store: Store, symbols: Symbols, venue: str) -> list[str]:
    """The tickers of `selected_markets`, without the not-yet-open ones unless selected."""
    statuses = filter_to_statuses(str(s) for s in symbols.statuses)
    return [
        str(r["ticker"])
        for r in selected_markets(store, symbols, venue)
        if not statuses or r["status"] in statuses
    ]


def selection_reader(
    env: ResolvedEnvironment, symbols: Symbols | None = None
) -> Callable[[], list[dict[str, Any]]] | None:
    """A function returning `selected_markets` for `symbols` (default: the environment's),
    or None when the environment has no security master store yet (no database URL and
    no SQLite file in its data dir)."""
    if not env.database_url and not (env.data_dir / SQLITE_FILE).exists():
        return None
    wanted = symbols if symbols is not None else env.symbols

    def read() -> list[dict[str, Any]]:
        with open_store(env, migrate=False) as store:
            return selected_markets(store, wanted, env.feed.name)

    return read


def open_markets(env: ResolvedEnvironment, **filters: Any) -> list[dict[str, Any]]:
    """Markets of an environment's store as dicts (filters as in `Store.markets`)."""
    with open_store(env) as store:
        return list(store.markets(**filters))


@dataclass
class Services:
    store: Store
    journal: Journal | None
    cache: Cache | None

    async def changed(self, changes: list[Change]) -> None:
        """After a committed write: publish the journal outbox, update Redis."""
        if self.journal is not None:
            await self.journal.flush(self.store)
        if self.cache is not None:
            try:
                await self.cache.apply(changes)
            except Exception as exc:  # the store is the truth; the cache is rebuilt on demand
                log.warning(
                    "redis update failed (%s); the cache will be rebuilt", type(exc).__name__
                )
                await self.cache.r.delete(self.cache.marker)


@contextlib.asynccontextmanager
async def services(
    env: ResolvedEnvironment,
    *,
    journal: bool = True,
    redis: bool = True,
    connect_wait: float | None = CONNECT_WAIT,
) -> AsyncIterator[Services]:
    """The store, the journal (NATS) and the cache (Redis) an environment configures.

    Changes go to the store's outbox in any case; the journal publishes them when NATS
    is reachable (within `connect_wait` seconds; None waits as long as it takes) and
    publishing is on. Otherwise they wait for the next secmaster run that reaches NATS,
    which publishes them first."""
    store = open_store(env)
    nc = None
    cache = None
    try:
        _expire_outbox(store)
        jr = None
        held = "publishing is off"
        if journal and env.nats.embedded:
            held = "NATS is 'embedded', started by `ssmd up`"
        elif journal:
            nc = await _reach_nats(env.nats.url, connect_wait)
            if nc is None:
                held = f"no connection to NATS at {mask_url(env.nats.url)}"
            else:
                jr = Journal(nc.jetstream(), env.name, replicas=env.nats.replicas)
                await jr.ensure_stream()
                await jr.flush(store)  # what earlier runs stored but did not publish
        if redis and env.redis_url:
            cache = Cache.from_url(env.redis_url, env.name, env.feed.name)
            await cache.ensure(store)
        yield Services(store, jr, cache)
        if jr is None and (waiting := store.count("secmaster_outbox")):
            log.warning(
                "journal not published (%s): %d journal entries wait in the outbox; the "
                "next secmaster run that reaches NATS (`ssmd up`, or --nats-url) publishes them",
                held,
                waiting,
            )
    finally:
        if cache is not None:
            await cache.aclose()
        if nc is not None:
            await nc.drain()
        store.close()


def _expire_outbox(store: Store) -> None:
    """The outbox's limit: entries older than the journal's retention are dropped."""
    cutoff = iso_from_seconds(time.time() - RETENTION.total_seconds())
    dropped = store.outbox_expire(cutoff)
    if dropped:
        log.warning(
            "dropped %d journal entries older than %d days (the journal's retention) "
            "that were never published: no secmaster run reached NATS in that time",
            dropped,
            RETENTION.days,
        )


async def _reach_nats(url: str, wait: float | None) -> NatsClient | None:
    """A connection to NATS, or None when none is made within `wait` seconds (the client
    retries an unreachable server forever)."""
    from nats.errors import Error as NatsError

    from ssmd.bus.connection import connect

    try:
        return await asyncio.wait_for(connect(url, "ssmd-secmaster"), wait)
    except (TimeoutError, OSError, NatsError):
        return None


async def sync_environment(
    env: ResolvedEnvironment,
    *,
    everything: bool = False,
    journal: bool = True,
    redis: bool = True,
    rest: Any = None,
    connect_wait: float = CONNECT_WAIT,
) -> SyncReport:
    """One sync run of an environment, by its venue's market sync: its symbol selection (or
    `everything`). Its changes are journaled now when NATS is reachable, else by the next
    run that reaches it. `rest` replaces Kalshi's REST client (tests); a listing venue
    reads its listing over HTTP from the environment's REST URL."""
    from ssmd.venues import venue

    sync_markets = venue(env.feed.name).sync_markets
    async with services(env, journal=journal, redis=redis, connect_wait=connect_wait) as svc:
        run = SyncRun(
            store=svc.store,
            rest_url=env.endpoint.rest_url,
            symbols=env.symbols,
            everything=everything,
            journal_subject=journal_subject(env.name),
            on_changes=svc.changed,
            rest=rest,
        )
        return await sync_markets(run)

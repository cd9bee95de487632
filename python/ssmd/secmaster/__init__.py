"""The security master: which markets exist and what happened to them (docs/secmaster.md).

For other components:
    open_store(env) -> Store                    migrated store (SQLite default, PostgreSQL by URL)
    Store.markets(statuses=, categories=, series=, tickers=, search=, venue=) -> rows
    Store.market(ticker, venue), Store.history(ticker, venue)
    selected_tickers(store, env.symbols, venue) the connector's market selection
    sync_environment(env)                       one sync run (REST -> store, journal, Redis)
    Live(store, env, feed, ...)                 lifecycle records and the open/close sweep
"""

from ssmd.exceptions import StoreError
from ssmd.secmaster.db import Change, Store, open_store
from ssmd.secmaster.lifecycle import Live, run_live
from ssmd.secmaster.service import (
    open_markets,
    selected_markets,
    selected_tickers,
    selection_reader,
    services,
    sync_environment,
)
from ssmd.secmaster.status import SSMD_STATUSES, filter_to_statuses, map_status
from ssmd.secmaster.sync import Syncer, SyncOptions, SyncReport

__all__ = [
    "SSMD_STATUSES",
    "Change",
    "Live",
    "Store",
    "StoreError",
    "SyncOptions",
    "SyncReport",
    "Syncer",
    "filter_to_statuses",
    "map_status",
    "open_markets",
    "open_store",
    "run_live",
    "selected_markets",
    "selected_tickers",
    "selection_reader",
    "services",
    "sync_environment",
]

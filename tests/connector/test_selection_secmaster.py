"""The connector's market selection read from the security master's store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from _support import ROOT
from ssmd.config import load_environment
from ssmd.config.models.environment import Symbols
from ssmd.connector.runner import Settings
from ssmd.connector.selection import Selection
from ssmd.secmaster import open_store, selected_markets
from ssmd.secmaster.db import Store
from ssmd.secmaster.model import iso_from_seconds

NOW = 1_784_557_800.0


def market(ticker: str, series: str, status: str, opens: float, closes: float) -> dict[str, Any]:
    return {
        "ticker": ticker,
        "series_ticker": series,
        "category": {"KXBTC15M": "Crypto", "KXNBAGAME": "Sports"}[series],  # as the sync fills it
        "event_ticker": ticker.rsplit("-", 1)[0],
        "status": status,
        "open_time": iso_from_seconds(opens),
        "close_time": iso_from_seconds(closes),
    }


def filled(path: Path) -> Store:
    store = Store.open(path)
    store.migrate()
    store.apply_series(
        [
            {"ticker": "KXBTC15M", "category": "Crypto", "title": "BTC 15 min"},
            {"ticker": "KXNBAGAME", "category": "Sports", "title": "NBA"},
        ]
    )
    store.apply_markets(
        [
            market("KXBTC15M-26JUL201045-45", "KXBTC15M", "open", NOW - 600, NOW + 300),
            market("KXBTC15M-26JUL201100-00", "KXBTC15M", "initialized", NOW + 300, NOW + 1200),
            market("KXBTC15M-26JUL201030-30", "KXBTC15M", "settled", NOW - 1500, NOW - 600),
            market("KXNBAGAME-26JUL20LALBOS-LAL", "KXNBAGAME", "open", NOW - 600, NOW + 9000),
        ]
    )
    return store


async def test_selection_follows_the_store_and_the_clock(tmp_path: Path) -> None:
    store = filled(tmp_path / "s.sqlite3")
    symbols = Symbols(categories=["Crypto"], statuses=["open"])
    clock = [NOW]
    selection = Selection(
        symbols, None, lambda: clock[0], stored=lambda: selected_markets(store, symbols, "kalshi")
    )
    await selection.refresh()
    assert selection.desired() == {"KXBTC15M-26JUL201045-45"}
    # Kalshi opens the next window and closes this one without any message.
    clock[0] = NOW + 301
    assert selection.desired() == {"KXBTC15M-26JUL201100-00"}
    # A market created later in a selected category's series is taken up from lifecycle news.
    assert selection.on_lifecycle(
        {
            "ticker": "KXBTC15M-26JUL201115-15",
            "event_type": "created",
            "open_ts": int((NOW + 1200) * 1e9),
            "close_ts": int((NOW + 2100) * 1e9),
        }
    )
    clock[0] = NOW + 1201
    assert selection.desired() == {"KXBTC15M-26JUL201115-15"}
    # A failing store keeps what is known.
    broken = Selection(
        symbols, None, lambda: NOW, stored=lambda: (_ for _ in ()).throw(OSError("gone"))
    )
    await broken.refresh()
    assert (broken.refresh_errors, broken.desired()) == (1, set())
    store.close()


def test_the_connector_reads_the_store_when_the_environment_has_one(tmp_path: Path) -> None:
    def settings() -> Settings:
        env = load_environment(
            "kalshi-sim",
            ROOT / "exchanges",
            {"data_dir": str(tmp_path), "nats_url": "nats://127.0.0.1:1"},
        )
        return Settings.from_environment(env, credentials=None)

    assert settings().stored_markets is None  # no store yet: Kalshi REST
    env = load_environment("kalshi-sim", ROOT / "exchanges", {"data_dir": str(tmp_path)})
    open_store(env).close()
    filled(tmp_path / "secmaster.sqlite3").close()
    stored = settings().stored_markets
    assert stored is not None
    # kalshi-sim selects series KXBTCD and category Crypto, open markets (and those about to open).
    assert {m["ticker"] for m in stored()} == {"KXBTC15M-26JUL201045-45", "KXBTC15M-26JUL201100-00"}
    # Symbols given to the connector select from the store in place of the environment's.
    env = load_environment(
        "kalshi-sim",
        ROOT / "exchanges",
        {"data_dir": str(tmp_path), "nats_url": "nats://127.0.0.1:1"},
    )
    own = Settings.from_environment(
        env, credentials=None, symbols=Symbols(tickers=["KXBTC15M-26JUL201100-00"])
    ).stored_markets
    assert own is not None
    assert [m["ticker"] for m in own()] == ["KXBTC15M-26JUL201100-00"]


def test_a_resumed_market_leaves_a_paused_only_selection() -> None:
    # `deactivated` with is_deactivated false resumes trading: the market is open again,
    # as the security master and the gateway already read it.
    ticker = "KXBTC15M-26JUL201045-45"
    selection = Selection(Symbols(series=["KXBTC15M"], statuses=["paused"]), None, lambda: NOW)
    selection.on_lifecycle({"ticker": ticker, "event_type": "activated"})
    assert selection.desired() == set()
    selection.on_lifecycle({"ticker": ticker, "event_type": "deactivated", "is_deactivated": True})
    assert selection.desired() == {ticker}
    selection.on_lifecycle({"ticker": ticker, "event_type": "deactivated", "is_deactivated": False})
    assert selection.desired() == set()

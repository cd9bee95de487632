"""Markets with hostile tickers (scenario `hostile_tickers: true`): listed by REST, streamed
over the WebSocket byte for byte, and nothing else in the universe changes."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from _support.simhelp import client, manual_sim
from ssmd.exceptions import ConfigError
from ssmd.sim import Scenario
from ssmd.sim.universe import HOSTILE_SERIES, HOSTILE_TICKERS

DATA = {"orderbook_snapshot", "orderbook_delta", "trade"}


def test_the_hostile_tickers_cover_each_kind_of_trouble() -> None:
    assert "" in HOSTILE_TICKERS
    assert max(len(t) for t in HOSTILE_TICKERS) > 255  # longer than a file name may be
    assert any(not t.isascii() for t in HOSTILE_TICKERS)
    assert {"..", "../../../etc/passwd"} <= set(HOSTILE_TICKERS)
    assert any("/" in t for t in HOSTILE_TICKERS if not t.startswith(".."))
    assert any("\\" in t for t in HOSTILE_TICKERS)
    assert {"*", ">", "."} <= {c for t in HOSTILE_TICKERS for c in t}
    assert any(" " in t for t in HOSTILE_TICKERS) and any("%" in t for t in HOSTILE_TICKERS)
    assert len(set(HOSTILE_TICKERS)) == len(HOSTILE_TICKERS)


def test_scenario_file_turns_them_on(tmp_path: Path) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_text("hostile_tickers: true\n")
    assert Scenario.load(path).hostile_tickers is True
    path.write_text("faults: []\n")
    assert Scenario.load(path).hostile_tickers is False
    path.write_text("hostile_tickers: maybe\n")
    with pytest.raises(ConfigError, match="hostile_tickers must be true or false"):
        Scenario.load(path)


async def test_hostile_markets_are_listed_and_streamed_verbatim() -> None:
    plain, _ = manual_sim(seed=5)
    sim, clock = manual_sim(seed=5, scenario=Scenario(hostile_tickers=True))
    hostile = sorted(
        t for t, m in sim.universe.markets.items() if m.series_ticker == HOSTILE_SERIES
    )
    assert hostile == sorted(HOSTILE_TICKERS)
    assert all(sim.universe.markets[t].tradable for t in hostile)
    # Only markets are added: the rest of the universe is the same for the same seed.
    others = {t for t in sim.universe.markets if t not in HOSTILE_TICKERS}
    assert others == set(plain.universe.markets)
    assert not set(HOSTILE_TICKERS) & set(plain.universe.markets)
    async with sim:
        async with httpx.AsyncClient() as http:
            listed = (
                await http.get(
                    sim.rest_url + "/markets",
                    params={"series_ticker": HOSTILE_SERIES, "status": "open"},
                )
            ).json()["markets"]
            assert sorted(m["ticker"] for m in listed) == hostile
            series = (await http.get(sim.rest_url + f"/series/{HOSTILE_SERIES}")).json()
            assert series["series"]["ticker"] == HOSTILE_SERIES
        async with client(sim) as c:
            await c.send(
                "subscribe",
                {"channels": ["orderbook_delta", "trade"], "market_tickers": hostile},
            )
            clock.advance(20.0)
            await c.settle(sim)
    data = [f for f in c.frames if f.get("type") in DATA]
    snapshots = {f["msg"]["market_ticker"] for f in data if f["type"] == "orderbook_snapshot"}  # type: ignore[index]
    assert snapshots == set(hostile)
    assert {f["msg"]["market_ticker"] for f in data} == set(hostile)  # type: ignore[index]
    assert any(f["type"] == "trade" for f in data)
    # The tickers travel as JSON strings, exactly as listed (no escaping beyond JSON's).
    assert not c.bad

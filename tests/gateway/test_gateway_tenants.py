"""Tenants: keys from their own secrets, entitlements on the WebSocket and REST, limits
that hold one tenant back without touching another, usage seen only by its tenant (and
the operator), per-tenant metrics, and the configuration's refusals."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import cast

import httpx
import orjson
import pytest
import websockets
from hypothesis import given
from hypothesis import strategies as st

from _support.gwfix import (
    CENT,
    E6,
    Client,
    gateway_settings,
    publisher,
    running_gateway,
    snapshot,
    trade,
    until,
)
from _support.secmaster_fixtures import fresh_database, postgres_server
from ssmd.config import Overrides, ResolvedEnvironment, load_environment
from ssmd.config.models.environment import Entitlements, TenantLimits
from ssmd.exceptions import ConfigError
from ssmd.gateway import GatewaySettings
from ssmd.gateway.auth import KeyRing, new_key
from ssmd.gateway.markets import Filters, _store_page
from ssmd.gateway.tenants import Policy, Tenants, glob_like
from ssmd.secmaster.db import Store
from ssmd.testing.nats import nats_server

ROOT = Path(__file__).resolve().parents[2]
A1, A2 = "KXA-26JAN01-T1", "KXA-26JAN01-T2"  # series KXA: tenant acme's
B1 = "KXB-26JAN01-T1"  # tenant beta's market
OTHER = "KXC-26JAN01-T1"  # nobody's but the operator's


def _settings(url: str, **limits: int) -> tuple[GatewaySettings, dict[str, str]]:
    """A gateway with the operator's key and two tenants: acme (series KXA, `limits`, two
    keys) and beta (markets KXB-*); and the keys by who holds them."""
    op, op_line = new_key("ops")
    a, a_line = new_key("acme-1")
    a2, a2_line = new_key("acme-2")
    b, b_line = new_key("beta-1")
    keys = KeyRing.merge(
        {
            None: KeyRing.parse(op_line),
            "acme": KeyRing.parse(f"{a_line}\n{a2_line}"),
            "beta": KeyRing.parse(b_line),
        }
    )
    acme = Policy(
        "acme",
        "kalshi",
        Entitlements(series=["KXA"]),
        TenantLimits(**limits),
        keys=("acme-1", "acme-2"),
    )
    beta = Policy(
        "beta", "kalshi", Entitlements(markets=["KXB-*"]), TenantLimits(), keys=("beta-1",)
    )
    tenants = Tenants({"acme": acme, "beta": beta})
    settings = gateway_settings(url, keys=keys, tenants=tenants)
    return settings, {"ops": op, "acme": a, "acme2": a2, "beta": b}


def test_entitlements_match_series_markets_and_venues() -> None:
    p = Policy(
        "t", "kalshi", Entitlements(series=["KXBTC*"], markets=["INX?-25-*"]), TenantLimits()
    )
    assert p.allows("KXBTCD-26DEC0317-T118000") and p.allows("KXBTC-26DEC03-B1")
    assert p.allows("INXD-25-B4000") and not p.allows("INXDD-25-B4000")
    # A series pattern stops at the first '-': *X does not reach into the market's part.
    q = Policy("t", "kalshi", Entitlements(series=["*D"]), TenantLimits())
    assert q.allows("KXBTCD-26DEC03-T1") and not q.allows("KXBTC-26DEC03-TD")
    everything = Policy("t", "kalshi", Entitlements(), TenantLimits())
    assert everything.allows("ANY-THING") and everything.pattern is None
    elsewhere = Policy("t", "kalshi", Entitlements(venues=["polymarket"]), TenantLimits())
    assert not elsewhere.allows("KXBTCD-26DEC03-T1")
    assert "venue kalshi" in elsewhere.describe_entitlements()


def test_a_gateway_of_several_venues_entitles_each_venue_by_its_symbols() -> None:
    """Further venues' markets are `venue:ticker`: the venue entitlement reads the prefix,
    series and markets the ticker after it."""
    further = ("polymarket", "kraken")
    spot = Policy(
        "t", "kalshi", Entitlements(venues=["kraken"], series=["XBT*"]), TenantLimits(), None, (),
        further,
    )  # fmt: skip
    assert spot.allows("kraken:XBT/USD") and not spot.allows("kraken:ETH/USD")
    assert not spot.allows("XBT-1") and not spot.allows("polymarket:XBT-1")
    # The own venue is not entitled: its history rows match none; Kraken's archive rows
    # and gaps are read by its tickers.
    kraken = spot.pattern_of("kraken")
    assert spot.pattern == "^$" and kraken is not None
    assert re.match(kraken, "XBT/USD") and not re.match(kraken, "ETH/USD")
    gap = {"start": "s", "markets": ["XBT/USD", "ETH/USD"]}
    assert spot.entitled_gaps([gap], "kraken") == [{**gap, "markets": ["XBT/USD"]}]
    assert spot.entitled_gaps([gap]) == []
    assert spot.describe_entitlements() == "series XBT* of venue kraken"
    assert spot.forbidden(["kraken:XBT/USD", "kraken:ETH/USD"]) == ["kraken:ETH/USD"]
    every = Policy("t", "kalshi", Entitlements(), TenantLimits(), None, (), further)
    assert every.allows("KXBTCD-1") and every.allows("polymarket:0xabc")
    assert every.describe_entitlements() == "every market of venue kalshi, polymarket, kraken"
    # A prefix that is not a further venue is part of an own venue's ticker.
    kalshi = Policy(
        "t", "kalshi", Entitlements(venues=["kalshi"]), TenantLimits(), None, (), further
    )
    assert kalshi.allows("coinbase:X") and not kalshi.allows("kraken:XBT/USD")


async def test_a_tenant_subscribes_only_within_its_entitlements(tmp_path: Path) -> None:
    async with nats_server(tmp_path / "nats") as srv, publisher(srv.url) as pub:
        await pub.publish(
            *(snapshot(t, [(10 * CENT, E6)], [], sid=i) for i, t in enumerate((A1, A2, B1, OTHER)))
        )
        settings, keys = _settings(srv.url)
        async with running_gateway(settings) as gw:
            async with Client.connect(f"{gw.ws}?api_key={keys['acme']}") as a:
                await a.send({"action": "subscribe", "symbols": [A1, B1, OTHER, A2]})
                err = await a.recv_until(lambda m: m["type"] == "error")
                assert err["code"] == "forbidden_symbol"
                assert B1 in err["message"] and OTHER in err["message"]
                assert "series KXA" in err["message"] and A1 not in err["message"]
                sub = await a.recv_until(lambda m: m["type"] == "subscribed")
                assert sub["symbols"] == [A1, A2]
                # A forbidden symbol alone: only the error, nothing subscribed.
                await a.send({"action": "subscribe", "symbols": [B1]})
                assert (await a.recv_until(lambda m: m["type"] == "error"))["code"] == (
                    "forbidden_symbol"
                )
                await pub.publish(trade(B1, 40 * CENT, E6, seq=1), trade(A1, 41 * CENT, E6, seq=2))
                got = await a.recv_until(lambda m: m["type"] == "trade")
                assert got["ticker"] == A1
            # The operator's key sees every market.
            async with Client.connect(f"{gw.ws}?api_key={keys['ops']}") as o:
                await o.send({"action": "subscribe", "symbols": [A1, B1, OTHER]})
                assert (await o.recv())["symbols"] == [A1, B1, OTHER]
            tenants = gw.gw.settings.tenants
            policy = tenants.by_name["acme"]
            assert policy.usage.refused["entitlement"] == 2
            assert (
                tenants.registry.get_sample_value(
                    "ssmd_gateway_tenant_refused_total", {"tenant": "acme", "reason": "entitlement"}
                )
                == 2
            )
            assert (
                tenants.registry.get_sample_value(
                    "ssmd_gateway_tenant_refused_total", {"tenant": "beta", "reason": "entitlement"}
                )
                == 0
            )


async def _closed_with(url: str) -> tuple[int, str]:
    async with websockets.connect(url) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def test_tenant_limits_hold_one_tenant_and_not_another(tmp_path: Path) -> None:
    async with nats_server(tmp_path / "nats") as srv, publisher(srv.url) as pub:
        await pub.publish(
            snapshot(A1, [(10 * CENT, E6)], [], sid=1),
            snapshot(A2, [(10 * CENT, E6)], [], sid=2),
            snapshot(B1, [(10 * CENT, E6)], [], sid=3),
        )
        settings, keys = _settings(srv.url, connections=1, symbols=1, messages_per_second=20)
        async with running_gateway(settings) as gw:
            url = gw.ws
            async with (
                Client.connect(f"{url}?api_key={keys['acme']}&symbols={A1}") as a,
                Client.connect(f"{url}?api_key={keys['beta']}&symbols={B1}") as b,
            ):
                assert (await a.recv())["type"] == "subscribed"
                assert (await b.recv())["type"] == "subscribed"
                # connections=1 is the tenant's, whichever of its keys.
                code, reason = await _closed_with(f"{url}?api_key={keys['acme2']}")
                assert code == 4429 and "acme" in reason
                async with Client.connect(f"{url}?api_key={keys['beta']}") as b2:
                    await b2.send({"action": "subscribe", "symbols": [B1]})
                    assert (await b2.recv())["type"] == "subscribed"
                # symbols=1 per connection.
                await a.send({"action": "subscribe", "symbols": [A2]})
                err = await a.recv_until(lambda m: m["type"] == "error")
                assert (
                    err["code"] == "too_many_symbols" and "acme's symbols limit" in err["message"]
                )
                # messages_per_second=20: acme's 100 trades trickle (every one, in order),
                # beta's arrive at once.
                n = 100
                start = time.monotonic()
                await pub.publish_fast(
                    [trade(t, 40 * CENT, E6, seq=i) for i in range(n) for t in (A1, B1)]
                )
                for _ in range(n):
                    await b.recv_until(lambda m: m["type"] == "trade")
                beta_done = time.monotonic() - start
                for _ in range(n):
                    await a.recv_until(lambda m: m["type"] == "trade", timeout=20)
                acme_done = time.monotonic() - start
                # The bucket holds one second (20) and refills at 20/s: the rest takes
                # at least (100 - 20) / 20 = 4 s.
                assert acme_done >= (n - 20) / 20 * 0.9, acme_done
                assert beta_done < acme_done / 2, (beta_done, acme_done)
                prices = [m["ticker"] for m in a.of("trade")]
                assert prices == [A1] * n
            policy = gw.gw.settings.tenants.by_name["acme"]
            assert policy.usage.throttled_seconds > 0
            assert policy.usage.refused["connections"] == 1
            assert policy.usage.refused["symbols"] == 1
            assert gw.gw.settings.tenants.by_name["beta"].usage.throttled_seconds == 0
            await until(lambda: policy.usage.connections == 0, what="acme's connection released")


async def test_rest_usage_and_metrics_by_tenant(tmp_path: Path) -> None:
    async with nats_server(tmp_path / "nats") as srv, publisher(srv.url) as pub:
        await pub.publish(
            *(snapshot(t, [(10 * CENT, E6)], [], sid=i) for i, t in enumerate((A1, A2, B1, OTHER)))
        )
        settings, keys = _settings(srv.url)
        async with running_gateway(settings) as gw:

            def h(who: str) -> dict[str, str]:
                return {"X-API-Key": keys[who]}

            listed = await gw.aget("/v1/markets", headers=h("acme"))
            assert [m["ticker"] for m in listed.json()["markets"]] == [A1, A2]
            paged = await gw.aget("/v1/markets?limit=1", headers=h("acme"))
            nxt = paged.json()["next_cursor"]
            rest = await gw.aget(f"/v1/markets?limit=1&cursor={nxt}", headers=h("acme"))
            assert [m["ticker"] for m in rest.json()["markets"]] == [A2]
            active = await gw.aget("/v1/markets?sort=activity", headers=h("beta"))
            assert [m["ticker"] for m in active.json()["markets"]] == [B1]
            everything = await gw.aget("/v1/markets", headers=h("ops"))
            assert len(everything.json()["markets"]) == 4
            for path in (f"/v1/markets/{B1}", f"/v1/markets/{B1}/trades"):
                r = await gw.aget(path, headers=h("acme"))
                assert r.status_code == 403 and r.json()["code"] == "forbidden"
                assert "acme" in r.json()["message"] and B1 in r.json()["message"]
            assert (await gw.aget(f"/v1/markets/{A1}", headers=h("acme"))).status_code == 200

            mine = (await gw.aget("/v1/usage", headers=h("acme"))).json()
            assert mine["tenant"] == "acme" and mine["keys"] == ["acme-1", "acme-2"]
            assert mine["usage"]["refused"]["entitlement"] == 2
            assert "beta" not in str(mine) and "beta-1" not in str(mine)
            theirs = (await gw.aget("/v1/usage", headers=h("beta"))).json()
            assert theirs["keys"] == ["beta-1"] and "acme" not in str(theirs)
            operator = (await gw.aget("/v1/usage", headers=h("ops"))).json()
            assert [t["tenant"] for t in operator["tenants"]] == ["acme", "beta"]

            # Every tenant's usage is the operator's: /metrics/tenants takes an operator's
            # key; the open /metrics names no tenant.
            denied = await gw.aget("/metrics/tenants", headers=h("acme"))
            assert denied.status_code == 403 and "/v1/usage" in denied.json()["message"]
            assert (await gw.aget("/metrics/tenants")).status_code == 401
            scraped = await gw.aget("/metrics/tenants", headers=h("ops"))
            assert scraped.status_code == 200
            assert 'ssmd_gateway_tenant_requests_total{tenant="acme"}' in scraped.text
            assert 'ssmd_gateway_tenant_refused_total{reason="entitlement",tenant="acme"} 2.0' in (
                scraped.text
            )
            public = await gw.aget("/metrics")
            assert public.status_code == 200 and "ssmd_gateway_clients_connected" in public.text
            assert "acme" not in public.text and "tenant" not in public.text


def _config(tmp_path: Path, tenants: str, secrets: str = "", env: str = "kalshi-sim") -> Path:
    config = tmp_path / "exchanges"
    shutil.copytree(ROOT / "exchanges", config)
    path = config / "environments" / f"{env}.yaml"
    text = path.read_text().replace("  secrets:\n", f"  secrets:\n{secrets}", 1)
    path.write_text(text + tenants)
    return config


def test_tenants_come_from_the_environment(tmp_path: Path) -> None:
    key, line = new_key("acme-1")
    (tmp_path / "acme.keys").write_text(line + " transform=compact\n")
    (tmp_path / "compact.lua").write_text("function transform(m) return m end\n")
    config = _config(
        tmp_path,
        f"""  tenants:
    acme:
      api_keys: acme_keys
      entitlements:
        series: [KXBTCD]
      limits:
        connections: 3
        history_rows: 500
  transforms:
    compact:
      script: {tmp_path / "compact.lua"}
""",
        f"    acme_keys: file:{tmp_path / 'acme.keys'}\n",
    )
    env = load_environment("kalshi-sim", config, Overrides(nats_url="nats://127.0.0.1:4222"))
    settings = GatewaySettings.from_environment(env, host="0.0.0.0")
    found = settings.keys.match(key) if settings.keys is not None else None
    assert found is not None and found.tenant == "acme" and found.transform == "compact"
    policy = settings.tenants.by_name["acme"]
    assert policy.limits.history_rows == 500 and policy.allows("KXBTCD-26DEC03-T1")
    assert not policy.allows("KXETH-26DEC03-T1")
    assert settings.transforms["compact"].source.startswith("function transform")


def test_a_kraken_pair_is_entitled_by_its_name(tmp_path: Path) -> None:
    """`markets: [BTC/USD]` in multi-sim: a ticker with a '/' is a name, not a wildcard's
    job; the pair is entitled, the other pairs are not (stream, REST and history rows)."""
    import polars as pl

    _, line = new_key("pair-1")
    (tmp_path / "pair.keys").write_text(line + "\n")
    config = _config(
        tmp_path,
        """  tenants:
    pair:
      api_keys: pair_keys
      entitlements:
        venues: [kraken]
        markets: [BTC/USD]
""",
        f"    pair_keys: file:{tmp_path / 'pair.keys'}\n",
        env="multi-sim",
    )
    overrides = Overrides(nats_url="nats://127.0.0.1:4222")
    env = load_environment("multi-sim", config, overrides)
    kraken = load_environment("multi-sim", config, overrides, feed="kraken")
    policy = GatewaySettings.from_environment(env, venues=[kraken]).tenants.by_name["pair"]
    assert policy.allows("kraken:BTC/USD")
    assert policy.forbidden(["kraken:ETH/USD", "kraken:BTC/USDT", "BTC/USD"]) == [
        "kraken:ETH/USD",
        "kraken:BTC/USDT",
        "BTC/USD",
    ]
    assert policy.describe_entitlements() == "markets BTC/USD of venue kraken"
    rows = pl.LazyFrame({"ticker": ["BTC/USD", "ETH/USD", "XBTC/USD"]})
    assert policy.entitled_rows(rows, "kraken").collect()["ticker"].to_list() == ["BTC/USD"]


async def test_a_tenant_of_one_kraken_pair_gets_that_pair_alone(tmp_path: Path) -> None:
    """Entitled to exactly BTC/USD on kraken: subscribed to it and not to ETH/USD; its
    market route answers (the '/' in the path), ETH/USD's is 403; the venue's listing
    holds BTC/USD alone."""
    pairs = ("BTC/USD", "ETH/USD")
    db = tmp_path / "secmaster.sqlite3"
    with Store.open(db) as store:
        store.migrate()
        store.apply_markets([{"ticker": t, "venue": "kraken", "status": "open"} for t in pairs])
    _, op_line = new_key("ops")
    key, line = new_key("pair-1")
    keys = KeyRing.merge({None: KeyRing.parse(op_line), "pair": KeyRing.parse(line)})
    pair = Policy(
        "pair", "kalshi", Entitlements(venues=["kraken"], markets=["BTC/USD"]), TenantLimits(),
        None, ("pair-1",), ("kraken",),
    )  # fmt: skip
    async with (
        nats_server(tmp_path / "nats") as srv,
        publisher(srv.url),
        publisher(srv.url, "kraken") as kraken,
    ):
        await kraken.publish(
            *(snapshot(t, [(50 * CENT, E6)], [], sid=i) for i, t in enumerate(pairs, 1))
        )
        settings = replace(
            gateway_settings(srv.url, keys=keys, tenants=Tenants({"pair": pair})),
            venues=(replace(gateway_settings(srv.url, "kraken"), store=lambda: Store.open(db)),),
        )
        async with running_gateway(settings) as gw:
            async with Client.connect(f"{gw.ws}?api_key={key}") as c:
                await c.send({"action": "subscribe", "symbols": ["kraken:" + t for t in pairs]})
                refused = await c.recv_until(lambda m: m["type"] == "error")
                assert refused["code"] == "forbidden_symbol"
                assert "kraken:ETH/USD" in refused["message"]
                assert "markets BTC/USD of venue kraken" in refused["message"]
                subscribed = await c.recv_until(lambda m: m["type"] == "subscribed")
                assert subscribed["symbols"] == ["kraken:BTC/USD"]
                book = await c.recv_until(lambda m: m["type"] == "orderbook")
                assert book["ticker"] == "kraken:BTC/USD"

            h = {"X-API-Key": key}
            one = await gw.aget("/v1/markets/kraken:BTC/USD", headers=h)
            assert one.status_code == 200 and one.json()["symbol"] == "kraken:BTC/USD"
            other = await gw.aget("/v1/markets/kraken:ETH/USD", headers=h)
            assert other.status_code == 403 and other.json()["code"] == "forbidden"
            for sort in ("ticker", "activity"):
                params = {"venue": "kraken", "sort": sort}
                page = (await gw.aget("/v1/markets", params=params, headers=h)).json()
                assert [m["symbol"] for m in page["markets"]] == ["kraken:BTC/USD"], sort


def test_an_environment_without_tenants_is_unchanged(tmp_path: Path) -> None:
    env = load_environment(
        "kalshi-sim", ROOT / "exchanges", Overrides(nats_url="nats://127.0.0.1:4222")
    )
    settings = GatewaySettings.from_environment(env)
    assert settings.keys is None and not settings.tenants and settings.transforms == {}


@pytest.mark.parametrize(
    ("tenants", "secrets", "fragments"),
    [
        (
            "  tenants:\n    acme:\n      api_keys: acme_keys\n",
            "",
            ["spec.tenants.acme.api_keys", "no secret 'acme_keys'", "Fix: add `acme_keys:"],
        ),
        (
            "  tenants:\n    acme:\n      api_keys: gateway_api_keys\n",
            "    gateway_api_keys: env:X\n",
            ["spec.tenants.acme.api_keys", "operator's keys", "Fix:"],
        ),
        (
            "  tenants:\n    acme:\n      api_keys: k\n      transform: nope\n",
            "    k: env:X\n",
            ["spec.tenants.acme.transform", "no transform 'nope'", "Fix:"],
        ),
        (
            "  tenants:\n    acme:\n      api_keys: k\n      limits:\n        connections: 0\n",
            "    k: env:X\n",
            ["spec.tenants.acme.limits.connections", "Fix:"],
        ),
        (
            "  tenants:\n    acme:\n      api_keys: k\n      entitlements:\n        series: ['a b']\n",
            "    k: env:X\n",
            ["spec.tenants.acme.entitlements.series", "pattern"],
        ),
        (
            "  transforms:\n    bad:\n      script: transforms/bad.lua\n",
            "",
            ["spec.transforms.bad.script", "transforms/bad.lua:3:", "Fix:"],
        ),
        (
            "  transforms:\n    gone:\n      script: transforms/none.lua\n",
            "",
            ["spec.transforms.gone.script", "cannot read the Lua script", "Fix:"],
        ),
    ],
)
def test_bad_tenant_config_names_file_field_and_fix(
    tmp_path: Path, tenants: str, secrets: str, fragments: list[str]
) -> None:
    config = _config(tmp_path, tenants, secrets)
    (config / "transforms").mkdir()
    (config / "transforms" / "bad.lua").write_text(
        "-- a broken script\nfunction transform(msg)\n  return = msg\nend\n"
    )
    with pytest.raises(ConfigError) as err:
        load_environment("kalshi-sim", config, Overrides(nats_url="nats://127.0.0.1:4222"))
    text = str(err.value)
    assert "kalshi-sim.yaml" in text
    for fragment in fragments:
        assert fragment in text, (fragment, text)


def test_key_lines_with_an_unknown_transform_stop_the_start(tmp_path: Path) -> None:
    key, line = new_key("ops")
    (tmp_path / "keys").write_text(line + " transform=missing\n")
    config = _config(tmp_path, "", f"    gateway_api_keys: file:{tmp_path / 'keys'}\n")
    env = load_environment("kalshi-sim", config, Overrides(nats_url="nats://127.0.0.1:4222"))
    with pytest.raises(ConfigError, match="transform=missing") as err:
        GatewaySettings.from_environment(env)
    assert key not in str(err.value)


def test_key_names_are_unique_across_tenants() -> None:
    _, line = new_key("same")
    _, other = new_key("same")
    with pytest.raises(ConfigError, match="same"):
        KeyRing.merge({None: KeyRing.parse(line), "acme": KeyRing.parse(other)})


async def test_limits_of_one_tenant_leave_the_other_connected(tmp_path: Path) -> None:
    """Several of beta's connections while acme is at its connection limit."""
    async with nats_server(tmp_path / "nats") as srv, publisher(srv.url) as pub:
        await pub.publish(snapshot(B1, [(10 * CENT, E6)], []))
        settings, keys = _settings(srv.url, connections=1)
        async with (
            running_gateway(settings) as gw,
            Client.connect(f"{gw.ws}?api_key={keys['acme']}"),
            contextlib.AsyncExitStack() as stack,
        ):
            acme = gw.gw.settings.tenants.by_name["acme"]
            await until(lambda: acme.usage.connections == 1, what="acme connected")
            code, _ = await _closed_with(f"{gw.ws}?api_key={keys['acme2']}")
            assert code == 4429
            opened = [
                await stack.enter_async_context(
                    Client.connect(f"{gw.ws}?api_key={keys['beta']}&symbols={B1}")
                )
                for _ in range(3)
            ]
            got = await asyncio.gather(*(c.recv() for c in opened))
            assert [m["type"] for m in got] == ["subscribed"] * 3
            assert gw.gw.settings.tenants.by_name["beta"].usage.connections == 3


async def test_data_issues_are_seen_by_the_tenant_that_reported_them(tmp_path: Path) -> None:
    db = tmp_path / "secmaster.sqlite3"
    with Store.open(db) as s:
        s.migrate()
    async with nats_server(tmp_path / "nats") as srv, publisher(srv.url):
        settings, keys = _settings(srv.url)
        settings = replace(settings, store=lambda: Store.open(db))
        async with (
            running_gateway(settings) as gw,
            httpx.AsyncClient(base_url=gw.http, timeout=10) as http,
        ):

            def h(who: str) -> dict[str, str]:
                return {"X-API-Key": keys[who]}

            report = {"start": "2026-12-03T12:00:00Z", "end": "2026-12-03T12:05:00Z"}
            made = {}
            for who, ticker in (("acme", A1), ("acme2", None), ("beta", B1), ("ops", OTHER)):
                body = {**report, "description": f"from {who}", "reporter": "agent"}
                if ticker:
                    body["ticker"] = ticker
                resp = await http.post("/v1/data-issues", json=body, headers=h(who))
                assert resp.status_code == 201, resp.text
                made[who] = resp.json()["id"]
            # Reporting on a market outside its entitlements is refused.
            refused = await http.post(
                "/v1/data-issues",
                json={**report, "ticker": B1, "description": "x"},
                headers=h("acme"),
            )
            assert refused.status_code == 403 and B1 in refused.json()["message"]

            def ids(resp: httpx.Response) -> set[int]:
                return {i["id"] for i in resp.json()["issues"]}

            both_acme = {made["acme"], made["acme2"]}
            assert ids(await http.get("/v1/data-issues", headers=h("acme"))) == both_acme
            assert ids(await http.get("/v1/data-issues", headers=h("beta"))) == {made["beta"]}
            assert ids(await http.get("/v1/data-issues", headers=h("ops"))) == set(made.values())
            theirs = await http.get(f"/v1/data-issues/{made['beta']}", headers=h("acme"))
            assert theirs.status_code == 404
            mine = await http.get(f"/v1/data-issues/{made['acme2']}", headers=h("acme"))
            assert mine.status_code == 200 and mine.json()["reporter"] == "acme-2/agent"


async def test_the_mcp_tools_are_held_to_their_keys_tenant(tmp_path: Path) -> None:
    """The MCP server calls the gateway with its API key: a tenant's key gets the tenant's
    markets only, and a clear error for the others."""
    from mcp.server.mcpserver.exceptions import ToolError

    from ssmd.mcp.gateway import GatewayClient
    from ssmd.mcp.tools import Tools

    async with nats_server(tmp_path / "nats") as srv, publisher(srv.url) as pub:
        await pub.publish(
            *(snapshot(t, [(10 * CENT, E6)], [], sid=i) for i, t in enumerate((A1, A2, B1, OTHER)))
        )
        settings, keys = _settings(srv.url)
        async with running_gateway(settings) as gw:
            client = GatewayClient(gw.http, keys["acme"])
            tools = Tools(client, cast("ResolvedEnvironment", None), "kalshi")
            try:
                listed = orjson.loads(await tools.list_markets())
                assert [row[0] for row in listed["rows"]] == [A1, A2]
                book = orjson.loads(await tools.live_book(A1))
                assert book["bids"] == [[0.1, 1]]
                for call in (
                    tools.live_book(B1),
                    tools.recent_trades(B1),
                    tools.market_details(B1),
                ):
                    with pytest.raises(ToolError, match=f"tenant acme is not entitled to {B1}"):
                        await call
            finally:
                await client.aclose()
            acme = gw.gw.settings.tenants.by_name["acme"]
            assert acme.usage.refused["entitlement"] == 3


# Tickers and patterns over a small alphabet that holds every character with a meaning
# to a glob or to LIKE, so that the two meet often.
_TICKER = st.text("AB-_%./", min_size=0, max_size=8)
_GLOB = st.text("AB-_./*?", min_size=1, max_size=6)  # what a tenant's pattern may hold


@given(tickers=st.lists(_TICKER, max_size=12), markets=st.lists(_GLOB, max_size=2),
       series=st.lists(_GLOB, max_size=2))  # fmt: skip
def test_the_stores_narrowing_never_drops_an_entitled_market(
    tickers: list[str], markets: list[str], series: list[str]
) -> None:
    """The LIKE patterns a listing asks the security master with keep every ticker the
    tenant is entitled to (they may keep more: the policy still decides each one)."""
    policy = Policy(
        "t", "kalshi", Entitlements(venues=["kalshi"], series=series, markets=markets),
        TenantLimits(),
    )  # fmt: skip
    likes = policy.ticker_likes()
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE markets (ticker TEXT)")
    db.executemany("INSERT INTO markets VALUES (?)", [(t,) for t in tickers])
    if likes:
        where = " OR ".join(["ticker LIKE ? ESCAPE '\\'"] * len(likes))
        kept = {t for (t,) in db.execute(f"SELECT ticker FROM markets WHERE {where}", likes)}
    else:
        kept = set(tickers)
    assert {t for t in tickers if policy.allows(t)} <= kept


def test_a_glob_becomes_a_like_pattern_with_its_own_characters_escaped() -> None:
    assert glob_like("KX_BTC*") == "KX\\_BTC%"
    assert glob_like("BTC/US?") == "BTC/US_"
    assert glob_like("A_?") == "A\\__"


@pytest.fixture(scope="module")
def pg_admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with postgres_server(tmp_path_factory.mktemp("pg")) as url:
        yield url


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_a_tenants_patterns_narrow_the_listing_query_on_either_store(
    dialect: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The LIKE terms run as meant on SQLite and PostgreSQL alike: '/' as it is, a
    pattern's own '_' escaped (XBTA1 is not XBT_1), '?' one character."""
    if dialect == "sqlite":
        store = Store.open(tmp_path / "sm.sqlite3")
    else:
        store = Store.open(fresh_database(request.getfixturevalue("pg_admin"), "tenant_likes"))
    tickers = ("BTC/USD", "BTC/USDT", "ETH/USD", "XBT_1", "XBTA1")
    policy = Policy(
        "t", "kraken", Entitlements(venues=["kraken"], markets=["BTC/USD", "XBT_?"]),
        TenantLimits(),
    )  # fmt: skip
    with store:
        store.migrate()
        store.apply_markets([{"ticker": t, "venue": "kraken", "status": "open"} for t in tickers])
        rows = _store_page(store, "kraken", Filters(likes=policy.ticker_likes()), 100, None)
    assert [r["ticker"] for r in rows] == ["BTC/USD", "XBT_1"]

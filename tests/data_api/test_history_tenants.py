"""The history routes for a gateway tenant: rows of its markets only, a forbidden market
or an oversized request refused with a message naming the entitlement or the limit,
gaps of other markets left out; the operator's key unchanged."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
import polars as pl
import pytest
from fastapi.testclient import TestClient

import ssmd.data
from _support.datafix import DAY1, DAY2, ENV, Capture
from ssmd.config.models.environment import Entitlements, TenantLimits
from ssmd.data.source import Dataset
from ssmd.gateway import Gateway, GatewaySettings
from ssmd.gateway.auth import KeyRing, new_key
from ssmd.gateway.tenants import Policy, Tenants

pytestmark = pytest.mark.xdist_group("data_api")

OPS, OPS_LINE = new_key("ops")
ACME, ACME_LINE = new_key("acme-1")
D1, D2 = DAY1.isoformat(), DAY2.isoformat()
ROWS = 7  # acme's history_rows


def _gateway(cap: Capture, markets: list[str], rows: int = ROWS) -> tuple[TestClient, Policy]:
    dataset = Dataset.open(ENV, data_dir=cap.data_dir)
    base = GatewaySettings.from_environment(cap.env, dataset=lambda: dataset)
    acme = Policy(
        "acme",
        dataset.feed,
        Entitlements(markets=markets),
        TenantLimits(history_rows=rows),
        keys=("acme-1",),
    )
    keys = KeyRing.merge({None: KeyRing.parse(OPS_LINE), "acme": KeyRing.parse(ACME_LINE)})
    settings = replace(base, keys=keys, tenants=Tenants({"acme": acme}))
    return TestClient(Gateway(settings).app), acme


def _trades(cap: Capture, tickers: list[str] | None = None) -> pl.DataFrame:
    return ssmd.data.scan(
        "trade", D1, D2, env=ENV, data_dir=cap.data_dir, tickers=tickers
    ).collect()


def _all_pages(http: TestClient, key: str, **params: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    query: dict[str, Any] = {"from": D1, "to": D2} | params
    while True:
        resp = http.get("/v1/history/trade", params=query, headers={"X-API-Key": key})
        assert resp.status_code == 200, resp.text
        body = orjson.loads(resp.content)
        assert body["count"] <= ROWS
        rows += body["rows"]
        if body["next"] is None:
            return rows
        query["cursor"] = body["next"]


def test_a_tenant_reads_the_rows_of_its_markets_only(captured: Capture) -> None:
    traded = _trades(captured).get_column("ticker").unique().sort().to_list()
    mine = traded[:2]
    http, acme = _gateway(captured, mine)
    rows = _all_pages(http, ACME)  # no tickers: every market it may see, page by page
    want = _trades(captured, mine).get_column("trade_id").to_list()
    assert len(want) > ROWS and [r["trade_id"] for r in rows] == want
    assert {r["ticker"] for r in rows} == set(mine)
    one = _all_pages(http, ACME, tickers=mine[1])
    assert [r["trade_id"] for r in one] == _trades(captured, [mine[1]]).get_column(
        "trade_id"
    ).to_list()
    # The operator's key: every market, the gateway's own limits.
    everything = http.get(
        "/v1/history/trade", params={"from": D1, "to": D2, "limit": 100_000},
        headers={"X-API-Key": OPS},
    )  # fmt: skip
    assert everything.json()["count"] == _trades(captured).height > len(want)
    assert acme.usage.history_rows >= len(want)


def test_refusals_name_the_entitlement_or_the_limit(captured: Capture) -> None:
    mine, other = captured.tickers[0], captured.tickers[-1]
    http, acme = _gateway(captured, [mine])
    auth = {"X-API-Key": ACME}

    forbidden = http.get(
        "/v1/history/trade", params={"from": D1, "tickers": f"{mine},{other}"}, headers=auth
    )
    assert forbidden.status_code == 403 and forbidden.json()["code"] == "forbidden"
    message = forbidden.json()["message"]
    assert "tenant acme" in message and other in message and f"markets {mine}" in message
    book = http.get("/v1/history/book", params={"ticker": other, "at": D2}, headers=auth)
    assert book.status_code == 403 and other in book.json()["message"]
    assert acme.usage.refused["entitlement"] == 2

    over = http.get("/v1/history/trade", params={"from": D1, "limit": ROWS + 1}, headers=auth)
    assert over.status_code == 400
    assert f"limit={ROWS + 1}" in over.json()["message"]
    assert f"{ROWS} rows, its history_rows limit" in over.json()["message"]
    assert acme.usage.refused["history_rows"] == 1

    # Connector events: those naming its market only (not the connection's own).
    events = http.get(
        "/v1/history/connector_event", params={"from": D2, "limit": ROWS}, headers=auth
    )
    everyone = http.get(
        "/v1/history/connector_event", params={"from": D2}, headers={"X-API-Key": OPS}
    )
    assert {r["ticker"] for r in everyone.json()["rows"]} - {mine}
    assert {r["ticker"] for r in events.json()["rows"]} <= {mine}


def test_a_tenant_sees_the_gaps_of_its_markets(captured: Capture) -> None:
    dataset = Dataset.open(ENV, data_dir=captured.data_dir)
    gaps = dataset.archive.gaps(dataset.feed, DAY2)
    named = [g for g in gaps if g.get("markets")]
    assert named and captured.gap_ticker in named[0]["markets"]
    others = [t for t in captured.tickers if t != captured.gap_ticker]
    cases = {captured.gap_ticker: True, others[0]: False}
    for ticker, sees in cases.items():
        http, _ = _gateway(captured, [ticker])
        report = http.get("/v1/quality", params={"date": D2}, headers={"X-API-Key": ACME})
        shown = [g for g in report.json()["gap_list"] if g.get("markets")]
        assert bool(shown) == sees
        assert all(g["markets"] == [ticker] for g in shown)


async def test_the_mcp_archive_tools_hold_a_tenants_key_to_its_markets(
    captured: Capture,
) -> None:
    """The MCP server reads the archive itself: with a tenant's key it applies the
    tenant's entitlements and history_rows as the gateway describes them (/v1/usage)."""
    import httpx
    from mcp.server.mcpserver.exceptions import ToolError

    from ssmd.mcp.gateway import GatewayClient
    from ssmd.mcp.tools import Tools

    traded = _trades(captured).get_column("ticker").unique().sort().to_list()
    mine, other = traded[0], traded[-1]
    dataset = Dataset.open(ENV, data_dir=captured.data_dir)

    def tools_for(key: str, rows: int) -> Tools:
        http, _ = _gateway(captured, [mine], rows)
        client = GatewayClient("http://gateway", key)
        client.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=http.app),
            base_url="http://gateway",
            headers={"X-API-Key": key},
        )
        return Tools(client, captured.env, dataset.feed)

    acme, ops = tools_for(ACME, 5000), tools_for(OPS, 5000)
    assert (await acme.tenant()) is not None and (await ops.tenant()) is None
    rows = orjson.loads(await acme.history("trade", D1, D2, limit=5000))
    ids = rows["columns"].index("trade_id")
    want = _trades(captured, [mine]).get_column("trade_id").to_list()
    assert [r[ids] for r in rows["rows"]] == want
    everyone = orjson.loads(await ops.history("trade", D1, D2, limit=5000))
    assert everyone["count"] == _trades(captured).height > len(want)
    with pytest.raises(ToolError, match=f"tenant acme is not entitled to {other}"):
        await acme.history("trade", D1, D2, tickers=[other])
    with pytest.raises(ToolError, match=f"tenant acme is not entitled to {other}"):
        await acme.book_at(other, f"{D2}T00:00:30Z")
    held = tools_for(ACME, ROWS)
    with pytest.raises(ToolError, match=f"{ROWS} rows, its history_rows limit"):
        await held.history("trade", D1, D2, limit=ROWS + 1)
    gaps = orjson.loads(await acme.gaps(D2))
    markets = gaps["columns"].index("markets")
    assert all(row[markets] in ([], [mine]) for row in gaps["rows"])

"""`ssmd mcp serve` over stdio, driven by the MCP SDK's own client, against `ssmd up --env
kalshi-sim` (the simulator, connector, archiver, security master and gateway).

Live tools are checked against the gateway, archive tools against `ssmd.data` reading the
same archive, the data-issue tool through the database, `ssmd data quality`, the CLI and
the journal on NATS. Errors: an unknown ticker names the close ones, an oversized history
names the limit, a malformed request is a JSON-RPC error and the server goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import nats
import orjson
import pytest
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters

import ssmd.data
from _support.upfix import EXCHANGES, SSMD, UpProcess
from ssmd.secmaster.journal import journal_stream
from ssmd.up.nats import free_port
from ssmd.upstate import read_state

pytestmark = [pytest.mark.timeout(300), pytest.mark.xdist_group("mcp-e2e")]

ENV = "kalshi-sim"
TOOLS = {
    "list_markets", "market_details", "live_book", "recent_trades", "book_at", "history",
    "inventory", "gaps", "quality", "system_status", "report_data_issue", "list_data_issues",
}  # fmt: skip


@dataclass
class Pipeline:
    data: Path
    up: UpProcess
    loop: asyncio.AbstractEventLoop

    @property
    def base(self) -> str:
        return self.up.base

    def args(self) -> list[str]:
        return ["--env", ENV, "--config-dir", str(EXCHANGES), "--data-dir", str(self.data)]

    def dataset(self) -> ssmd.data.Dataset:
        return ssmd.data.Dataset.open(ENV, data_dir=self.data, config_dir=EXCHANGES)

    def cli(self, *argv: str) -> Any:
        out = subprocess.run(
            [SSMD, *argv, *self.args(), "--json"], capture_output=True, timeout=60, check=False
        )
        assert out.returncode == 0, out.stderr.decode()
        return orjson.loads(out.stdout)

    def stop(self) -> None:
        """Stop `ssmd up` (the archiver writes the day's manifests as it stops). Called from
        a test not running an event loop of its own, or at the end."""
        if self.up.proc is not None and self.up.proc.returncode is None:
            assert self.loop.run_until_complete(self.up.stop()) == 0


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """`ssmd up` on a loop of its own (its output to a file), ready, for the whole module;
    the last test stops it."""
    tmp = tmp_path_factory.mktemp("mcp")
    up = UpProcess(tmp / "data", free_port())
    loop = asyncio.new_event_loop()
    log = (tmp / "up.log").open("wb")

    async def start() -> None:
        await up.start(json_logs=False, output=log.fileno())
        async with httpx.AsyncClient(timeout=5) as http:
            await up.wait_ready(http)

    try:
        loop.run_until_complete(start())
        yield Pipeline(tmp / "data", up, loop)
    finally:
        with contextlib.suppress(Exception):
            Pipeline(tmp / "data", up, loop).stop()
        loop.run_until_complete(up.ensure_gone())
        loop.close()
        log.close()


@contextlib.asynccontextmanager
async def mcp(p: Pipeline) -> AsyncIterator[Client]:
    server = StdioServerParameters(
        command=SSMD,
        args=["mcp", "serve", *p.args(), "--gateway", p.base],
        env={"PATH": os.environ["PATH"]},
    )
    async with Client(server, read_timeout_seconds=60) as client:
        yield client


async def call(client: Client, tool: str, **args: Any) -> Any:
    """The tool's JSON answer; AssertionError with the text when it is an error."""
    result = await client.call_tool(tool, args)
    text = result.content[0].text  # type: ignore[union-attr]
    assert not result.is_error, f"{tool}: {text}"
    return orjson.loads(text)


async def error(client: Client, tool: str, **args: Any) -> str:
    result = await client.call_tool(tool, args)
    assert result.is_error, f"{tool} should have failed: {result.content}"
    return str(result.content[0].text)  # type: ignore[union-attr]


async def poll(what: str, fn: Any, timeout: float = 90) -> Any:
    """fn() until it returns something truthy (an archive or book that fills as data flows)."""
    deadline = time.monotonic() + timeout
    while True:
        got = await fn()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(0.5)


async def traded_market(client: Client) -> str:
    """An open market with a book and a trade the gateway has seen."""

    async def find() -> str | None:
        page = await call(client, "list_markets", sort="activity", status="open", limit=20)
        cols = page["columns"]
        for row in page["rows"]:
            m = dict(zip(cols, row, strict=True))
            if m["last_trade_ms"] and m["best_bid"] and m["best_ask"]:
                return str(m["ticker"])
        return None

    ticker: str = await poll("a traded market", find)
    return ticker


def _near_miss(ticker: str) -> str:
    """The ticker with its last character changed: not a market, but close to one."""
    return ticker[:-1] + ("7" if ticker[-1] != "7" else "3")


async def test_live_tools_answer_from_the_gateway(pipeline: Pipeline) -> None:
    async with mcp(pipeline) as client:
        listed = await client.list_tools()
        assert {t.name for t in listed.tools} == TOOLS
        assert all(t.description and t.input_schema for t in listed.tools)
        ticker = await traded_market(client)

        book = await call(client, "live_book", ticker=ticker, depth=3)
        assert "dollars" in book["units"] and "contracts" in book["units"]
        # Each answer is one view of a live book: its ladder cut to the depth asked, and
        # the number of levels the book had then (two calls may see two books).
        for side in ("bids", "asks"):
            assert len(book[side]) == min(3, book["levels"][side]), book
        bids, asks = [p for p, _ in book["bids"]], [p for p, _ in book["asks"]]
        assert bids == sorted(bids, reverse=True) and asks == sorted(asks)
        assert all(0 < p < 1 for p in bids + asks) and all(s > 0 for _, s in book["bids"])
        whole = await call(client, "live_book", ticker=ticker, depth=0)
        assert len(whole["bids"]) == whole["levels"]["bids"]
        assert len(whole["asks"]) == whole["levels"]["asks"]

        trades = await call(client, "recent_trades", ticker=ticker, limit=5)
        assert trades["columns"] == ["ts", "price", "size", "side"] and trades["rows"]
        async with httpx.AsyncClient(base_url=pipeline.base) as http:
            rest = (await http.get(f"/v1/markets/{ticker}/trades", params={"limit": 5})).json()
        # The newest trades the gateway serves, in the same order (newer ones may have come).
        newest = [t["ts"] for t in rest["trades"]]
        assert [r[0] for r in trades["rows"]] == sorted(
            [r[0] for r in trades["rows"]], reverse=True
        )
        assert trades["rows"][0][0] <= newest[0]

        details = await call(client, "market_details", ticker=ticker)
        assert details["market"]["ticker"] == ticker and details["market"]["status"] == "open"
        assert any(c["field"] == "status" for c in details["field_history"])

        status = await call(client, "system_status")
        assert status["gateway_health"]["http_status"] == 200
        up = status["ssmd_up"]
        assert up["running"] and set(up["components"].values()) == {"running"}
        assert up["figures"]["frames_received"] > 0


async def test_unknown_tickers_name_the_closest(pipeline: Pipeline) -> None:
    async with mcp(pipeline) as client:
        ticker = await traded_market(client)
        wrong = _near_miss(ticker)
        for tool in ("live_book", "recent_trades", "market_details"):
            text = await error(client, tool, ticker=wrong)
            assert f"unknown market {wrong!r}" in text and ticker in text, text
        text = await error(client, "book_at", ticker=wrong, at=_iso(datetime.now(UTC)))
        assert "closest" in text and wrong in text, text
        text = await error(client, "history", kind="trades", start=_today())
        assert "closest: trade" in text, text


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


async def test_history_and_past_books_match_the_data_api(pipeline: Pipeline) -> None:
    async with mcp(pipeline) as client:
        ticker = await traded_market(client)
        start = datetime.now(UTC) - timedelta(minutes=30)

        async def archived() -> Any:
            args = {"kind": "trade", "start": _iso(start), "end": _iso(datetime.now(UTC)),
                    "tickers": [ticker], "limit": 5000}  # fmt: skip
            result = await client.call_tool("history", args)
            text = result.content[0].text  # type: ignore[union-attr]
            if result.is_error:  # only "nothing archived yet" is waited out
                assert "no trade data" in text, text
                return None
            rows = orjson.loads(text)
            return rows if rows["count"] >= 2 else None

        await poll("archived trades", archived)
        # A window that ended a while ago: the archiver has written all of it.
        end = datetime.now(UTC) - timedelta(seconds=5)
        await asyncio.sleep(10)
        got = await call(client, "history", kind="trade", start=_iso(start), end=_iso(end),
                         tickers=[ticker], limit=5000)  # fmt: skip
        want = ssmd.data.scan(
            "trade", _iso(start), _iso(end), tickers=[ticker], dataset=pipeline.dataset()
        ).collect()
        rows = [dict(zip(got["columns"], r, strict=True)) for r in got["rows"]]
        assert got["units"]["price"] == "dollars" and got["units"]["size"] == "contracts"
        assert got["units"]["receive_ms"] == "Unix ms"
        assert [r["trade_id"] for r in rows] == want["trade_id"].to_list()
        assert [round(r["price"] * 1e6) for r in rows] == want["price_e6"].to_list()
        assert [round(r["size"] * 1e6) for r in rows] == want["size_e6"].to_list()
        assert [r["receive_ms"] for r in rows] == [
            t // 10**6 for t in want["receive_ts"].dt.epoch("ns").to_list()
        ]
        assert "price_e6" not in got["columns"] and got["columns"].count("price") == 1

        # Over the limit: an error naming it, not a cut-off answer.
        text = await error(client, "history", kind="trade", start=_iso(start), end=_iso(end),
                           tickers=[ticker], limit=1)  # fmt: skip
        assert "more than 1 rows" in text and "5000" in text, text
        text = await error(client, "history", kind="trade", start="2026-01-01", end="2026-01-09")
        assert "longer than 7 days" in text, text
        text = await error(client, "history", kind="trade", start=_today(), limit=5001)
        assert "limit must be 1..5000" in text, text

        at = rows[-1]["receive_ms"]
        past = await call(
            client,
            "book_at",
            ticker=ticker,
            at=_iso(datetime.fromtimestamp(at / 1000, UTC)),
            depth=5,
        )
        truth = ssmd.data.book_at(ticker, at * 10**6, 5, dataset=pipeline.dataset())
        assert past["valid"] == truth.valid and past["reason"] == truth.reason
        assert past["bids"] == [
            [p / 1e6, s // 10**6 if s % 10**6 == 0 else s / 1e6] for p, s in truth.bids
        ]
        assert past["asks"] == [
            [p / 1e6, s // 10**6 if s % 10**6 == 0 else s / 1e6] for p, s in truth.asks
        ]


def test_a_reported_issue_shows_with_quality_until_resolved(pipeline: Pipeline) -> None:
    """Runs last: it stops the pipeline, so that the day has its manifests."""
    today = _today()

    async def report(text: str) -> tuple[dict[str, Any], dict[str, Any]]:
        async with mcp(pipeline) as client:
            ticker = await traded_market(client)
            now = datetime.now(UTC)
            made = await call(client, "report_data_issue", ticker=ticker,
                              start=_iso(now - timedelta(minutes=2)), end=_iso(now),
                              description=text)  # fmt: skip
            listed = await call(client, "list_data_issues")
            assert made["id"] in [i["id"] for i in listed["issues"]]
            quality = await call(client, "quality", day=today)
            return made, quality

    made, quality = asyncio.run(report("a trade far from the book"))
    assert made["status"] == "open" and made["reporter"] == "mcp"  # no API keys: its label
    assert made["journal"] == "published"
    assert made["id"] in [i["id"] for i in quality["data_issues"]]
    shown = pipeline.cli("data", "issues", "show", str(made["id"]))
    assert shown["description"] == "a trade far from the book" and shown["reporter"] == "mcp"

    done = pipeline.cli("data", "issues", "resolve", str(made["id"]), "--note", "checked: real")
    assert done["status"] == "resolved" and done["resolution"] == "checked: real"
    # Both on the journal, in order (the command reached the NATS `ssmd up` runs).
    assert asyncio.run(_journal(pipeline, made["id"])) == ["reported", "resolved"]

    second, quality = asyncio.run(report("no trades for two minutes"))
    assert made["id"] not in [i["id"] for i in quality["data_issues"]]
    assert second["id"] in [i["id"] for i in quality["data_issues"]]

    pipeline.stop()  # the archiver writes the day's manifests

    cli = pipeline.cli("data", "quality", "--date", today)
    assert [i["id"] for i in cli["data_issues"]] == [second["id"]]
    assert 0 <= cli["quality_score"] <= 1

    async def archive_tools() -> None:
        async with mcp(pipeline) as client:
            quality = await call(client, "quality", day=today)
            assert quality["found"] and quality["quality_score"] == cli["quality_score"]
            assert quality["data_issues"] is None  # the gateway is gone, and it says so
            assert "does not answer" in quality["data_issues_error"]
            inventory = await call(client, "inventory", start=today)
            assert today in [r[0] for r in inventory["rows"]]
            gaps = await call(client, "gaps", day=today)
            assert gaps["columns"][:4] == ["start", "end", "duration_s", "reason"]
            assert len(gaps["rows"]) == quality["gaps"]

    asyncio.run(archive_tools())


async def _journal(pipeline: Pipeline, issue_id: int) -> list[str]:
    """The actions journaled on {env}.journal.data_issue for one issue, in order."""
    nc = await nats.connect(read_state(pipeline.data)["nats_url"])  # type: ignore[index]
    try:
        js = nc.jetstream()
        info = await js.stream_info(journal_stream(ENV))
        sub = await js.subscribe(
            f"{ENV}.journal.data_issue", stream=journal_stream(ENV), ordered_consumer=True
        )
        seen = []
        for _ in range(info.state.messages):
            msg = orjson.loads((await sub.next_msg(timeout=10)).data)
            if msg["id"] == issue_id:
                seen.append(msg["action"])
            if len(seen) == 2:
                break
        return seen
    finally:
        await nc.close()


def test_malformed_requests_are_protocol_errors_and_the_server_goes_on(tmp_path: Path) -> None:
    """Raw JSON-RPC lines on stdin (no pipeline: the protocol layer alone)."""
    lines = [
        b"this is not JSON",
        orjson.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"}}}),
        orjson.dumps({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        orjson.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": 42}}),
        orjson.dumps({"jsonrpc": "2.0", "id": 3, "method": "no/such/method"}),
        orjson.dumps({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
                      "params": {"name": "live_book", "arguments": {"ticker": "X", "depth": "deep"}}}),
        orjson.dumps({"jsonrpc": "2.0", "id": 5, "method": "tools/list"}),
    ]  # fmt: skip
    argv = [SSMD, "mcp", "serve", "--env", ENV, "--config-dir", str(EXCHANGES), "--data-dir",
            str(tmp_path), "--gateway", f"http://127.0.0.1:{free_port()}"]  # fmt: skip
    with subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(b"\n".join(lines) + b"\n")
        proc.stdin.flush()
        answers: dict[int, Any] = {}
        while len(answers) < 5:
            line = proc.stdout.readline()
            assert line, f"the server stopped answering after {sorted(answers)}"
            msg = orjson.loads(line)
            answers[msg["id"]] = msg
        assert proc.poll() is None  # still serving
        proc.stdin.close()  # the client goes away: the server stops
        assert proc.wait(timeout=30) == 0
    assert answers[1]["result"]["serverInfo"]["name"] == "ssmd"
    assert answers[2]["error"]["code"] == -32602  # invalid params
    assert answers[3]["error"]["code"] == -32601  # method not found
    assert answers[4]["result"]["isError"] and "depth" in answers[4]["result"]["content"][0]["text"]
    assert {t["name"] for t in answers[5]["result"]["tools"]} == TOOLS


async def test_the_http_transport_serves_the_same_tools(tmp_path: Path) -> None:
    port = free_port()
    argv = [SSMD, "mcp", "serve", "--env", ENV, "--config-dir", str(EXCHANGES), "--data-dir",
            str(tmp_path), "--transport", "http", "--port", str(port),
            "--gateway", f"http://127.0.0.1:{free_port()}"]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(*argv, stderr=subprocess.DEVNULL)
    try:

        async def listening() -> bool:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                assert proc.returncode is None, "the server exited"
                return False
            writer.close()
            return True

        await poll("the server to listen", listening, timeout=60)
        async with Client(f"http://127.0.0.1:{port}/mcp", read_timeout_seconds=60) as client:
            assert {t.name for t in (await client.list_tools()).tools} == TOOLS
            status = await call(client, "system_status")
            assert status["gateway_health"]["status"] == "unreachable"
            assert status["ssmd_up"] == {"data_dir": str(tmp_path), "running": False}
    finally:
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 30) == 0

"""`ssmd tui` driven by Textual's pilot against `ssmd up --env kalshi-sim` (the simulator,
connector, archiver, security master and gateway as processes): the components with
their health and rates, a market found by search with its live book and trades, resync
(the connector asks the exchange), seal now (sealed files and manifests in the archive),
stopping and starting the connector through `ssmd up` (its process gone, then a new
one; the stop is a gap of the day), the day with its gaps and quality, an open data
issue; then a screenshot as SVG.

`SSMD_TUI_SCREENSHOT=docs/tui.svg` also writes the screenshot there (docs/tui.md shows it).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable

import ssmd.data
from _support.upfix import EXCHANGES, UpProcess, alive
from ssmd.config import Overrides, load_environment
from ssmd.mcp.gateway import KEEPALIVE_EXPIRY
from ssmd.tui.app import SsmdTui
from ssmd.tui.backend import Backend
from ssmd.up.nats import free_port
from ssmd.upstate import read_state

pytestmark = [pytest.mark.timeout(720), pytest.mark.slow, pytest.mark.xdist_group("tui-e2e")]

ENV = "kalshi-sim"


async def settle(
    pilot: Pilot[None], cond: Callable[[], bool], what: str, timeout: float = 60
) -> None:
    """Let the app run until `cond()` holds; fail naming `what` after `timeout` seconds."""
    app = pilot.app
    assert isinstance(app, SsmdTui)
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, (
            f"timed out after {timeout} s waiting for {what}; last message {app.message!r}, "
            f"notes {app.notes}"
        )
        await pilot.pause(0.1)


def component(app: SsmdTui, name: str) -> tuple[str, ...]:
    return next((r for r in app.rows["components-table"] if r[0] == name), ())


def today_rows(data: Path) -> list[dict[str, object]]:
    today = datetime.now(UTC).date().isoformat()
    dataset = ssmd.data.Dataset.open(ENV, data_dir=data, config_dir=EXCHANGES)
    return [r for r in dataset.archive.inventory("kalshi") if r["date"] == today]


async def test_tui_against_the_pipeline(tmp_path: Path) -> None:
    data = tmp_path / "data"
    up = UpProcess(data, free_port())
    log = (tmp_path / "up.log").open("wb")
    try:
        # Idle connections dropped before the gateway's keep-alive timeout ends them.
        limits = httpx.Limits(keepalive_expiry=KEEPALIVE_EXPIRY)
        async with httpx.AsyncClient(timeout=10, limits=limits) as http:
            await up.start(json_logs=False, output=log.fileno())
            await up.wait_ready(http)
            env = load_environment(ENV, EXCHANGES, Overrides(data_dir=str(data)))
            backend = Backend(env)
            app = SsmdTui(backend, interval=0.5)
            try:
                async with app.run_test(size=(160, 40)) as pilot:
                    await drive(app, pilot, http, up)
                    await pilot.press("1")
                    await pilot.resize_terminal(150, 20)
                    await settle(pilot, lambda: "frames/s" in component(app, "connector")[3],
                                 "the figures for the screenshot")  # fmt: skip
                    svg = app.export_screenshot(title="ssmd tui --env kalshi-sim")
            finally:
                await backend.aclose()
        assert svg.startswith("<svg") and "Components" in svg and "connector" in svg
        if target := os.environ.get("SSMD_TUI_SCREENSHOT"):
            Path(target).write_text(svg)
    finally:
        await up.ensure_gone()
        log.close()


async def active_market(http: httpx.AsyncClient, base: str) -> str:
    """The most active open market that stays open for the rest of the test. The
    simulator's markets close on the quarter hour (15-minute ones) and the hour (strike
    ladders): in an hour's last minutes this waits for the next ones to trade."""
    deadline = time.monotonic() + 420
    while True:
        r = await http.get(base + "/v1/markets", params={"sort": "activity", "status": "open"})
        later = datetime.now(UTC) + timedelta(minutes=3)
        for m in r.json()["markets"]:
            if m["activity"] and datetime.fromisoformat(m["close_time"]) > later:
                return str(m["ticker"])
        assert time.monotonic() < deadline, f"no active market open for long: {r.text[:2000]}"
        await asyncio.sleep(1.0)  # polling the gateway for the next markets


async def drive(app: SsmdTui, pilot: Pilot[None], http: httpx.AsyncClient, up: UpProcess) -> None:
    # ---- components: all running, the gateway healthy, frames flowing (their metrics)
    await settle(pilot, lambda: "frames/s in" in (component(app, "connector") or ("",) * 4)[3],
                 "the connector's figures")  # fmt: skip
    for name in ("nats", "simulator", "connector", "archiver", "secmaster", "gateway"):
        assert component(app, name)[1] == "running", app.rows["components-table"]
    assert "health ok" in component(app, "gateway")[3]
    assert "records/s" in component(app, "archiver")[3]

    # ---- markets: search narrows the list to one market; Enter opens its live book
    ticker = await active_market(http, up.base)
    await pilot.press("slash", *ticker, "enter")
    await settle(pilot, lambda: [r[0] for r in app.rows["markets-table"]] == [ticker], "search")
    assert app.notes["markets-note"].startswith(f"1 market matching {ticker!r}")
    await pilot.press("enter")
    # A book can be caught mid-resync or with one side empty for a moment: wait for a
    # valid one with both sides.
    await settle(pilot, lambda: app.book.get("ticker") == ticker and app.book["valid"] is True
                 and bool(app.book["bids"]) and bool(app.book["asks"]),
                 "the market's valid book with both sides")  # fmt: skip
    best_bid, best_ask = app.book["bids"][0][0], app.book["asks"][0][0]
    assert best_bid == max(lv[0] for lv in app.book["bids"])
    assert best_ask == min(lv[0] for lv in app.book["asks"])
    assert float(app.rows["book-table"][0][1]) == best_bid
    assert float(app.rows["book-table"][0][2]) == best_ask
    first = app.book["ts"]
    await settle(pilot, lambda: app.book["ts"] > first, "a newer book from the stream")
    newest = app.trades[0]["ts"] if app.trades else 0  # the gateway's recent trades (REST)
    await settle(pilot, lambda: bool(app.trades) and app.trades[0]["ts"] > newest,
                 "a live trade", timeout=90)  # fmt: skip
    assert all(t["ticker"] == ticker for t in app.trades)
    assert app.rows["trades-table"][0][2] == f"{app.trades[0]['price']:g}"

    # ---- resync: the connector asks the exchange for the market's snapshot
    await pilot.press("y")
    await settle(pilot, lambda: app.message.startswith(("resync of", "failed")), "the resync")
    assert app.message.startswith(f"resync of {ticker} requested"), app.message
    connector_log = up.data / "logs" / "connector.log"
    await settle(pilot, lambda: f"resync of {ticker} requested" in connector_log.read_text(),
                 "the connector's resync")  # fmt: skip

    # ---- seal now: the spooled files sealed and the day's manifests written
    files_before = sum(int(str(r["files"])) for r in today_rows(up.data))
    await pilot.press("s")
    await settle(pilot, lambda: app.message.startswith(("sealed", "failed")), "the seal")
    assert app.message.startswith("sealed") and int(app.message.split()[1]) > 0, app.message
    rows = today_rows(up.data)
    assert {r["data_type"] for r in rows} >= {"raw", "orderbook", "trade", "events"}
    assert sum(int(str(r["files"])) for r in rows) > files_before

    # ---- stop the connector through ssmd up: its process goes, it stays stopped
    await pilot.press("1")
    names = [r[0] for r in app.rows["components-table"]]
    app.query_one("#components-table", DataTable).move_cursor(row=names.index("connector"))
    before = read_state(up.data)["children"]["connector"]  # type: ignore[index]
    await pilot.press("x")
    await settle(pilot, lambda: app.message.startswith(("connector:", "failed")), "the stop")
    assert app.message == "connector: stopped"
    await settle(pilot, lambda: component(app, "connector")[1] == "stopped", "shown stopped")
    assert not alive(before)
    assert "connector" not in read_state(up.data)["children"]  # type: ignore[index]
    assert component(app, "archiver")[1] == "running"
    # ---- and start it again: a new process ("started": nothing restarted it meanwhile)
    await pilot.press("a")
    await settle(pilot, lambda: app.message.startswith(("connector:", "failed")) and
                 app.message != "connector: stopped", "the start", timeout=120)  # fmt: skip
    assert app.message == "connector: started"
    await settle(pilot, lambda: component(app, "connector")[1] == "running", "shown running")
    after = read_state(up.data)["children"]["connector"]  # type: ignore[index]
    assert after != before and alive(after)

    # ---- an open data issue, reported over the gateway, listed
    start = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    r = await http.post(
        up.base + "/v1/data-issues",
        json={"ticker": ticker, "start": start, "end": start, "description": "book jumped"},
    )
    assert r.status_code == 201, r.text
    issue = r.json()
    await pilot.press("5", "r")
    await settle(pilot, lambda: any(row[0] == str(issue["id"]) for row in
                                    app.rows["issues-table"]), "the issue")  # fmt: skip
    row = next(r for r in app.rows["issues-table"] if r[0] == str(issue["id"]))
    assert row[1] == ticker and row[5] == "book jumped"
    assert app.notes["issues-note"] == "1 open data issue"

    # ---- days: today's, its quality and the connector's stop as a gap (after a new seal)
    today = datetime.now(UTC).date().isoformat()
    await pilot.press("4")

    def stop_gap() -> bool:
        return any(g[3] == "connector_stopped" for g in app.rows["gaps-table"])

    deadline = time.monotonic() + 60
    while not stop_gap():  # the archiver writes the stop's gap once it read the events
        assert time.monotonic() < deadline, f"no connector_stopped gap: {app.rows['gaps-table']}"
        app.say("")
        await pilot.press("s")
        await settle(pilot, lambda: app.message.startswith(("sealed", "failed")), "a seal")
        await pilot.press("r")
        await settle(pilot, lambda: any(r[0] == today for r in app.rows["days-table"]), "the day")
        app.notes.pop("quality", None)
        await pilot.press("enter")
        await settle(pilot, lambda: "quality" in app.notes, "the day's quality")
    quality = app.notes["quality"]
    assert quality.startswith(f"{today}: quality 0.") and "connector_stopped" in quality
    assert quality.endswith("open data issues 1")
    day = next(r for r in app.rows["days-table"] if r[0] == today)
    assert int(day[6]) >= 1 and float(day[7]) < 1

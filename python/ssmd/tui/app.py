"""The Textual application of `ssmd tui`: five panes (components, markets, one market's
live book and trades, days, open data issues) and the actions (resync a market, seal
now, stop or start a component). What it shows comes from ssmd.tui.backend and is
shaped by ssmd.tui.models; this module only lays it out and wires the keys.

Each pane says on a line of its own what it shows or why it could not read it; the line
at the bottom is the outcome of the last action only, so a failed refresh never hides it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from datetime import date
from typing import Any, ClassVar, Final

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, Header, Input, Static, TabbedContent, TabPane

from ssmd.exceptions import ActionError, GatewayError, SsmdError
from ssmd.tui import models
from ssmd.tui.backend import TRADES_LIMIT, Backend

__all__ = ["PANES", "SsmdTui"]

COLUMNS: Final = {
    "components-table": ("component", "state", "detail", "figures"),
    "markets-table": ("ticker", "status", "bid", "ask", "last", "volume", "title"),
    "book-table": ("bid size", "bid", "ask", "ask size"),
    "trades-table": ("time (UTC)", "side", "price", "size"),
    "days-table": ("date", "records", "files", "bytes", "spooled", "status", "gaps", "quality"),
    "gaps-table": ("start", "end", "seconds", "reason", "markets"),
    "issues-table": ("id", "market", "start", "end", "reporter", "what"),
}
# pane id -> the widget that has the keyboard when the pane is shown
PANES: Final = {
    "components": "components-table",
    "markets": "markets-table",
    "market": "book-table",
    "days": "days-table",
    "issues": "issues-table",
}
SLOW_EVERY: Final = 10  # markets, days and issues are read again every this many ticks
LIVE_RETRY: Final = 2.0  # seconds before following a market again after its stream ended


class SsmdTui(App[None]):
    TITLE = "ssmd"
    CSS = """
    .note { height: auto; padding: 0 1; color: $text-muted; }
    TabbedContent { height: 1fr; }
    #message { height: 1; padding: 0 1; background: $boost; }
    #book-table { width: 48; }
    #days-table, #gaps-table { height: 1fr; }
    """
    BINDINGS: ClassVar[list[Binding | tuple[str, str] | tuple[str, str, str]]] = [
        Binding("q", "quit", "Quit"),
        Binding("1", "show('components')", "Components"),
        Binding("2", "show('markets')", "Markets"),
        Binding("3", "show('market')", "Market"),
        Binding("4", "show('days')", "Days"),
        Binding("5", "show('issues')", "Issues"),
        Binding("slash", "search", "Search"),
        Binding("escape", "leave", "Leave the search", show=False),
        Binding("r", "reload", "Refresh"),
        Binding("y", "resync", "Resync market"),
        Binding("s", "seal", "Seal now"),
        Binding("x", "control('stop')", "Stop component"),
        Binding("a", "control('start')", "Start component"),
    ]

    def __init__(self, backend: Backend, interval: float = 1.0) -> None:
        super().__init__()
        self.backend, self.interval = backend, interval
        self.sub_title = f"{backend.env.name}  {backend.env.data_dir}"
        self.rows: dict[str, list[models.Row]] = {name: [] for name in COLUMNS}
        self.notes: dict[str, str] = {}  # note id -> its text, as shown
        self.ticker: str | None = None
        self.book: dict[str, Any] = {}
        self.trades: list[dict[str, Any]] = []
        self.issues: list[dict[str, Any]] = []
        self.message = ""  # the last action's outcome, shown at the bottom
        self._ticks = 0
        # The widgets the workers write to, held from mount: a worker may still be
        # finishing while the app closes, when they can no longer be looked up.
        self._tables: dict[str, DataTable[str]] = {}
        self._texts: dict[str, Static] = {}
        self._search: Input | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="components"):
            with TabPane("1 Components", id="components"):
                yield Static("reading...", id="summary", classes="note")
                yield DataTable(id="components-table", cursor_type="row")
            with TabPane("2 Markets", id="markets"):
                yield Input(placeholder="search: part of a ticker or title, Enter", id="search")
                yield Static("", id="markets-note", classes="note")
                yield DataTable(id="markets-table", cursor_type="row")
            with TabPane("3 Market", id="market"):
                yield Static("pick a market in Markets (Enter)", id="market-head", classes="note")
                with Horizontal():
                    yield DataTable(id="book-table", cursor_type="none")
                    yield DataTable(id="trades-table", cursor_type="none")
            with TabPane("4 Days", id="days"):
                yield Static("", id="days-note", classes="note")
                yield DataTable(id="days-table", cursor_type="row")
                yield Static("Enter on a day: its quality and gaps", id="quality", classes="note")
                yield DataTable(id="gaps-table", cursor_type="none")
            with TabPane("5 Issues", id="issues"):
                yield Static("", id="issues-note", classes="note")
                yield DataTable(id="issues-table", cursor_type="row")
        yield Static("", id="message")
        yield Footer()

    def on_mount(self) -> None:
        for table_id, columns in COLUMNS.items():
            self._tables[table_id] = self.query_one(f"#{table_id}", DataTable)
            self._tables[table_id].add_columns(*columns)
        for text in self.query(Static):
            if text.id is not None:
                self._texts[text.id] = text
        self._search = self.query_one("#search", Input)
        self.query_one("#components-table", DataTable).focus()
        self.set_interval(self.interval, self.tick)
        self.tick()

    # ---- filling the panes ------------------------------------------------------------------

    def fill(self, table_id: str, rows: list[models.Row]) -> None:
        """Replace a table's rows, keeping the cursor's row."""
        self.rows[table_id] = rows
        table = self._tables[table_id]
        at = table.cursor_row
        table.clear()
        table.add_rows(rows)
        if rows:
            table.move_cursor(row=min(at, len(rows) - 1))

    def note(self, note_id: str, text: str) -> None:
        self.notes[note_id] = text
        self._texts[note_id].update(text)

    def say(self, text: str) -> None:
        self.message = text
        self._texts["message"].update(text)

    def tick(self) -> None:
        self.run_worker(self.load_status(), group="status", exclusive=True)
        if self._ticks % SLOW_EVERY == 0:
            self.run_worker(self.load_slow(), group="slow", exclusive=True)
        self._ticks += 1

    async def load_status(self) -> None:
        try:
            status = await self.backend.status()
        except (OSError, ValueError) as exc:  # the state files unreadable: said, retried
            self.note("summary", f"cannot read the components' state: {exc}")
            return
        sup = status.supervision
        self.fill("components-table", models.component_rows(sup.states, status.figures,
                                                            status.health))  # fmt: skip
        health = status.health_error or (status.health or {}).get("status", "?")
        self.note(
            "summary",
            f"supervised by {sup.kind}; gateway {self.backend.gateway.base_url}: {health}",
        )

    async def load_slow(self) -> None:
        await asyncio.gather(self.load_markets(), self.load_days(), self.load_issues())

    async def load_markets(self) -> None:
        query = self._search.value.strip() if self._search is not None else ""
        try:
            markets = await self.backend.markets(query)
        except GatewayError as exc:
            self.note("markets-note", f"markets: {exc}")
            return
        self.fill("markets-table", models.market_rows(markets))
        matching = f" matching {query!r}" if query else ""
        self.note("markets-note", f"{models.count(len(markets), 'market')}{matching}, "
                  "most active first")  # fmt: skip

    async def load_days(self) -> None:
        try:
            inventory = await self.backend.days()
        except (SsmdError, OSError, ValueError) as exc:  # the archive's errors, worded by it
            self.note("days-note", f"days: {exc}")
            return
        self.fill("days-table", models.day_rows(inventory))
        self.note("days-note", "days with manifests, newest first (s seals now and writes them)")

    async def load_issues(self) -> None:
        try:
            self.issues = await self.backend.issues()
        except GatewayError as exc:
            self.note("issues-note", f"issues: {exc}")
            return
        self.fill("issues-table", models.issue_rows(self.issues))
        self.note("issues-note", models.count(len(self.issues), "open data issue"))

    async def load_day(self, day: str) -> None:
        try:
            gaps, report = await self.backend.day(date.fromisoformat(day))
        except (SsmdError, OSError, ValueError) as exc:
            self.note("quality", f"{day}: {exc}")
            return
        self.note("quality", models.quality_text(report, models.issues_on(self.issues, day)))
        self.fill("gaps-table", models.gap_rows(gaps))

    # ---- one market, live -------------------------------------------------------------------

    def open_market(self, ticker: str) -> None:
        self.ticker, self.book, self.trades = ticker, {}, []
        self.fill("book-table", [])
        self.fill("trades-table", [])
        self.note("market-head", f"{ticker}: waiting for its book")
        self.action_show("market")
        self.run_worker(self.follow(ticker), group="live", exclusive=True)

    async def follow(self, ticker: str) -> None:
        """The market's trades (REST), then its stream until another market is opened."""
        while self.ticker == ticker:
            try:
                self.trades = await self.backend.trades(ticker)
                self.fill("trades-table", models.trade_rows(self.trades))
                async with contextlib.aclosing(self.backend.live(ticker)) as messages:
                    async for msg in messages:
                        self.on_live(ticker, msg)
            except GatewayError as exc:  # the gateway away or the stream closed: said, retried
                self.note("market-head", f"{ticker}: {exc}")
            except ValueError as exc:  # not the gateway's JSON (a key with a transform?)
                self.note("market-head", f"{ticker}: unreadable message from the gateway: {exc}")
            await asyncio.sleep(LIVE_RETRY)

    def on_live(self, ticker: str, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if msg.get("ticker") not in (None, ticker):
            return
        if kind == "orderbook":
            self.book = msg
            self.fill("book-table", models.ladder_rows(msg))
            self.note("market-head", models.book_text(msg))
        elif kind == "trade":
            self.trades = [msg, *self.trades][:TRADES_LIMIT]
            self.fill("trades-table", models.trade_rows(self.trades))
        elif kind == "status":
            self.note("market-head", f"{ticker}: now {msg.get('status')}")
        elif kind == "error":
            self.note("market-head", f"{ticker}: {msg.get('message')}")

    # ---- events and actions -----------------------------------------------------------------

    @on(DataTable.RowSelected)
    def row_selected(self, event: DataTable.RowSelected) -> None:
        table_id = event.data_table.id or ""
        rows = self.rows.get(table_id, [])
        if not 0 <= event.cursor_row < len(rows):
            return
        row = rows[event.cursor_row]
        if table_id == "markets-table":
            self.open_market(row[0])
        elif table_id == "days-table":
            self.run_worker(self.load_day(row[0]), group="day", exclusive=True)

    @on(Input.Submitted, "#search")
    def search(self) -> None:
        self.run_worker(self.load_markets(), group="markets", exclusive=True)
        self.query_one("#markets-table", DataTable).focus()

    @on(TabbedContent.TabActivated)
    def tab_activated(self, event: TabbedContent.TabActivated) -> None:
        # A pane shown by a click gets the keyboard too (a hidden widget keeps no focus).
        pane = event.pane.id or ""
        focused = self.focused
        if pane in PANES and (focused is None or event.pane not in focused.ancestors_with_self):
            self.query_one(f"#{PANES[pane]}", DataTable).focus()

    def action_show(self, pane: str) -> None:
        self.query_one(TabbedContent).active = pane
        self.query_one(f"#{PANES[pane]}", DataTable).focus()

    def action_search(self) -> None:
        self.query_one(TabbedContent).active = "markets"
        self.query_one("#search", Input).focus()

    def action_leave(self) -> None:
        self.query_one(f"#{PANES[self.query_one(TabbedContent).active]}", DataTable).focus()

    def action_reload(self) -> None:
        self.run_worker(self.load_slow(), group="slow", exclusive=True)
        if self.ticker is not None:
            self.run_worker(self.follow(self.ticker), group="live", exclusive=True)

    def action_resync(self) -> None:
        if self.ticker is None:
            self.say("resync: pick a market first (Markets, Enter)")
            return
        self.say(f"resync {self.ticker}...")
        self.run_worker(self.act(self.backend.resync(self.ticker)), group="action")

    def action_seal(self) -> None:
        self.say("seal now...")
        self.run_worker(self.act(self.backend.seal()), group="action")

    def action_control(self, action: str) -> None:
        rows = self.rows["components-table"]
        at = self.query_one("#components-table", DataTable).cursor_row
        if self.query_one(TabbedContent).active != "components" or not 0 <= at < len(rows):
            self.say(f"{action}: select a component in Components (1) first")
            return
        name = rows[at][0]
        self.say(f"{action} {name}...")
        self.run_worker(self.act(self.backend.control(action, name)), group="action")

    async def act(self, action: Awaitable[str]) -> None:
        try:
            self.say(await action)
        except ActionError as exc:
            self.say(f"failed: {exc}")
        await self.load_status()

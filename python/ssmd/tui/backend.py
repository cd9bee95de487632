"""Everything `ssmd tui` reads and does, through the services that exist and nothing
else: the gateway (REST, and its WebSocket for a market's live book and trades), the
archive through `ssmd.data`, the components' own /health, /metrics and control
actions, and whatever supervises them:

- `ssmd up` running on the data directory (its state file and its control socket,
  ssmd.up.control), or else
- the operations layer's local runtime (ssmd.ops.local: the processes `ssmd ops`
  started, and its start and stop of one component).

Every action answers with one line for the user; failures are `ActionError` with a
message that says what to do.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import httpx

from ssmd.exceptions import ActionError, ControlError, GatewayError
from ssmd.mcp.gateway import GatewayClient
from ssmd.up import procs
from ssmd.up.components import child_name
from ssmd.up.control import CONTROLLED, controlled, request
from ssmd.up.status import Figures, Sampler
from ssmd.upstate import read_state, running_nats_url

if TYPE_CHECKING:
    from ssmd.config import ResolvedEnvironment
    from ssmd.data import Dataset
    from ssmd.ops.local import LocalRuntime

__all__ = ["DEFAULT_GATEWAY", "Backend", "Status", "Supervision"]

DEFAULT_GATEWAY: Final = "http://127.0.0.1:8080"
MARKETS_LIMIT: Final = 500
TRADES_LIMIT: Final = 50
ISSUES_LIMIT: Final = 200
GATEWAY_FIX: Final = "give `ssmd tui` its URL with --gateway"


@dataclass
class Supervision:
    """Who runs the components on this data directory, and where they answer."""

    kind: str  # "ssmd up", "ssmd ops" or "none"
    states: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (state, detail)
    # The components of the feed the TUI was opened for (the environment's own, or the
    # venue `--feed` names): their base URLs of /health, /metrics, /control/...; and the
    # gateway the market views read (one for every venue).
    connector: str | None = None
    archiver: str | None = None
    gateway: str | None = None
    control: str | None = None  # ssmd up's control socket
    # Every child's base URL by name, further venues' too (connector-kraken): the figures.
    endpoints: dict[str, str] = field(default_factory=dict)


@dataclass
class Status:
    supervision: Supervision
    figures: Figures | None
    health: dict[str, Any] | None  # the gateway's /v1/health (None: no answer)
    health_error: str | None = None


class Backend:
    def __init__(
        self, env: ResolvedEnvironment, gateway_url: str | None = None, api_key: str | None = None
    ) -> None:
        self.env = env
        self.feed = env.feed.name
        self._gateway_url = gateway_url
        self._api_key = api_key
        self._gateway: GatewayClient | None = None
        self.http = httpx.AsyncClient(timeout=5.0)  # the components' endpoints: no API key
        self._sampler: Sampler | None = None
        self._endpoints: dict[str, str] = {}  # what the sampler polls
        self._dataset: Dataset | None = None
        self._ops: LocalRuntime | None = None  # the operations layer's, once used

    async def aclose(self) -> None:
        await self.http.aclose()
        if self._ops is not None:
            self._ops.reap()
        if self._gateway is not None:
            await self._gateway.aclose()

    # ---- where things are ---------------------------------------------------------------

    def supervision(self) -> Supervision:
        data_dir = self.env.data_dir
        if running_nats_url(data_dir) is not None:
            state = read_state(data_dir) or {}
            boot = state.get("boot_id") or procs.boot_id()
            children = state.get("children") or {}
            states = {
                name: ("running", f"pid {rec.get('pid')}")
                for name, rec in children.items()
                if procs.is_running(rec, boot)
            }
            stopped = state.get("stopped") or []
            for name in (*children, *CONTROLLED, *stopped):  # not running: stopped on request, or
                # down (being restarted by ssmd up, or not started yet)
                states.setdefault(name, ("stopped", "") if name in stopped else ("down", ""))
            if state.get("simulator"):
                states["simulator"] = ("running", "in ssmd up")
            ends = state.get("endpoints") or {}
            feed = self.env.extra_feed
            return Supervision(
                "ssmd up",
                states,
                ends.get(child_name("connector", feed)),
                ends.get(child_name("archiver", feed)),
                ends.get("gateway"),  # one for every venue
                state.get("control"),
                dict(ends),
            )
        from ssmd.ops.local import LocalRuntime

        ops = LocalRuntime(self.env).read()
        if not ops.get("processes"):
            return Supervision("none")
        ports = ops.get("ports") or {}
        running = {
            name: ("running", f"pid {rec.get('pid')}")
            for name, rec in ops["processes"].items()
            if procs.is_running(rec, ops.get("boot_id", ""))
        }
        feed = self.env.extra_feed
        connector, archiver = child_name("connector", feed), child_name("archiver", feed)
        states = {n: running.get(n, ("stopped", "")) for n in (connector, archiver, "gateway")}
        states.update(running)
        urls = {n: f"http://127.0.0.1:{ports[n]}" for n in (connector, archiver) if ports.get(n)}
        return Supervision(
            "ssmd ops", states, urls.get(connector), urls.get(archiver), endpoints=urls
        )

    @property
    def gateway(self) -> GatewayClient:
        if self._gateway is None:
            url = self._gateway_url or self.supervision().gateway or DEFAULT_GATEWAY
            self._gateway = GatewayClient(
                url, self._api_key, fix=GATEWAY_FIX, venue=self.env.extra_feed
            )
        return self._gateway

    # ---- reading ------------------------------------------------------------------------

    async def status(self) -> Status:
        """The components' states and, from their metrics, their figures (rates from the
        previous call's sample) and the gateway's health."""
        sup = self.supervision()
        if self._sampler is None or self._endpoints != sup.endpoints:
            self._sampler = Sampler.from_endpoints(self.http, sup.endpoints)
            self._endpoints = sup.endpoints
        figures = await self._sampler.sample({n: s for n, (s, _) in sup.states.items()})
        try:
            _, health = await self.gateway.health()
            return Status(sup, figures, health)
        except GatewayError as exc:
            return Status(sup, figures, None, str(exc))

    async def markets(self, query: str = "") -> list[dict[str, Any]]:
        page = await self.gateway.markets(
            q=query.strip() or None, sort="activity", limit=MARKETS_LIMIT
        )
        markets: list[dict[str, Any]] = page["markets"]
        return markets

    async def market(self, ticker: str) -> dict[str, Any]:
        body: dict[str, Any] = await self.gateway.market(ticker)
        return body

    async def trades(self, ticker: str) -> list[dict[str, Any]]:
        body = await self.gateway.trades(ticker, TRADES_LIMIT)
        trades: list[dict[str, Any]] = body["trades"]
        return trades

    async def issues(self) -> list[dict[str, Any]]:
        body = await self.gateway.issues(status="open", limit=ISSUES_LIMIT)
        issues: list[dict[str, Any]] = body["issues"]
        return issues

    def dataset(self) -> Dataset:
        """The archive, read through ssmd.data (its manifests and spool)."""
        if self._dataset is None:
            from ssmd.data import Dataset

            self._dataset = Dataset.from_environment(self.env, self.feed)
        return self._dataset

    async def days(self) -> list[dict[str, Any]]:
        """The archive's inventory: one row per day and data type with a manifest."""
        return await asyncio.to_thread(self.dataset().archive.inventory, self.feed)

    async def day(self, day: date) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The day's gaps and quality report."""

        def read() -> tuple[list[dict[str, Any]], dict[str, Any]]:
            archive = self.dataset().archive
            return archive.gaps(self.feed, day), archive.quality(self.feed, day)

        return await asyncio.to_thread(read)

    def live(self, ticker: str) -> AsyncGenerator[dict[str, Any], None]:
        """The gateway's stream of one market (`orderbook`, `trade`, `status`, `error`)."""
        return self.gateway.stream(ticker)

    # ---- actions ------------------------------------------------------------------------

    async def _post(self, base: str | None, what: str, path: str, **params: str) -> dict[str, Any]:
        if base is None:
            raise ActionError(f"the {what} is not running here (no endpoint to ask)")
        try:
            r = await self.http.post(base + path, params=params, timeout=90.0)
        except httpx.HTTPError as exc:
            raise ActionError(
                f"the {what} at {base} does not answer ({type(exc).__name__})"
            ) from None
        try:
            body: dict[str, Any] = r.json()
        except ValueError:
            body = {"error": r.text[:200]}
        if r.status_code == 404 and "error" not in body:
            raise ActionError(f"the {what} at {base} has no {path}: is it an older ssmd?")
        if r.status_code != 200:
            raise ActionError(f"{what}: {body.get('error', r.text[:200])}")
        return body

    async def resync(self, ticker: str) -> str:
        body = await self._post(
            self.supervision().connector, "connector", "/control/resync", ticker=ticker
        )
        return f"resync of {ticker} requested (shard {body.get('shard')}, sid {body.get('sid')})"

    async def seal(self) -> str:
        body = await self._post(self.supervision().archiver, "archiver", "/control/seal")
        manifests = "written" if body.get("manifests_written") else "not written"
        return f"sealed {body.get('sealed', 0)} file(s); the day's manifests {manifests}"

    async def control(self, action: str, name: str) -> str:
        """Start or stop one component through whatever supervises it here."""
        sup = self.supervision()
        if sup.kind == "ssmd up":
            if not controlled(name):
                raise ActionError(f"{name} is not started or stopped alone: everything needs it")
            if sup.control is None:
                raise ActionError("this ssmd up has no control socket (an older version?)")
            try:
                answer = await request(Path(sup.control), action, name)
            except ControlError as exc:
                raise ActionError(str(exc)) from None
            if not answer.get("ok"):
                raise ActionError(str(answer.get("error")))
            return f"{name}: {answer.get('result')}"
        if sup.kind == "ssmd ops":
            from ssmd.ops.local import LocalRuntime

            if self._ops is None:
                # The gateway it starts listens where this TUI finds it (the worker's
                # --gateway-port is not in the runtime's state). One runtime for the TUI's
                # life: it reaps the processes it started when they exit.
                where = urlsplit(self.gateway.base_url)
                self._ops = LocalRuntime(
                    self.env,
                    gateway_port=where.port or 8080,
                    gateway_host=where.hostname or "127.0.0.1",
                )
            runtime = self._ops
            from ssmd.ops.runtime import every_name

            names = every_name(runtime.components)
            if name not in names:
                raise ActionError(f"the operations layer starts and stops {', '.join(names)}")
            try:
                result = await (runtime.start(name) if action == "start" else runtime.stop(name))
            except Exception as exc:  # ChildFailed, ConfigError: said as they are worded
                raise ActionError(f"{name}: {exc}") from None
            return f"{name}: {result}"
        raise ActionError(
            "nothing supervises the components on this data directory: start them with "
            "`ssmd up` or `ssmd ops start`"
        )

"""The command line of each component `ssmd up` runs, and how it knows each is ready.

Every child gets its settings explicitly (environment, config dir, data dir, NATS
URL, endpoints, ports), so nothing depends on the variables of the shell that
started `ssmd up`, except the credentials for a real exchange, which the connector
reads from KALSHI_API_KEY / KALSHI_PRIVATE_KEY_PATH as it always does.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

from ssmd.up.children import ChildSpec

__all__ = ["SECMASTER_DURABLE", "Plan", "child_name", "gateway_serves", "ssmd_argv"]

SECMASTER_DURABLE: Final = "ssmd-secmaster"  # `ssmd market live`'s durable consumer


def ssmd_argv() -> list[str]:
    """How to run the `ssmd` command of this installation."""
    script = Path(sys.executable).parent / "ssmd"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from ssmd.cli import main; main()"]


def child_name(component: str, extra_feed: str | None) -> str:
    """The child's name: the component's for the environment's own feed, with the feed's
    name after it for a further venue (connector-kraken), in logs, the display and the
    state file."""
    return component if extra_feed is None else f"{component}-{extra_feed}"


def split_child_name(name: str) -> tuple[str, str]:
    """`child_name` read back: the component and the further venue's feed ("" for the
    environment's own)."""
    component, _, feed = name.partition("-")
    return component, feed


async def http_ok(client: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await client.get(url)).status_code == 200
    except httpx.HTTPError:
        return False


async def gateway_serves(client: httpx.AsyncClient, url: str) -> bool:
    """Whether the gateway whose `/v1/health` is at `url` serves: health answers (200, or
    503 saying what is wrong) and every venue's stream is caught up (`stream.ready` of
    its own venue and of each of `venues`). Not whether it is healthy: a further venue's
    connector stopped from the TUI makes health 503 once its last record is old, and a
    gateway restarted then serves every venue all the same."""
    try:
        resp = await client.get(url)
        body = resp.json()
    except (httpx.HTTPError, ValueError):
        return False
    if resp.status_code not in (200, 503) or not isinstance(body, dict):
        return False
    venues = body.get("venues") or {}
    sections = [body, *venues.values()] if isinstance(venues, dict) else [None]
    return all(_caught_up(section) for section in sections)


def _caught_up(section: Any) -> bool:
    stream = section.get("stream") if isinstance(section, dict) else None
    return isinstance(stream, dict) and stream.get("ready") is True


@dataclass
class Plan:
    """What the children of one feed share: where things are and how to reach each other."""

    env: str
    config_dir: Path
    data_dir: Path
    nats_url: str
    stream: str
    http: httpx.AsyncClient
    js: Any  # JetStream context of `ssmd up`'s own NATS connection
    log_level: str = "INFO"
    ws_url: str | None = None  # set when `ssmd up` runs the simulator
    rest_url: str | None = None
    credentials: dict[str, str] | None = None  # KALSHI_* for the simulator's demo key
    connector_port: int = 0
    archiver_port: int = 0
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8080
    extra_feed: str | None = None  # one of the environment's spec.venues

    def name(self, component: str) -> str:
        return child_name(component, self.extra_feed)

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def gateway_url(self) -> str:
        host = "127.0.0.1" if self.gateway_host in ("0.0.0.0", "::", "") else self.gateway_host
        return f"http://{host}:{self.gateway_port}"

    def _common(self, *command: str) -> list[str]:
        return [
            *ssmd_argv(),
            *command,
            "--env",
            self.env,
            "--config-dir",
            str(self.config_dir),
            "--data-dir",
            str(self.data_dir),
            *(["--feed", self.extra_feed] if self.extra_feed else []),
        ]

    def _spec(self, component: str, argv: list[str], **kw: Any) -> ChildSpec:
        name = self.name(component)
        return ChildSpec(name, argv, log_path=self.log_dir / f"{name}.log", **kw)

    def _http_ready(self, url: str) -> Callable[[], Awaitable[bool]]:
        return lambda: http_ok(self.http, url)

    def sync(self) -> ChildSpec:
        """One `ssmd market sync` run (the first one gates the connector)."""
        argv = self._common("market", "sync")
        argv += ["--nats-url", self.nats_url, "--json", "--log-level", self.log_level]
        if self.rest_url:
            argv += ["--rest-url", self.rest_url]
        return self._spec("secmaster-sync", argv, restart=False, capture_stdout=True)

    def connector(self) -> ChildSpec:
        argv = self._common("connector", "run")
        argv += ["--nats-url", self.nats_url, "--health-port", str(self.connector_port)]
        argv += ["--log-level", self.log_level]
        if self.ws_url:
            argv += ["--ws-url", self.ws_url]
        if self.rest_url:
            argv += ["--rest-url", self.rest_url]
        # 200 = NATS connected, the stream in place and every shard streaming.
        return self._spec(
            "connector",
            argv,
            env=self.credentials,
            ready=self._http_ready(f"http://127.0.0.1:{self.connector_port}/health"),
            ready_timeout=90.0,
            stop_timeout=30.0,  # its own drain bound is 20 s
        )

    def archiver(self) -> ChildSpec:
        argv = self._common("archiver", "run")
        argv += ["--nats-url", self.nats_url, "--health-port", str(self.archiver_port)]
        argv += ["--log-level", self.log_level]
        return self._spec(
            "archiver",
            argv,
            ready=self._archiver_ready,
            # It serves /health after recovering its spool and sealing what came due
            # while it was down: after a long pause that takes a while.
            ready_timeout=300.0,
            stop_timeout=30.0,  # its own hard exit is at 20 s
        )

    async def _archiver_ready(self) -> bool:
        # Consuming (200), or waiting out a storage fault (503 with storage not "ok": a
        # full disk, the stream keeping the data; a bucket away, the spool keeping it): it
        # is in place and resumes by itself, so that must not stop the rest.
        try:
            r = await self.http.get(f"http://127.0.0.1:{self.archiver_port}/health")
        except httpx.HTTPError:
            return False
        if r.status_code == 200:
            return True
        try:
            return r.status_code == 503 and r.json().get("storage", "ok") != "ok"
        except ValueError:
            return False

    def secmaster(self) -> ChildSpec:
        argv = self._common("market", "live")
        argv += ["--nats-url", self.nats_url, "--log-level", self.log_level]
        return self._spec("secmaster", argv, ready=self._live_ready, stop_timeout=15.0)

    async def _live_ready(self) -> bool:
        # `ssmd market live` has no HTTP endpoint; its durable consumer with a pull
        # request waiting means it is connected and consuming.
        try:
            info = await self.js.consumer_info(self.stream, SECMASTER_DURABLE)
        except Exception:
            return False
        return bool(info.num_waiting)

    def gateway(self) -> ChildSpec:
        argv = self._common("gateway", "run")
        argv += ["--nats-url", self.nats_url, "--host", self.gateway_host]
        argv += ["--port", str(self.gateway_port), "--log-level", self.log_level]
        return self._spec(
            "gateway",
            argv,
            ready=lambda: gateway_serves(self.http, f"{self.gateway_url}/v1/health"),
            ready_timeout=180.0,  # it reads the stream's recent books and trades first
            stop_timeout=15.0,
        )

"""`ssmd up`: start every component in order, show their figures, stop them in order.

Start: nats (embedded, or the environment's) -> simulator (when the environment is
one) -> the first secmaster sync (the connector's selection reads its store) ->
connector -> archiver -> secmaster live updates (for a venue whose stream carries
market lifecycle records: Kalshi) -> gateway, each waited for until ready. Then a status loop, and a secmaster sync every `symbols.sync_interval`.

An environment that captures further venues (spec.venues) gets all of that once per
feed, on the one NATS server: a simulator, syncs, a connector and an archiver each, the
venue's children named after it (connector-kraken). The one gateway serves every venue,
a further venue's markets as `venue:ticker` (ssmd.gateway.symbols).

Stop (SIGINT, SIGTERM, SIGHUP, or a component that cannot be kept running):
connector (stops reading, drains to NATS) -> wait until the archiver consumed the
stream -> archiver (seals what is due, writes manifests) -> gateway -> secmaster ->
simulator -> nats; each child gets a bounded time, then is killed (and reported).
Then the archive report, from the manifests. The stop runs whatever happened
before it; only a stop that completed removes the state file.

Before anything starts (before any port is checked), processes that a killed
`ssmd up` on the same data directory left are stopped (ssmd.up.procs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import httpx

from ssmd import upstate
from ssmd.config import ResolvedEnvironment
from ssmd.exceptions import ChildFailed
from ssmd.up import procs
from ssmd.up.children import ChildSpec, StopResult, Supervisor
from ssmd.up.components import Plan, child_name
from ssmd.up.control import ControlServer, socket_path
from ssmd.up.display import Display
from ssmd.up.nats import free_port, jetstream_ready, nats_spec
from ssmd.up.report import ArchiveReport, archive_report
from ssmd.up.simulator import SimOptions, is_simulated, write_truth
from ssmd.up.status import Sampler
from ssmd.venues import venue

__all__ = ["Up", "UpOptions"]

log = logging.getLogger("ssmd.up")

# Order of the stop; the simulator stops between the children and nats.
STOP_ORDER = ("connector", "archiver", "gateway", "secmaster")
LEFTOVER_STOP_TIMEOUT = 30.0  # the longest of the components' own stop bounds


@dataclass
class UpOptions:
    host: str = "127.0.0.1"  # the gateway's interface
    port: int = 8080  # the gateway's port (the web page and the API of every venue)
    sim: bool | None = None  # None: each feed whose endpoint is on loopback (is_simulated)
    sim_options: SimOptions = field(default_factory=SimOptions)
    log_level: str = "INFO"
    sync_timeout: float = 300.0  # one secmaster sync run
    drain_timeout: float = 15.0  # wait for the archiver to catch up before stopping it
    status_interval: float = 1.0
    stop_timeout: float | None = None  # per child; None = each component's own bound


class Up:
    def __init__(
        self,
        env: ResolvedEnvironment,
        options: UpOptions,
        display: Display,
        venues: Sequence[ResolvedEnvironment] = (),
    ) -> None:
        """`env` is resolved for the environment's own feed, `venues` for each of its
        spec.venues (`load_environment(name, feed=...)`)."""
        self.env, self.o, self.display = env, options, display
        self.venues = list(venues)
        self.supervisor = Supervisor(display.event, display.child_line)
        self.lock = upstate.UpLock(env.data_dir)
        self.nats_url = env.nats.url
        self.nc: Any = None
        self.js: Any = None
        self.http: httpx.AsyncClient | None = None
        self.sim: Any = None  # the simulator of the environment's own feed
        self.venue_sims: dict[str, Any] = {}  # by name: simulator-kraken
        self.plans: list[Plan] = []  # one per feed, the environment's own first
        self.sampler: Sampler | None = None
        self.stops: list[StopResult] = []
        self.started_on = datetime.now(UTC).date()
        self._before: list[dict[str, Any]] = []
        self.control_server: ControlServer | None = None

    # ---- the whole run -------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> int:
        """0 after a requested stop; 1 when a component failed (each one is named)."""
        previous = self.lock.acquire()  # AlreadyRunning when another ssmd up holds the dir
        failure: ChildFailed | None = None
        try:
            try:
                await self._stop_leftovers(previous)
                self.lock.write(
                    pid=os.getpid(),
                    env=self.env.name,
                    started_at=time.time(),
                    boot_id=procs.boot_id(),
                    children={},
                    simulator=None,
                )
                failure = await self._run(stop)
            except Exception as exc:  # a defect here must not leave the children running
                log.error("ssmd up failed", exc_info=exc)
                failure = ChildFailed("ssmd up", f"failed: {exc}", [])
            report = await self._shutdown()
        finally:
            self.display.close()
            # A child still running (the stop did not complete) stays recorded for
            # the next run to stop.
            self.lock.release(keep_state=bool(self.supervisor.processes()))
        failures = self._failures(failure)
        self.display.final(report, self.stops, failures)
        return 1 if failures else 0

    async def _run(self, stop: asyncio.Event) -> ChildFailed | None:
        """Start, then run until a stop request or a failure; what failed, if anything."""
        startup = asyncio.create_task(self._start())
        failure = await self._until(stop, startup)
        if failure is None and not stop.is_set():
            await self._serve_control()
            background = [
                asyncio.create_task(self._status_loop()),
                asyncio.create_task(self._sync_loop()),
            ]
            failure = await self._until(stop, None)
            for t in background:
                t.cancel()
            await asyncio.gather(*background, return_exceptions=True)
        return failure

    def _failures(self, failure: ChildFailed | None) -> list[str]:
        """Every component that failed, each named once: the failure that ended the run,
        exits while it should have been running (even when a restart brought it back),
        and stops that did not end cleanly."""
        found: dict[str, str] = {}
        if failure is not None:
            found[failure.name] = failure.why
        for name, codes in self.supervisor.unexpected.items():
            found.setdefault(
                name,
                f"exited {len(codes)} time(s) while running "
                f"(exit codes {', '.join(map(str, codes))}; restarted)",
            )
        for result in self.stops:
            if result.failure is not None:
                found.setdefault(result.name, result.failure)
        return [f"{name} {why}" for name, why in found.items()]

    async def _until(
        self, stop: asyncio.Event, task: asyncio.Task[None] | None
    ) -> ChildFailed | None:
        """Wait for `task` (or forever) unless a stop request or a failure comes first.

        Returns what failed, or None (the task finished, or a stop was requested)."""
        helpers = [
            asyncio.create_task(stop.wait()),
            asyncio.create_task(self.supervisor.failed.wait()),
        ]
        try:
            await asyncio.wait(
                [*helpers, *([task] if task else [])], return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for h in helpers:
                h.cancel()
        if task is not None and not task.done():
            task.cancel()  # a stop or a failure during startup: then stop what was started
            with contextlib.suppress(BaseException):
                await task
        if task is not None and not task.cancelled() and task.exception() is not None:
            return self._failed(task.exception())
        return self.supervisor.failure

    def _failed(self, exc: BaseException | None) -> ChildFailed:
        if isinstance(exc, ChildFailed):
            self.display.event(
                "error", exc.why, {"component": exc.name, "last_lines": exc.tail[-8:]}
            )
            return exc
        log.error("startup failed", exc_info=exc)
        return ChildFailed("ssmd up", f"startup failed: {exc}", [])

    # ---- startup -------------------------------------------------------------------------

    @property
    def envs(self) -> list[ResolvedEnvironment]:
        """The environment resolved for each feed it captures, its own first."""
        return [self.env, *self.venues]

    @property
    def plan(self) -> Plan:
        """The plan of the environment's own feed."""
        return self.plans[0]

    async def _start(self) -> None:
        env, o = self.env, self.o
        _check_port(o.host, o.port)  # before anything starts: the likeliest clash
        self.http = httpx.AsyncClient(timeout=2.0)
        await self._start_nats()
        if env.temporal_embedded:
            await self._start_temporal()
        import nats

        async def nats_error(exc: Exception) -> None:
            log.debug("ssmd up's NATS connection: %s", exc)  # children report their own

        self.nc = await nats.connect(
            self.nats_url, name="ssmd-up", max_reconnect_attempts=-1, error_cb=nats_error
        )
        self.js = self.nc.jetstream()
        self.plans = [
            Plan(
                env=each.name,
                config_dir=each.config_dir,
                data_dir=each.data_dir,
                nats_url=self.nats_url,
                stream=each.nats.stream,
                http=self.http,
                js=self.js,
                log_level=o.log_level,
                connector_port=free_port(),
                archiver_port=free_port(),
                gateway_host=o.host,
                gateway_port=o.port,
                extra_feed=each.extra_feed,
            )
            for each in self.envs
        ]
        self.lock.write(endpoints=self._endpoints())
        self._before = self._inventory()
        for plan, each in zip(self.plans, self.envs, strict=True):
            simulated = is_simulated(each) if self.o.sim is None else self.o.sim
            if simulated:
                await self._start_sim(plan, each)
        for plan in self.plans:
            await self._sync(plan, first=True)
        for plan, each in zip(self.plans, self.envs, strict=True):
            for component in _feed_components(each):
                await self._launch(getattr(plan, component)())
        await self._launch(self.plan.gateway())  # every venue's markets, once all are up
        web_url = self.plan.gateway_url + "/"
        self.sampler = Sampler.from_endpoints(self.http, self._endpoints(), web_url)
        self.lock.write(web_url=web_url, children=self._children())
        self.display.event(
            "info",
            "ssmd up ready",
            {
                "env": env.name,
                "web_url": web_url,
                "venues": [each.feed.name for each in self.envs],
                "data_dir": str(env.data_dir),
            },
        )

    def _endpoints(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for plan in self.plans:
            out[plan.name("connector")] = f"http://127.0.0.1:{plan.connector_port}"
            out[plan.name("archiver")] = f"http://127.0.0.1:{plan.archiver_port}"
        out[self.plan.name("gateway")] = self.plan.gateway_url
        return out

    async def _start_sim(self, plan: Plan, env: ResolvedEnvironment) -> None:
        """The feed's simulator; the children of that feed are given its URLs. Only the
        environment's own feed's takes --sim-port and writes the truth file."""
        options = self.o.sim_options
        if plan.extra_feed is not None:
            options = replace(options, port=0, truth_file=None)
        sim = options.make(env.feed.name)
        await sim.__aenter__()
        if plan.extra_feed is None:
            self.sim = sim
        else:
            self.venue_sims[plan.name("simulator")] = sim
        plan.ws_url, plan.rest_url = sim.ws_url, sim.rest_url
        if env.feed.name == "kalshi":  # Kalshi's simulator signs in with its demo key
            plan.credentials = {
                "KALSHI_API_KEY": sim.key_id,
                "KALSHI_PRIVATE_KEY_PATH": str(sim.private_key_path),
            }
        if plan.extra_feed is None:
            self.lock.write(
                simulator={"ws_url": sim.ws_url, "rest_url": sim.rest_url, "seed": sim.seed}
            )
        self.display.event(
            "info",
            "simulator started",
            # The seed is what reproduces this run's order flow (--sim-seed).
            {"component": plan.name("simulator"), "url": sim.ws_url, "seed": sim.seed},
        )

    async def _start_nats(self) -> None:
        env = self.env
        if not env.nats.embedded:
            if not await jetstream_ready(self.nats_url):
                raise ChildFailed(
                    "nats",
                    f"at {self.nats_url} (from the environment) does not answer with JetStream",
                    [],
                )
            self.display.event("info", "using NATS", {"component": "nats", "url": self.nats_url})
            return
        for attempt in range(3):
            port = free_port()
            spec = nats_spec(
                env.embedded_nats_dir, port, log_path=env.data_dir / "logs" / "nats.log"
            )
            try:
                await self.supervisor.launch(spec)
            except ChildFailed:
                if attempt == 2:
                    raise
                continue  # the port was taken between the probe and the bind
            self.nats_url = f"nats://127.0.0.1:{port}"
            break
        # Other `ssmd` commands resolving this data dir find the server here.
        self.lock.write(nats_url=self.nats_url, children=self._children())

    async def _start_temporal(self) -> None:
        """`temporal: embedded`: the Temporal dev server that `ssmd worker` and `ssmd ops`
        use, on the environment's address, its state under {data}/temporal/ (optional:
        a server already answering there is used as it is)."""
        from ssmd.ops.temporal import dev_server_spec, port_open

        address = str(self.env.temporal_address)
        if await port_open(address):
            self.display.event(
                "info", "using Temporal", {"component": "temporal", "address": address}
            )
            return
        host, _, port = address.rpartition(":")
        if host not in ("127.0.0.1", "localhost"):
            raise ChildFailed(
                "temporal",
                f"embedded listens on 127.0.0.1, not {address}; "
                "Fix: $SSMD_TEMPORAL_ADDRESS=127.0.0.1:PORT",
                [],
            )
        data = self.env.data_dir
        spec = dev_server_spec(
            data / "temporal" / "dev.db",
            int(port),
            free_port(),
            log_path=data / "logs" / "temporal.log",
        )
        await self._launch(spec)

    async def _launch(self, spec: ChildSpec) -> None:
        if self.o.stop_timeout is not None:
            spec.stop_timeout = self.o.stop_timeout
        await self.supervisor.launch(spec)
        self.lock.write(children=self._children())

    async def _sync(self, plan: Plan, *, first: bool) -> None:
        """One secmaster sync of a feed; the first is required (three tries), later ones
        only logged."""
        name = plan.name("secmaster-sync")
        tries = 3 if first else 1
        for attempt in range(1, tries + 1):
            try:
                child = await self.supervisor.run_once(plan.sync(), self.o.sync_timeout)
            except ChildFailed as exc:
                if attempt < tries:
                    self.display.event(
                        "warning",
                        f"secmaster sync {exc.why}; trying again",
                        {"component": name, "last_lines": exc.tail[-3:]},
                    )
                    await asyncio.sleep(2.0 * attempt)  # backoff before the next try
                    continue
                if first:
                    raise
                self.display.event(
                    "warning",
                    f"secmaster sync {exc.why}",
                    {"component": name, "last_lines": exc.tail[-3:]},
                )
                return
            self.display.event(
                "info", "secmaster synced", {"component": name, **_sync_figures(child)}
            )
            return

    # ---- running -------------------------------------------------------------------------

    async def _status_loop(self) -> None:
        assert self.sampler is not None
        while True:
            states = {
                n: ("running" if c.running else "stopped" if c.stopping else "down")
                for n, c in self.supervisor.children.items()
            }
            if self.sim is not None:
                states["simulator"] = "running"
            states.update(dict.fromkeys(self.venue_sims, "running"))
            children = self._children()
            if children != self.lock.state.get("children"):  # a restart: record the new one
                self.lock.write(children=children)
            try:
                self.display.status(await self.sampler.sample(states))
            except Exception as exc:  # the figures are a view: never a reason to stop
                log.warning("status not updated: %s", exc)
            await asyncio.sleep(self.o.status_interval)  # the display's refresh period

    async def _sync_loop(self) -> None:
        """Each feed's sync every `symbols.sync_interval` of that feed."""
        await asyncio.gather(
            *(
                self._sync_every(plan, each)
                for plan, each in zip(self.plans, self.envs, strict=True)
            )
        )

    async def _sync_every(self, plan: Plan, env: ResolvedEnvironment) -> None:
        every = max(10.0, _seconds(env.symbols.sync_interval))
        while True:
            await asyncio.sleep(every)  # the secmaster's sync period
            await self._sync(plan, first=False)

    # ---- control (ssmd.up.control: `ssmd tui` starts and stops components) ---------------

    async def _serve_control(self) -> None:
        server = ControlServer(socket_path(self.env.data_dir), self.control)
        try:
            await server.start()
        except OSError as exc:  # a path too long for a socket, say: the rest still runs
            log.warning("no control socket: %s", exc)
            return
        self.control_server = server
        self.lock.write(control=str(server.path))

    async def control(self, action: str, name: str) -> dict[str, Any]:
        """Stop a component (it stays stopped) or start it again, waiting until it is
        ready; what happened, for ssmd.up.control's answer."""
        found = self._component(name)
        if found is None:  # a typo of a venue's name (connector-krakn) is not "stopped"
            return {"ok": False, "error": f"no component {name!r} in this ssmd up"}
        child = self.supervisor.children.get(name)
        if action == "stop":
            if child is None or child.stopping:
                return {"ok": True, "result": "already stopped"}
            self.display.event("info", "stopping on request", {"component": name})
            result = await self.supervisor.stop(name)
            self.lock.write(children=self._children(), stopped=self._stopped())
            if result is not None and result.failure is not None:
                self.stops.append(result)
                return {"ok": False, "error": f"{name} {result.failure}"}
            return {"ok": True, "result": "stopped"}
        if child is not None and not child.stopping:  # running, or being restarted
            return {"ok": True, "result": "already running"}
        plan, component = found
        self.display.event("info", "starting on request", {"component": name})
        try:
            await self._launch(getattr(plan, component)())
        except ChildFailed as exc:
            self.display.event("error", exc.why, {"component": name, "last_lines": exc.tail[-5:]})
            return {"ok": False, "error": f"{name} {exc.why}", "last_lines": exc.tail[-5:]}
        finally:
            self.lock.write(stopped=self._stopped())
        return {"ok": True, "result": "started"}

    def _component(self, name: str) -> tuple[Plan, str] | None:
        """The plan and component a child's name stands for (connector-kraken: kraken's
        connector), among the components this run starts: each feed's own, and the one
        gateway of every venue (`gateway`, never `gateway-kraken`)."""
        if self.plans and name == self.plan.name("gateway"):
            return self.plan, "gateway"
        for plan, each in zip(self.plans, self.envs, strict=True):
            for component in _feed_components(each):
                if plan.name(component) == name:
                    return plan, component
        return None

    def _stopped(self) -> list[str]:
        """The components stopped on request (the state file's `stopped`)."""
        return sorted(n for n, c in self.supervisor.children.items() if c.stopping)

    # ---- shutdown ------------------------------------------------------------------------

    async def _shutdown(self) -> ArchiveReport | None:
        sup = self.supervisor
        if self.control_server is not None:
            await self._step("close the control socket", self.control_server.stop())
        sup.close()
        self.display.stopping = True
        self.display.event("info", "stopping", {})
        feeds = [each.extra_feed for each in self.envs]
        for component in STOP_ORDER:
            if component == "gateway":  # one for every venue
                await self._step("stop gateway", self._stop_child("gateway"))
                continue
            for each, feed in zip(self.envs, feeds, strict=True):
                name = child_name(component, feed)
                if component == "archiver" and child_name("connector", feed) in sup.children:
                    await self._step(f"wait for {name}", self._wait_archived(each, name))
                await self._step(f"stop {name}", self._stop_child(name))
        await self._step("stop temporal", self._stop_child("temporal"))
        if self.sim is not None:
            await self._step("stop the simulator", self._stop_sim())
        for name, sim in self.venue_sims.items():
            await self._step(f"stop {name}", self._stop_venue_sim(name, sim))
        if self.nc is not None:
            await self._step("close NATS", self.nc.close())
        await self._step("stop nats", self._stop_child("nats"))
        if self.http is not None:
            await self._step("close HTTP", self.http.aclose())
        if not any(child_name("archiver", feed) in sup.children for feed in feeds):
            return None
        try:
            return await asyncio.to_thread(self._report)
        except Exception as exc:  # the run is over; a report that fails must not hide that
            log.warning("no archive report: %s", exc)
            return None

    async def _step(self, what: str, step: Awaitable[Any]) -> None:
        """One stage of the stop; a failure is reported and the next stages still run
        (they must, or children would outlive `ssmd up`)."""
        try:
            await step
        except Exception as exc:
            self.display.event("error", f"{what} failed: {exc}", {})

    async def _stop_child(self, name: str) -> None:
        result = await self.supervisor.stop(name)
        if result is not None:
            self.stops.append(result)

    async def _stop_sim(self) -> None:
        await self.sim.__aexit__(None, None, None)
        if self.o.sim_options.truth_file is not None:
            write_truth(self.sim.truth, self.o.sim_options.truth_file)
        self.display.event("info", "simulator stopped", {"component": "simulator"})

    async def _stop_venue_sim(self, name: str, sim: Any) -> None:
        await sim.__aexit__(None, None, None)
        self.display.event("info", "simulator stopped", {"component": name})

    async def _wait_archived(self, env: ResolvedEnvironment, name: str, poll: float = 0.1) -> None:
        """Until the archiver `name` has consumed `env`'s stream (bounded by drain_timeout)."""
        if self.js is None or name not in self.supervisor.children:
            return
        deadline = time.monotonic() + self.o.drain_timeout
        while time.monotonic() < deadline and self.supervisor.children[name].running:
            try:
                info = await self.js.consumer_info(env.nats.stream, "archiver")
            except Exception:
                return
            if not info.num_pending and not info.num_ack_pending:
                return
            await asyncio.sleep(poll)  # the poll interval of a condition
        self.display.event(
            "warning",
            f"the archiver had not consumed the whole stream after {self.o.drain_timeout:g} s; "
            "the rest stays in the stream and is archived by the next run",
            {"component": name},
        )

    # ---- helpers -------------------------------------------------------------------------

    def _archive(self) -> Any:
        from ssmd.data.inventory import Archive

        return Archive.from_environment(self.env)

    def _inventory(self) -> list[dict[str, Any]]:
        try:
            return list(self._archive().inventory(None, self.started_on, None))
        except Exception:
            return []

    def _report(self) -> ArchiveReport:
        today = datetime.now(UTC).date()
        return archive_report(self._archive(), self.started_on, today, self._before)

    def _children(self) -> dict[str, dict[str, Any]]:
        return self.supervisor.processes()

    async def _stop_leftovers(self, previous: dict[str, Any] | None) -> None:
        """Stop the processes a killed `ssmd up` on this data directory left running:
        those its state file records that are still the same processes (pid, start
        time and boot match; a reused pid is never signalled)."""
        previous = previous or {}
        boot, recorded = previous.get("boot_id"), previous.get("children")
        if not isinstance(boot, str) or not isinstance(recorded, dict):
            return
        left = {n: r for n, r in recorded.items() if procs.is_running(r, boot)}
        for name, record in left.items():
            self.display.event(
                "warning",
                "stopping a process left by an earlier ssmd up",
                {"component": name, "pid": record["pid"]},
            )
            # Each got SIGTERM from the kernel when that run died, so there is no order
            # left to keep: this one is for a kernel without parent-death signals, and
            # SIGCONT for a stopped process, which would not act on it.
            for sig in (signal.SIGTERM, signal.SIGCONT):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(record["pid"], sig)
        await self._wait_gone(left, boot, self.o.stop_timeout or LEFTOVER_STOP_TIMEOUT)
        for name, record in left.items():
            if procs.is_running(record, boot):
                self.display.event(
                    "error",
                    "killing a process left by an earlier ssmd up: it did not exit in time",
                    {"component": name, "pid": record["pid"]},
                )
                with contextlib.suppress(ProcessLookupError):
                    os.kill(record["pid"], signal.SIGKILL)
        await self._wait_gone(left, boot, 5.0)  # SIGKILL cannot be refused

    @staticmethod
    async def _wait_gone(records: dict[str, Any], boot: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while any(procs.is_running(r, boot) for r in records.values()):
            if time.monotonic() >= deadline:
                return
            await asyncio.sleep(0.1)  # polling the process table


def _feed_components(env: ResolvedEnvironment) -> tuple[str, ...]:
    """The components run for each feed, in start order: the security master's live
    updates only where the venue's stream carries lifecycle records."""
    live = ("secmaster",) if venue(env.feed.name).lifecycle else ()
    return ("connector", "archiver", *live)


def _check_port(host: str, port: int) -> None:
    """ChildFailed (before anything started) when the gateway could not listen there."""
    import socket

    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise ChildFailed(
            "gateway",
            f"cannot listen on {host}:{port} ({os.strerror(exc.errno) if exc.errno else exc}); "
            "Fix: --port with a free port",
            [],
        ) from None


def _seconds(duration: str) -> float:
    from ssmd.config import parse_duration

    return parse_duration(duration).total_seconds()


def _sync_figures(child: Any) -> dict[str, Any]:
    import orjson

    try:
        report = orjson.loads("\n".join(child.stdout))
    except orjson.JSONDecodeError:
        return {}
    keys = ("series", "events", "markets", "seconds")
    return {k: report.get(k) for k in keys} if isinstance(report, dict) else {}

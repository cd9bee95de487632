"""The local runtime: the components as processes on this machine, started by the worker.

The command lines and readiness checks are `ssmd up`'s (ssmd.up.components.Plan,
ssmd.up.nats, ssmd.up.simulator); the processes are known again by the identity
`ssmd up` records (ssmd.up.procs: pid, start time and boot). What differs from
`ssmd up`: the processes are detached (their own session, output to their log
files, no parent-death signal), because they must outlive the worker. A worker
killed in the middle of a workflow is restarted, Temporal retries the activity, and
the activity finds the process the dead worker started in the state file, running:
it waits for it instead of starting another.

State: `{data}/ops/{env}.json` (written atomically, every change under the flock of
`{data}/ops/{env}.lock`, so two activities never start one component twice):
the boot id, NATS URL, the simulators, and per component its process, ports and last
error. An environment that captures several venues has a connector, an archiver and
(when simulated) a simulator per feed, named as `ssmd up` names them
(`connector-kraken`), on one NATS server, with one gateway. Restarting a component that dies is not done here: a day's health check and
`ssmd ops status` show it, and the next startup starts it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import httpx

from ssmd.exceptions import ChildFailed, ConfigError
from ssmd.ops.runtime import ComponentState, Flow, component_names, every_name
from ssmd.up import procs
from ssmd.up.children import ChildSpec
from ssmd.up.components import Plan, child_name, gateway_serves, split_child_name, ssmd_argv
from ssmd.up.nats import free_port, jetstream_ready, nats_spec
from ssmd.up.simulator import is_simulated
from ssmd.up.status import parse_metrics
from ssmd.upstate import running_nats_url

__all__ = ["LocalRuntime"]

Heartbeat = Callable[..., None]
STOP_BEAT: Final = 2.0  # seconds between heartbeats while a component stops
TAIL_LINES: Final = 8
POLL: Final = 0.2  # seconds between readiness and exit checks


def _no_heartbeat(*_details: Any) -> None:
    return None


class LocalRuntime:
    kind = "local"

    def __init__(
        self,
        env: Any,
        *,
        venues: Sequence[Any] = (),
        gateway_port: int = 8080,
        gateway_host: str = "127.0.0.1",
        log_level: str = "INFO",
        sim_rate: float = 200.0,
        sim_markets: int = 200,
    ) -> None:
        self.env = env
        # The environment resolved for each feed it captures, its own first.
        self.envs = [env, *venues]
        self.components = component_names(self.envs)
        self.gateway_port, self.gateway_host = gateway_port, gateway_host
        self.log_level = log_level
        self.sim_rate, self.sim_markets = sim_rate, sim_markets
        self.dir = Path(env.data_dir) / "ops"
        self.state_path = self.dir / f"{env.name}.json"
        self.lock_path = self.dir / f"{env.name}.lock"
        self._children: dict[int, subprocess.Popen[bytes]] = {}  # reaped by this worker

    # ---- state ---------------------------------------------------------------------------

    def read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.state_path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {}
        if not isinstance(data, dict) or data.get("boot_id") != procs.boot_id():
            # Another boot: none of its processes run any more; keep only the errors.
            return {"errors": data.get("errors", {})} if isinstance(data, dict) else {}
        return data

    def _write(self, data: dict[str, Any]) -> None:
        data["boot_id"] = procs.boot_id()
        tmp = self.state_path.with_name(f".{self.state_path.name}.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
        os.replace(tmp, self.state_path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """The state under the lock; what the block changes in it is written back."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            data = self.read()
            yield data
            self._write(data)
        finally:
            os.close(fd)

    @contextlib.asynccontextmanager
    async def _alocked(self) -> AsyncIterator[dict[str, Any]]:
        """`_locked` without blocking the event loop while another activity holds the
        lock (it may be waiting for a component to be ready)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(POLL)  # a flock offers nothing to await
            data = self.read()
            yield data
            self._write(data)
        finally:
            os.close(fd)

    def record_error(self, name: str, error: str | None) -> None:
        with self._locked() as data:
            errors = data.setdefault("errors", {})
            if error is None:
                errors.pop(name, None)
            else:
                errors[name] = error

    def _running(self, data: dict[str, Any], name: str) -> dict[str, Any] | None:
        record = data.get("processes", {}).get(name)
        if record and procs.is_running(record, data.get("boot_id", "")):
            return dict(record)
        return None

    # ---- where things are ----------------------------------------------------------------

    def nats_url(self) -> str:
        if not self.env.nats.embedded:
            return str(self.env.nats.url)
        url = self.read().get("nats_url")
        if not url:
            raise ConfigError(
                f"environment {self.env.name}: the embedded NATS is not started; "
                "run DailyStartup (`ssmd ops start`) first"
            )
        return str(url)

    def _plan(self, data: dict[str, Any], http: httpx.AsyncClient, env: Any = None) -> Plan:
        """The command lines of feed `env`'s components (default: the own feed's)."""
        env = env or self.env
        ports = data.setdefault("ports", {})
        connector, archiver = (child_name(c, env.extra_feed) for c in ("connector", "archiver"))
        for name in (connector, archiver):
            ports.setdefault(name, free_port())
        plan = Plan(
            env=env.name,
            config_dir=env.config_dir,
            data_dir=env.data_dir,
            nats_url=data.get("nats_url") or env.nats.url,
            stream=env.nats.stream,
            http=http,
            js=None,
            log_level=self.log_level,
            connector_port=ports[connector],
            archiver_port=ports[archiver],
            gateway_host=self.gateway_host,
            gateway_port=self.gateway_port,
            extra_feed=env.extra_feed,
        )
        sim = data.get(child_name("simulator", env.extra_feed))
        if sim:
            plan.ws_url, plan.rest_url = sim["ws_url"], sim["rest_url"]
            if env.feed.name == "kalshi":  # Kalshi's simulator signs in with its demo key
                from ssmd.sim.server import DEMO_KEY_ID, DEMO_PRIVATE_KEY_PATH

                plan.credentials = {
                    "KALSHI_API_KEY": DEMO_KEY_ID,
                    "KALSHI_PRIVATE_KEY_PATH": str(DEMO_PRIVATE_KEY_PATH),
                }
        return plan

    def _names(self) -> list[str]:
        return every_name(self.components)

    async def sync_commands(self) -> dict[str, list[str]]:
        async with httpx.AsyncClient() as http:
            data = self.read()
            return {env.feed.name: self._plan(data, http, env).sync().argv for env in self.envs}

    # ---- processes -----------------------------------------------------------------------

    def _spawn(self, spec: ChildSpec) -> dict[str, Any]:
        """Start `spec` detached (see the module docstring); its identity record."""
        assert spec.log_path is not None
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **(spec.env or {})}
        with open(spec.log_path, "ab") as log:
            proc = subprocess.Popen(
                spec.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=env,
                start_new_session=True,
            )
        self._children[proc.pid] = proc
        record = procs.identity(proc.pid)
        if record is None:  # it exited at once: report it as such when waited for
            record = {"pid": proc.pid, "start": -1}
        return record

    def reap(self) -> None:
        """Collect the exit status of the processes this object started that have ended
        (they are its children until then: zombies otherwise)."""
        for pid, proc in list(self._children.items()):
            if proc.poll() is not None:
                del self._children[pid]

    def _tail(self, name: str) -> list[str]:
        path = Path(self.env.data_dir) / "logs" / f"{name}.log"
        try:
            with path.open("rb") as fh:
                fh.seek(max(0, path.stat().st_size - 16384))
                lines = fh.read().decode("utf-8", "replace").splitlines()
        except FileNotFoundError:
            return []
        return lines[-TAIL_LINES:]

    async def _wait_ready(
        self, spec: ChildSpec, record: dict[str, Any], boot: str, heartbeat: Heartbeat
    ) -> None:
        deadline = time.monotonic() + spec.ready_timeout
        check = spec.ready
        while True:
            self.reap()
            if not procs.is_running(record, boot):
                raise ChildFailed(spec.name, "exited while starting", self._tail(spec.name))
            if check is None or await check():
                return
            if time.monotonic() >= deadline:
                raise ChildFailed(
                    spec.name,
                    f"not ready within {spec.ready_timeout:g} s",
                    self._tail(spec.name),
                )
            heartbeat(f"waiting for {spec.name}")
            await asyncio.sleep(POLL)  # the poll interval of the readiness check

    async def _ensure(
        self,
        name: str,
        make: Callable[[dict[str, Any], httpx.AsyncClient], ChildSpec],
        heartbeat: Heartbeat,
    ) -> str:
        """Start `name` unless its recorded process runs; wait until it is ready."""
        async with httpx.AsyncClient(timeout=2.0) as http:
            async with self._alocked() as data:
                if running_nats_url(Path(self.env.data_dir)) is not None:
                    raise ConfigError(
                        f"`ssmd up` is running on {self.env.data_dir}; the worker's local "
                        "runtime would start the same components. Fix: stop `ssmd up`, or "
                        "give the worker another --data-dir"
                    )
                record = self._running(data, name)
                spec = make(data, http)
                outcome = "already running"
                if record is None:
                    record = self._spawn(spec)
                    data.setdefault("processes", {})[name] = record
                    data.setdefault("started", {})[name] = time.time()
                    outcome = "started"
                boot = procs.boot_id()
            try:
                await self._wait_ready(spec, record, boot, heartbeat)
            except ChildFailed as exc:
                await self._terminate(record, boot, 5.0)
                raise ChildFailed(exc.name, exc.why, exc.tail) from None
            return outcome

    async def _terminate(self, record: dict[str, Any], boot: str, timeout: float) -> bool:
        """SIGTERM, wait up to `timeout`, then SIGKILL; True when it had to be killed."""
        if not procs.is_running(record, boot):
            return False
        for sig in (signal.SIGTERM, signal.SIGCONT):
            with contextlib.suppress(ProcessLookupError):
                os.kill(record["pid"], sig)
        deadline = time.monotonic() + timeout
        while procs.is_running(record, boot):
            self.reap()
            if time.monotonic() >= deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(record["pid"], signal.SIGKILL)
                while procs.is_running(record, boot):
                    self.reap()
                    await asyncio.sleep(0.05)  # SIGKILL cannot be refused: a short wait
                return True
            await asyncio.sleep(POLL)  # polling the process table
        self.reap()
        return False

    # ---- the Runtime interface -----------------------------------------------------------

    async def prepare(self, heartbeat: Heartbeat = _no_heartbeat) -> dict[str, Any]:
        """NATS (when embedded) and the simulator (for a simulator environment)."""
        out: dict[str, Any] = {}
        if self.env.nats.embedded:
            out["nats"] = await self._ensure("nats", self._nats_spec, heartbeat)
        elif not await jetstream_ready(self.env.nats.url):
            raise ChildFailed(
                "nats", f"at {self.env.nats.url} (from the environment) does not answer", []
            )
        for env in self.envs:
            if is_simulated(env):
                name = child_name("simulator", env.extra_feed)
                out[name] = await self._ensure(name, self._sim_spec(env), heartbeat)
        return out

    def _nats_spec(self, data: dict[str, Any], _http: httpx.AsyncClient) -> ChildSpec:
        port = data.get("nats_port") or free_port()
        data["nats_port"] = port
        data["nats_url"] = f"nats://127.0.0.1:{port}"
        logs = Path(self.env.data_dir) / "logs"
        return nats_spec(self.env.embedded_nats_dir, port, log_path=logs / "nats.log")

    def _sim_spec(self, env: Any) -> Callable[[dict[str, Any], httpx.AsyncClient], ChildSpec]:
        """The simulator of feed `env`, on a free port; its URLs are the environment's
        with that port (the paths stay the feed's own)."""
        name = child_name("simulator", env.extra_feed)

        def make(data: dict[str, Any], _http: httpx.AsyncClient) -> ChildSpec:
            sim = data.get(name)
            if not sim or self._running(data, name) is None:
                # A fresh seed for each simulator: the same seed would send the same trade
                # ids again, which the archive would hold twice.
                port = free_port()
                sim = data[name] = {
                    "port": port,
                    "seed": secrets.randbits(31),
                    "ws_url": _on_port(env.endpoint.ws_url, port),
                    "rest_url": _on_port(env.endpoint.rest_url, port),
                }
            argv = [*ssmd_argv(), "sim", "run", "--venue", env.feed.name]
            argv += ["--port", str(sim["port"]), "--seed", str(sim["seed"])]
            argv += ["--rate", str(self.sim_rate), "--markets", str(self.sim_markets)]
            address = f"127.0.0.1:{sim['port']}"

            async def listening() -> bool:
                from ssmd.ops.temporal import port_open

                return await port_open(address)

            logs = Path(self.env.data_dir) / "logs"
            return ChildSpec(
                name, argv, ready=listening, ready_timeout=60.0, log_path=logs / f"{name}.log"
            )

        return make

    def _component_spec(
        self, name: str
    ) -> Callable[[dict[str, Any], httpx.AsyncClient], ChildSpec]:
        if name not in self._names():
            raise ValueError(f"unknown component {name!r}; expected one of {self._names()}")
        kind, feed = split_child_name(name)  # connector-kraken: kraken's connector
        env = next(e for e in self.envs if (e.extra_feed or "") == feed)

        def make(data: dict[str, Any], http: httpx.AsyncClient) -> ChildSpec:
            plan = self._plan(data, http, env)
            spec: ChildSpec = getattr(plan, kind)()
            return spec

        return make

    async def start(self, name: str, heartbeat: Heartbeat = _no_heartbeat) -> str:
        return await self._ensure(name, self._component_spec(name), heartbeat)

    async def stop(self, name: str, heartbeat: Heartbeat = _no_heartbeat) -> str:
        async with httpx.AsyncClient() as http:
            data = self.read()
            record = self._running(data, name)
            if record is None:
                return "already stopped"
            timeout = (
                self._component_spec(name)(data, http).stop_timeout
                if name in self._names()
                else 15.0
            )
        # A component's ordered stop may take longer than the activity's heartbeat
        # timeout (the archiver seals what it holds): heartbeat while it runs.
        stopping = asyncio.ensure_future(self._terminate(record, data.get("boot_id", ""), timeout))
        try:
            while True:
                heartbeat(f"stopping {name}")
                done, _ = await asyncio.wait({stopping}, timeout=STOP_BEAT)
                if done:
                    break
        finally:
            stopping.cancel()  # nothing when it is done; when the activity is cancelled, stop it
        killed = stopping.result()
        with self._locked() as fresh:
            fresh.get("processes", {}).pop(name, None)
        if killed:
            raise ChildFailed(name, "did not exit in time and was killed", self._tail(name))
        return "stopped"

    async def stop_everything(self) -> None:
        """Every process of this runtime, the components first, then the simulators and NATS."""
        c = self.components
        simulators = [child_name("simulator", env.extra_feed) for env in self.envs]
        for name in [*c["gateway"], *c["connector"], *c["archiver"], *simulators, "nats"]:
            with contextlib.suppress(ChildFailed):
                await self.stop(name)

    async def states(self) -> list[ComponentState]:
        data = self.read()
        errors = data.get("errors", {})
        out = []
        simulators = [child_name("simulator", env.extra_feed) for env in self.envs]
        names = [n for n in ("nats", *simulators) if n in data.get("processes", {})]
        components = self._names()
        others = sorted(set(errors) - {*names, *components})  # secmaster-sync, health, ...
        for name in [*names, *components, *others]:
            record = self._running(data, name)
            if record is not None:
                state, detail = "running", f"pid {record['pid']}"
            else:
                state, detail = ("failed" if errors.get(name) else "stopped"), ""
            out.append(ComponentState(name, state, detail, errors.get(name)))
        return out

    async def flow(self) -> Flow:
        data = self.read()
        ports = data.get("ports", {})
        flow = Flow()
        c = self.components
        async with httpx.AsyncClient(timeout=2.0) as http:
            plan = self._plan(dict(data), http)
            connectors = await _metrics(http, ports, c["connector"])
            archivers = await _metrics(http, ports, c["archiver"])
            flow.gateway_ok = await gateway_serves(http, f"{plan.gateway_url}/v1/health")
        for env, connector, archiver in zip(self.envs, connectors, archivers, strict=True):
            flow.add(
                env.feed.name,
                _total(connector, "ssmd_connector_messages_received_total"),
                _total(archiver, "ssmd_archiver_records_written_total"),
            )
        return flow


async def _metrics(
    http: httpx.AsyncClient, ports: dict[str, int], names: list[str]
) -> list[str | None]:
    """The /metrics text of each of the components `names` (None: no answer)."""
    return list(
        await asyncio.gather(
            *(_get(http, f"http://127.0.0.1:{ports.get(name)}/metrics") for name in names)
        )
    )


def _on_port(url: str, port: int) -> str:
    return urlsplit(url)._replace(netloc=f"127.0.0.1:{port}").geturl()


def _total(metrics: str | None, name: str) -> float:
    return 0.0 if metrics is None else parse_metrics(metrics).total(name)


async def _get(http: httpx.AsyncClient, url: str) -> str | None:
    """The body of a 200 answer, else None."""
    try:
        r = await http.get(url)
    except httpx.HTTPError:
        return None
    return r.text if r.status_code == 200 else None

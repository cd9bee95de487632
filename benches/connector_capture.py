"""Connector capture: simulator (own process) -> connector (this process) -> nats-server.

    .venv/bin/python benches/connector_capture.py [--mode all|throughput|latency|memory]
        [--seconds 20] [--markets 200] [--rate R] [--latency-rate 1000]
        [--memory-markets 10000] [--minutes 2] [--profile FILE]

Three processes: the simulator runs in a child started with multiprocessing `spawn` (as
benches/sim_throughput.py), nats-server in its own, the connector in this one, so the
connector's figures are its own (the three still share the machine's cores).

- throughput: the simulator at maximum rate (`rate=None`: it sends as fast as the
  connector reads). Frames/s received and published over `--seconds` after the
  subscriptions settle; then the flow stops and zero loss is checked against ground
  truth: raw messages in the stream == frames the simulator sent, none dropped, no
  error 25. "Kept up": the backlog (capture queue + publisher window) grew by less than
  4 MiB over the window. If a run lost anything or did not keep up, it is repeated at a
  fixed rate of 90% of the frames/s last received, until one keeps up with zero loss:
  that run's published frames/s is `max_zero_loss_frames_per_s`.
  `--rate R` makes one throughput run at simulator rate R (order-flow actions/s; about
  1.8 frames each with every market subscribed) instead of the search.
- throughput, rendered first (`throughput_preloaded` in the output, after the above): the
  simulator renders the run's frames before the window (`Simulator.hold_output`) and
  only sends them during it, flat out and then paced (`release_output`) at 90% of what
  the connector last received, until a run keeps up with zero loss. The simulator's
  cost per frame is then out of the window, so this finds the connector's own limit.
  Then the same search for the baseline (`baseline_nats_py_preloaded`): the same
  connector with its publisher on nats-py's public API (benches/stock_bus.py), and the
  ratio of the two (`preloaded_vs_baseline`); `--no-baseline` skips it.
- latency: the simulator at a fixed rate tuned to `--latency-rate` frames/s; local
  receive time -> PubAck of each raw frame, p50 and p99.
- memory: `--memory-markets` markets subscribed, simulator at maximum rate, the
  connector's RSS (/proc/self/status VmRSS) sampled every 5 s for `--minutes`; flat when
  the mean of the last third is within 5% of the first third's.

Each run also reports the connector's own CPU: its share of one core, microseconds per
frame published, and the frames/s that would make on a core of its own; and the CPU per
frame of nats-server and of the simulator, which share the machine's cores with it.
`--profile FILE` writes a cProfile of this process (the connector).

Prints one JSON line with everything.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ssmd.connector.runner import Connector
from ssmd.testing import until
from ssmd.testing.connector import STREAM, settings_for, streaming, tickers_symbols
from ssmd.testing.nats import client, nats_server
from stock_bus import StockConnector

ROOT = Path(__file__).resolve().parents[1]


def _serve(conn: Connection, markets: int, rate: float | None) -> None:
    """Child process: a simulator; on "quiesce" the flow stops and, once every queued frame
    is written, the frames sent are reported; on "stop" it closes."""
    from ssmd.sim import Simulator

    async def main() -> None:
        loop = asyncio.get_running_loop()
        sim = Simulator(rate=rate, markets=markets, record_limit=0)
        async with sim:
            conn.send(
                {
                    "ws_url": sim.ws_url,
                    "rest_url": sim.rest_url,
                    "key_id": sim.key_id,
                    "private_key_path": str(sim.private_key_path),
                    "tickers": sorted(m.ticker for m in sim.universe.active()),
                }
            )
            cmd = await loop.run_in_executor(None, conn.recv)  # ("preload", ...) or "quiesce"
            if cmd != "quiesce":
                _, frames, pace = cmd
                sim.hold_output()
                while sim.queued() < frames:
                    await asyncio.sleep(0.05)  # the flow renders; nothing is sent meanwhile
                queued = sim.queued()
                sim.release_output(pace)
                conn.send({"queued": queued})
                await loop.run_in_executor(None, conn.recv)  # "quiesce"
            sim.publish = lambda msgs: None  # type: ignore[method-assign]
            while any(c.out or c.writing for c in sim.connections.values() if not c.closed):
                await asyncio.sleep(0.01)
            truth = sim.truth
            conn.send(
                {
                    "frames_sent": sum(r.frames_sent for r in truth.connections.values()),
                    "connections": len(truth.connections),
                    "overflows": sum(1 for f in truth.faults if "overflow" in str(f.kind)),
                }
            )
            await loop.run_in_executor(None, conn.recv)  # "stop"

    asyncio.run(main())


class SimProcess:
    def __init__(self, markets: int, rate: float | None) -> None:
        self.parent, child = mp.Pipe()
        self.proc = mp.get_context("spawn").Process(
            target=_serve, args=(child, markets, rate), daemon=True
        )
        self.proc.start()
        self.info: dict[str, Any] = self.parent.recv()

    def preload(self, frames: int, pace: float | None) -> dict[str, Any]:
        """Render at least `frames` frames unsent, then send them (at `pace` frames/s)."""
        self.parent.send(("preload", frames, pace))
        reply: dict[str, Any] = self.parent.recv()
        return reply

    def quiesce(self) -> dict[str, Any]:
        self.parent.send("quiesce")
        result: dict[str, Any] = self.parent.recv()
        return result

    def stop(self) -> None:
        self.parent.send("stop")
        self.proc.join(20)


def _backlog(conn: Connector) -> int:
    """Bytes waiting in the capture queue plus messages in the publisher window."""
    pub = conn.publisher
    return conn.queue.memory_used + conn.queue.spool_used + (pub.inflight if pub else 0)


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def _run(
    markets: int,
    rate: float | None,
    seconds: float,
    *,
    latency: bool = False,
    sample_every: float = 0.0,
    preload: int = 0,
    pace: float | None = None,
    kind: type[Connector] = Connector,
) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp())
    sim = SimProcess(markets, rate)
    info = sim.info
    fake = SimpleNamespace(
        ws_url=info["ws_url"],
        rest_url=info["rest_url"],
        key_id=info["key_id"],
        private_key_path=info["private_key_path"],
        clock=SimpleNamespace(now=time.time),
    )
    tickers: list[str] = info["tickers"]
    stopped: dict[str, Any] | None = None
    try:
        async with nats_server(tmp / "nats") as srv:
            settings = settings_for(
                fake,  # type: ignore[arg-type]
                srv.url,
                tmp,
                ROOT / "exchanges",
                symbols=tickers_symbols(tickers),
                record_latency=latency,
                clock=time.time,
            )
            conn = kind(settings)
            stop = asyncio.Event()
            task = asyncio.create_task(conn.run(stop))
            await until(lambda: streaming(conn, len(tickers)), 300, "subscriptions")
            await asyncio.sleep(2.0)  # snapshots and set-up out of the window
            loaded: dict[str, Any] = {}
            if preload:
                loop = asyncio.get_running_loop()
                # The connector drains what came before meanwhile: nothing is sent.
                loaded = await loop.run_in_executor(None, sim.preload, preload, pace)
            pub = conn.publisher
            assert pub is not None
            conn.latencies_ns.clear()
            t0, f0, a0, b0 = time.monotonic(), conn.frames_in, conn.frames_acked, _backlog(conn)
            c0 = time.process_time()
            assert srv.proc is not None and sim.proc.pid is not None
            others = {"nats_server": srv.proc.pid, "simulator": sim.proc.pid}
            o0 = {name: _cpu_s(pid) for name, pid in others.items()}
            rss: list[float] = []
            while time.monotonic() - t0 < seconds:
                step = sample_every or seconds
                await asyncio.sleep(min(step, seconds - (time.monotonic() - t0)))
                if sample_every:
                    rss.append(round(_rss_mb(), 1))
            t1, f1, a1, b1 = time.monotonic(), conn.frames_in, conn.frames_acked, _backlog(conn)
            c1 = time.process_time()
            o1 = {name: _cpu_s(pid) for name, pid in others.items()}
            stopped = await asyncio.get_running_loop().run_in_executor(None, sim.quiesce)
            await until(
                lambda: (
                    conn.frames_in >= stopped["frames_sent"]
                    and conn.queue.empty()
                    and pub.inflight == 0
                ),
                300,
                "drain",
            )
            stop.set()
            await task
            sim.stop()
            async with client(srv.url) as nc:
                js = nc.jetstream()
                raw_info = await js.stream_info(STREAM, subjects_filter="kalshi-sim.kalshi.raw.>")
                raw_in_stream = sum((raw_info.state.subjects or {}).values())
        lat = sorted(conn.latencies_ns)
        errors25 = sum(1 for e in conn.events.recent if "error 25" in e[2])
        out: dict[str, Any] = {
            "bus": "nats-py" if kind is StockConnector else "ssmd",
            "markets": len(tickers),
            "source": "preloaded" if preload else "live",
            "sim_rate": rate,
            "pace_frames_per_s": pace,
            "preloaded_frames": loaded.get("queued"),
            "seconds": round(t1 - t0, 1),
            "received_frames_per_s": round((f1 - f0) / (t1 - t0)),
            "frames_per_s": round((a1 - a0) / (t1 - t0)),  # raw frames acked by JetStream
            "backlog_bytes": [b0, b1],
            # CPU of this process (the connector) per frame published, and what that
            # means for one core of its own.
            "connector_cpu_share": round((c1 - c0) / (t1 - t0), 2),
            "cpu_us_per_frame": round((c1 - c0) / max(1, a1 - a0) * 1e6, 1),
            "one_core_frames_per_s": round(max(1, a1 - a0) / max(1e-9, c1 - c0)),
            # The other two processes on the same cores, per frame published.
            **{
                f"{name}_cpu_us_per_frame": round((o1[name] - o0[name]) / max(1, a1 - a0) * 1e6, 1)
                for name in others
            },
            "kept_up": b1 - b0 < 4 * 1024 * 1024,
            "frames_sent": stopped["frames_sent"],
            "raw_in_stream": raw_in_stream,
            "dropped": conn.queue.dropped,
            "error_25": errors25,
            "sim_connections": stopped["connections"],
            "zero_loss": raw_in_stream == stopped["frames_sent"]
            and raw_in_stream == conn.frames_acked
            and conn.queue.dropped == 0
            and errors25 == 0,
        }
        if latency and lat:
            out["latency_p50_ms"] = round(lat[len(lat) // 2] / 1e6, 3)
            out["latency_p99_ms"] = round(lat[int(len(lat) * 0.99)] / 1e6, 3)
            out["latency_samples"] = len(lat)
        if sample_every:
            out["rss_mb_samples"] = rss
        return out
    finally:
        if sim.proc.is_alive():
            sim.proc.kill()


async def throughput_preloaded(
    markets: int, seconds: float, kind: type[Connector] = Connector
) -> dict[str, Any]:
    """The frames rendered before the window and then sent (the simulator's own cost out
    of the way): flat out first, then paced just below what the connector received,
    stepping down until a run keeps up with zero loss. Each run renders enough frames for
    its window and two seconds more, so the source never runs dry inside it."""
    flat_out = 150_000 * round(seconds + 2)
    tries = [await _run(markets, None, seconds, preload=flat_out, kind=kind)]
    pace = tries[-1]["received_frames_per_s"] * 0.9
    while not (tries[-1]["zero_loss"] and tries[-1]["kept_up"]) and pace > 100:
        frames = round(pace * (seconds + 2))
        run = await _run(markets, None, seconds, preload=frames, pace=round(pace), kind=kind)
        tries.append(run)
        pace = tries[-1]["received_frames_per_s"] * 0.9
    best = next((t for t in reversed(tries) if t["zero_loss"] and t["kept_up"]), None)
    return {"max_zero_loss_frames_per_s": best and best["frames_per_s"], "runs": tries}


async def throughput(markets: int, seconds: float) -> dict[str, Any]:
    """Flat out first; if the connector fell behind or lost anything, fixed rates just below
    what it published, stepping down until a run keeps up with zero loss."""
    tries = [await _run(markets, None, seconds)]
    per_action = 1.8  # frames per order-flow action with every market subscribed (measured)
    target = tries[-1]["received_frames_per_s"] * 0.9
    while not (tries[-1]["zero_loss"] and tries[-1]["kept_up"]) and target > 100:
        tries.append(await _run(markets, round(target / per_action), seconds))
        last = tries[-1]
        per_action = last["received_frames_per_s"] / last["sim_rate"]
        target = last["received_frames_per_s"] * 0.9
    best = next((t for t in reversed(tries) if t["zero_loss"] and t["kept_up"]), None)
    return {"max_zero_loss_frames_per_s": best and best["frames_per_s"], "runs": tries}


async def latency(markets: int, target: int, seconds: float) -> dict[str, Any]:
    # rate is order-flow actions/s; calibrate actions -> frames with a short first run.
    probe = await _run(markets, target / 2, 5.0)
    rate = round((target / 2) * target / max(1, probe["received_frames_per_s"]), 1)
    return await _run(markets, rate, seconds, latency=True)


async def memory(markets: int, minutes: float) -> dict[str, Any]:
    r = await _run(markets, None, minutes * 60, sample_every=5.0)
    s = r["rss_mb_samples"]
    third = max(1, len(s) // 3)
    first, last = sum(s[:third]) / third, sum(s[-third:]) / third
    r["rss_mb_first_third_avg"] = round(first, 1)
    r["rss_mb_last_third_avg"] = round(last, 1)
    r["rss_flat"] = last <= first * 1.05
    return r


async def main(a: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {
        "bench": "connector_capture",
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    if a.mode in ("all", "throughput") and a.rate:
        out["throughput"] = await _run(a.markets, a.rate, a.seconds)
    elif a.mode in ("all", "throughput"):
        out["throughput"] = await throughput(a.markets, a.seconds)
        out["throughput_preloaded"] = ours = await throughput_preloaded(a.markets, a.seconds)
        if a.baseline:
            base = await throughput_preloaded(a.markets, a.seconds, StockConnector)
            out["baseline_nats_py_preloaded"] = base
            if ours["max_zero_loss_frames_per_s"] and base["max_zero_loss_frames_per_s"]:
                ratio = ours["max_zero_loss_frames_per_s"] / base["max_zero_loss_frames_per_s"]
                out["preloaded_vs_baseline"] = round(ratio, 2)
    if a.mode in ("all", "latency"):
        out["latency"] = await latency(a.markets, a.latency_rate, a.seconds)
    if a.mode in ("all", "memory"):
        out["memory"] = await memory(a.memory_markets, a.minutes)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mode", choices=("all", "throughput", "latency", "memory"), default="all")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rate", type=float, help="throughput: one run at this simulator rate")
    ap.add_argument("--markets", type=int, default=200)
    ap.add_argument("--latency-rate", type=int, default=1000)
    ap.add_argument("--memory-markets", type=int, default=10_000)
    ap.add_argument("--minutes", type=float, default=2.0)
    ap.add_argument(
        "--no-baseline",
        dest="baseline",
        action="store_false",
        help="throughput: skip the same search with the publisher on nats-py's public API",
    )
    ap.add_argument("--profile", help="write a cProfile of this (the connector) process here")
    args = ap.parse_args()
    if args.profile:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
        result = asyncio.run(main(args))
        prof.disable()
        prof.dump_stats(args.profile)
    else:
        result = asyncio.run(main(args))
    print(json.dumps(result))

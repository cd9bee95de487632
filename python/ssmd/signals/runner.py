"""Runs a signal module over normalized records, from a replay or from a live stream.

Both feed the same `SignalRunner` the same packed records in the same order (the
connector's records: a replay makes them from the archived frames with the
connector's normalizer, live they come from the environment's stream), so a module
emits the same signals for the same data either way.

    runner = SignalRunner(load_module("imbalance.py"))
    await run_replay(runner, plan(...))           # or: await run_live(runner, env, stop)
    runner.signals_frame().write_parquet("signals.parquet")
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from ssmd import core
from ssmd.bus import subjects
from ssmd.signals.api import Book, Context, SignalModule

if TYPE_CHECKING:
    from ssmd.config import ResolvedEnvironment
    from ssmd.replay.runner import ReplayPlan
    from ssmd.replay.source import Entry

__all__ = ["SIGNAL_SCHEMA", "SignalRunner", "SignalTarget", "run_live", "run_replay", "write"]

log = logging.getLogger(__name__)

SIGNAL_SCHEMA = {
    "time": pl.Datetime("ns", "UTC"),
    "ticker": pl.String(),
    "name": pl.String(),
    "value": pl.Float64(),
}
_STATUS_TYPES = ("status", "lifecycle")


class SignalRunner:
    def __init__(self, module: SignalModule, tickers: set[str] | None = None) -> None:
        self.module = module
        self.tickers = tickers
        self.books = core.BookSet(ignore_seqs=True)
        self.ctx = Context()
        self.records = 0

    def feed(self, data: bytes) -> None:
        """Packed records, in the order they were received."""
        if not data:
            return
        m, ctx, books = self.module, self.ctx, self.books
        trades: list[dict[str, Any]] = []
        for (start, end), rec in zip(
            core.record_spans(data), core.decode_records(data), strict=True
        ):
            ticker = str(rec.get("ticker") or "")
            if self.tickers is not None and ticker not in self.tickers:
                continue
            self.records += 1
            kind, rtype = rec["kind"], rec["type"]
            ctx.time_ns, ctx.ticker = int(rec["receive_ts"]), ticker
            if rtype == "orderbook" or kind == "book":
                books.apply(data[start:end])
                if kind == "book" or m.on_book is None:
                    continue  # a checkpoint restores state; it is not news
                view = books.view(ticker)
                if view is not None:
                    m.on_book(ctx, Book(ticker, ctx.time_ns, view.bids, view.asks, view.valid))
            elif rtype == "trade":
                if m.on_trade is not None:
                    m.on_trade(ctx, rec)
                trades.append(rec)
            elif rtype in _STATUS_TYPES and m.on_status is not None:
                m.on_status(ctx, rec)
        if trades and m.on_trades is not None:
            ctx.time_ns, ctx.ticker = int(trades[-1]["receive_ts"]), ""
            m.on_trades(ctx, pl.DataFrame(trades, infer_schema_length=None))

    def signals_frame(self) -> pl.DataFrame:
        rows = self.ctx.signals
        return pl.DataFrame(
            {
                "time": [r[0] for r in rows],
                "ticker": [r[1] for r in rows],
                "name": [r[2] for r in rows],
                "value": [r[3] for r in rows],
            },
            schema={
                "time": pl.Int64(),
                "ticker": pl.String(),
                "name": pl.String(),
                "value": pl.Float64(),
            },
        ).with_columns(pl.col("time").cast(pl.Datetime("ns", "UTC")))


def write(frame: pl.DataFrame, out: Path) -> None:
    """Parquet or CSV by the file's suffix."""
    if out.suffix == ".csv":
        frame.write_csv(out)
    else:
        frame.write_parquet(out)


class SignalTarget:
    """A replay target that hands the replayed frames, normalized as the connector
    normalizes them, to a SignalRunner."""

    def __init__(self, runner: SignalRunner) -> None:
        self.runner = runner

    async def start(self) -> None:
        pass

    async def ready(self) -> None:
        pass

    async def books(self, records: list[tuple[str, bytes]]) -> None:
        self.runner.feed(b"".join(record for _, record in records))

    async def send(self, entries: list[Entry]) -> None:
        group: list[Any] = []
        for e in entries:
            f = e.frame
            if f is None:
                continue
            if group and group[-1].conn_id != f.conn_id:
                self._normalize(group)
                group = []
            group.append(f)
        self._normalize(group)

    def _normalize(self, frames: list[Any]) -> None:
        if frames:
            conn = int(frames[0].conn_id or 0)
            batch = core.normalize_kalshi(
                [f.frame for f in frames], [f.receive_ns for f in frames], conn
            )
            self.runner.feed(batch.data)

    async def stop(self) -> bool:
        return True

    def state(self) -> dict[str, Any]:
        return {"records": self.runner.records, "signals": len(self.runner.ctx.signals)}


async def run_replay(runner: SignalRunner, p: ReplayPlan) -> None:
    from ssmd.replay.runner import Replay

    await Replay(p, SignalTarget(runner)).run()


async def run_live(
    runner: SignalRunner,
    env: ResolvedEnvironment,
    stop: asyncio.Event,
    *,
    from_start: bool = False,
) -> None:
    """Consume the environment's stream (its normalized records: order books, book
    checkpoints, trades, statuses, lifecycle) until `stop`, from now on or, with
    `from_start`, from the stream's first message."""
    from nats.js.api import ConsumerConfig, DeliverPolicy

    from ssmd.bus.connection import connect

    nc = await connect(env.nats.url, f"ssmd-signal-{env.name}")
    try:
        js = nc.jetstream()
        raw = subjects.type_prefix(env.nats.subject_prefix, subjects.RAW)
        pending = asyncio.Queue[bytes](maxsize=10_000)  # policy: block the consumer

        async def on_msg(msg: Any) -> None:
            if not msg.subject.startswith(raw):  # raw frames are JSON, not records
                await pending.put(msg.data)

        policy = DeliverPolicy.ALL if from_start else DeliverPolicy.NEW
        sub = await js.subscribe(
            subjects.under(env.nats.subject_prefix),
            cb=on_msg,
            ordered_consumer=True,
            config=ConsumerConfig(deliver_policy=policy),
        )
        worker = asyncio.create_task(_drain(runner, pending))
        try:
            await stop.wait()
        finally:
            await sub.unsubscribe()
            worker.cancel()
    finally:
        await nc.close()


async def _drain(runner: SignalRunner, pending: asyncio.Queue[bytes]) -> None:
    while True:
        data = await pending.get()
        try:
            runner.feed(data)
        except Exception:  # a record that is not one: say so, go on
            log.exception("signal module failed on a record")
        finally:
            pending.task_done()

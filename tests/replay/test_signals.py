"""Signals: the book-imbalance example over a replay of simulator data, and the same
module over the live stream of that replay gives the same signals."""

from __future__ import annotations

import asyncio
from pathlib import Path

import polars as pl
import pytest
from replayfix import CONFIG, replay_plan, server
from typer.testing import CliRunner

from _support import ROOT
from _support.archfix import until
from _support.datafix import DAY1, Capture
from ssmd.cli import app
from ssmd.exceptions import ConfigError
from ssmd.replay.nats import NatsTarget
from ssmd.replay.runner import Replay
from ssmd.signals.api import load_module
from ssmd.signals.runner import SignalRunner, run_live, run_replay

pytestmark = pytest.mark.xdist_group("replay")

EXAMPLE = ROOT / "examples" / "book_imbalance.py"
UNUSED_NATS = "nats://127.0.0.1:9"


def _replayed(cap: Capture) -> pl.DataFrame:
    runner = SignalRunner(load_module(EXAMPLE))
    asyncio.run(run_replay(runner, replay_plan(cap, DAY1.isoformat(), UNUSED_NATS)))
    return runner.signals_frame()


def test_the_example_emits_imbalance_and_volume_on_a_replay(captured: Capture) -> None:
    signals = _replayed(captured)
    names = set(signals["name"])
    assert names == {"book_imbalance", "signed_volume"}
    imbalance = signals.filter(pl.col("name") == "book_imbalance")["value"]
    assert imbalance.min() >= -1.0 and imbalance.max() <= 1.0  # type: ignore[operator]
    assert signals["time"].is_sorted()
    assert set(signals["ticker"]) <= set(captured.tickers)
    assert signals.equals(_replayed(captured))  # the same data, the same signals


def test_live_and_replay_give_the_same_signals(captured: Capture, tmp_path: Path) -> None:
    replayed = _replayed(captured)

    async def main() -> pl.DataFrame:
        async with server(tmp_path) as nats_srv:
            p = replay_plan(captured, DAY1.isoformat(), nats_srv.url)
            await Replay(p, NatsTarget(p.replay)).run()
            live = SignalRunner(load_module(EXAMPLE))
            stop = asyncio.Event()
            task = asyncio.create_task(run_live(live, p.replay, stop, from_start=True))
            await until(lambda: len(live.ctx.signals) >= replayed.height, what="the live signals")
            stop.set()
            await asyncio.wait_for(task, 30)
            return live.signals_frame()

    assert asyncio.run(main()).equals(replayed)


def test_signal_run_writes_csv_and_refuses_a_module_without_callbacks(
    captured: Capture, tmp_path: Path
) -> None:
    out = tmp_path / "signals.csv"
    common = ["--env", captured.env.name, "--config-dir", str(CONFIG)]
    common += ["--data-dir", str(captured.data_dir)]
    result = CliRunner().invoke(
        app,
        ["signal", "run", str(EXAMPLE), *common, "--replay", DAY1.isoformat(), "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    written = pl.read_csv(out)
    assert written.columns == ["time", "ticker", "name", "value"]
    assert written.height == _replayed(captured).height
    empty = tmp_path / "nothing.py"
    empty.write_text("X = 1\n")
    with pytest.raises(ConfigError, match="defines none of on_book"):
        load_module(empty)

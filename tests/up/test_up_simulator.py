"""The simulator `ssmd up` runs: a fresh seed each run unless one is given; Kalshi's only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from ssmd.cli import app
from ssmd.up.simulator import SimOptions
from support import ROOT


def _trade_ids(sim: Any, actions: int = 3000) -> list[str]:
    """The trade ids of the first order-flow actions, 5 ms apart from the start."""
    return [
        m.data["trade_id"]
        for i in range(actions)
        for m in sim.flow.step(sim.started_at + i * 0.005)
        if m.type == "trade"
    ]


def test_each_run_gets_a_fresh_seed_and_other_trade_ids() -> None:
    first, second = SimOptions().make(), SimOptions().make()
    assert first.seed != second.seed
    ids1, ids2 = _trade_ids(first), _trade_ids(second)
    assert ids1 and ids2
    assert not set(ids1) & set(ids2)


def test_a_given_seed_reproduces_the_order_flow() -> None:
    first, second = SimOptions(seed=7).make(), SimOptions(seed=7).make()
    assert first.seed == second.seed == 7
    ids = _trade_ids(first)
    assert ids and ids == _trade_ids(second)


def test_an_environment_of_another_venue_is_refused_with_the_way_to_run_it(tmp_path: Path) -> None:
    # ssmd up's simulator and market sync are Kalshi's: it must not start them for another
    # venue's environment (it once started Kalshi's simulator and captured nothing).
    argv = ["up", "--env", "polymarket-sim", "--config-dir", str(ROOT / "exchanges")]
    done = CliRunner().invoke(app, [*argv, "--data-dir", str(tmp_path)])
    assert done.exit_code == 2
    assert "runs Kalshi environments only" in done.output
    assert "feed is polymarket" in done.output and "ssmd connector run" in done.output
    assert not (tmp_path / "up").exists()

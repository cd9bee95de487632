"""The simulator `ssmd up` runs: a fresh seed each run unless one is given; the venue's own."""

from __future__ import annotations

from typing import Any

from ssmd.up.simulator import SimOptions


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


def test_each_venue_gets_its_own_simulator() -> None:
    assert type(SimOptions().make("kraken")).__name__ == "KrakenSimulator"
    assert type(SimOptions().make("polymarket")).__name__ == "PolymarketSimulator"
    assert type(SimOptions().make("kalshi")).__name__ == "Simulator"


def test_a_given_seed_reproduces_the_order_flow() -> None:
    first, second = SimOptions(seed=7).make(), SimOptions(seed=7).make()
    assert first.seed == second.seed == 7
    ids = _trade_ids(first)
    assert ids and ids == _trade_ids(second)

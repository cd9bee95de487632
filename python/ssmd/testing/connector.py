"""A connector configured against the simulator, as tests and benchmarks run it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ssmd.config import Overrides, load_environment
from ssmd.config.models.environment import Symbols
from ssmd.connector.runner import Connector, Settings
from ssmd.sim import Simulator
from ssmd.venues.kalshi.ws import Liveness

__all__ = ["PREFIX", "STREAM", "settings_for", "streaming", "tickers_symbols"]

# The stream and subject prefix of the `kalshi-sim` environment.
STREAM = "SSMD_KALSHI_SIM"
PREFIX = "kalshi-sim.kalshi"


def settings_for(
    sim: Simulator, nats_url: str, data_dir: Path, exchanges: Path, **changes: Any
) -> Settings:
    """The `kalshi-sim` environment of the config tree `exchanges`, pointed at `sim`, with
    quick liveness and retry times (`changes` override any setting)."""
    env = load_environment(
        "kalshi-sim",
        exchanges,
        Overrides(
            ws_url=sim.ws_url, rest_url=sim.rest_url, nats_url=nats_url, data_dir=str(data_dir)
        ),
        environ={
            "KALSHI_API_KEY": sim.key_id,
            "KALSHI_PRIVATE_KEY_PATH": str(sim.private_key_path),
        },
    )
    changes.setdefault("liveness", Liveness(ping_interval=0.5, ping_timeout=1.0, stale_after=3.0))
    changes.setdefault("backoff_base", 0.05)
    changes.setdefault("backoff_cap", 0.5)
    changes.setdefault("sweep_interval", 0.1)
    changes.setdefault("clock", sim.clock.now)
    return Settings.from_environment(env, **changes)


def tickers_symbols(tickers: list[str]) -> Symbols:
    return Symbols(tickers=tickers, statuses=["open"])


def streaming(conn: Connector, markets: int) -> bool:
    """Every shard streams and `markets` markets are subscribed in all."""
    shards = conn.shards.shards.values()
    return (
        bool(shards)
        and all(s.state == "streaming" for s in shards)
        and sum(len(s.subscribed) for s in shards) == markets
    )

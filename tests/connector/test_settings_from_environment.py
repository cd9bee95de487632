"""Settings built from an environment: each feed it captures has local files of its own
(spools), so that the connector and archiver of one venue never read back another's, and
the environment's own feed (spec.feed) keeps the names it always had; missing Kalshi
credentials are one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from _support import ROOT
from ssmd.archiver.runner import ArchiverSettings
from ssmd.config import Overrides, ResolvedEnvironment, load_environment
from ssmd.connector.groups import ShardGroup
from ssmd.connector.runner import Settings
from ssmd.data.inventory import Archive
from ssmd.exceptions import ConfigError
from ssmd.sim import DEMO_KEY_ID, DEMO_PRIVATE_KEY_PATH

NATS = "nats://127.0.0.1:4222"  # named, never reached: only the settings are built


def _resolved(tmp_path: Path, feed: str | None) -> ResolvedEnvironment:
    overrides = Overrides(data_dir=str(tmp_path), nats_url=NATS)
    # Kalshi's connector needs its key to build its settings: the simulator's demo key.
    keys = {"KALSHI_API_KEY": DEMO_KEY_ID, "KALSHI_PRIVATE_KEY_PATH": str(DEMO_PRIVATE_KEY_PATH)}
    return load_environment("multi-sim", ROOT / "exchanges", overrides, environ=keys, feed=feed)


def test_each_feed_has_its_own_spools(tmp_path: Path) -> None:
    spools = {}
    for feed in ("kalshi", "polymarket", "kraken"):
        env = _resolved(tmp_path, feed)
        connector = Settings.from_environment(env)
        grouped = Settings.from_environment(env, shard_group=ShardGroup(1, 2))
        archiver = ArchiverSettings.from_environment(env)
        spools[feed] = (connector.spool_path, grouped.spool_path, archiver.spool_dir)
        assert (connector.feed, connector.nats) == (feed, env.nats)
        assert (archiver.feed, archiver.stream) == (feed, env.nats.stream)
    assert spools["kalshi"] == (
        tmp_path / "spool" / "connector-multi-sim.spool",
        tmp_path / "spool" / "connector-multi-sim.group-1-of-2.spool",
        tmp_path / "archiver" / "multi-sim" / "spool",
    )
    assert spools["kraken"] == (
        tmp_path / "spool" / "connector-multi-sim.kraken.spool",
        tmp_path / "spool" / "connector-multi-sim.kraken.group-1-of-2.spool",
        tmp_path / "archiver" / "multi-sim" / "venues" / "kraken" / "spool",
    )
    every = [path for paths in spools.values() for path in paths]
    assert len(set(every)) == len(every)
    # Readers of unsealed data find each feed's spool.
    archive = Archive.from_environment(_resolved(tmp_path, None))
    assert {feed: archive.spool_of(feed) for feed in spools} == {
        feed: paths[2] for feed, paths in spools.items()
    }


def test_missing_kalshi_credentials_name_both_variables_and_one_fix(tmp_path: Path) -> None:
    overrides = Overrides(data_dir=str(tmp_path), nats_url=NATS)
    env = load_environment("kalshi-sim", ROOT / "exchanges", overrides, environ={})
    with pytest.raises(ConfigError) as missing:
        Settings.from_environment(env)
    text = str(missing.value)
    assert text.startswith("Kalshi credentials are missing: secret kalshi_api_key")
    assert "KALSHI_API_KEY (the key id) and KALSHI_PRIVATE_KEY_PATH (the PEM file)" in text
    assert text.count("Fix:") == 1, text

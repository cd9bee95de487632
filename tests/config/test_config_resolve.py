"""load_environment: overrides precedence, data dir, endpoints, storage, secrets."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from ssmd.config import LocalStore, Overrides, S3Store, load_environment
from ssmd.config.environments import update_environment
from ssmd.config.tree import ConfigTree
from ssmd.exceptions import ConfigError


def test_yaml_values_and_derived_defaults(tree: ConfigTree, project: Path) -> None:
    env = load_environment("kalshi-sim", tree.root, environ={}, today=date(2026, 1, 1))
    assert env.endpoint.name == "custom"
    assert env.data_dir == project / "data"
    assert env.raw_store == LocalStore(project / "data" / "raw")
    assert env.embedded_nats_dir == project / "data" / "nats"
    assert (env.nats.url, env.nats.stream, env.nats.subjects) == (
        "embedded",
        "SSMD_KALSHI_SIM",
        "kalshi-sim.kalshi.>",
    )
    assert (env.nats.retention, env.nats.duplicate_window) == (
        timedelta(hours=48),
        timedelta(minutes=2),
    )
    assert env.feed_version is not None and env.feed_version.version == "v2"  # v3 starts 2026-03-12
    assert [c.name for c in env.channels] == [
        "trade",
        "orderbook_delta",
        "ticker",
        "market_lifecycle_v2",
    ]
    assert set(env.sources.values()) == {"yaml", "default"}


def test_flag_beats_environment_variable_beats_yaml(tree: ConfigTree) -> None:
    environ = {
        "SSMD_NATS_URL": "nats://from-env:4222",
        "SSMD_KALSHI_WS_URL": "ws://127.0.0.1:1234/trade-api/ws/v2",
    }
    env = load_environment(
        "kalshi-sim", tree.root, {"nats_url": "nats://from-flag:4222"}, environ=environ
    )
    assert env.nats.url == "nats://from-flag:4222" and env.sources["nats_url"] == "flag"
    assert env.endpoint.ws_url == "ws://127.0.0.1:1234/trade-api/ws/v2"
    assert env.sources["ws_url"] == "SSMD_KALSHI_WS_URL"
    assert (
        env.endpoint.rest_url == "http://127.0.0.1:8765/trade-api/v2"
        and env.sources["rest_url"] == "yaml"
    )


def test_empty_variable_counts_as_unset(tree: ConfigTree) -> None:
    env = load_environment("kalshi-sim", tree.root, environ={"SSMD_NATS_URL": ""})
    assert env.nats.url == "embedded"


def test_data_dir_and_s3_endpoint_overrides(tree: ConfigTree, tmp_path: Path) -> None:
    update_environment(
        tree, "kalshi-dev", assignments=["storage.normalized={bucket: ssmd-norm, region: auto}"]
    )
    environ = {"SSMD_DATA_DIR": str(tmp_path / "d"), "SSMD_S3_ENDPOINT": "http://127.0.0.1:9000"}
    env = load_environment("kalshi-dev", tree.root, environ=environ)
    assert env.raw_store == LocalStore(tmp_path / "d" / "raw")
    assert env.normalized_store == S3Store("ssmd-norm", "http://127.0.0.1:9000", "auto")
    assert env.endpoint == type(env.endpoint)(
        "demo",
        "wss://demo-api.kalshi.co/trade-api/ws/v2",
        "https://demo-api.kalshi.co/trade-api/v2",
    )


def test_service_urls_and_masking(tree: ConfigTree) -> None:
    environ = {
        "SSMD_DATABASE_URL": "postgresql://ssmd:hunter2@db:5432/ssmd",
        "SSMD_TEMPORAL_ADDRESS": "t:7233",
    }
    env = load_environment("kalshi-dev", tree.root, environ=environ)
    assert env.database_url == "postgresql://ssmd:hunter2@db:5432/ssmd"
    assert env.redis_url == "redis://127.0.0.1:6379/0" and env.temporal_address == "t:7233"
    view = env.describe()
    assert view["database_url"] == "postgresql://ssmd:****@db:5432/ssmd"
    assert "hunter2" not in repr(view)


def test_bad_override_names_its_origin_without_echoing_private_values(tree: ConfigTree) -> None:
    with pytest.raises(
        ConfigError, match=r"\$SSMD_NATS_URL: 'localhost' has the wrong form; expected embedded"
    ):
        load_environment("kalshi-sim", tree.root, environ={"SSMD_NATS_URL": "localhost"})
    with pytest.raises(ConfigError, match="--ws-url flag") as caught:
        load_environment(
            "kalshi-sim",
            tree.root,
            Overrides(ws_url="https://x", database_url="mysql://u:pw@h/db"),
            environ={},
        )
    assert "pw@h" not in str(caught.value) and "2 problems" in str(caught.value)


def test_unknown_override_name(tree: ConfigTree) -> None:
    with pytest.raises(ConfigError, match="unknown override nats"):
        load_environment("kalshi-sim", tree.root, {"nats": "nats://x:1"}, environ={})


def test_config_dir_from_environment_variable(tree: ConfigTree) -> None:
    env = load_environment("kalshi-sim", environ={"SSMD_CONFIG_DIR": str(tree.root)})
    assert env.config_dir == tree.root


def test_unknown_environment_and_broken_files(tree: ConfigTree) -> None:
    with pytest.raises(ConfigError, match="expected one of: kalshi-dev, kalshi-sim"):
        load_environment("kalshi-prod", tree.root, environ={})
    dev = tree.path("Environment", "kalshi-dev")
    dev.write_text(dev.read_text().replace("retention: 48h", "retention: soon"))
    assert (
        load_environment("kalshi-sim", tree.root, environ={}).name == "kalshi-sim"
    )  # other files do not block
    with pytest.raises(ConfigError, match=r"kalshi-dev.yaml:\d+: spec.transport.retention"):
        load_environment("kalshi-dev", tree.root, environ={})


def test_secrets_are_lazy_and_masked(tree: ConfigTree, tmp_path: Path) -> None:
    key_file = tmp_path / "key.pem"
    update_environment(
        tree, "kalshi-sim", assignments=[f"secrets.kalshi_private_key=file:{key_file}"]
    )
    environ = {"KALSHI_API_KEY": "abc-123"}
    env = load_environment("kalshi-sim", tree.root, environ=environ)
    api_key, pem = env.secret("kalshi_api_key"), env.secret("kalshi_private_key")
    assert api_key.reveal() == "abc-123"
    assert "abc-123" not in f"{api_key} {api_key!r} {env.secrets!r} {env.describe()}"
    with pytest.raises(ConfigError, match="cannot read") as caught:
        pem.reveal()
    assert "kalshi-sim.yaml" in str(caught.value)
    key_file.write_text("-----BEGIN PRIVATE KEY-----\nxyz\n-----END PRIVATE KEY-----\n")
    assert pem.reveal().endswith("END PRIVATE KEY-----")  # read when asked, not at load time
    with pytest.raises(ConfigError, match="KALSHI_API_KEY is not set"):
        load_environment("kalshi-sim", tree.root, environ={}).secret("kalshi_api_key").reveal()
    with pytest.raises(ConfigError, match="has no 'aws_key'"):
        env.secret("aws_key")


def test_an_environment_capturing_several_venues_resolves_one_feed_at_a_time(
    tree: ConfigTree,
) -> None:
    """spec.feed is the default; each of spec.venues is picked by its feed's name, with its
    own endpoint, symbols, stream and subjects, and the shared transport and storage."""
    own = load_environment("multi-sim", tree.root, environ={})
    assert own.feeds == ("kalshi", "polymarket", "kraken") and own.extra_feed is None
    assert (own.feed.name, own.nats.stream, own.nats.subjects) == (
        "kalshi",
        "SSMD_MULTI_SIM",
        "multi-sim.kalshi.>",
    )
    assert own.symbols.series == ["KXBTCD"]
    kraken = load_environment("multi-sim", tree.root, environ={}, feed="kraken")
    assert (kraken.feed.name, kraken.extra_feed, kraken.feeds) == ("kraken", "kraken", own.feeds)
    assert (kraken.nats.stream, kraken.nats.subjects) == (
        "SSMD_MULTI_SIM_KRAKEN",
        "multi-sim.kraken.>",
    )
    assert kraken.endpoint.ws_url == "ws://127.0.0.1:8767/v2"
    assert kraken.symbols.tickers == ["BTC/USD", "ETH/USD"]
    assert [c.name for c in kraken.channels] == ["book", "trade", "ticker", "instrument"]
    assert (kraken.raw_store, kraken.data_dir) == (own.raw_store, own.data_dir)
    assert load_environment("multi-sim", tree.root, environ={}, feed="kalshi") == own
    # A venue's URL variables are its own feed's.
    moved = load_environment(
        "multi-sim",
        tree.root,
        environ={"SSMD_KRAKEN_WS_URL": "ws://127.0.0.1:9999/v2"},
        feed="kraken",
    )
    assert moved.endpoint.ws_url == "ws://127.0.0.1:9999/v2"
    assert moved.sources["ws_url"] == "SSMD_KRAKEN_WS_URL"


def test_a_feed_the_environment_does_not_capture_is_refused(tree: ConfigTree) -> None:
    with pytest.raises(ConfigError) as caught:
        load_environment("kalshi-sim", tree.root, environ={}, feed="kraken")
    text = str(caught.value)
    assert "kalshi-sim.yaml" in text and "does not capture feed 'kraken'" in text
    assert "Fix: --feed one of kalshi" in text

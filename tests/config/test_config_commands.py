"""feed / schema / env commands on a temp tree: create, show, update, list round trips."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from config_helpers import REPO, SHIPPED, snapshot
from typer.testing import Result

from ssmd.config import validate_tree
from ssmd.config.edit import apply_changes
from ssmd.config.tree import ConfigTree
from ssmd.exceptions import ConfigError

Run = Callable[..., Result]


def ok_json(result: Result) -> object:
    assert result.exit_code == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_feed_create_show_list_round_trip(tree: ConfigTree, ssmd: Run) -> None:
    created = ssmd(
        "feed",
        "create",
        "acme",
        "--ws-url",
        "wss://ws.acme.test/v1",
        "--rest-url",
        "https://api.acme.test/v1",
        "--channel",
        "trades:trade",
        "--channel",
        "news",
        "--effective-from",
        "2026-01-02",
        "--json",
    )
    assert ok_json(created)["ok"] is True  # type: ignore[index]
    shown = ok_json(ssmd("feed", "show", "acme", "--json"))
    assert shown["spec"]["endpoints"]["prod"]["ws_url"] == "wss://ws.acme.test/v1"  # type: ignore[index]
    assert [c["record_type"] for c in shown["spec"]["channels"]] == ["trade", None]  # type: ignore[index]
    listed = ok_json(ssmd("feed", "list", "--json"))
    shipped = [p.stem for p in (SHIPPED / "feeds").glob("*.yaml")]
    assert [f["name"] for f in listed] == sorted(["acme", *shipped])  # type: ignore[union-attr,index]
    table = ssmd("feed", "list")
    assert table.exit_code == 0 and "acme" in table.stdout and "kalshi" in table.stdout
    assert validate_tree(tree.root) == []


def test_feed_create_refuses_to_overwrite(tree: ConfigTree, ssmd: Run) -> None:
    before = snapshot(tree.root)
    result = ssmd(
        "feed",
        "create",
        "kalshi",
        "--ws-url",
        "wss://x.test/ws",
        "--rest-url",
        "https://x.test",
        "--channel",
        "trade",
    )
    assert result.exit_code == 1 and "already exists" in result.stderr
    assert snapshot(tree.root) == before


def test_feed_create_with_bad_url_writes_nothing(tree: ConfigTree, ssmd: Run) -> None:
    before = snapshot(tree.root)
    result = ssmd(
        "feed",
        "create",
        "acme",
        "--ws-url",
        "http://not-a-ws",
        "--rest-url",
        "https://x.test",
        "--channel",
        "trade",
        "--json",
    )
    error = json.loads(result.stdout)["error"]
    assert result.exit_code == 1
    assert "spec.endpoints.prod.ws_url" in error and "WebSocket URL" in error
    assert snapshot(tree.root) == before


def test_feed_add_version(tree: ConfigTree, ssmd: Run) -> None:
    added = ok_json(
        ssmd(
            "feed",
            "add-version",
            "kalshi",
            "--effective-from",
            "2026-09-01",
            "--description",
            "ts_ms everywhere",
            "--json",
        )
    )
    assert added["version"]["version"] == "v4"  # type: ignore[index]
    versions = ok_json(ssmd("feed", "show", "kalshi", "--json"))["spec"]["versions"]  # type: ignore[index]
    assert versions[-1] == {
        "version": "v4",
        "effective_from": "2026-09-01",
        "description": "ts_ms everywhere",
    }
    assert validate_tree(tree.root) == []


def test_feed_add_version_out_of_order_is_refused(tree: ConfigTree, ssmd: Run) -> None:
    before = snapshot(tree.root)
    result = ssmd("feed", "add-version", "kalshi", "--effective-from", "2024-01-01")
    assert result.exit_code == 1
    assert "nothing was written" in result.stderr and "effective_from" in result.stderr
    assert snapshot(tree.root) == before


def test_feed_show_unknown_names_the_known(tree: ConfigTree, ssmd: Run) -> None:
    result = ssmd("feed", "show", "kalshy")
    assert result.exit_code == 1 and "expected one of: kalshi" in result.stderr


def test_schema_list_show_and_hash(tree: ConfigTree, ssmd: Run) -> None:
    listed = ok_json(ssmd("schema", "list", "--json"))
    assert {e["name"] for e in listed} == {
        "trade",
        "orderbook",
        "ticker",
        "lifecycle",
        "status",
        "event",
    }  # type: ignore[union-attr]
    digest = ok_json(ssmd("schema", "hash", "--config-dir", str(tree.root), "--json"))["hash"]  # type: ignore[index]
    assert all(e["hash"] == digest for e in listed)  # type: ignore[union-attr]
    plain = ssmd("schema", "hash", str(REPO / "schemas" / "ssmd.capnp"))
    assert plain.stdout.strip() == digest
    shown = ok_json(ssmd("schema", "show", "trade", "--json"))
    assert shown["spec"]["versions"][0]["status"] == "active"  # type: ignore[index]


def test_schema_change_then_register_activates_new_version(
    tree: ConfigTree, ssmd: Run, changed_schema: Path
) -> None:
    assert len(validate_tree(tree.root)) == 6
    for record_type in ("trade", "orderbook", "ticker", "lifecycle", "status", "event"):
        assert ssmd("schema", "register", record_type, "--status", "active").exit_code == 0
    assert validate_tree(tree.root) == []
    versions = ok_json(ssmd("schema", "show", "trade", "--json"))["spec"]["versions"]  # type: ignore[index]
    assert [(v["version"], v["status"]) for v in versions] == [
        ("v1", "deprecated"),
        ("v2", "active"),
    ]


def test_schema_register_unchanged_content_is_refused(tree: ConfigTree, ssmd: Run) -> None:
    result = ssmd("schema", "register", "trade")
    assert result.exit_code == 1 and "already records this content" in result.stderr


def test_schema_register_unknown_type_is_refused(tree: ConfigTree, ssmd: Run) -> None:
    before = snapshot(tree.root)
    result = ssmd("schema", "register", "candles")
    assert result.exit_code == 1 and "not a normalized record type" in result.stderr
    assert snapshot(tree.root) == before


def test_schema_set_status(tree: ConfigTree, ssmd: Run) -> None:
    changed = ok_json(ssmd("schema", "set-status", "event", "deprecated", "--json"))
    assert changed["version"] == {
        "version": "v1",
        "status": "deprecated",  # type: ignore[index]
        "hash": changed["version"]["hash"],
    }  # type: ignore[index]
    missing = ssmd("schema", "set-status", "event", "active", "--version", "v9")
    assert missing.exit_code == 1 and "no version 'v9'" in missing.stderr


def test_env_create_show_update_list_round_trip(tree: ConfigTree, ssmd: Run) -> None:
    created = ssmd(
        "env",
        "create",
        "kalshi-prod",
        "--feed",
        "kalshi",
        "--endpoint",
        "prod",
        "--nats-url",
        "nats://127.0.0.1:4222",
        "--series",
        "KXBTCD",
        "--raw",
        "s3://ssmd-raw",
        "--normalized",
        "s3://ssmd-normalized",
        "--s3-region",
        "us-east-1",
        "--secret",
        "kalshi_api_key=env:KALSHI_API_KEY",
    )
    assert created.exit_code == 0, created.stderr
    shown = ok_json(ssmd("env", "show", "kalshi-prod", "--json"))
    assert shown["spec"]["symbols"] == {"series": ["KXBTCD"], "sync": True}  # type: ignore[index]
    assert shown["spec"]["storage"]["raw"] == {"bucket": "ssmd-raw", "region": "us-east-1"}  # type: ignore[index]
    updated = ssmd(
        "env",
        "update",
        "kalshi-prod",
        "--set",
        "transport.retention=72h",
        "--set",
        "spec.symbols.series=[KXBTCD, KXETHD]",
        "--unset",
        "secrets.kalshi_api_key",
    )
    assert updated.exit_code == 0, updated.stderr
    shown = ok_json(ssmd("env", "show", "kalshi-prod", "--json"))
    assert shown["spec"]["transport"]["retention"] == "72h"  # type: ignore[index]
    assert shown["spec"]["symbols"]["series"] == ["KXBTCD", "KXETHD"]  # type: ignore[index]
    assert "secrets" not in shown["spec"] or shown["spec"]["secrets"] == {}  # type: ignore[index,operator]
    listed = ok_json(ssmd("env", "list", "--json"))
    shipped = [p.stem for p in (SHIPPED / "environments").glob("*.yaml")]
    assert [e["name"] for e in listed] == sorted(["kalshi-prod", *shipped])  # type: ignore[union-attr,index]
    venues = {e["name"]: e["venues"] for e in listed}  # type: ignore[index,union-attr]
    assert venues["multi-sim"] == ["polymarket", "kraken"] and venues["kalshi-sim"] == []
    assert validate_tree(tree.root) == []


def test_env_create_with_dangling_feed_writes_nothing(tree: ConfigTree, ssmd: Run) -> None:
    before = snapshot(tree.root)
    result = ssmd("env", "create", "x", "--feed", "nope", "--endpoint", "prod", "--ticker", "T1")
    assert result.exit_code == 1 and "feed 'nope' does not exist" in result.stderr
    assert snapshot(tree.root) == before


def test_env_update_invalid_value_writes_nothing(tree: ConfigTree, ssmd: Run) -> None:
    before = snapshot(tree.root)
    result = ssmd("env", "update", "kalshi-sim", "--set", "transport.retention=forever", "--json")
    assert result.exit_code == 1
    assert "spec.transport.retention" in json.loads(result.stdout)["error"]
    assert snapshot(tree.root) == before


def test_feed_edit_that_breaks_an_environment_is_refused(tree: ConfigTree, ssmd: Run) -> None:
    ssmd("env", "update", "kalshi-sim", "--set", "feed.channels=[trade]")
    feed_file = tree.path("Feed", "kalshi")
    text = feed_file.read_text().replace("name: trade\n", "name: trades\n")
    before = snapshot(tree.root)
    with pytest.raises(ConfigError, match=r"kalshi-sim.yaml.*no channel 'trade'"):
        apply_changes(tree, {feed_file: text})
    assert snapshot(tree.root) == before


def test_env_show_resolved_masks_secrets(
    tree: ConfigTree, ssmd: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KALSHI_API_KEY", "super-secret-key-id")
    monkeypatch.setenv("SSMD_KALSHI_WS_URL", "ws://127.0.0.1:9999/trade-api/ws/v2")
    result = ssmd("env", "show", "kalshi-sim", "--resolved", "--nats-url", "nats://10.0.0.5:4222")
    assert result.exit_code == 0
    assert "super-secret-key-id" not in result.stdout and "****" in result.stdout
    view = ok_json(ssmd("env", "show", "kalshi-sim", "--resolved", "--json"))
    assert view["feed"]["ws_url"] == "ws://127.0.0.1:9999/trade-api/ws/v2"  # type: ignore[index]
    assert view["sources"]["ws_url"] == "SSMD_KALSHI_WS_URL"  # type: ignore[index]
    assert view["secrets"]["kalshi_api_key"] == {
        "ref": "env:KALSHI_API_KEY",
        "value": "****",
        "available": True,
    }  # type: ignore[index]


def test_env_show_resolved_for_one_venue(tree: ConfigTree, ssmd: Run) -> None:
    """--feed shows an environment as the components of one of its venues see it."""
    own = ok_json(ssmd("env", "show", "multi-sim", "--resolved", "--json"))
    kraken = ok_json(ssmd("env", "show", "multi-sim", "--resolved", "--feed", "kraken", "--json"))
    assert own["feeds"] == kraken["feeds"] == ["kalshi", "polymarket", "kraken"]  # type: ignore[index]
    assert (own["feed"]["name"], kraken["feed"]["name"]) == ("kalshi", "kraken")  # type: ignore[index]
    assert kraken["transport"]["stream"] == "SSMD_MULTI_SIM_KRAKEN"  # type: ignore[index]
    assert kraken["symbols"]["tickers"] == ["BTC/USD", "ETH/USD"]  # type: ignore[index]
    unknown = ssmd("env", "show", "multi-sim", "--resolved", "--feed", "coinbase")
    assert unknown.exit_code == 1 and "does not capture feed 'coinbase'" in unknown.stderr


def test_every_command_has_an_example(ssmd: Run) -> None:
    commands = [
        ("init",),
        ("validate",),
        ("diff",),
        ("commit",),
        ("feed", "create"),
        ("feed", "list"),
        ("feed", "show"),
        ("feed", "add-version"),
        ("schema", "register"),
        ("schema", "list"),
        ("schema", "show"),
        ("schema", "set-status"),
        ("schema", "hash"),
        ("env", "create"),
        ("env", "list"),
        ("env", "show"),
        ("env", "update"),
    ]
    for command in commands:
        result = ssmd(*command, "--help")
        assert result.exit_code == 0 and "Example: ssmd" in result.stdout, command
        assert "--json" in result.stdout and "--config-dir" in result.stdout, command


def test_env_show_reports_a_feed_that_does_not_exist(tree: ConfigTree, ssmd: Run) -> None:
    path = tree.path("Environment", "kalshi-dev")
    path.write_text(path.read_text().replace("    name: kalshi\n", "    name: kalshy\n", 1))
    result = ssmd("env", "show", "kalshi-dev")
    assert result.exit_code == 1
    assert "kalshi-dev.yaml" in result.stderr and "spec.feed.name" in result.stderr
    assert "feed 'kalshy' does not exist" in result.stderr and "Fix: " in result.stderr
    # The file can still be repaired with the command that edits it.
    fixed = ssmd("env", "update", "kalshi-dev", "--set", "feed.name=kalshi")
    assert fixed.exit_code == 0, fixed.stderr
    assert ssmd("env", "show", "kalshi-dev").exit_code == 0


@pytest.mark.parametrize(
    ("kind", "name", "args"),
    [
        ("Environment", "kalshi-sim", ("env", "show", "kalshi-sim")),
        ("Environment", "kalshi-sim", ("env", "show", "kalshi-sim", "--resolved")),
        ("Feed", "kalshi", ("feed", "show", "kalshi")),
        ("Feed", "kalshi", ("env", "show", "kalshi-sim", "--resolved")),
    ],
)
def test_commands_report_a_file_that_is_not_utf8(
    tree: ConfigTree, ssmd: Run, kind: str, name: str, args: tuple[str, ...]
) -> None:
    path = tree.path(kind, name)
    path.write_bytes(path.read_bytes() + b"# caf\xe9\n")
    result = ssmd(*args)
    assert result.exit_code == 1
    assert f"{path.parent.name}/{name}.yaml" in result.stderr
    assert "not UTF-8 text" in result.stderr and "Fix: " in result.stderr


def test_env_list_counts_a_file_that_is_not_utf8(tree: ConfigTree, ssmd: Run) -> None:
    path = tree.path("Environment", "kalshi-sim")
    path.write_bytes(path.read_bytes() + b"# caf\xe9\n")
    result = ssmd("env", "list")
    assert result.exit_code == 0
    assert "kalshi-dev" in result.stdout and "1 file(s) could not be read" in result.stderr

"""Each class of bad input: the error names file, line, field, expectation and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from ssmd.config import load_environment, validate_tree
from ssmd.config.problems import Problem
from ssmd.config.tree import ConfigTree
from ssmd.exceptions import ConfigError


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def line_of(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def line_of_bytes(path: Path, needle: bytes) -> int:
    data = path.read_bytes()
    return data[: data.index(needle)].count(b"\n") + 1


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, "\n".join(map(str, problems))
    return problems[0]


def test_invalid_yaml_names_the_line(tree: ConfigTree) -> None:
    path = tree.path("Environment", "kalshi-sim")
    edit(path, "    retention: 48h", "    retention: [48h")
    problem = only(validate_tree(tree.root))
    assert problem.file.endswith("environments/kalshi-sim.yaml")
    assert problem.message.startswith("invalid YAML")
    assert problem.line is not None and problem.line >= line_of(path, "retention")
    assert "indentation" in problem.fix


def test_unknown_key_suggests_the_known_one(tree: ConfigTree) -> None:
    path = tree.path("Environment", "kalshi-sim")
    edit(path, "    retention: 48h", "    retension: 48h")
    problem = only(validate_tree(tree.root))
    assert (problem.field, problem.line) == ("spec.transport.retension", line_of(path, "retension"))
    assert problem.message == "unknown key 'retension'"
    assert "retention" in problem.expected and problem.fix == "rename it to 'retention'"


def test_wrong_type(tree: ConfigTree) -> None:
    path = tree.path("Feed", "kalshi")
    edit(path, "markets_per_connection: 200", "markets_per_connection: lots")
    problem = only(validate_tree(tree.root))
    assert (problem.field, problem.line) == (
        "spec.limits.ws.markets_per_connection",
        line_of(path, "markets_per"),
    )
    assert "'lots'" in problem.message and "integer" in problem.expected


def test_unquoted_clock_time_is_explained(tree: ConfigTree) -> None:
    path = tree.path("Environment", "kalshi-dev")
    edit(
        path, "    timezone: America/New_York", "    timezone: America/New_York\n    startup: 9:30"
    )
    problem = only(validate_tree(tree.root))
    assert problem.field == "spec.schedule.startup"
    assert "quote" in problem.fix


def test_bad_pattern_gets_a_human_hint(tree: ConfigTree) -> None:
    edit(tree.path("Environment", "kalshi-sim"), "retention: 48h", "retention: two days")
    problem = only(validate_tree(tree.root))
    assert problem.field == "spec.transport.retention"
    assert "48h" in problem.expected and "^" not in problem.expected


def test_missing_required_field(tree: ConfigTree) -> None:
    path = tree.path("Environment", "kalshi-dev")
    edit(path, "    endpoint: demo\n", "")
    problem = only(validate_tree(tree.root))
    assert (problem.field, problem.message) == ("spec.feed.endpoint", "missing required field")
    assert problem.line == line_of(path, "  feed:")
    assert problem.fix == "add `endpoint:` under spec.feed"


def test_dangling_feed_reference(tree: ConfigTree) -> None:
    edit(tree.path("Environment", "kalshi-dev"), "    name: kalshi\n", "    name: kalshy\n")
    problem = only(validate_tree(tree.root))
    assert problem.field == "spec.feed.name"
    assert "kalshi" in problem.expected and "ssmd feed create kalshy" in problem.fix


def test_unknown_endpoint_and_channel(tree: ConfigTree) -> None:
    edit(
        tree.path("Environment", "kalshi-dev"),
        "    endpoint: demo\n",
        "    endpoint: staging\n    channels:\n      - trade\n      - fills\n",
    )
    problems = validate_tree(tree.root)
    assert {p.field for p in problems} == {"spec.feed.endpoint", "spec.feed.channels[1]"}


def test_duplicate_key(tree: ConfigTree) -> None:
    path = tree.path("Environment", "kalshi-sim")
    edit(path, "    retention: 48h\n", "    retention: 48h\n    retention: 72h\n")
    problem = only(validate_tree(tree.root))
    assert problem.message.startswith("duplicate key 'retention'")
    assert problem.line == line_of(path, "retention: 72h")


def test_duplicate_names(tree: ConfigTree) -> None:
    copy = tree.folder("Environment") / "kalshi-copy.yaml"
    copy.write_text(tree.path("Environment", "kalshi-sim").read_text())
    messages = [p.message for p in validate_tree(tree.root)]
    assert any("does not match the file name" in m for m in messages)
    assert any(m.startswith("duplicate Environment name 'kalshi-sim'") for m in messages)


def test_schema_hash_mismatch(tree: ConfigTree, changed_schema: Path) -> None:
    problems = validate_tree(tree.root)
    assert len(problems) == 6  # one per registry entry
    trade = next(p for p in problems if p.file.endswith("schemas/trade.yaml"))
    assert trade.field == "spec.versions[0].hash"
    assert "ssmd schema register trade --version v2 --status active" in trade.fix


def test_feed_versions_out_of_order(tree: ConfigTree) -> None:
    edit(
        tree.path("Feed", "kalshi"), "effective_from: '2026-03-12'", "effective_from: '2025-01-01'"
    )
    problem = only(validate_tree(tree.root))
    assert problem.field == "spec.versions[2].effective_from"
    assert "oldest first" in problem.expected


def test_malformed_secret_reference(tree: ConfigTree) -> None:
    edit(tree.path("Environment", "kalshi-sim"), "env:KALSHI_API_KEY", "vault:kalshi")
    problem = only(validate_tree(tree.root))
    assert problem.field == "spec.secrets.kalshi_api_key"
    assert "env:VARIABLE_NAME" in problem.expected


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("    raw:\n      path: raw\n", "    raw:\n      bucket: ssmd-raw\n", "spec.storage.raw"),
        ("    nats_url: embedded\n", "    nats_url: localhost\n", "spec.transport.nats_url"),
        (
            "    duplicate_window: 2m\n",
            "    duplicate_window: 3d\n",
            "spec.transport.duplicate_window",
        ),
        ("    normalized:\n      path: normalized\n", "", "spec.storage.normalized"),
    ],
)
def test_incomplete_storage_and_transport(tree: ConfigTree, old: str, new: str, field: str) -> None:
    edit(tree.path("Environment", "kalshi-sim"), old, new)
    assert only(validate_tree(tree.root)).field == field


def test_every_problem_is_listed(tree: ConfigTree) -> None:
    edit(tree.path("Environment", "kalshi-sim"), "    retention: 48h", "    retension: 48h")
    edit(tree.path("Environment", "kalshi-dev"), "    name: kalshi\n", "    name: kalshy\n")
    edit(tree.path("Feed", "kalshi"), "markets_per_connection: 200", "markets_per_connection: lots")
    assert len(validate_tree(tree.root)) == 3


def test_wrong_kind_in_folder(tree: ConfigTree) -> None:
    edit(tree.path("Feed", "kalshi"), "kind: Feed", "kind: Environment")
    problem = only(validate_tree(tree.root))
    assert problem.field == "kind" and "feeds/ Feed" in problem.fix


def test_empty_file_and_yml_extension(tree: ConfigTree) -> None:
    (tree.folder("Feed") / "empty.yaml").write_text("")
    (tree.folder("Feed") / "other.yml").write_text("apiVersion: ssmd/v1\n")
    messages = sorted(p.message for p in validate_tree(tree.root))
    assert messages == ["file extension .yml is not read", "the document is an empty file"]


def test_problem_text_has_every_part(tree: ConfigTree) -> None:
    edit(tree.path("Environment", "kalshi-sim"), "    retention: 48h", "    retension: 48h")
    text = str(only(validate_tree(tree.root)))
    assert text.startswith("exchanges/environments/kalshi-sim.yaml:")
    assert "spec.transport.retension" in text and "; expected " in text and ". Fix: " in text


def test_a_file_that_is_not_utf8_is_a_problem_not_a_crash(tree: ConfigTree) -> None:
    path = tree.path("Environment", "kalshi-sim")
    text = path.read_bytes()
    at = text.index(b"retention")
    path.write_bytes(text[:at] + b"r\xe9tention" + text[at + len(b"retention") :])
    problem = only(validate_tree(tree.root))
    assert problem.file.endswith("environments/kalshi-sim.yaml")
    assert problem.message.startswith("not UTF-8 text")
    assert problem.line == line_of_bytes(path, b"r\xe9tention")
    assert "UTF-8" in problem.expected and "UTF-8" in problem.fix


def test_a_directory_named_like_a_file_is_a_problem(tree: ConfigTree) -> None:
    (tree.folder("Environment") / "x.yaml").mkdir()
    problem = only(validate_tree(tree.root))
    assert problem.file.endswith("environments/x.yaml")
    assert problem.message == "a directory, not a file"
    assert "rename" in problem.fix


def test_an_unreadable_feed_is_reported_once_not_as_a_missing_feed(tree: ConfigTree) -> None:
    path = tree.path("Feed", "kalshi")
    path.write_bytes(path.read_bytes() + b"# \xff\n")
    problem = only(validate_tree(tree.root))  # no "feed 'kalshi' does not exist" echoes
    assert problem.file.endswith("feeds/kalshi.yaml")


def test_components_loading_an_environment_get_the_same_problems(tree: ConfigTree) -> None:
    feed = tree.path("Feed", "kalshi")
    feed.write_bytes(feed.read_bytes() + b"# caf\xe9\n")
    with pytest.raises(ConfigError, match=r"feeds/kalshi\.yaml:\d+: not UTF-8 text.*Fix: "):
        load_environment("kalshi-sim", tree.root, environ={})
    (tree.folder("Environment") / "x.yaml").mkdir()
    with pytest.raises(ConfigError, match=r"environments/x\.yaml: a directory, not a file"):
        load_environment("x", tree.root, environ={})


def test_a_venue_is_checked_like_the_environments_own_feed(tree: ConfigTree) -> None:
    """spec.venues[i] gets the same checks as spec.feed and spec.symbols, at its own path,
    and a feed is captured once per environment."""
    path = tree.path("Environment", "multi-sim")
    edit(path, "        name: polymarket\n", "        name: kalshi\n")
    edit(
        path,
        "        endpoint: custom\n        ws_url: ws://127.0.0.1:8767/v2\n",
        "        endpoint: staging\n",
    )
    edit(path, "          - ETH/USD\n", "          - BTC/USD\n")
    problems = validate_tree(tree.root)
    by_field = {p.field: p for p in problems}
    assert set(by_field) == {
        "spec.venues[0].feed.name",
        "spec.venues[1].feed.rest_url",
        "spec.venues[1].feed.endpoint",
        "spec.venues[1].symbols.tickers[1]",
    }, problems
    twice = by_field["spec.venues[0].feed.name"]
    assert twice.message == "feed 'kalshi' is captured twice"
    assert twice.line == line_of(path, "        name: kalshi")
    assert "has no endpoint set 'staging'" in by_field["spec.venues[1].feed.endpoint"].message

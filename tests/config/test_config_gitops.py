"""init, validate, diff and commit against a temporary git repository."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from config_helpers import REPO, snapshot
from typer.testing import Result

from ssmd.config import RECORD_TYPES
from ssmd.config.hashing import hash_bytes
from ssmd.config.tree import ConfigTree

Run = Callable[..., Result]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def repo(tree: ConfigTree) -> Path:
    """The project as a git repository whose first commit holds the bootstrap tree."""
    root = tree.project_root
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "test@example.invalid")
    git(root, "config", "user.name", "ssmd tests")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "bootstrap")
    return root


def test_init_refuses_to_overwrite(tree: ConfigTree, ssmd: Run) -> None:
    before = snapshot(tree.root)
    result = ssmd("init", str(tree.root))
    assert result.exit_code == 1 and "refusing to overwrite" in result.stderr
    assert snapshot(tree.root) == before


def test_init_then_validate(project: Path, ssmd: Run) -> None:
    created = ssmd("init", "--json")
    assert created.exit_code == 0 and json.loads(created.stdout)["ok"] is True
    checked = ssmd("validate")
    assert checked.exit_code == 0 and "valid" in checked.stdout


def test_init_writes_the_registry_without_a_schema_file_next_to_the_tree(
    tmp_path: Path, ssmd: Run
) -> None:
    # As after `pip install ssmd`: no repository checkout, no schemas/ beside the tree.
    result = ssmd("init", str(tmp_path / "exchanges"))
    assert result.exit_code == 0, result.stderr
    registry = sorted(p.stem for p in (tmp_path / "exchanges" / "schemas").glob("*.yaml"))
    assert registry == sorted(RECORD_TYPES)
    digest = ssmd("schema", "hash", "--config-dir", str(tmp_path / "exchanges")).stdout.strip()
    assert digest == hash_bytes((REPO / "schemas" / "ssmd.capnp").read_bytes())
    assert ssmd("validate", "--config-dir", str(tmp_path / "exchanges")).exit_code == 0


def test_validate_lists_every_problem_and_exits_1(tree: ConfigTree, ssmd: Run) -> None:
    sim = tree.path("Environment", "kalshi-sim")
    sim.write_text(sim.read_text().replace("retention: 48h", "retension: 48h"))
    dev = tree.path("Environment", "kalshi-dev")
    dev.write_text(dev.read_text().replace("endpoint: demo", "endpoint: staging"))
    result = ssmd("validate", "--config-dir", str(tree.root), "--json")
    assert result.exit_code == 1
    fields = sorted(p["field"] for p in json.loads(result.stdout)["problems"])
    assert fields == ["spec.feed.endpoint", "spec.transport.retension"]
    human = ssmd("validate", "--config-dir", str(tree.root))
    assert human.exit_code == 1 and "2 problem(s)" in human.stderr


def test_validate_without_a_tree_says_how_to_create_one(tmp_path: Path, ssmd: Run) -> None:
    result = ssmd("validate", "--config-dir", str(tmp_path / "nowhere"))
    assert result.exit_code == 1 and "ssmd init" in result.stderr


def test_diff_shows_pending_changes(repo: Path, ssmd: Run) -> None:
    assert ssmd("diff").stdout.strip() == "no pending changes"
    assert ssmd("env", "update", "kalshi-sim", "--set", "transport.retention=72h").exit_code == 0
    assert (
        ssmd(
            "feed",
            "create",
            "acme",
            "--ws-url",
            "wss://ws.acme.test",
            "--rest-url",
            "https://api.acme.test",
            "--channel",
            "trade:trade",
        ).exit_code
        == 0
    )
    pending = json.loads(ssmd("diff", "--json").stdout)
    assert sorted((c["status"], c["path"]) for c in pending["changes"]) == [
        ("added", "exchanges/feeds/acme.yaml"),
        ("modified", "exchanges/environments/kalshi-sim.yaml"),
    ]
    assert "+    retention: 72h" in pending["patch"] and "+  name: acme" in pending["patch"]


def test_commit_commits_only_the_config_dir(repo: Path, ssmd: Run) -> None:
    (repo / "notes.txt").write_text("not config\n")
    git(repo, "add", "notes.txt")
    assert ssmd("env", "update", "kalshi-sim", "--set", "transport.retention=72h").exit_code == 0
    result = ssmd("commit", "-m", "kalshi-sim: keep 72h", "--json")
    assert result.exit_code == 0, result.stdout
    assert json.loads(result.stdout)["commit"] == git(repo, "rev-parse", "HEAD").strip()
    assert git(repo, "show", "--name-only", "--format=%s", "HEAD").split() == [
        "kalshi-sim:",
        "keep",
        "72h",
        "exchanges/environments/kalshi-sim.yaml",
    ]
    assert git(repo, "diff", "--cached", "--name-only").split() == [
        "notes.txt"
    ]  # still staged, not committed
    assert ssmd("commit", "-m", "again").stdout.strip() == "nothing to commit"


def test_commit_refuses_an_invalid_tree(repo: Path, ssmd: Run) -> None:
    sim = repo / "exchanges" / "environments" / "kalshi-sim.yaml"
    sim.write_text(sim.read_text().replace("retention: 48h", "retension: 48h"))
    result = ssmd("commit", "-m", "broken")
    assert result.exit_code == 1 and "refusing to commit an invalid tree" in result.stderr
    assert git(repo, "log", "--format=%s").split() == ["bootstrap"]


def test_diff_outside_a_repository(tree: ConfigTree, ssmd: Run) -> None:
    result = ssmd("diff")
    assert result.exit_code == 1 and "not inside a git repository" in result.stderr

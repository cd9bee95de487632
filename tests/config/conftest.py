"""Fixtures for the config tests: a fresh project (schemas/ + exchanges/) per test."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from config_helpers import APP, REPO
from typer.testing import CliRunner, Result

from ssmd.config.bootstrap import init_tree
from ssmd.config.tree import ConfigTree


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A project root holding schemas/ssmd.capnp and nothing else; cwd is set to it."""
    (tmp_path / "schemas").mkdir()
    shutil.copy(REPO / "schemas" / "ssmd.capnp", tmp_path / "schemas" / "ssmd.capnp")
    monkeypatch.chdir(tmp_path)
    for name in (
        "SSMD_CONFIG_DIR",
        "SSMD_DATA_DIR",
        "SSMD_NATS_URL",
        "SSMD_KALSHI_WS_URL",
        "SSMD_KALSHI_REST_URL",
        "SSMD_S3_ENDPOINT",
        "SSMD_REDIS_URL",
        "SSMD_DATABASE_URL",
        "SSMD_TEMPORAL_ADDRESS",
    ):
        monkeypatch.delenv(name, raising=False)
    yield tmp_path


@pytest.fixture
def tree(project: Path) -> ConfigTree:
    """The bootstrap tree (what `ssmd init` writes) under project/exchanges."""
    created = ConfigTree.at(project / "exchanges")
    init_tree(created)
    return created


@pytest.fixture
def ssmd() -> Callable[..., Result]:
    """Run `ssmd ARGS...` in-process; returns the click Result."""
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(APP, list(args), catch_exceptions=False)

    return run

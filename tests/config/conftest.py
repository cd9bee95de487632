"""Fixtures for the config tests: a fresh project (exchanges/ only) per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from config_helpers import APP, REPO
from typer.testing import CliRunner, Result

from ssmd import schemas as packaged_schema
from ssmd.config.bootstrap import init_tree
from ssmd.config.tree import ConfigTree


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty project root (the schema comes from the package); cwd is set to it."""
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
def changed_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The packaged schema as a newer ssmd would ship it: a changed copy stands in for it."""
    changed = tmp_path / "newer-ssmd" / "ssmd.capnp"
    changed.parent.mkdir()
    changed.write_bytes((REPO / "schemas" / "ssmd.capnp").read_bytes() + b"\n# a new field\n")
    monkeypatch.setattr(packaged_schema, "CAPNP_FILE", changed)
    return changed


@pytest.fixture
def ssmd() -> Callable[..., Result]:
    """Run `ssmd ARGS...` in-process; returns the click Result."""
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(APP, list(args), catch_exceptions=False)

    return run

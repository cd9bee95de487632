"""Shared test helpers: the Kalshi fixture tree and external service requirements."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KALSHI_FIXTURES = ROOT / "tests" / "data" / "kalshi"


def kalshi_fixture(name: str) -> bytes:
    """The raw bytes of tests/data/kalshi/<name>.json, exactly as a frame arrives."""
    return (KALSHI_FIXTURES / f"{name}.json").read_bytes()


def kalshi_fixture_names() -> list[str]:
    return sorted(p.stem for p in KALSHI_FIXTURES.glob("*.json"))


def require_binary(name: str, hint: str) -> str:
    """The path of an external binary a test needs.

    In CI (SSMD_REQUIRE_SERVICES=1) a missing binary fails the test; elsewhere it
    skips with a loud reason.
    """
    import shutil

    path = shutil.which(name)
    if path:
        return path
    message = f"{name} not found on PATH ({hint})"
    if os.environ.get("SSMD_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)

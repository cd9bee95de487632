"""Inputs of the micro-benchmarks, built once per run from ssmd.testing.frames.

The benchmarks run pinned to one CPU core (as benches/run.py), so that a figure is the
hot path's own and two runs compare. They never import tests/: a benchmark that did
would time test helpers, and `just bench-micro` would depend on the test tree (checked
at the end of the run).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from ssmd import core
from ssmd.testing.archives import seal
from ssmd.testing.frames import book_stream, frame_mix, trades_only

HERE = Path(__file__).resolve().parent
BENCHES = HERE.parent
TESTS = BENCHES.parent / "tests"

BATCH = 1024  # frames per normalize call: the connector's batches are this order of size
TRADES = 50_000  # rows of the archive the readers read


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def pytest_sessionfinish(session: pytest.Session) -> None:
    loaded = [
        name
        for name, module in list(sys.modules.items())
        if Path(getattr(module, "__file__", None) or "/").resolve().is_relative_to(TESTS)
    ]
    if loaded:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(f"\nmicro-benchmarks must not import tests/, but loaded {loaded}")


@pytest.fixture(scope="session")
def frames() -> list[bytes]:
    """One batch of the era-C frame mix (deltas, tickers, trades, lifecycle)."""
    return frame_mix(BATCH)


@pytest.fixture(scope="session")
def records(frames: list[bytes]) -> bytes:
    """The packed records of `frames`."""
    return core.normalize_kalshi(frames, list(range(len(frames))), 1).data


@pytest.fixture(scope="session")
def trade_archive() -> bytes:
    """`TRADES` trades sealed as the archiver seals them: one zstd frame per ~1 MiB of
    whole records."""
    trades = trades_only(TRADES)
    return seal(core.normalize_kalshi(trades, list(range(len(trades))), 1).data)


@pytest.fixture(scope="session")
def book_records() -> bytes:
    """Snapshots of 200 books, then 20,000 deltas that keep them consistent, as records."""
    stream = book_stream(20_000)
    return core.normalize_kalshi(stream, list(range(len(stream))), 1).data

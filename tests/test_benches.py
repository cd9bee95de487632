"""The benchmarks that are run on their own still run: each script at its smallest, its
JSON read back. Their speeds are measured by running them (benches/RESULTS.md), never
here; this only keeps a change to the code from breaking a benchmark unnoticed."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from _support import ROOT

pytestmark = pytest.mark.slow


def _run(script: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benches" / script), *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_dataset_benchmark_runs() -> None:
    out = _run("dataset.py", "--quick")
    scan = out["scan_export"]
    assert scan["rows"] == 100_000
    for key in (
        "scan_rows_per_s",
        "export_records_per_s",
        "bound_scan_uncompressed_rows_per_s",
        "bound_export_write_rows_per_s",
    ):
        assert scan[key] > 0, key
    assert 0 < out["book_at"]["p50_ms"] <= out["book_at"]["p90_ms"]
    assert out["history"]["ndjson_rows_per_s"] > 0


def test_the_replay_benchmark_runs() -> None:
    out = _run("replay.py", "--frames", "20000", "--nats-frames", "4000", "--kalshi-frames", "4000")
    assert out["read"]["frames"] == 20_000
    assert out["equality"]["under_60s"] is True
    assert out["nats"]["messages"] >= 2 * 4000  # raw and normalized
    assert out["nats"]["ratio_to_publish_only"] > 0
    kalshi = out["kalshi"]
    assert kalshi["data_frames_received"] == kalshi["frames_sent"] > 0


def test_the_venue_secmaster_benchmark_runs() -> None:
    out = _run("secmaster_venues.py", "--markets", "150")
    assert (out["markets"], out["rows"]) == (150, 300)
    assert out["requests"] == 2  # Gamma pages of 100
    assert out["sync_rows_per_s"] > 0 and out["store_alone_rows_per_s"] > 0

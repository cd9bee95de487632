"""Micro-benchmarks of the hot paths (pytest-benchmark): `just bench-micro`.

Each benchmark checks its result first, then times one call: normalizing a batch of
frames, encoding and decoding records, reading a sealed archive (zstd alone, and into a
Polars frame), applying order-book records. benches/README.md says how runs are saved
and compared.
"""

from __future__ import annotations

from typing import Any

import pytest

import ssmd.records
from ssmd import core


@pytest.mark.benchmark(group="normalize")
def test_normalize_batch(benchmark: Any, frames: list[bytes]) -> None:
    receive = list(range(len(frames)))
    batch = core.normalize_kalshi(frames, receive, 1)
    assert len(batch) == len(frames) and not batch.problems
    benchmark.extra_info["frames"] = len(frames)
    benchmark(core.normalize_kalshi, frames, receive, 1)


@pytest.mark.benchmark(group="records")
def test_encode_records(benchmark: Any, records: bytes) -> None:
    decoded = core.decode_records(records)
    assert core.encode_records(decoded) == records
    benchmark.extra_info["records"] = len(decoded)
    benchmark(core.encode_records, decoded)


@pytest.mark.benchmark(group="records")
def test_decode_records(benchmark: Any, records: bytes) -> None:
    n = len(core.decode_records(records))
    benchmark.extra_info["records"] = n
    benchmark(core.decode_records, records)


@pytest.mark.benchmark(group="archive read")
def test_read_archive(benchmark: Any, trade_archive: bytes) -> None:
    contents = core.read_archive(trade_archive)
    assert contents.truncated_tail is None and len(core.record_spans(contents.data)) > 0
    benchmark.extra_info["archive_bytes"] = len(trade_archive)
    benchmark(core.read_archive, trade_archive)


@pytest.mark.benchmark(group="archive read")
def test_archive_to_polars(benchmark: Any, trade_archive: bytes) -> None:
    frame = ssmd.records.archive_to_polars(trade_archive, "trade")
    assert frame.height > 0 and frame["price_e6"].null_count() == 0
    benchmark.extra_info["rows"] = frame.height
    benchmark(ssmd.records.archive_to_polars, trade_archive, "trade")


@pytest.mark.benchmark(group="book")
def test_book_apply(benchmark: Any, book_records: bytes) -> None:
    def apply() -> core.BookSet:
        books = core.BookSet()
        assert books.apply(book_records) == []  # no gap, no invalid book
        return books

    assert len(apply()) == 200
    benchmark.extra_info["records"] = len(core.record_spans(book_records))
    benchmark(apply)

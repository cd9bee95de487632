"""Normalized archives (zstd frames of packed records) straight to Arrow and Polars."""

from __future__ import annotations

import gc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_records import record_dicts

import ssmd.records
from _support import kalshi_fixture, kalshi_fixture_names
from ssmd import core
from ssmd.exceptions import ArchiveError, CoreError, DecodeError


def fixture_records() -> bytes:
    names = kalshi_fixture_names()
    return core.normalize_kalshi([kalshi_fixture(n) for n in names], [10**18] * len(names), 3).data


def archive(data: bytes, cuts: list[int]) -> tuple[bytes, list[int]]:
    """`data` (whole records) as an archive with a frame boundary after the records
    whose indexes are in `cuts`, and the byte offset where each frame starts."""
    spans = core.record_spans(data)
    writer = core.ArchiveWriter()
    out = bytearray()
    starts = []
    begin = 0
    for index, (_start, end) in enumerate(spans):
        if index in cuts or index == len(spans) - 1:
            writer.write(data[begin:end])
            starts.append(len(out))
            out += writer.flush()
            begin = end
    return bytes(out), starts


def test_every_kind_matches_the_decompressed_path() -> None:
    data = fixture_records()
    spans = core.record_spans(data)
    packed, starts = archive(data, cuts=list(range(0, len(spans), 3)))
    assert len(starts) > 5
    for kind in ssmd.records.TABLE_KINDS:
        direct = ssmd.records.to_arrow(data, kind)
        from_archive = ssmd.records.archive_to_arrow(packed, kind)
        assert from_archive.equals(direct), kind
        assert ssmd.records.archive_to_polars(packed, kind).equals(
            ssmd.records.to_polars(data, kind)
        ), kind


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(record_dicts, min_size=1, max_size=40), st.data())
def test_any_records_in_any_frames(records: list[dict[str, object]], draw: st.DataObject) -> None:
    """Mixed kinds and uneven frames: the columns grow past what the first frame
    suggested, and still equal the table built from the whole stream."""
    data = core.encode_records(records)
    cuts = draw.draw(st.lists(st.integers(0, len(records) - 1), max_size=8))
    packed, _ = archive(data, cuts)
    for kind in ("trade", "book_level", "connector_event", "status"):
        assert ssmd.records.archive_to_arrow(packed, kind).equals(
            ssmd.records.to_arrow(data, kind)
        ), kind


def test_a_large_homogeneous_archive() -> None:
    """Many frames of trades, the archiver's shape: one table, every row in order."""
    trades = [
        {
            "kind": "trade",
            "ticker": f"KXBTCD-26JUL2017-T{1000 + i % 50}.99",
            "trade_id": f"{i:032x}",
            "price_e6": 10_000 * (i % 99 + 1),
            "size_e6": 1_000_000 * (i % 7 + 1),
            "receive_ts": 1_784_557_800_000_000_000 + i,
            "seq": i,
        }
        for i in range(30_000)
    ]
    data = core.encode_records(trades)
    packed, starts = archive(data, cuts=list(range(999, len(trades), 1000)))
    assert len(starts) == 30
    frame = ssmd.records.archive_to_polars(packed, "trade")
    assert frame.height == len(trades)
    assert frame["seq"].to_list() == list(range(len(trades)))
    assert frame["trade_id"].to_list() == [t["trade_id"] for t in trades]
    assert frame.equals(ssmd.records.to_polars(data, "trade"))


def test_a_truncated_tail_is_refused_unless_allowed() -> None:
    data = fixture_records()
    spans = core.record_spans(data)
    packed, starts = archive(data, cuts=[len(spans) // 2])
    assert len(starts) == 2
    cut = packed[: len(packed) - 5]
    with pytest.raises(ArchiveError, match=f"at byte {starts[1]}"):
        ssmd.records.archive_to_arrow(cut, "book_delta")
    complete = data[: spans[len(spans) // 2][1]]
    table = ssmd.records.archive_to_arrow(cut, "book_delta", allow_truncated_tail=True)
    assert table.equals(ssmd.records.to_arrow(complete, "book_delta"))
    rows, _columns, tail = core.archive_to_columns(cut, "book_delta")
    assert tail == (starts[1], len(cut) - starts[1])
    assert rows == table.num_rows


def test_damage_names_the_frame() -> None:
    good = fixture_records()
    writer = core.ArchiveWriter()
    writer.write(good)
    first = writer.flush()
    # Whole words that are not a Cap'n Proto message: a segment table claiming
    # far more words than follow.
    writer.write(b"\x10\x01\x10\xff")
    packed = first + writer.flush()
    with pytest.raises(DecodeError, match=f"zstd frame at byte {len(first)}"):
        ssmd.records.archive_to_arrow(packed, "trade")
    damaged = bytearray(packed)
    damaged[len(first) // 2] ^= 0xFF
    with pytest.raises(ArchiveError):
        ssmd.records.archive_to_arrow(bytes(damaged), "trade")


def test_empty_archive_and_unknown_kind() -> None:
    table = ssmd.records.archive_to_arrow(b"", "trade")
    assert table.num_rows == 0
    assert "price_e6" in table.column_names
    with pytest.raises(CoreError, match="no column layout"):
        core.archive_to_columns(b"", "nonsense")


def test_column_buffers_are_shared_not_copied() -> None:
    """pyarrow wraps the memory Rust filled, and keeps it alive on its own."""
    import pyarrow as pa

    data = fixture_records()
    rows, columns, _ = core.archive_to_columns(archive(data, [])[0], "book_delta")
    name, _type, values, _offsets, _validity, _nulls = columns[0]
    assert name == "receive_ts"
    view = memoryview(values)
    assert view.readonly and view.nbytes == len(values) == 8 * rows
    buffer = pa.py_buffer(values)
    assert buffer.address == pa.py_buffer(values).address
    with pytest.raises(TypeError):
        view[0] = 1  # type: ignore[index]
    expected = bytes(view)
    del view, values, columns
    gc.collect()
    assert buffer.to_pybytes() == expected

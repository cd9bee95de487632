"""Archive framing: independent zstd frames, so an interrupted write leaves
every earlier frame readable, and damage elsewhere is an error."""

from __future__ import annotations

import json
import random
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _support import require_binary
from ssmd import _core
from ssmd.exceptions import ArchiveError, CoreError


def jsonl(n: int, tag: str) -> bytes:
    lines = (
        json.dumps({"ts": i, "type": tag, "data": {"seq": i, "price": "0.4100"}}) for i in range(n)
    )
    return "".join(line + "\n" for line in lines).encode()


def build(parts: list[bytes], level: int = 3) -> tuple[bytes, list[int]]:
    """An archive with one frame per part, and the offset where each frame starts."""
    writer = _core.ArchiveWriter(level)
    out = bytearray()
    starts = []
    for part in parts:
        writer.write(part)
        assert writer.pending_len == len(part)
        starts.append(len(out))
        out += writer.flush()
        assert writer.pending_len == 0
    return bytes(out), starts


def read_in_chunks(data: bytes, size: int) -> tuple[bytes, _core.ArchiveContents]:
    reader = _core.ArchiveReader()
    taken = bytearray()
    for i in range(0, len(data), size):
        reader.feed(data[i : i + size])
        taken += reader.take()
    result = reader.finish()
    return bytes(taken) + result.data, result


PARTS = [jsonl(50, "trade"), jsonl(1, "ticker"), jsonl(300, "orderbook_delta")]


def test_round_trip() -> None:
    data, _ = build(PARTS)
    result = _core.read_archive(data)
    assert result.data == b"".join(PARTS)
    assert result.frames == 3
    assert result.complete_len == len(data)
    assert result.truncated_tail is None


def test_frames_are_standard_zstd() -> None:
    tool = require_binary("zstd", "Debian package zstd")
    data, _ = build(PARTS)
    # The reference decoder reads the concatenated frames as one stream.
    out = subprocess.run([tool, "-d", "-c"], input=data, capture_output=True, check=True)
    assert out.stdout == b"".join(PARTS)


def test_each_frame_states_its_content_size() -> None:
    data, starts = build(PARTS)
    # Frame header: magic, descriptor byte; with single-segment and a
    # content-size field, the size follows immediately.
    for start in starts:
        assert data[start : start + 4] == b"\x28\xb5\x2f\xfd"
        descriptor = data[start + 4]
        assert descriptor & 0x04, "checksum flag"
        assert descriptor >> 6 or descriptor & 0x20, "content size present"


def test_writer_defaults_and_empty_flush() -> None:
    writer = _core.ArchiveWriter()
    assert writer.flush() == b""
    writer.write(b"a\n")
    writer.write(b"b\n")
    frame = writer.flush()
    assert _core.read_archive(frame).data == b"a\nb\n"
    assert writer.flush() == b""
    empty = _core.read_archive(b"")
    assert (empty.data, empty.frames, empty.complete_len, empty.truncated_tail) == (b"", 0, 0, None)


def test_invalid_level_raises() -> None:
    with pytest.raises(ArchiveError):
        _core.ArchiveWriter(1000)


def test_every_cut_of_the_last_frame_keeps_every_complete_record() -> None:
    data, starts = build(PARTS)
    last = starts[-1]
    for cut in range(last, len(data)):
        result = _core.read_archive(data[:cut])
        assert result.data == PARTS[0] + PARTS[1], cut
        assert result.frames == 2
        assert result.complete_len == last
        assert result.truncated_tail == ((last, cut - last) if cut > last else None)


def test_random_cuts_keep_the_records_of_complete_frames() -> None:
    rng = random.Random(20260720)
    parts = [jsonl(rng.randrange(1, 80), str(i)) for i in range(12)]
    data, starts = build(parts)
    ends = [*starts[1:], len(data)]
    for _ in range(200):
        cut = rng.randrange(0, len(data) + 1)
        complete = sum(1 for end in ends if end <= cut)
        result = _core.read_archive(data[:cut])
        assert result.frames == complete
        assert result.data == b"".join(parts[:complete])
        # Every complete record is a whole JSONL line.
        assert all(json.loads(line) for line in result.data.splitlines())
        if cut == result.complete_len:
            assert result.truncated_tail is None
        else:
            assert result.truncated_tail == (result.complete_len, cut - result.complete_len)


def test_corrupt_middle_frame_raises() -> None:
    data, starts = build(PARTS)
    damaged = bytearray(data)
    damaged[starts[1] + 5] ^= 0xFF
    with pytest.raises(ArchiveError, match=f"byte {starts[1]}"):
        _core.read_archive(bytes(damaged))
    with pytest.raises(ArchiveError):
        read_in_chunks(bytes(damaged), 16)


def test_flipped_byte_inside_compressed_data_raises() -> None:
    data, starts = build(PARTS)
    damaged = bytearray(data)
    middle = (starts[2] + len(data)) // 2
    damaged[middle] ^= 0x55
    # Followed by nothing, but its length is complete: damage, not a crash.
    with pytest.raises(ArchiveError):
        _core.read_archive(bytes(damaged))


def test_lost_bytes_in_the_middle_raise() -> None:
    data, starts = build([jsonl(40, "a"), jsonl(40, "b"), jsonl(3, "c")])
    damaged = data[: starts[2] - 7] + data[starts[2] :]
    with pytest.raises(ArchiveError):
        _core.read_archive(damaged)


def test_incremental_reader_equals_one_shot() -> None:
    rng = random.Random(7)
    parts = [jsonl(rng.randrange(0, 60), str(i)) for i in range(8)]
    data, _ = build(parts)
    for cut in [len(data), len(data) - 1, len(data) // 2, 3, 0]:
        one_shot = _core.read_archive(data[:cut])
        for size in [1, 7, 64, 4096, len(data) + 1]:
            content, result = read_in_chunks(data[:cut], size)
            assert content == one_shot.data
            assert result.frames == one_shot.frames
            assert result.complete_len == one_shot.complete_len
            assert result.truncated_tail == one_shot.truncated_tail


def test_reader_take_is_incremental_and_finish_is_final() -> None:
    data, starts = build(PARTS)
    reader = _core.ArchiveReader()
    reader.feed(data[: starts[1] + 3])
    assert reader.take() == PARTS[0]
    assert reader.take() == b""
    reader.feed(data[starts[1] + 3 :])
    result = reader.finish()
    assert result.data == PARTS[1] + PARTS[2]
    assert result.frames == 3
    with pytest.raises(CoreError, match="finished"):
        reader.feed(b"")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_never_crash(blob: bytes) -> None:
    try:
        result = _core.read_archive(blob)
    except ArchiveError:
        return
    assert result.complete_len <= len(blob)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.binary(max_size=300), min_size=1, max_size=6),
    st.integers(min_value=1, max_value=97),
)
def test_any_payload_round_trips_incrementally(parts: list[bytes], size: int) -> None:
    data, _ = build(parts)
    content, result = read_in_chunks(data, size)
    assert content == b"".join(parts)
    assert result.truncated_tail is None

"""Normalized records sealed as the archiver seals them, for the benchmarks' inputs."""

from __future__ import annotations

from ssmd import core

__all__ = ["seal"]

FRAME_BYTES = 1 << 20  # the archiver cuts a zstd frame after about this much


def seal(data: bytes) -> bytes:
    """Records as the archiver seals them: one zstd frame per ~1 MiB of whole records."""
    writer = core.ArchiveWriter(core.ARCHIVE_DEFAULT_LEVEL)
    parts, cut = [], 0
    for _start, end in core.record_spans(data):
        if end - cut >= FRAME_BYTES:
            writer.write(data[cut:end])
            parts.append(writer.flush())
            cut = end
    writer.write(data[cut:])
    parts.append(writer.flush())
    return b"".join(parts)

"""Every error the Rust core raises is a class of ssmd.exceptions, one per kind of the
core's error type, and never a bare ValueError."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ssmd import core
from ssmd.exceptions import ArchiveError, BusProtocolError, CoreError, DecodeError, SsmdError


def _bad_argument() -> object:
    return core.normalize_kalshi([b"{}"], [1, 2], 0)


def _bad_records() -> object:
    return core.decode_records(b"\x00\x01\x02garbage")


def _bad_archive() -> object:
    return core.ArchiveWriter(level=10_000)  # beyond zstd's levels


def _bad_server() -> object:
    return core.NatsProtocol("_R_.x.").receive(b"NONSENSE here\r\n")


@pytest.mark.parametrize(
    ("raise_it", "expected"),
    [
        (_bad_argument, CoreError),
        (_bad_records, DecodeError),
        (_bad_archive, ArchiveError),
        (_bad_server, BusProtocolError),
    ],
)
def test_each_kind_raises_its_class(raise_it: Callable[[], object], expected: type) -> None:
    with pytest.raises(CoreError) as info:
        raise_it()
    assert type(info.value) is expected
    assert isinstance(info.value, SsmdError) and isinstance(info.value, ValueError)
    assert str(info.value)  # the core's message, not an empty one

"""One capture of simulator data through the archiver per test session (datafix.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from _support.datafix import Capture, capture


@pytest.fixture(scope="session")
def captured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Capture]:
    yield capture(tmp_path_factory.mktemp("captured"))

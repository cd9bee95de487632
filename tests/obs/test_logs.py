"""Every structured log line names its component, however the component was started."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from ssmd.obs import logs
from ssmd.sim.server import DEMO_KEY_ID, KEYS_DIR
from ssmd.up.components import ssmd_argv

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in stream.getvalue().splitlines()]


def test_every_line_names_the_component_whatever_logger_wrote_it(
    root_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    logs.setup("INFO", component="archiver")
    logging.getLogger("ssmd.archiver.runner").info("sealed")
    logging.getLogger("nats.aio.client").warning("reconnecting")
    # a line about another component (ssmd up on a child) keeps that component
    logging.getLogger("ssmd.up").info("started", extra={"fields": {"component": "gateway"}})
    got = _lines(err)
    assert [(x["component"], x["logger"]) for x in got] == [
        ("archiver", "ssmd.archiver.runner"),
        ("archiver", "nats.aio.client"),
        ("gateway", "ssmd.up"),
    ]


def test_logs_follow_stderr_when_a_host_swaps_and_closes_it(
    root_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An in-process CLI runner sets up logging on its own stderr and closes it after;
    the records that come later go to the stderr of the moment, not into a closed file."""
    during = io.StringIO()
    monkeypatch.setattr(sys, "stderr", during)
    logs.setup("INFO", component="archiver")
    logging.getLogger("ssmd").info("while run")
    during.close()
    after = io.StringIO()
    monkeypatch.setattr(sys, "stderr", after)
    logging.getLogger("nats.aio.client").warning("later")
    assert [x["msg"] for x in _lines(after)] == ["later"]


def test_component_defaults_to_the_command_group(
    root_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert logs.command_group(["ssmd", "replay", "run", "--env", "x"]) == "replay"
    assert logs.command_group(["-c", "worker", "run"]) == "worker"
    assert logs.command_group(["ssmd"]) == "ssmd"
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(sys, "argv", ["ssmd", "mcp", "serve"])
    logs.setup("INFO")
    logging.getLogger("x").info("hello")
    assert _lines(err)[0]["component"] == "mcp"


@pytest.mark.parametrize(
    ("command", "component"),
    [
        (["connector", "run", "--health-port", "0"], "connector"),
        (["archiver", "run"], "archiver"),
        (["gateway", "run", "--port", "0"], "gateway"),
        (["market", "live"], "secmaster"),
    ],
)
def test_each_component_command_names_itself(
    tmp_path: Path, command: list[str], component: str
) -> None:
    """The command lines `ssmd up` runs, started on their own: their first log line (a
    NATS connection refused, here) carries their component."""
    env = os.environ | {
        "KALSHI_API_KEY": DEMO_KEY_ID,
        "KALSHI_PRIVATE_KEY_PATH": str(KEYS_DIR / "demo_private_key.pem"),
    }
    argv = [*ssmd_argv(), *command, "--env", "kalshi-sim", "--config-dir", str(REPO / "exchanges")]
    argv += ["--data-dir", str(tmp_path), "--nats-url", "nats://127.0.0.1:9"]
    with subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env) as proc:
        assert proc.stderr is not None
        try:
            first = proc.stderr.readline()  # bounded by pytest's timeout
        finally:
            proc.kill()
    line = orjson.loads(first)
    assert line["component"] == component, line

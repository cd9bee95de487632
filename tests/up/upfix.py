"""Helpers for the `ssmd up` tests: stand-in children, a recording display, waiting."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ssmd.up.children import ChildSpec, StopResult, Supervisor
from ssmd.up.display import Display
from ssmd.up.report import ArchiveReport
from ssmd.up.status import Figures

# A stand-in component. argv: out_dir name mode exit_code
#   mode "ok":       ready (writes its pid to NAME.ready), then waits; SIGTERM appends its
#                    name to out_dir/stopped and exits 0; SIGUSR1 exits with exit_code
#   mode "stubborn": the same, but it ignores SIGTERM
#   mode "boom":     writes "boom" on stderr and exits 3 before it is ready
CHILD = r"""
import os, signal, sys, pathlib
out, name, mode, code = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
if mode == "boom":
    print("boom: cannot start", file=sys.stderr, flush=True)
    sys.exit(3)
def term(*_):
    with (out / "stopped").open("a") as fh:
        fh.write(name + "\n")
    sys.exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN if mode == "stubborn" else term)
signal.signal(signal.SIGUSR1, lambda *_: sys.exit(code))
print('{"level":"info","msg":"ready"}', file=sys.stderr, flush=True)
(out / f"{name}.ready").write_text(str(os.getpid()))
while True:
    signal.pause()
"""


def child_spec(
    out: Path, name: str, sup: Supervisor, mode: str = "ok", code: int = 1, **kw: Any
) -> ChildSpec:
    """A ChildSpec of the stand-in; ready once the running process wrote its pid to NAME.ready."""

    async def ready() -> bool:
        child = sup.children.get(name)
        try:
            return child is not None and int((out / f"{name}.ready").read_text()) == child.pid
        except (FileNotFoundError, ValueError):
            return False

    return ChildSpec(
        name,
        [sys.executable, "-c", CHILD, str(out), name, mode, str(code)],
        ready=ready,
        ready_timeout=20.0,
        log_path=out / "logs" / f"{name}.log",
        **kw,
    )


class RecordingDisplay(Display):
    def __init__(self) -> None:
        super().__init__("test")
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self.lines: list[tuple[str, str, str]] = []
        self.figures: list[Figures] = []
        self.finals: list[tuple[ArchiveReport | None, list[StopResult], str | None]] = []

    def event(self, level: str, msg: str, fields: dict[str, Any]) -> None:
        self.events.append((level, msg, fields))

    def child_line(self, name: str, stream: str, line: str) -> None:
        self.lines.append((name, stream, line))

    def status(self, figures: Figures) -> None:
        self.figures.append(figures)

    def final(
        self, report: ArchiveReport | None, stops: list[StopResult], failure: str | None
    ) -> None:
        self.finals.append((report, stops, failure))

    def messages(self) -> list[str]:
        return [m for _, m, _ in self.events]


async def until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait for a condition, polling; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)

"""Helpers for the `ssmd up` tests: stand-in children, a recording display, waiting,
and `ssmd up` itself as a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from _support import ROOT
from ssmd import core
from ssmd.archiver.spool import spool_dir
from ssmd.up.children import ChildSpec, StopResult, Supervisor
from ssmd.up.display import Display
from ssmd.up.report import ArchiveReport
from ssmd.up.status import Figures
from ssmd.upstate import read_state

EXCHANGES = ROOT / "exchanges"
SSMD = str(Path(sys.executable).parent / "ssmd")

# A stand-in component. argv: out_dir name mode exit_code
#   mode "ok":       ready (writes its pid to NAME.ready), then waits; SIGTERM appends its
#                    name to out_dir/stopped and exits 0; SIGUSR1 exits with exit_code
#   mode "stubborn": the same, but it ignores SIGTERM
#   mode "badstop":  the same, but SIGTERM exits with exit_code
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
    sys.exit(code if mode == "badstop" else 0)
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
        self.finals: list[tuple[ArchiveReport | None, list[StopResult], list[str]]] = []

    def event(self, level: str, msg: str, fields: dict[str, Any]) -> None:
        self.events.append((level, msg, fields))

    def child_line(self, name: str, stream: str, line: str) -> None:
        self.lines.append((name, stream, line))

    def status(self, figures: Figures) -> None:
        self.figures.append(figures)

    def final(
        self, report: ArchiveReport | None, stops: list[StopResult], failures: list[str]
    ) -> None:
        self.finals.append((report, stops, failures))

    def messages(self) -> list[str]:
        return [m for _, m, _ in self.events]


def alive(record: dict[str, int]) -> bool:
    """True while the process a state file recorded ({"pid", "start"}) runs: the pid
    exists, is not a zombie, and started when recorded (it is not a reused pid)."""
    try:
        fields = Path(f"/proc/{record['pid']}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z" and int(fields[19]) == record["start"]


class UpProcess:
    """`ssmd up --env ENV` (kalshi-sim unless named) as a subprocess on `data`, the gateway
    on `port`.

    With `json_logs` its stderr lines are parsed as they come (`logs`); otherwise its
    stdout and stderr go to `output` (a file descriptor), as a terminal's would."""

    def __init__(self, data: Path, port: int, *extra: str, env: str = "kalshi-sim") -> None:
        self.data, self.port, self.extra, self.env = data, port, extra, env
        self.logs: list[dict[str, Any]] = []
        self.proc: asyncio.subprocess.Process | None = None
        self.children: dict[str, dict[str, int]] = {}  # the state file's, once ready
        self._reader: asyncio.Task[None] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, *, json_logs: bool = True, output: int | None = None) -> None:
        argv = [
            SSMD, "up", "--env", self.env, "--config-dir", str(EXCHANGES),
            "--data-dir", str(self.data), "--port", str(self.port), "--sim-markets", "40",
            *(["--json-logs"] if json_logs else []), *self.extra,
        ]  # fmt: skip
        self.proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL if json_logs else output,
            stderr=subprocess.PIPE if json_logs else output,
        )
        if json_logs:
            self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        async for line in self.proc.stderr:
            try:
                self.logs.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                self.logs.append({"msg": line.decode(errors="replace"), "level": "unparsed"})

    def find(self, msg: str, component: str | None = None) -> list[dict[str, Any]]:
        """The log records of `msg`; with `component`, only that child's (connector-kraken
        names a further venue's connector: the record's `child`)."""
        return [
            r
            for r in self.logs
            if r.get("msg") == msg
            and (component is None or r.get("child", r.get("component")) == component)
        ]

    def tail(self, n: int = 25) -> str:
        return "\n".join(orjson.dumps(r).decode()[:300] for r in self.logs[-n:])

    async def wait_ready(self, http: httpx.AsyncClient, timeout: float = 90) -> None:
        """Until the state file has the web page's URL (written when all is ready) and
        the gateway answers; then `children` holds the pids the state file records."""

        async def healthy() -> bool:
            try:
                return (await http.get(self.base + "/v1/health")).status_code == 200
            except httpx.HTTPError:
                return False

        def mine() -> dict[str, Any]:  # not the file of a killed run before this one
            state = read_state(self.data) or {}
            return state if self.proc is not None and state.get("pid") == self.proc.pid else {}

        deadline = time.monotonic() + timeout
        while not (mine().get("web_url") and await healthy()):
            assert self.proc is not None and self.proc.returncode is None, self.tail()
            assert time.monotonic() < deadline, "not ready\n" + self.tail()
            await asyncio.sleep(0.1)
        self.children = mine()["children"]

    async def stop(self, sig: int = signal.SIGINT, timeout: float = 90) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        if self._reader is not None:
            await self._reader
        return code

    async def exited(self, timeout: float = 90) -> int:
        """The exit code of a run that ends by itself, once its logs are all read."""
        assert self.proc is not None
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        if self._reader is not None:
            await self._reader
        return code

    async def ensure_gone(self) -> None:
        """After a failure: stop `ssmd up`, and anything it left, by the pids it recorded."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.proc.wait(), 60)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        for record in self.children.values():
            if alive(record):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(record["pid"], signal.SIGKILL)


def raw_lines(
    data: Path, env: str = "kalshi-sim", feed: str | None = None, *, venue: bool = False
) -> list[bytes]:
    """Every raw line archived for `env` (only `feed`'s when given; `venue`: that feed is
    one of the environment's spec.venues): sealed objects and the archiver's spool."""
    sealed = data / "raw" / env
    blobs = sorted((sealed / feed if feed else sealed).rglob("*.jsonl.zst"))
    spool = spool_dir(data, env, feed if venue else None) / "files" / "raw"
    blobs += sorted(spool.rglob("*.spool"))
    lines: list[bytes] = []
    for path in blobs:
        lines.extend(core.read_archive(path.read_bytes()).data.splitlines())
    return lines

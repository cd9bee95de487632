"""Child processes of `ssmd up`: start, wait until ready, watch, restart, stop in time.

Each component runs as its own process (its own CLI), so the two cores are both
used and a crash takes down one component, not the whole system. Children get a
session of their own: a Ctrl-C in the terminal reaches `ssmd up` only, which then
stops them in order (the archiver must not stop before the connector drained).
Each child gets SIGTERM from the kernel if `ssmd up` dies without stopping it
(ssmd.up.procs): children never outlive it.

Policy for a child that exits while it should be running (docs/up.md):
  - exit code 2 or 3 (configuration, authentication or storage error): a restart
    cannot fix it; `ssmd up` stops everything and says why;
  - anything else (a crash, a signal, an unexpected exit 0/1): restarted after a
    backoff (1 s, doubling, at most 30 s), and reported loudly; more than
    `max_restarts` restarts within `restart_window` seconds is fatal too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TextIO

from ssmd.exceptions import ChildFailed
from ssmd.up.procs import die_with_parent, identity

__all__ = [
    "FATAL_EXIT_CODES",
    "Child",
    "ChildSpec",
    "LineSink",
    "StopResult",
    "Supervisor",
]

log = logging.getLogger(__name__)

FATAL_EXIT_CODES: Final = frozenset({2, 3})
LOG_ROTATE_BYTES: Final = 16 << 20  # a log file this big is moved to .1 when the child starts

# (child name, "stdout" | "stderr", line without its newline)
LineSink = Callable[[str, str, str], None]


@dataclass
class ChildSpec:
    name: str
    argv: list[str]
    env: dict[str, str] | None = None  # added to this process's environment
    ready: Callable[[], Awaitable[bool]] | None = None  # polled until True
    ready_timeout: float = 60.0
    stop_timeout: float = 25.0  # SIGTERM, then SIGKILL after this long
    restart: bool = True
    log_path: Path | None = None  # every line the child writes, appended
    json_logs: bool = True  # stderr lines are ssmd.obs.logs JSON objects
    capture_stdout: bool = False  # keep stdout (a one-shot command's report) instead of logging it


@dataclass(frozen=True)
class StopResult:
    name: str
    returncode: int | None
    seconds: float
    killed: bool  # did not exit within stop_timeout after SIGTERM
    already_exited: bool = False  # it was not running when the stop came

    @property
    def failure(self) -> str | None:
        """What went wrong with this stop, or None for a clean one."""
        if self.killed:
            return "did not exit within its stop timeout and was killed"
        clean = (0, -signal.SIGTERM)  # nats-server ends by the signal itself
        if self.already_exited or self.returncode is None or self.returncode in clean:
            return None
        return f"exited with code {self.returncode} when stopped"

    def as_dict(self) -> dict[str, object]:
        return {
            "component": self.name,
            "exit_code": self.returncode,
            "seconds": round(self.seconds, 2),
            "killed": self.killed,
        }


def _rotate(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_size > LOG_ROTATE_BYTES:
            os.replace(path, path.with_name(path.name + ".1"))


class Child:
    """One process of a spec; `start()` again after it exited runs a new one."""

    def __init__(self, spec: ChildSpec, sink: LineSink | None = None) -> None:
        self.spec = spec
        self.sink = sink
        self.proc: asyncio.subprocess.Process | None = None
        self.tail: deque[str] = deque(maxlen=30)  # last lines, for error reports
        self.stdout: list[str] = []
        self.starts = 0
        self.stopping = False
        self._pumps: list[asyncio.Task[None]] = []

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> None:
        spec = self.spec
        env = None if spec.env is None else {**os.environ, **spec.env}
        log_file = None
        if spec.log_path is not None:
            spec.log_path.parent.mkdir(parents=True, exist_ok=True)
            _rotate(spec.log_path)
            log_file = open(spec.log_path, "a", buffering=1)  # noqa: SIM115 - closed by the pumps
        self.stdout = []
        self.stopping = False
        self.proc = await asyncio.create_subprocess_exec(
            *spec.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            start_new_session=True,
            preexec_fn=die_with_parent(),
            limit=1 << 20,  # one log line may list every market of a shard
        )
        self.starts += 1
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._pumps = [
            asyncio.create_task(self._pump(self.proc.stdout, "stdout", log_file)),
            asyncio.create_task(self._pump(self.proc.stderr, "stderr", log_file)),
        ]
        if log_file is not None:
            closer = asyncio.gather(*self._pumps, return_exceptions=True)
            closer.add_done_callback(lambda _f: log_file.close())

    async def _pump(
        self, stream: asyncio.StreamReader, which: str, log_file: TextIO | None
    ) -> None:
        # Always drained: a child blocked on a full pipe would look hung.
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # a line beyond the reader's limit: take what is there
                raw = await stream.read(1 << 16)
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if log_file is not None:
                log_file.write(line + "\n")
            if which == "stdout" and self.spec.capture_stdout:
                self.stdout.append(line)
                continue
            self.tail.append(line)
            if self.sink is not None:
                self.sink(self.name, which, line)

    async def wait(self) -> int:
        """The exit code, once the process exited and its output was read."""
        assert self.proc is not None
        code = await self.proc.wait()
        await asyncio.gather(*self._pumps, return_exceptions=True)
        return code

    async def wait_ready(self) -> None:
        """Poll the spec's readiness check until it passes; ChildFailed if the process
        exits first or the check does not pass within ready_timeout."""
        check = self.spec.ready
        if check is None:
            return
        deadline = time.monotonic() + self.spec.ready_timeout
        while True:
            if not self.running:
                code = await self.wait()
                raise ChildFailed(
                    self.name, f"exited with code {code} while starting", self.lines()
                )
            if await check():
                return
            if time.monotonic() >= deadline:
                raise ChildFailed(
                    self.name, f"not ready within {self.spec.ready_timeout:g} s", self.lines()
                )
            await asyncio.sleep(0.1)  # the poll interval of the check, not a synchronization

    def lines(self) -> list[str]:
        return list(self.tail)

    def signal(self, sig: int) -> None:
        if self.running and self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)

    async def stop(self, timeout: float | None = None) -> StopResult:
        """SIGTERM, wait up to `timeout` (default: the spec's), then SIGKILL."""
        self.stopping = True
        limit = self.spec.stop_timeout if timeout is None else timeout
        t0 = time.monotonic()
        if not self.running:
            code = await self.wait() if self.proc is not None else None
            return StopResult(self.name, code, 0.0, False, already_exited=True)
        self.signal(signal.SIGTERM)
        killed = False
        try:
            code = await asyncio.wait_for(asyncio.shield(self.wait()), limit)
        except TimeoutError:
            killed = True
            self.signal(signal.SIGKILL)
            code = await self.wait()
        return StopResult(self.name, code, time.monotonic() - t0, killed)


@dataclass
class _Restarts:
    times: deque[float] = field(default_factory=deque)


class Supervisor:
    """Children in start order; watches each and applies the restart policy.

    `on_event(level, message, fields)` hears about exits, restarts and failures.
    `failed` is set (and `failure` says why) when a child cannot be kept running.
    """

    def __init__(
        self,
        on_event: Callable[[str, str, dict[str, object]], None],
        sink: LineSink | None = None,
        *,
        backoff: float = 1.0,
        backoff_cap: float = 30.0,
        max_restarts: int = 5,
        restart_window: float = 600.0,
    ) -> None:
        self.on_event, self.sink = on_event, sink
        self.backoff, self.backoff_cap = backoff, backoff_cap
        self.max_restarts, self.restart_window = max_restarts, restart_window
        self.children: dict[str, Child] = {}
        self.failed = asyncio.Event()
        self.failure: ChildFailed | None = None
        self.restarted: dict[str, int] = {}
        self.unexpected: dict[str, list[int]] = {}  # exit codes while it should have run
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._restarts: dict[str, _Restarts] = {}
        self._closing = False

    async def launch(self, spec: ChildSpec) -> Child:
        """Start a long-running child, wait until it is ready, then watch it."""
        child = Child(spec, self.sink)
        self.children[spec.name] = child
        await child.start()
        self.on_event("info", "component started", {"component": spec.name, "pid": child.pid})
        try:
            await child.wait_ready()
        except BaseException:
            await child.stop(5.0)
            raise
        self.on_event("info", "component ready", {"component": spec.name, "pid": child.pid})
        self._watchers[spec.name] = asyncio.create_task(self._watch(child), name=spec.name)
        return child

    async def run_once(self, spec: ChildSpec, timeout: float) -> Child:
        """Run a one-shot child (a command) to its end; ChildFailed unless it exits 0."""
        child = Child(spec, self.sink)
        await child.start()
        try:
            code = await asyncio.wait_for(child.wait(), timeout)
        except TimeoutError:
            await child.stop(5.0)
            raise ChildFailed(
                spec.name, f"did not finish within {timeout:g} s", child.lines()
            ) from None
        except asyncio.CancelledError:
            await child.stop(5.0)
            raise
        if code != 0:
            raise ChildFailed(spec.name, f"exited with code {code}", child.lines())
        return child

    async def _watch(self, child: Child) -> None:
        while True:
            code = await child.wait()
            if child.stopping or self._closing:
                return
            self.unexpected.setdefault(child.name, []).append(code)
            fields: dict[str, object] = {
                "component": child.name,
                "exit_code": code,
                "last_lines": child.lines()[-5:],
            }
            if code in FATAL_EXIT_CODES or not child.spec.restart:
                self._fail(child, f"exited with code {code}", fields)
                return
            history = self._restarts.setdefault(child.name, _Restarts()).times
            now = time.monotonic()
            while history and now - history[0] > self.restart_window:
                history.popleft()
            if len(history) >= self.max_restarts:
                self._fail(
                    child,
                    f"exited with code {code} after {len(history)} restarts "
                    f"within {self.restart_window:g} s",
                    fields,
                )
                return
            delay = min(self.backoff_cap, self.backoff * 2 ** len(history))
            history.append(now)
            self.on_event(
                "error",
                "component exited unexpectedly; restarting",
                {**fields, "restart_in_s": delay},
            )
            await asyncio.sleep(delay)
            if self._closing:
                return
            try:
                await child.start()
                self.restarted[child.name] = self.restarted.get(child.name, 0) + 1
                await child.wait_ready()
            except ChildFailed as exc:
                if not self._closing:
                    self._fail(
                        child, exc.why, {"component": child.name, "last_lines": exc.tail[-5:]}
                    )
                return
            except OSError as exc:  # could not even start it (binary gone, no fds)
                self._fail(child, f"could not be restarted: {exc}", {"component": child.name})
                return
            self.on_event("warning", "component restarted", {"component": child.name})

    def _fail(self, child: Child, why: str, fields: dict[str, object]) -> None:
        self.on_event("error", f"{why}; stopping everything", fields)
        if self.failure is None:
            self.failure = ChildFailed(child.name, why, child.lines())
        self.failed.set()

    async def stop(self, name: str, timeout: float | None = None) -> StopResult | None:
        """Stop one child (no restart follows); None if it was never launched."""
        child = self.children.get(name)
        if child is None:
            return None
        watcher = self._watchers.pop(name, None)
        child.stopping = True
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        result = await child.stop(timeout)
        level = "error" if result.killed else "info"
        what = "component killed: it did not exit in time" if result.killed else "component stopped"
        self.on_event(level, what, result.as_dict())
        return result

    def close(self) -> None:
        """From now on exits are expected: no restarts, no failures."""
        self._closing = True

    def processes(self) -> dict[str, dict[str, Any]]:
        """The running children as the state file records them (ssmd.up.procs.identity)."""
        found = {n: identity(c.pid) for n, c in self.children.items() if c.pid and c.running}
        return {n: record for n, record in found.items() if record is not None}

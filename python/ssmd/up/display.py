"""What `ssmd up` prints: a live rich status for people, or JSON lines for a supervisor.

Both get the same calls: `event` (ssmd up's own news), `child_line` (a line a child
wrote), `status` (fresh figures) and `final` (the shutdown report).

JSON mode (`--json-logs`): one JSON object per line on stderr, as ssmd.obs.logs
writes them; children's lines pass through with a `component` field added (lines
that are not JSON, such as nats-server's, are wrapped), and the figures are logged
as a `status` line every `status_every` seconds.

Console mode: on a terminal, a live panel redrawn every second; children's
warnings and errors are printed above it (everything they write is in
`{data dir}/logs/`). Not on a terminal, a status line every `status_every` seconds.

Output that can no longer be written (`ssmd up | tee log` after tee died, a closed
terminal) is dropped, never raised: `ssmd up` must go on stopping its children.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import sys
import time
from collections.abc import Iterator
from typing import Any

import orjson
from rich.console import Console

from ssmd.tables import write_table
from ssmd.up.children import StopResult
from ssmd.up.report import ArchiveReport
from ssmd.up.status import Figures, human_bytes, render

__all__ = ["ConsoleDisplay", "Display", "JsonDisplay", "line_level"]

log = logging.getLogger("ssmd.up")

_LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}
ONE_SHOT = frozenset({"secmaster-sync"})
_NATS_LEVELS = {"[WRN]": "warning", "[ERR]": "error", "[FTL]": "critical"}


def silence_lost_outputs() -> None:
    """Point stdout and stderr at /dev/null if what they lead to is gone (a pipe with no
    reader, a terminal that hung up), so that later writes, logging's and the
    interpreter's last flush at exit included, cannot fail."""
    devnull: int | None = None
    for fd in (1, 2):  # the process's stdout and stderr
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        try:
            events = poller.poll(0)
        except OSError:
            continue
        if any(mask & (select.POLLERR | select.POLLHUP) for _, mask in events):
            if devnull is None:
                devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
    if devnull is not None:
        os.close(devnull)


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # rich's default exits the process; `ssmd up` goes on without its output.
        self.quiet = True
        silence_lost_outputs()


def line_level(line: str) -> tuple[str, dict[str, Any] | None]:
    """(level, the parsed JSON object or None) of a child's output line."""
    if line.startswith("{"):
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            return str(obj.get("level", "info")).lower(), obj
    for tag, level in _NATS_LEVELS.items():
        if tag in line[:60]:
            return level, None
    if line.startswith(("INFO", "DEBUG")) or "[INF]" in line[:60] or "[DBG]" in line[:60]:
        return "info", None
    # Plain text on stderr from a Python child is a traceback or an error message.
    return "warning", None


class Display:
    def __init__(self, env: str, status_every: float = 10.0) -> None:
        self.env = env
        self.status_every = status_every
        self.stopping = False  # set when the ordered stop begins
        self._last_status = 0.0

    def start(self) -> None:
        """Begin output (after logging is set up)."""

    def event(self, level: str, msg: str, fields: dict[str, Any]) -> None:
        raise NotImplementedError

    def child_line(self, name: str, stream: str, line: str) -> None:
        raise NotImplementedError

    def status(self, figures: Figures) -> None:
        raise NotImplementedError

    def final(
        self, report: ArchiveReport | None, stops: list[StopResult], failures: list[str]
    ) -> None:
        """The end of the run: what was archived, how each component stopped, and
        every component that failed (empty when none did)."""
        raise NotImplementedError

    def close(self) -> None:
        """End output (idempotent)."""

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        try:
            yield
        except OSError:  # the reader is gone: drop this output and any after it
            silence_lost_outputs()

    def _due(self) -> bool:
        now = time.monotonic()
        if now - self._last_status >= self.status_every:
            self._last_status = now
            return True
        return False


class JsonDisplay(Display):
    def event(self, level: str, msg: str, fields: dict[str, Any]) -> None:
        with self._writing():
            log.log(_LEVELS.get(level, 20), msg, extra={"fields": fields})

    def child_line(self, name: str, stream: str, line: str) -> None:
        with self._writing():
            self._child_line(name, stream, line)

    def _child_line(self, name: str, stream: str, line: str) -> None:
        level, obj = line_level(line)
        if obj is None:
            obj = {
                "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
                + f".{int(time.time() * 1000) % 1000:03d}Z",
                "level": level if stream == "stderr" else "info",
                "logger": "ssmd.up.output",
                "msg": line,
            }
        if obj.setdefault("component", name) != name:
            obj["child"] = name  # a further venue's: connector-kraken logs as the connector
        sys.stderr.write(orjson.dumps(obj, default=str).decode() + "\n")
        sys.stderr.flush()

    def status(self, figures: Figures) -> None:
        if self._due():
            with self._writing():
                log.info("status", extra={"fields": figures.as_dict()})

    def final(
        self, report: ArchiveReport | None, stops: list[StopResult], failures: list[str]
    ) -> None:
        with self._writing():
            if report is not None:
                log.info(
                    "archive report",
                    extra={"fields": {**report.as_dict(), "summary": report.summary()}},
                )
            log.log(
                40 if failures else 20,
                "ssmd up stopped",
                extra={
                    "fields": {"failures": failures, "components": [s.as_dict() for s in stops]}
                },
            )


class ConsoleDisplay(Display):
    def __init__(self, env: str, status_every: float = 10.0) -> None:
        super().__init__(env, status_every)
        self.console = _Console(highlight=False)
        # Piped or logged, a line stays one line: only a terminal's width folds it.
        self.console.soft_wrap = not self.console.is_terminal
        self.live: Any = None
        self._figures = Figures()

    def start(self) -> None:
        if self.console.is_terminal:
            from rich.live import Live

            self.live = Live(
                render(self._figures, self.env),
                console=self.console,
                refresh_per_second=2,
                transient=False,
            )
            with self._writing():
                self.live.start()

    def _print(self, text: str, style: str | None = None) -> None:
        with self._writing():
            self.console.print(text, style=style, markup=False)

    def event(self, level: str, msg: str, fields: dict[str, Any]) -> None:
        comp = fields.get("component")
        shown = {k: v for k, v in fields.items() if k not in ("component", "last_lines")}
        extra = " ".join(f"{k}={v}" for k, v in shown.items())
        text = f"{comp}: {msg}" if comp else msg
        style = {"warning": "yellow", "error": "bold red", "critical": "bold red"}.get(level)
        self._print(f"{text} {extra}".rstrip(), style)
        if self.stopping and self.live is not None:
            with self._writing():
                self.live.update(render(self._figures, self.env, True))
        for line in fields.get("last_lines") or []:
            self._print(f"    {line}", "red")

    def child_line(self, name: str, stream: str, line: str) -> None:
        level, obj = line_level(line)
        # Only errors from a one-shot command and while stopping: closing a NATS
        # connection, for one, logs a warning that means nothing then.
        one_shot = any(name == n or name.startswith(n + "-") for n in ONE_SHOT)  # a venue's too
        floor = 40 if self.stopping or one_shot else 30
        if _LEVELS.get(level, 20) < floor:
            return
        msg = str(obj.get("msg", line)) if obj else line
        self._print(f"{name}: {level}: {msg}", "yellow" if level == "warning" else "red")

    def status(self, figures: Figures) -> None:
        self._figures = figures
        if self.live is not None:
            with self._writing():
                self.live.update(render(figures, self.env, self.stopping))
        elif self._due():
            self._print(
                f"{int(figures.markets_subscribed)} markets, "
                f"{figures.received_per_s:,.0f} frames/s in, "
                f"{figures.published_per_s:,.0f} messages/s published, "
                f"{int(figures.archived):,} archived ({int(figures.spool_records):,} spooled), "
                f"{int(figures.files_sealed)} files sealed, gaps {int(figures.gaps)}, "
                f"clients {'n/a' if figures.gateway_clients is None else int(figures.gateway_clients)}"
            )

    def close(self) -> None:
        if self.live is not None:
            live, self.live = self.live, None
            with self._writing():
                live.stop()

    def final(
        self, report: ArchiveReport | None, stops: list[StopResult], failures: list[str]
    ) -> None:
        self.close()
        from rich.table import Table

        if report is not None:
            t = Table(title=f"archive of {self.env} ({', '.join(report.days) or 'no data'})")
            by_feed = len(report.feeds) > 1  # an environment capturing several venues
            head = ("feed", "data type") if by_feed else ("data type",)
            for col in (*head, "sealed records", "sealed files", "bytes", "spooled records"):
                t.add_column(col, justify="left" if col in head else "right")
            for r in report.rows:
                t.add_row(
                    *((r["feed"],) if by_feed else ()),
                    r["data_type"],
                    f"{r['sealed_records']:,}",
                    f"{r['files']:,}",
                    human_bytes(r["bytes"]),
                    f"{r['spooled_records']:,}",
                )
            with self._writing():
                write_table(self.console, t)
            self._print(report.summary())
        if failures:
            self._print("ssmd up stopped; failed: " + "; ".join(failures), "bold red")
        else:
            self._print("ssmd up stopped")

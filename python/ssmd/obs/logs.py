"""Structured logs: one JSON object per line on stderr, each naming its component.

Every command that runs a component calls `setup(level, component=...)`, so a line says
which component wrote it however the component was started (on its own, under
`ssmd up`, under systemd or in a container) and whatever logger (ours, uvicorn's,
nats-py's) wrote it. A line about another component (`ssmd up` reporting on a child)
names that one in its fields, which win.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

import orjson

__all__ = ["JsonFormatter", "command_group", "setup"]


def command_group(argv: list[str]) -> str:
    """The first word after the program that is not an option: `ssmd gateway run` ->
    "gateway"; "ssmd" when there is none."""
    return next((a for a in argv[1:] if not a.startswith("-")), "ssmd")


class JsonFormatter(logging.Formatter):
    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "component": self.component,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            out.update(extra)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to the process's stderr as it is when a record comes, not as it was at
    setup: a host that swaps stderr (an in-process CLI runner, a test) and closes its
    own must not leave the logs writing into a closed file."""

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def setup(level: str = "INFO", *, component: str | None = None) -> None:
    """JSON lines on stderr for the whole process; `component` defaults to the command
    group that runs (`ssmd replay ...` -> "replay")."""
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter(component or command_group(sys.argv)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("websockets").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)

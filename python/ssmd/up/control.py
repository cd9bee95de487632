"""Start and stop one component of a running `ssmd up` from another process (`ssmd tui`).

`ssmd up` listens on the Unix socket `{data}/up/control.sock` (owner-only, like the data
directory's other files) once everything is ready, and names it in its state file
(`control`). A request is one JSON line, `{"action": "stop"|"start", "component": NAME}`;
the answer is one JSON line, `{"ok": bool, "result": ...}` or `{"ok": false, "error": ...}`.

A component stopped this way stays stopped (no restart) until it is started again; the
ordered stop of `ssmd up` goes on as usual. NATS and the simulator are not controlled:
everything else depends on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final, TypeGuard

import orjson

from ssmd.exceptions import ControlError
from ssmd.up.components import split_child_name

__all__ = ["CONTROLLED", "ControlServer", "controlled", "request", "socket_path"]

CONTROLLED: Final = ("connector", "archiver", "secmaster", "gateway")
ACTIONS: Final = ("start", "stop")
MAX_LINE: Final = 4096
READ_TIMEOUT: Final = 5.0  # seconds for a client to send its request line

Handler = Callable[[str, str], Awaitable[dict[str, Any]]]

log = logging.getLogger(__name__)


def socket_path(data_dir: Path) -> Path:
    return Path(data_dir) / "up" / "control.sock"


def controlled(name: object) -> TypeGuard[str]:
    """Whether `name` is a component started and stopped on request: one of CONTROLLED,
    or a further venue's (`connector-kraken`)."""
    return isinstance(name, str) and split_child_name(name)[0] in CONTROLLED


def _check(doc: Any) -> tuple[str, str] | str:
    """(action, component) of a request, or what is wrong with it."""
    if not isinstance(doc, dict):
        return 'a request is a JSON object {"action": ..., "component": ...}'
    action, name = doc.get("action"), doc.get("component")
    if action not in ACTIONS:
        return f"action must be one of {', '.join(ACTIONS)}; got {action!r}"
    if not controlled(name):
        return (
            f"component must be one of {', '.join(CONTROLLED)}, or a further venue's "
            f"(connector-kraken); got {name!r}"
        )
    return action, name


class ControlServer:
    """The socket; `handler(action, component)` does the work, one request at a time."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path, self.handler = path, handler
        self._server: asyncio.Server | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a killed run's socket: nobody listens on it
        self._server = await asyncio.start_unix_server(self._handle, self.path, limit=MAX_LINE)
        os.chmod(self.path, 0o600)

    async def stop(self) -> None:
        """Stop accepting, then wait for the action in progress, if any, to finish (so that
        `ssmd up`'s ordered stop never runs while a component is being started)."""
        self._closed = True
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        async with self._lock:
            pass
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                async with asyncio.timeout(READ_TIMEOUT):
                    line = await reader.readline()
                checked = _check(orjson.loads(line))
            except (TimeoutError, ValueError, orjson.JSONDecodeError) as exc:
                checked = f"unreadable request: {exc}"
            if isinstance(checked, str):
                answer: dict[str, Any] = {"ok": False, "error": checked}
            else:
                async with self._lock:
                    try:
                        if self._closed:
                            answer = {"ok": False, "error": "ssmd up is stopping everything"}
                        else:
                            answer = await self.handler(*checked)
                    except Exception as exc:  # answered, and ssmd up goes on
                        log.exception("control: %s %s failed", *checked)
                        answer = {"ok": False, "error": f"{checked[1]}: {exc}"}
            writer.write(orjson.dumps(answer) + b"\n")
            await writer.drain()
        except ConnectionError:
            pass  # the client went away; the action, if any, was done
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def request(
    path: Path, action: str, component: str, timeout: float = 360.0
) -> dict[str, Any]:
    """Ask the `ssmd up` listening on `path`; its answer. ControlError when it does not
    answer (not running, or an older `ssmd up` without the socket). `timeout` covers a
    component's whole start (the archiver may take minutes to seal what came due)."""
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_unix_connection(path, limit=1 << 16)
            try:
                writer.write(orjson.dumps({"action": action, "component": component}) + b"\n")
                await writer.drain()
                line = await reader.readline()
            finally:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
    except TimeoutError:
        raise ControlError(f"ssmd up did not answer within {timeout:g} s at {path}") from None
    except OSError as exc:
        raise ControlError(
            f"ssmd up does not answer at {path} ({exc.strerror or exc}). Fix: is `ssmd up` "
            "running on this data directory?"
        ) from None
    try:
        answer: dict[str, Any] = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise ControlError(f"ssmd up closed {path} without an answer") from None
    return answer

"""What the venue simulators that serve a WebSocket and REST on one port share
(ssmd.sim.polymarket, ssmd.sim.kraken): start and stop as an async context manager, the
port and URLs, pausing the order flow, faults on a schedule, and the frames sent per
connection as ground truth. A venue's simulator says its WebSocket path, its background
tasks (`_background`), how a connection is served (`_handler`), its REST answers
(`_process_request`) and how a fault is applied (`inject`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, ClassVar, Self

from websockets.http11 import Request, Response

from ssmd.sim.wsshell import SimServer, SimSocket, serve

__all__ = ["VenueServer"]


class VenueServer:
    """Async context manager; `ws_url` and `rest_url` are valid once entered."""

    ws_path: ClassVar[str]

    def __init__(
        self,
        *,
        host: str,
        port: int,
        rate: float | None,
        record_frames: bool,
        faults: list[tuple[float, str]] | None,
    ) -> None:
        self.host = host
        self._port = port
        self.rate = rate
        self.record_frames = record_frames
        self._scheduled = sorted(faults or [])
        self._server: SimServer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # Ground truth.
        self.frames: dict[int, list[bytes]] = {}
        self.frames_sent: dict[int, int] = {}
        self.faults_applied: list[tuple[str, int, str]] = []
        self.connections_opened = 0
        self.events = 0

    # ---- what a venue says -----------------------------------------------------------
    def _background(self) -> list[Coroutine[Any, Any, None]]:
        """The tasks that run while the simulator does (the order flow, keep-alives)."""
        return []

    async def _handler(self, ws: SimSocket) -> None:
        raise NotImplementedError

    def _process_request(self, request: Request) -> Response | None:
        raise NotImplementedError

    def inject(self, kind: str, connection: int | None = None) -> None:
        """Applies a fault to one connection (by number) or to every open one."""
        raise NotImplementedError

    # ---- lifecycle -------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._server is not None, "the simulator is not running"
        return self._server.port

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}{self.ws_path}"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        self._server = await serve(
            self._handler, self._process_request, self.host, self._port, max_queue=64
        )
        work = self._background()
        if self._scheduled:
            work.append(self._fault_schedule())
        self._tasks = [asyncio.create_task(w) for w in work]

    async def _cancel_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    async def pause(self) -> None:
        """Stops the order flow (connections stay open and keep answering)."""
        self.rate = None
        await self._cancel_tasks()

    async def stop(self) -> None:
        await self._cancel_tasks()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _fault_schedule(self) -> None:
        start = time.monotonic()
        for at, kind in self._scheduled:
            await asyncio.sleep(max(0.0, start + at - time.monotonic()))
            self.inject(kind)

    async def _write(self, ws: SimSocket, number: int, text: str) -> bool:
        """Send one frame on connection `number` and count it in the ground truth;
        False when the connection is gone and the frame was not sent."""
        if not await ws.send(text):
            return False
        self.frames_sent[number] = self.frames_sent.get(number, 0) + 1
        if self.record_frames:
            self.frames.setdefault(number, []).append(text.encode())
        return True

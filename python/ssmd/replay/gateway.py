"""The `gateway` target: the `nats` target plus a gateway on the replay's stream, the
same /v1/stream and REST as live (ssmd.gateway, unchanged).

API keys are the live environment's (`gateway_api_keys`); without them the gateway
serves loopback only, as `ssmd gateway run` does. Markets come from what the replay
stream carries, not from the live security master (which knows today's markets, not
the archived day's).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from typing import Any

from ssmd.config import ResolvedEnvironment
from ssmd.gateway import Gateway, GatewaySettings
from ssmd.replay.nats import NatsTarget
from ssmd.replay.source import Entry

__all__ = ["GatewayTarget"]


class GatewayTarget:
    def __init__(
        self,
        env: ResolvedEnvironment,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        insecure_no_auth: bool = False,
    ) -> None:
        self.nats = NatsTarget(env)
        settings = GatewaySettings.from_environment(
            env, host=host, port=port, insecure_no_auth=insecure_no_auth
        )
        self.gateway = Gateway(replace(settings, store=None))
        self._server: Any = None
        self._serving: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The port the gateway listens on (once started)."""
        assert self._server is not None
        return int(self._server.servers[0].sockets[0].getsockname()[1])

    async def start(self) -> None:
        await self.nats.start()
        await self.gateway.start()  # fails before listening when the stream does not fit
        self._server = self.gateway.server()
        self._serving = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._serving.done():
                self._serving.result()  # the port is taken: say so
                raise RuntimeError("the gateway stopped while starting")
            await asyncio.sleep(0.01)

    async def ready(self) -> None:
        """The clock starts at once."""

    async def books(self, records: list[tuple[str, bytes]]) -> None:
        await self.nats.books(records)

    async def send(self, entries: list[Entry]) -> None:
        await self.nats.send(entries)

    async def stop(self) -> bool:
        flushed = await self.nats.stop()
        if self._server is not None:
            self._server.should_exit = True
        if self._serving is not None:
            with contextlib.suppress(Exception):
                await self._serving
        await self.gateway.stop()
        return flushed

    def state(self) -> dict[str, Any]:
        return {**self.nats.state(), "gateway": f"http://{self.gateway.settings.host}:{self.port}"}

"""A tiny TCP forwarder in the test's event loop that the test can cut and restore.

    proxy = TcpProxy("127.0.0.1", moto_port)
    await proxy.start()          # listens on 127.0.0.1:proxy.port
    proxy.cut()                  # every connection reset; new ones reset at once
    proxy.restore()              # forwards again
    proxy.hold()                 # stops reading what clients send; restore() resumes
    await proxy.close()

A cut connection is reset (RST), not closed politely, as when a network path dies and
a middlebox answers; `refused` counts the connections reset while cut.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

__all__ = ["TcpProxy"]

_CHUNK = 64 * 1024


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST: linger 0, then drop without flushing."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class TcpProxy:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.broken = False
        self.forwarded = 0  # connections forwarded
        self.refused = 0  # connections reset while cut
        self._server: asyncio.Server | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._flowing = asyncio.Event()  # cleared by hold(): client bytes wait in the sockets
        self._flowing.set()

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    def cut(self) -> None:
        self.broken = True
        for client, upstream in list(self._pairs):
            _reset(client)
            _reset(upstream)
        self._pairs.clear()

    def restore(self) -> None:
        self.broken = False
        self._flowing.set()

    def hold(self) -> None:
        """Stop reading what clients send, connections kept open: their writes back up
        in the sockets, as in front of a stalled server."""
        self._flowing.clear()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.broken:
            self.refused += 1
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)
            return
        if self.broken:  # cut while connecting
            self.refused += 1
            _reset(writer)
            _reset(up_writer)
            return
        self.forwarded += 1
        pair = (writer, up_writer)
        self._pairs.add(pair)
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer, self._flowing)),
            asyncio.create_task(self._pump(up_reader, writer)),
        ]
        for task in pumps:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        if pair in self._pairs:  # one side ended: end the other (a cut already reset both)
            self._pairs.discard(pair)
            for w in pair:
                with contextlib.suppress(OSError):
                    w.close()
        for task in pumps:
            task.cancel()

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        flowing: asyncio.Event | None = None,
    ) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while True:
                if flowing is not None:
                    await flowing.wait()
                data = await reader.read(_CHUNK)
                if not data:
                    break
                writer.write(data)
                await writer.drain()

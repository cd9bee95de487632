"""The control socket of `ssmd up` (ssmd.up.control): one JSON request line, one answer
line; bad requests answered with what is wrong and never handed on; owner-only; a
client finding nobody there gets an error naming the socket."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from _support.upfix import RecordingDisplay
from ssmd.exceptions import ControlError
from ssmd.up.components import Plan
from ssmd.up.control import ControlServer, request, socket_path
from ssmd.up.run import Up, UpOptions


async def test_requests_reach_the_handler_one_at_a_time(tmp_path: Path) -> None:
    calls: list[tuple[str, str]] = []
    busy = 0

    async def handler(action: str, name: str) -> dict[str, Any]:
        nonlocal busy
        busy += 1
        assert busy == 1, "two requests handled at once"
        await asyncio.sleep(0.05)  # a stop takes a while; the next request waits
        calls.append((action, name))
        busy -= 1
        return {"ok": True, "result": f"{action} {name}"}

    server = ControlServer(socket_path(tmp_path), handler)
    await server.start()
    try:
        assert stat.S_IMODE(server.path.stat().st_mode) == 0o600
        answers = await asyncio.gather(
            request(server.path, "stop", "connector"), request(server.path, "start", "gateway")
        )
        assert answers == [
            {"ok": True, "result": "stop connector"},
            {"ok": True, "result": "start gateway"},
        ]
        bad = await request(server.path, "restart", "connector")
        assert bad["ok"] is False and "start, stop" in bad["error"]
        bad = await request(server.path, "stop", "nats")
        assert bad["ok"] is False and "connector, archiver, secmaster, gateway" in bad["error"]
        bad = await request(server.path, "stop", "nats-kraken")
        assert bad["ok"] is False and "a further venue's" in bad["error"]
        # A further venue's component is one too: the handler knows which are there.
        venue = await request(server.path, "stop", "connector-kraken")
        assert venue == {"ok": True, "result": "stop connector-kraken"}
        reader, writer = await asyncio.open_unix_connection(server.path)
        writer.write(b"not json\n")
        await writer.drain()
        assert b"unreadable request" in await reader.readline()
        writer.close()
    finally:
        await server.stop()
    assert calls == [("stop", "connector"), ("start", "gateway"), ("stop", "connector-kraken")]
    assert not server.path.exists()


async def test_nobody_listening_is_an_error_naming_the_socket(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match=r"control\.sock.*ssmd up"):
        await request(socket_path(tmp_path), "stop", "connector")


async def test_a_failing_action_is_answered_and_the_socket_goes_on(tmp_path: Path) -> None:
    async def handler(action: str, name: str) -> dict[str, Any]:
        if action == "start":
            raise OSError(24, "Too many open files")
        return {"ok": True, "result": "stopped"}

    server = ControlServer(socket_path(tmp_path), handler)
    await server.start()
    try:
        answer = await request(server.path, "start", "archiver")
        assert answer == {"ok": False, "error": "archiver: [Errno 24] Too many open files"}
        assert await request(server.path, "stop", "archiver") == {"ok": True, "result": "stopped"}
    finally:
        await server.stop()


async def test_stopping_waits_for_the_action_in_progress(tmp_path: Path) -> None:
    stops: list[asyncio.Task[None]] = []

    async def handler(action: str, name: str) -> dict[str, Any]:
        # `ssmd up` stops while this start is under way: no new connection is taken,
        # but the stop waits for this action before the ordered stop goes on.
        stops.append(asyncio.create_task(server.stop()))
        while await accepts(server.path):
            await asyncio.sleep(0.01)  # polling the socket, not a synchronization
        assert not stops[0].done() and server.path.exists()
        return {"ok": True, "result": "started"}

    server = ControlServer(socket_path(tmp_path), handler)
    await server.start()
    assert await request(server.path, "start", "gateway") == {"ok": True, "result": "started"}
    await stops[0]
    assert not server.path.exists()
    with pytest.raises(ControlError):
        await request(server.path, "start", "gateway")


async def accepts(path: Path) -> bool:
    try:
        _, writer = await asyncio.open_unix_connection(path)
    except OSError:
        return False
    writer.close()
    return True


def _env(tmp_path: Path, feed: str, extra: bool) -> SimpleNamespace:
    return SimpleNamespace(
        name="multi-sim",
        extra_feed=feed if extra else None,
        feed=SimpleNamespace(name=feed),
        data_dir=tmp_path,
        nats=SimpleNamespace(url="nats://127.0.0.1:1", stream="SSMD_MULTI_SIM"),
    )


async def test_the_one_gateway_and_each_feeds_components_are_controlled(tmp_path: Path) -> None:
    """`ssmd up` runs one gateway for every venue: `gateway-kraken` is no component of it
    (starting it would run a gateway of Kraken alone on the gateway's port), nor is the
    secmaster of a venue without one."""
    own, kraken = _env(tmp_path, "kalshi", False), _env(tmp_path, "kraken", True)
    up = Up(cast(Any, own), UpOptions(), RecordingDisplay(), [cast(Any, kraken)])
    up.plans = [
        Plan(
            env=each.name,
            config_dir=tmp_path,
            data_dir=tmp_path,
            nats_url=each.nats.url,
            stream=each.nats.stream,
            http=cast(Any, None),
            js=None,
            extra_feed=each.extra_feed,
        )
        for each in up.envs
    ]
    server = ControlServer(socket_path(tmp_path), up.control)
    await server.start()
    try:
        for action in ("stop", "start"):
            for name in ("gateway-kraken", "secmaster-kraken"):
                answer = await request(server.path, action, name)
                assert answer == {"ok": False, "error": f"no component {name!r} in this ssmd up"}
        # The components it runs (none of them running here) are known by their names.
        for name in ("gateway", "secmaster", "connector-kraken", "archiver-kraken"):
            answer = await request(server.path, "stop", name)
            assert answer == {"ok": True, "result": "already stopped"}, name
    finally:
        await server.stop()

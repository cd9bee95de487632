"""The components' control actions on their health port (ssmd.obs.health): POST only,
answered only to a loopback peer, the query as parameters, bounded in time."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from ssmd.obs import health
from ssmd.obs.health import HealthServer
from ssmd.obs.metrics import CollectorRegistry


def _outward_address() -> str | None:
    """An address of this machine that is not loopback (the one a route out would use)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks a route
        except OSError:
            return None
        addr = str(s.getsockname()[0])
    return None if addr.startswith("127.") or addr == "0.0.0.0" else addr


async def _serve(actions: dict[str, health.Action]) -> HealthServer:
    server = HealthServer(lambda: (True, {"status": "ok"}), CollectorRegistry(), "0.0.0.0", 0,
                          actions=actions)  # fmt: skip
    await server.start()
    return server


async def test_actions_are_posted_with_their_query_and_answer_json() -> None:
    seen: list[dict[str, str]] = []

    async def resync(params: dict[str, str]) -> tuple[int, dict[str, object]]:
        seen.append(params)
        return (200, {"ticker": params["ticker"]}) if "ticker" in params else (400, {"error": "x"})

    server = await _serve({"/control/resync": resync})
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with httpx.AsyncClient() as http:
            r = await http.post(base + "/control/resync", params={"ticker": "A-1.B"})
            assert (r.status_code, r.json()) == (200, {"ticker": "A-1.B"})
            r = await http.post(base + "/control/resync")
            assert (r.status_code, r.json()) == (400, {"error": "x"})
            r = await http.get(base + "/control/resync")
            assert r.status_code == 405 and "POST" in r.json()["error"]
            assert (await http.post(base + "/control/nothing")).status_code == 404
            assert (await http.get(base + "/health")).json() == {"status": "ok"}
    finally:
        await server.stop()
    assert seen == [{"ticker": "A-1.B"}, {}]  # the GET never reached the action


async def test_an_action_that_hangs_is_answered_504(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(health, "ACTION_TIMEOUT", 0.2)
    never = asyncio.Event()

    async def hang(_params: dict[str, str]) -> tuple[int, dict[str, object]]:
        await never.wait()
        return 200, {}

    server = await _serve({"/control/seal": hang})
    try:
        async with httpx.AsyncClient() as http:
            r = await http.post(f"http://127.0.0.1:{server.port}/control/seal")
        assert r.status_code == 504 and "did not finish" in r.json()["error"]
    finally:
        await server.stop()


async def test_actions_are_refused_to_other_machines() -> None:
    addr = _outward_address()
    if addr is None:
        pytest.skip("this machine has no address but loopback")
    called = asyncio.Event()

    async def seal(_params: dict[str, str]) -> tuple[int, dict[str, object]]:
        called.set()
        return 200, {}

    server = await _serve({"/control/seal": seal})
    try:
        async with httpx.AsyncClient() as http:
            r = await http.post(f"http://{addr}:{server.port}/control/seal")
            assert r.status_code == 403 and "this machine" in r.json()["error"]
            # the probes still answer whoever asks
            assert (await http.get(f"http://{addr}:{server.port}/health")).status_code == 200
    finally:
        await server.stop()
    assert not called.is_set()


async def test_live_answers_while_health_says_degraded() -> None:
    """What a liveness probe asks: the process answers, whatever its health (a component
    rides out NATS or a store being away; restarting it would lose what it holds)."""
    server = HealthServer(lambda: (False, {"status": "nats down"}), CollectorRegistry())
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with httpx.AsyncClient() as http:
            r = await http.get(base + "/health")
            assert (r.status_code, r.json()) == (503, {"status": "nats down"})
            r = await http.get(base + "/live")
            assert (r.status_code, r.json()) == (200, {"live": True})
    finally:
        await server.stop()

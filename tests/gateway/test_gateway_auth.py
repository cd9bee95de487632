"""Access: API keys from the environment's secret, HTTP 401, WebSocket 4401/4429, per-key
symbol limits, the loopback-only rule without keys, and keys never in logs or errors."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import websockets

from _support.gwfix import CENT, E6, Client, gateway_settings, publisher, running_gateway, snapshot
from ssmd.config import Overrides, load_environment
from ssmd.exceptions import ConfigError
from ssmd.gateway import GatewaySettings
from ssmd.gateway.auth import KeyRing, digest, new_key, presented_key
from ssmd.gateway.settings import is_loopback
from ssmd.testing.nats import nats_server

ROOT = Path(__file__).resolve().parents[2]
T1, T2, T3 = "INXD-25-B4000", "INXD-25-B4100", "INXD-25-B4200"


def ring() -> tuple[KeyRing, str, str]:
    alice, alice_line = new_key("alice")
    bob, bob_line = new_key("bob")
    text = f"# gateway keys\n{alice_line}\n\n{bob_line} connections=1 symbols=2  # a small client\n"
    return KeyRing.parse(text), alice, bob


def test_key_lines_parse_and_match() -> None:
    keys, alice, bob = ring()
    assert [(k.name, k.connections, k.symbols) for k in keys.keys] == [
        ("alice", None, None),
        ("bob", 1, 2),
    ]
    assert keys.match(alice) is not None and keys.match(alice).name == "alice"  # type: ignore[union-attr]
    assert keys.match(bob).name == "bob"  # type: ignore[union-attr]
    assert keys.match("ssmd_wrong") is None and keys.match("") is None and keys.match(None) is None
    assert keys.keys[0].digest == digest(alice) and alice not in repr(keys)
    assert digest(alice) not in repr(keys)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("alice", "expected"),
        ("alice sha256:abc", "second word"),
        (f"alice {'a' * 64}", "second word"),
        (f"alice sha256:{'a' * 64} rate=5", "unknown option"),
        (f"alice sha256:{'a' * 64} connections=0", "unknown option"),
        (f"a sha256:{'a' * 64}\na sha256:{'b' * 64}", "unique"),
        ("# nothing\n", "holds no key"),
    ],
)
def test_bad_key_lines_are_config_errors(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment) as err:
        KeyRing.parse(text)
    # A pasted raw key never comes back in the error.
    assert "a" * 64 not in str(err.value) and "b" * 64 not in str(err.value)


def test_a_key_is_taken_from_header_bearer_or_query() -> None:
    assert (
        presented_key({"x-api-key": "k1", "authorization": "Bearer k2"}, {"api_key": "k3"}) == "k1"
    )
    assert presented_key({"authorization": "Bearer k2"}, {"api_key": "k3"}) == "k2"
    assert presented_key({"authorization": "Basic xyz"}, {"api_key": "k3"}) == "k3"
    assert presented_key({}, {}) is None


def test_no_keys_only_on_loopback(tmp_path: Path) -> None:
    env = load_environment(
        "kalshi-sim", ROOT / "exchanges", Overrides(nats_url="nats://127.0.0.1:4222")
    )
    assert GatewaySettings.from_environment(env, host="127.0.0.1").keys is None
    assert is_loopback("::1") and is_loopback("localhost") and not is_loopback("0.0.0.0")
    with pytest.raises(ConfigError, match="gateway_api_keys") as err:
        GatewaySettings.from_environment(env, host="0.0.0.0")
    assert "--insecure-no-auth" in str(err.value)
    assert GatewaySettings.from_environment(env, host="0.0.0.0", insecure_no_auth=True).keys is None
    embedded = load_environment("kalshi-sim", ROOT / "exchanges")
    with pytest.raises(ConfigError, match="--nats-url"):
        GatewaySettings.from_environment(embedded)


def _env_with_keys(tmp_path: Path, ref: str) -> Path:
    config = tmp_path / "exchanges"
    shutil.copytree(ROOT / "exchanges", config)
    path = config / "environments" / "kalshi-sim.yaml"
    text = path.read_text().replace("  secrets:\n", f"  secrets:\n    gateway_api_keys: {ref}\n", 1)
    path.write_text(text)
    return config


def test_keys_come_from_the_environment_secret(tmp_path: Path) -> None:
    keys_file = tmp_path / "keys.txt"
    key, line = new_key("ops")
    keys_file.write_text(line + " symbols=5\n")
    config = _env_with_keys(tmp_path, f"file:{keys_file}")
    env = load_environment("kalshi-sim", config, Overrides(nats_url="nats://127.0.0.1:4222"))
    settings = GatewaySettings.from_environment(env, host="0.0.0.0")
    assert settings.keys is not None and settings.keys.match(key).symbols == 5  # type: ignore[union-attr]
    keys_file.unlink()
    # Declared but missing: an error, never a silent gateway without keys.
    with pytest.raises(ConfigError, match="gateway_api_keys"):
        GatewaySettings.from_environment(env)


async def test_http_needs_a_key_except_health_metrics_and_the_page(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    keys, alice, _ = ring()
    caplog.set_level(logging.DEBUG)
    async with nats_server(tmp_path / "nats") as srv, publisher(srv.url) as pub:
        await pub.publish(snapshot(T1, [(10 * CENT, E6)], []))
        async with running_gateway(gateway_settings(srv.url, keys=keys)) as gw:
            for path in (
                "/v1/markets",
                f"/v1/markets/{T1}",
                f"/v1/markets/{T1}/trades",
                "/openapi.json",
                "/docs",
            ):
                r = await gw.aget(path)
                assert r.status_code == 401, path
                assert r.json()["code"] == "unauthorized" and "API key" in r.json()["message"]
                wrong = await gw.aget(path, headers={"X-API-Key": "ssmd_wrong"})
                assert wrong.status_code == 401 and "not valid" in wrong.json()["message"]
            ok = [
                await gw.aget("/v1/markets", headers={"X-API-Key": alice}),
                await gw.aget("/v1/markets", headers={"Authorization": f"Bearer {alice}"}),
                await gw.aget(f"/v1/markets?api_key={alice}"),
                await gw.aget("/metrics"),  # open, for scrapers and `ssmd up`
                await gw.aget(f"/docs?api_key={alice}"),
            ]
            assert [r.status_code for r in ok] == [200] * 5
            assert [m["ticker"] for m in ok[0].json()["markets"]] == [T1]
            assert "ssmd_gateway_auth_failures_total" in ok[3].text
            assert f"api_key={alice}" in ok[4].text  # the docs page fetches the schema with it
            health = await gw.aget("/v1/health")
            assert health.status_code == 200
            live = await gw.aget("/v1/live")  # for a liveness probe, which has no key
            assert (live.status_code, live.json()) == (200, {"live": True})
            page = await gw.aget("/")
            assert page.status_code in (200, 404) and page.status_code != 401
            static = await gw.aget("/static/nothing-here.css")
            assert static.status_code == 404
            metrics = gw.gw.metrics
            failures = "ssmd_gateway_auth_failures_total"
            assert metrics.value(failures, reason="missing") == 5
            assert metrics.value(failures, reason="invalid") == 5
    logged = server_logs(caplog)
    assert alice not in logged and digest(alice) not in logged


async def _closed_with(url: str) -> tuple[int, str]:
    async with websockets.connect(url) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def test_websocket_keys_and_limits(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    keys, alice, bob = ring()
    caplog.set_level(logging.DEBUG)
    async with nats_server(tmp_path / "nats") as srv, publisher(srv.url) as pub:
        await pub.publish(
            snapshot(T1, [(10 * CENT, E6)], [], sid=1),
            snapshot(T2, [(20 * CENT, E6)], [], sid=2),
            snapshot(T3, [(30 * CENT, E6)], [], sid=3),
        )
        async with running_gateway(gateway_settings(srv.url, keys=keys)) as gw:
            assert await _closed_with(gw.ws) == (
                4401,
                "an API key is required: send X-API-Key, Authorization: Bearer, or ?api_key=",
            )
            code, reason = await _closed_with(f"{gw.ws}?api_key=ssmd_wrong")
            assert (code, reason) == (4401, "the API key is not valid")
            async with Client.connect(gw.ws, additional_headers={"X-API-Key": alice}) as a:
                await a.send({"action": "subscribe", "symbols": [T1, T2, T3]})
                assert (await a.recv())["symbols"] == [T1, T2, T3]
            # bob: one connection, two symbols.
            async with Client.connect(f"{gw.ws}?api_key={bob}&symbols={T1}") as b:
                assert (await b.recv())["type"] == "subscribed"
                code, reason = await _closed_with(f"{gw.ws}?api_key={bob}")
                assert code == 4429 and "bob" in reason and bob not in reason
                await b.send({"action": "subscribe", "symbols": [T2, T3]})
                await b.recv_until(lambda m: m["type"] == "error")
                assert b.of("error")[0]["code"] == "too_many_symbols"
                await b.send({"action": "subscribe", "symbols": [T2]})
                assert (await b.recv_until(lambda m: m["type"] == "subscribed"))["symbols"] == [T2]
            # The connection closed: bob may connect again.
            await until_released(gw.gw, "bob")
            async with Client.connect(
                gw.ws, additional_headers={"Authorization": f"Bearer {bob}"}
            ) as b2:
                await b2.send({"action": "subscribe", "symbols": [T3]})
                assert (await b2.recv())["type"] == "subscribed"
            metrics = gw.gw.metrics
            assert [
                metrics.value("ssmd_gateway_auth_failures_total", reason=reason)
                for reason in ("missing", "invalid", "connection_limit")
            ] == [1, 1, 1]
    logged = server_logs(caplog)
    for secret in (alice, bob, digest(alice), digest(bob)):
        assert secret not in logged
    assert "api_key=****" in logged  # uvicorn's connection log line, redacted


def server_logs(caplog: pytest.LogCaptureFixture) -> str:
    """What the gateway's side logged (the test's own HTTP client logs its URLs)."""
    return "\n".join(
        r.getMessage() for r in caplog.records if r.name.startswith(("ssmd", "uvicorn"))
    )


async def until_released(gw: object, name: str) -> None:
    from _support.gwfix import until

    await until(lambda: name not in gw.hub.per_key, 10, f"{name}'s connection to be released")  # type: ignore[attr-defined]

"""Lua transforms: the sandbox and its limits, failures that fall back to the default
format for that client only, the example script, and a transformed client next to a
default one on the same gateway."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _support.gwfix import (
    CENT,
    E6,
    Client,
    gateway_settings,
    publisher,
    running_gateway,
    snapshot,
    trade,
)
from ssmd.exceptions import TransformError
from ssmd.gateway.auth import KeyRing, new_key
from ssmd.gateway.transform import Transform, TransformSpec, check
from ssmd.testing.nats import nats_server

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "compact_transform.lua"
T1 = "KXA-26JAN01-T1"
TRADE = b'{"type":"trade","ticker":"KXA-26JAN01-T1","price":0.45,"size":10,"side":"buy","ts":7}'


def spec(source: str, **limits: float) -> TransformSpec:
    return TransformSpec("t", "transforms/t.lua", source, **limits)  # type: ignore[arg-type]


def test_a_script_maps_messages_to_strings_tables_or_nothing() -> None:
    t = Transform(
        spec(
            'function transform(m)\n  if m.type == "trade" then return "T " .. m.ticker end\n'
            '  if m.type == "status" then return nil end\n  return {k = m.type, n = {1, 2}}\nend'
        )
    )
    assert t.apply(TRADE) == b"T KXA-26JAN01-T1"
    assert t.apply(b'{"type":"status","ticker":"X","status":"open","ts":1}') is None
    assert json.loads(t.apply(b'{"type":"subscribed","symbols":["X"]}') or b"") == {
        "k": "subscribed",
        "n": [1, 2],
    }


@pytest.mark.parametrize(
    "name", ["io", "os", "require", "load", "loadstring", "dofile", "loadfile", "debug", "python"]
)
def test_the_sandbox_has_no_way_out(name: str) -> None:
    t = Transform(spec(f"function transform(m) return type({name}) end"))
    assert t.apply(TRADE) == b"nil"


def test_string_dump_is_gone_even_through_the_string_metatable() -> None:
    t = Transform(spec("function transform(m) return type(string.dump) .. type(('').dump) end"))
    assert t.apply(TRADE) == b"nilnil"


@pytest.mark.parametrize(
    ("source", "reason", "limits"),
    [
        # (a time limit far off: 1,000,000 instructions take about as long as 10 ms)
        ("function transform(m) while true do end end", "instructions", {"max_seconds": 60}),
        (
            "function transform(m) while true do pcall(function() while true do end end) end end",
            "instructions",
            {"max_seconds": 60},
        ),
        (
            "function transform(m) local s = 0 for i = 1, 1e12 do s = s + i end end",
            "time",
            {"max_instructions": 10**9, "max_seconds": 0.02},
        ),
        (
            "function transform(m) return string.rep('x', 64 * 1024 * 1024) end",
            "memory",
            {"max_memory": 4 << 20},
        ),
        ("function transform(m) return m.nope.deeper end", "error", {}),
        ("function transform(m) return 5 end", "output", {}),
        ('function transform(m) return "\\255" end', "output", {}),
        ('function transform(m) return {["\\255"] = 1} end', "output", {}),
        ("function transform(m) return {f = transform} end", "output", {}),
    ],
)
def test_limits_and_failures_raise_with_their_reason(
    source: str, reason: str, limits: dict[str, float]
) -> None:
    t = Transform(spec(source, **limits))
    with pytest.raises(TransformError) as err:
        t.apply(TRADE)
    assert err.value.reason == reason


def test_a_syntax_error_names_its_line() -> None:
    assert check(spec("-- one\nfunction transform(m)\n  return = 1\nend")) == (
        "transforms/t.lua:3: unexpected symbol near '='"
    )
    assert "defines no function transform" in (check(spec("local x = 1")) or "")
    assert check(spec("function transform(m) return m end")) is None


def test_the_example_script() -> None:
    t = Transform(TransformSpec("compact", str(EXAMPLE), EXAMPLE.read_text()))
    assert json.loads(t.apply(TRADE) or b"") == {
        "e": "T",
        "s": T1,
        "p": 0.45,
        "q": 10,
        "d": "b",
        "t": 7,
    }
    book = b'{"type":"orderbook","ticker":"X","bids":[[0.44,100],[0.43,5]],"asks":[],"valid":true,"ts":9}'
    assert json.loads(t.apply(book) or b"") == {
        "e": "B",
        "s": "X",
        "b": [0.44, 100],
        "v": True,
        "t": 9,
    }
    sub = b'{"type":"subscribed","symbols":["X"]}'
    assert json.loads(t.apply(sub) or b"") == {"type": "subscribed", "symbols": ["X"]}


async def test_transformed_and_default_clients_side_by_side(tmp_path: Path) -> None:
    compact, compact_line = new_key("compact")
    broken, broken_line = new_key("broken")
    plain, plain_line = new_key("plain")
    keys = KeyRing.parse(
        f"{compact_line} transform=compact\n{broken_line} transform=broken\n{plain_line}\n"
    )
    transforms = {
        "compact": TransformSpec("compact", str(EXAMPLE), EXAMPLE.read_text()),
        "broken": TransformSpec(
            "broken",
            "transforms/broken.lua",
            'function transform(m)\n  if m.type == "trade" then while true do end end\n'
            "  return m\nend",
            max_instructions=10_000,
        ),
    }
    async with nats_server(tmp_path / "nats") as srv, publisher(srv.url) as pub:
        await pub.publish(snapshot(T1, [(44 * CENT, 100 * E6)], [(54 * CENT, 150 * E6)]))
        settings = gateway_settings(srv.url, keys=keys, transforms=transforms)
        async with running_gateway(settings) as gw:
            async with (
                Client.connect(f"{gw.ws}?api_key={compact}&symbols={T1}") as c,
                Client.connect(f"{gw.ws}?api_key={broken}&symbols={T1}") as b,
                Client.connect(f"{gw.ws}?api_key={plain}&symbols={T1}") as p,
            ):
                await pub.publish(trade(T1, 45 * CENT, 10 * E6, seq=1))
                await pub.publish(trade(T1, 46 * CENT, 2 * E6, taker="no", seq=2))
                book = await c.recv_until(lambda m: m.get("e") == "B")
                assert book["b"] == [0.44, 100] and book["a"] == [0.46, 150]
                first = await c.recv_until(lambda m: m.get("e") == "T")
                second = await c.recv_until(lambda m: m.get("e") == "T")
                assert (first["p"], first["q"], first["d"]) == (0.45, 10, "b")
                assert (second["p"], second["d"]) == (0.46, "s")
                # The broken script: an error, then the default format, trades in order.
                err = await b.recv_until(lambda m: m["type"] == "error")
                assert err["code"] == "transform_failed" and "instruction" in err["message"]
                t1 = await b.recv_until(lambda m: m["type"] == "trade")
                t2 = await b.recv_until(lambda m: m["type"] == "trade")
                assert (t1["price"], t2["price"]) == (0.45, 0.46)
                # The default client: untouched.
                got = [await p.recv_until(lambda m: m["type"] == "trade") for _ in range(2)]
                assert [m["price"] for m in got] == [0.45, 0.46]
                assert not p.of("error")
            metrics = gw.gw.metrics
            assert (
                metrics.value(
                    "ssmd_gateway_transform_failures_total",
                    transform="broken",
                    reason="instructions",
                )
                == 1
            )
            assert (
                metrics.value(
                    "ssmd_gateway_transform_failures_total",
                    transform="compact",
                    reason="instructions",
                )
                == 0
            )

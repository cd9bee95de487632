"""`ssmd up --env kalshi-sim` end to end, as a user runs it, twice on one data directory.

Run 1: wait for the gateway, stream trades and books of an active market over the
WebSocket, read /v1/markets, stop with SIGINT; then the archive (raw and normalized,
sealed and spooled), its manifests and `ssmd data inventory` must agree with what the
simulator sent: every raw frame byte for byte, per connection, in order.
Run 2 on the same data directory: it resumes (stream, consumers, archive) and nothing
is archived twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
from collections import defaultdict
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets

from _support.upfix import EXCHANGES, SSMD, UpProcess, raw_lines
from ssmd import core
from ssmd.config import Overrides, load_environment
from ssmd.data.inventory import Archive
from ssmd.up.nats import free_port
from ssmd.up.status import parse_metrics
from ssmd.upstate import read_state

pytestmark = [pytest.mark.timeout(240), pytest.mark.xdist_group("up-e2e")]

RECORD_TYPES = ("trade", "orderbook", "ticker", "lifecycle", "status", "events")


async def _metrics(http: httpx.AsyncClient, base: str) -> Any:
    return parse_metrics((await http.get(base + "/metrics")).text)


async def _wait_archived(http: httpx.AsyncClient, data: Path, at_least: float) -> None:
    base = read_state(data)["endpoints"]["archiver"]  # type: ignore[index]
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        m = await _metrics(http, base)
        if m.total("ssmd_archiver_records_written_total") >= at_least:
            return
        assert asyncio.get_running_loop().time() < deadline, "archiver did not get data"
        await asyncio.sleep(0.1)


async def _stream_an_active_market(base: str, http: httpx.AsyncClient) -> dict[str, Any]:
    """Subscribe to the most traded open markets; return the first one with a book and trades."""
    markets = (await http.get(base + "/v1/markets")).json()["markets"]
    open_ = [m for m in markets if m["status"] == "open"]
    assert open_, markets
    busiest = sorted(open_, key=lambda m: -(m.get("volume") or 0))[:6]
    symbols = ",".join(m["ticker"] for m in busiest)
    ws_url = base.replace("http://", "ws://") + f"/v1/stream?symbols={symbols}"
    got: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    async with websockets.connect(ws_url) as ws:
        async with asyncio.timeout(60):
            while True:
                msg = orjson.loads(await ws.recv())
                if msg.get("ticker"):
                    got[msg["ticker"]][msg["type"]].append(msg)
                done = [t for t, by in got.items() if by["orderbook"] and by["trade"]]
                if done:
                    break
        clients = parse_metrics((await http.get(base + "/metrics")).text)
        assert clients.total("ssmd_gateway_clients_connected") == 1
    ticker = done[0]
    book = got[ticker]["orderbook"][0]
    assert book["bids"] or book["asks"]
    assert all(0 < lvl[0] < 1 for lvl in book["bids"] + book["asks"])
    trade = got[ticker]["trade"][0]
    assert trade["price"] > 0 and trade["size"] > 0
    return {"ticker": ticker, "trade": trade, "markets": markets}


# ---- reading the archive ----------------------------------------------------------------------


def _frame(line: bytes) -> bytes:
    """The frame as received: the archiver splices it in byte for byte after "data":."""
    start = line.index(b',"data":') + len(b',"data":')
    return line[start : line.rindex(b',"conn":')]


def _by_connection(lines: list[bytes]) -> dict[int, list[tuple[int, bytes]]]:
    conns: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
    for line in lines:
        obj = orjson.loads(line)
        conns[int(obj["conn"])].append((int(obj["seq"]), _frame(line)))
    return {c: sorted(v) for c, v in conns.items()}


def _match_truth(
    conns: dict[int, list[tuple[int, bytes]]], truth: dict[str, Any]
) -> dict[int, int]:
    """Archive connection -> simulator connection whose frames it holds as a prefix."""
    sent = {c["number"]: c["frame_sha256"] for c in truth["connections"]}
    mapping: dict[int, int] = {}
    for conn, frames in conns.items():
        hashes = [hashlib.sha256(f).hexdigest() for _, f in frames]
        matches = [n for n, h in sent.items() if h[: len(hashes)] == hashes]
        assert len(matches) == 1, f"connection {conn}: {len(hashes)} frames, matches {matches}"
        mapping[conn] = matches[0]
    assert len(set(mapping.values())) == len(mapping)
    return mapping


def _normalized(data: Path, days: set[str]) -> dict[str, list[dict[str, Any]]]:
    """Every normalized record of those days (sealed files and the spool), by type."""
    env = load_environment("kalshi-sim", EXCHANGES, Overrides(data_dir=str(data)), environ={})
    arc = Archive.from_environment(env)
    out: dict[str, list[dict[str, Any]]] = {}
    for rtype in RECORD_TYPES:
        out[rtype] = [
            rec
            for day in sorted(days)
            for _, blob in arc.normalized_files("kalshi", rtype, date.fromisoformat(day))
            for rec in core.decode_records(blob)
        ]
    return out


def _by_type(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Records (sealed + spooled) per data type over all days (a run may cross midnight)."""
    out: dict[str, int] = defaultdict(int)
    for r in rows:
        out[r["data_type"]] += r["records"] + r["pending_records"]
    return dict(out)


def _inventory(data: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        [SSMD, "data", "inventory", "--env", "kalshi-sim", "--config-dir", str(EXCHANGES),
         "--data-dir", str(data), "--json"],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    rows: list[dict[str, Any]] = orjson.loads(out.stdout)
    return rows


def _stop_order(up: UpProcess) -> list[str]:
    return [
        str(r["component"])
        for r in up.logs
        if r.get("logger") == "ssmd.up"
        and r.get("msg")
        in ("component stopped", "simulator stopped", "component killed: it did not exit in time")
    ]


# ---- the test ---------------------------------------------------------------------------------------


async def test_up_runs_streams_archives_and_resumes(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(timeout=5) as http:
        # ---- run 1
        up = UpProcess(data, port, "--truth-file", str(tmp_path / "truth-1.json"))
        await up.start()
        try:
            await up.wait_ready(http)
            seed1 = read_state(data)["simulator"]["seed"]  # type: ignore[index]
            seen = await _stream_an_active_market(base, http)
            await _wait_archived(http, data, 500)
            code = await up.stop()
        finally:
            await up.ensure_gone()
        assert code == 0, up.tail()
    assert _stop_order(up) == ["connector", "archiver", "gateway", "secmaster", "simulator", "nats"]
    assert not [r for r in up.logs if r.get("msg", "").startswith("component killed")]
    assert read_state(data) is None  # the state file goes with the run

    # Raw: every frame the connector received is archived once, exactly as the simulator
    # sent it, in order, per connection.
    truth1 = orjson.loads((tmp_path / "truth-1.json").read_bytes())
    lines1 = raw_lines(data)
    conns1 = _by_connection(lines1)
    _match_truth(conns1, truth1)
    received = up.find("connector stopped", "connector")[0]["frames_received"]
    assert len(lines1) == received, (len(lines1), received)
    seqs1 = [s for frames in conns1.values() for s, _ in frames]
    assert len(seqs1) == len(set(seqs1))

    # Manifests and the inventory: today, mostly spooled (the day and the hour are open).
    inventory1 = _inventory(data)
    days = {r["date"] for r in inventory1}
    assert datetime.now(UTC).date().isoformat() in days
    totals1 = _by_type(inventory1)
    assert {"raw", "trade", "orderbook"} <= set(totals1)
    assert totals1["raw"] == len(lines1)
    assert all(r["status"] == "open" for r in inventory1 if r["date"] == max(days))
    report = up.find("archive report")[0]
    assert report["records"] == sum(totals1.values())
    assert "spooled until" in report["summary"]

    # Normalized: decodable, from those connections, the streamed trade among them.
    norm1 = _normalized(data, days)
    assert sum(len(v) for v in norm1.values()) == sum(totals1.values()) - totals1["raw"]
    assert norm1["trade"] and norm1["orderbook"] and norm1["ticker"]
    # Every record comes from a connection that sent raw frames, but the connector's own
    # heartbeat and stopped events, which carry its process's run id instead.
    process_events = {"heartbeat", "stopped"}
    conn_ids = {
        r["conn_id"]
        for rs in norm1.values()
        for r in rs
        if r["conn_id"] and r.get("event") not in process_events
    }
    assert conn_ids <= set(conns1)
    assert any(r.get("event") == "heartbeat" for r in norm1["events"])
    trade = seen["trade"]
    assert any(
        r["ticker"] == seen["ticker"]
        and r["price_e6"] == round(trade["price"] * 1_000_000)
        and int(r["exchange_ts"]) // 1_000_000 == trade["ts"]
        for r in norm1["trade"]
    )
    assert seen["ticker"] in {m["ticker"] for m in seen["markets"]}

    # ---- run 2 on the same data directory, with a fresh seed of its own (a simulator with
    # the same seed would send the same trade ids again)
    async with httpx.AsyncClient(timeout=5) as http:
        up2 = UpProcess(data, port, "--truth-file", str(tmp_path / "truth-2.json"))
        await up2.start()
        try:
            await up2.wait_ready(http)
            await _wait_archived(http, data, 300)
            code = await up2.stop()
        finally:
            await up2.ensure_gone()
        assert code == 0, up2.tail()
    seed2 = up2.find("simulator started")[0]["seed"]
    assert up.find("simulator started")[0]["seed"] == seed1 != seed2
    truth2 = orjson.loads((tmp_path / "truth-2.json").read_bytes())
    lines2 = raw_lines(data)
    conns2 = _by_connection(lines2)
    new = {c: f for c, f in conns2.items() if c not in conns1}
    assert new and all(conns2[c] == conns1[c] for c in conns1)  # run 1 untouched
    _match_truth(new, truth2)
    seqs = [s for frames in conns2.values() for s, _ in frames]
    assert len(seqs) == len(set(seqs)), "a stream sequence archived twice"
    assert min(s for f in new.values() for s, _ in f) > max(seqs1)  # the stream continued
    received2 = up2.find("connector stopped", "connector")[0]["frames_received"]
    assert len(lines2) == len(lines1) + received2
    # Normalized records: none twice (trade ids; trades and book records by connection,
    # sid and seq).
    inventory2 = _inventory(data)
    norm2 = _normalized(data, {r["date"] for r in inventory2})
    trade_ids = [r["trade_id"] for r in norm2["trade"]]
    assert len(trade_ids) == len(set(trade_ids))
    for rtype in ("trade", "orderbook"):
        keys = [(r["conn_id"], r["sid"], r["seq"]) for r in norm2[rtype]]
        assert len(keys) == len(set(keys)), rtype
    assert len(norm2["trade"]) > len(norm1["trade"])
    assert _by_type(inventory2)["raw"] == len(lines2) > len(lines1)
    assert up2.find("archive report")[0]["added"] > 0

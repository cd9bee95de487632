"""`ssmd market list|show|history` on a store, and the live consumer on a real NATS stream."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import nats
import orjson
from nats.js.api import StreamConfig
from test_secmaster_live import CLOSE, OPEN, T, frames, later
from typer.testing import CliRunner

from _support import ROOT
from _support.secmaster_fixtures import nats_server
from ssmd import core
from ssmd.bus import subjects
from ssmd.cli.market import app
from ssmd.secmaster.db import Store
from ssmd.secmaster.lifecycle import Live, run_live
from ssmd.testing import until

ENV = "kalshi-test"


async def filled_store(path: Path) -> Store:
    """A store that knows one market and three lifecycle changes of it."""
    store = Store.open(path)
    store.migrate()
    store.apply_series([{"ticker": "KXBTC15M", "category": "Crypto", "title": "BTC"}])
    live = Live(store, ENV, "kalshi", clock=lambda: OPEN - 3600.0)
    await live.apply_records(core.decode_records(core.normalize_kalshi(frames(), [1, 2], 1).data))
    await live.apply_records(later({"event_type": "deactivated", "is_deactivated": True}))
    await live.apply_records(later({"event_type": "close_date_updated", "close_ts": CLOSE + 60}))
    return store


def market(*args: str, data_dir: Path) -> Any:
    base = [
        "--env",
        "kalshi-sim",
        "--config-dir",
        str(ROOT / "exchanges"),
        "--data-dir",
        str(data_dir),
    ]
    return CliRunner().invoke(app, [*args, *base], env={"COLUMNS": "200"})


async def test_list_show_and_history(tmp_path: Path) -> None:
    (await filled_store(tmp_path / "secmaster.sqlite3")).close()

    listed = market("list", "--json", data_dir=tmp_path)
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.output)
    assert (row["ticker"], row["status"], row["category"]) == (T, "halted", "Crypto")
    assert json.loads(market("list", "--json", "--status", "open", data_dir=tmp_path).output) == []
    assert "markets (1)" in market("list", "--search", "15M", data_dir=tmp_path).output
    assert "markets (0)" in market("list", "--search", "NOPE", data_dir=tmp_path).output

    shown = market("show", T, "--json", data_dir=tmp_path)
    assert shown.exit_code == 0, shown.output
    detail = json.loads(shown.output)
    assert (detail["event_ticker"], detail["floor_strike"]) == ("KXBTC15M-26JUL201045", "118412.55")

    history = market("history", T, "--json", data_dir=tmp_path)
    assert history.exit_code == 0, history.output
    changes = [(h["field"], h["new_value"], h["source"]) for h in json.loads(history.output)]
    assert ("status", "initialized", "lifecycle") in changes
    assert ("status", "halted", "lifecycle") in changes
    assert any(field == "close_time" for field, _, _ in changes)
    table = market("history", T, data_dir=tmp_path).output
    assert "halted" in table and "lifecycle" in table

    missing = market("show", "KXNOPE-1", data_dir=tmp_path)
    assert missing.exit_code == 1
    assert "no kalshi market 'KXNOPE-1'" in missing.output


async def test_live_consumer_applies_the_stream_and_acks(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s.sqlite3")
    store.migrate()
    live = Live(store, ENV, "kalshi", clock=lambda: OPEN - 3600.0)
    subject = subjects.record(ENV, "kalshi", "lifecycle", T)
    with nats_server(tmp_path) as url:
        nc = await nats.connect(url)
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="SSMD_KALSHI_TEST", subjects=[f"{ENV}.kalshi.>"]))
        batch = core.normalize_kalshi(frames(), [1, 2], 1)
        for _, record_type, ticker, start, end in batch.records:
            await js.publish(
                subjects.record(ENV, "kalshi", record_type, ticker), batch.data[start:end]
            )
        # A damaged message is logged and acked; it does not stop the consumer.
        await js.publish(subject, b"\x00not a record")

        stop = asyncio.Event()
        task = asyncio.create_task(
            run_live(live, js, "SSMD_KALSHI_TEST", stop=stop, sweep_every=3600)
        )
        await until(lambda: (store.market(T, "kalshi") or {}).get("status") == "initialized")

        determined = orjson.dumps(
            {
                "type": "market_lifecycle_v2",
                "sid": 5,
                "seq": 3,
                "msg": {
                    "market_ticker": T,
                    "event_type": "determined",
                    "result": "no",
                    "settlement_value": "0.0000",
                    "determination_ts": CLOSE + 6,
                },
            }
        )
        await js.publish(subject, core.normalize_kalshi([determined], [3], 1).data)
        await until(lambda: (store.market(T, "kalshi") or {}).get("status") == "determined")
        row = store.market(T, "kalshi")
        assert row is not None and (row["result"], row["settlement_value_e6"]) == ("no", 0)

        stop.set()
        await asyncio.wait_for(task, 10)
        info = await js.consumer_info("SSMD_KALSHI_TEST", "ssmd-secmaster")
        assert info.num_ack_pending == 0
        assert info.delivered.consumer_seq == 4  # event, market, damaged, determined
        await nc.close()
    store.close()

"""Bad input: a day without data, a replay colliding with a live environment, markets
not archived, a damaged archive file."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from replayfix import CONFIG, Recorder, dataset, replay_plan
from typer.testing import CliRunner

import ssmd.data
from _support.datafix import DAY2, Capture
from ssmd import core
from ssmd.cli import app
from ssmd.data.query import window
from ssmd.data.stream import raw_frames
from ssmd.exceptions import ArchiveError, ConfigError, DataError
from ssmd.replay.runner import Replay
from ssmd.replay.source import NOTICE_PREFIX

pytestmark = pytest.mark.xdist_group("replay")

UNUSED_NATS = "nats://127.0.0.1:9"


def test_a_day_without_data_names_the_days_with_some(captured: Capture) -> None:
    with pytest.raises(
        DataError,
        match=r"no raw data .* on 2026-07-01; days with raw data: 2026-07-20 to 2026-07-21",
    ):
        replay_plan(captured, "2026-07-01", UNUSED_NATS)
    result = CliRunner().invoke(
        app,
        [
            "data", "replay", "--env", captured.env.name, "--date", "2026-07-01",
            "--target", "nats", "--nats-url", UNUSED_NATS,
            "--config-dir", str(CONFIG), "--data-dir", str(captured.data_dir),
        ],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "days with raw data: 2026-07-20 to 2026-07-21" in result.output


def test_a_window_outside_the_day_is_refused(captured: Capture) -> None:
    with pytest.raises(DataError, match="not within 2026-07-21"):
        replay_plan(captured, DAY2.isoformat(), UNUSED_NATS, start="2026-07-20T12:00:00Z")
    p = replay_plan(captured, DAY2.isoformat(), UNUSED_NATS, start="00:00:30", end="00:00:40")
    assert p.end_ns - p.start_ns == 10 * 10**9


def test_markets_not_archived_are_refused_with_close_ones(captured: Capture) -> None:
    known = captured.tickers[0]
    with pytest.raises(DataError, match=rf"{known[:-2]}.*closest: .*{known}"):
        replay_plan(captured, DAY2.isoformat(), UNUSED_NATS, symbols=[known[:-1] + "7"])


def test_a_replay_colliding_with_a_configured_environment_is_refused(
    captured: Capture, tmp_path: Path
) -> None:
    config = tmp_path / "exchanges"
    shutil.copytree(CONFIG, config)
    env_dir = config / "environments"
    text = (env_dir / "kalshi-sim.yaml").read_text()
    clash = text.replace("name: kalshi-sim\n", "name: kalshi-sim-replay-t1\n", 1)
    (env_dir / "kalshi-sim-replay-t1.yaml").write_text(clash)
    with pytest.raises(ConfigError, match="collides with the configured environment"):
        replay_plan(captured, DAY2.isoformat(), UNUSED_NATS, config_dir=config)
    replay_plan(captured, DAY2.isoformat(), UNUSED_NATS, config_dir=config, replay_id="t2")


def test_a_damaged_file_is_named_skipped_and_announced(captured: Capture, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(captured.data_dir, data)
    day_dir = data / "raw" / "kalshi-sim" / "kalshi" / "2026" / "07" / "21"
    damaged = day_dir / "orderbook_delta-00.jsonl.zst"
    body = damaged.read_bytes()
    damaged.write_bytes(body[: len(body) // 2] + b"\x00" * 64 + body[len(body) // 2 :])
    cap = Capture(data, captured.env, captured.tickers)
    p = replay_plan(cap, DAY2.isoformat(), UNUSED_NATS, data_dir=data)
    whole = window(DAY2)
    with pytest.raises(ArchiveError, match=str(damaged)):
        list(raw_frames(p.ds, whole.start_ns, whole.end_ns))

    rec = Recorder()
    replay = Replay(p, rec)
    asyncio.run(replay.run())
    notices = [
        e.event.record
        for e in rec.entries
        if e.event is not None and e.event.record["reason"].startswith(NOTICE_PREFIX)
    ]
    assert len(notices) == 1
    assert notices[0]["event"] == "gap" and str(damaged) in notices[0]["reason"]
    assert replay.state()["damaged_files"] and str(damaged) in replay.state()["damaged_files"][0]
    sent = [e.frame for e in rec.entries if e.frame is not None]
    intact = dataset(captured.env)
    others = [
        f
        for f in raw_frames(intact, whole.start_ns, whole.end_ns)
        if f.msgtype != "orderbook_delta"
    ]
    assert set(others) <= set(sent)  # every other file's frames went out
    assert len(sent) < len(list(raw_frames(intact, whole.start_ns, whole.end_ns)))


def test_a_line_that_is_not_a_raw_line_is_named_with_its_file_and_number(
    captured: Capture, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(captured.data_dir, data)
    day_dir = data / "raw" / "kalshi-sim" / "kalshi" / "2026" / "07" / "21"
    damaged = day_dir / "trade-00.jsonl.zst"
    lines = core.read_archive(damaged.read_bytes()).data.splitlines(keepends=True)
    assert len(lines) > 3
    lines.insert(2, b'{"ts":1,"rns":"soon","type":"trade","data":{},"conn":1,"seq":9}\n')
    writer = core.ArchiveWriter()
    writer.write(b"".join(lines))
    damaged.write_bytes(writer.flush())
    cap = Capture(data, captured.env, captured.tickers)
    ds = replay_plan(cap, DAY2.isoformat(), UNUSED_NATS, data_dir=data).ds
    whole = window(DAY2)
    named = rf"{damaged}: line 3 is not a raw line: \"rns\" is \"soon\""
    with pytest.raises(ArchiveError, match=named):
        list(raw_frames(ds, whole.start_ns, whole.end_ns))
    with pytest.raises(ArchiveError, match=named):
        ssmd.data.raw(DAY2.isoformat(), dataset=ds).collect()

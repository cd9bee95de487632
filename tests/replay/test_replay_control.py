"""The replay's clock and its control endpoint: speed, pause, resume, seek."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from datetime import UTC, datetime
from typing import Any

import pytest
from replayfix import Recorder, replay_plan

from _support.datafix import DAY2, SEC, Capture
from ssmd.data.query import window
from ssmd.replay.clock import ReplayClock
from ssmd.replay.runner import BATCH, Replay
from ssmd.replay.source import NOTICE_PREFIX

pytestmark = pytest.mark.xdist_group("replay")

UNUSED_NATS = "nats://127.0.0.1:9"  # a Recorder target never connects


class Wall:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_clock_runs_at_its_speed_and_stands_while_paused() -> None:
    wall = Wall()
    clock = ReplayClock(10 * SEC, 10.0, monotonic=wall)
    assert clock.due(10 * SEC) and not clock.due(11 * SEC)
    wall.now += 1.0  # one second of wall time: ten of archive time
    assert clock.now_ns() == 20 * SEC
    assert clock.due(20 * SEC) and not clock.due(20 * SEC + 1)
    clock.pause()
    wall.now += 5.0
    assert clock.now_ns() == 20 * SEC and not clock.due(15 * SEC)
    clock.resume()
    wall.now += 0.5
    assert clock.now_ns() == 25 * SEC
    clock.seek(100 * SEC)
    assert not clock.due(25 * SEC)  # nothing goes out until the loop takes the seek
    assert clock.take_seek() == 100 * SEC and clock.now_ns() == 100 * SEC
    assert ReplayClock(0, None).due(10**20)  # max speed: everything is due


def test_clock_refuses_a_speed_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="speed must be more than 0"):
        ReplayClock(0, 0.0)


def _get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return int(resp.status), json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return int(err.code), json.loads(err.read())


async def _call(url: str) -> tuple[int, dict[str, Any]]:
    return await asyncio.to_thread(_get, url)


def test_seek_from_the_control_endpoint(captured: Capture) -> None:
    p = replay_plan(captured, DAY2.isoformat(), UNUSED_NATS)
    # A seek forward past the first batch: to the whole second after the receive time
    # of the entry half a batch beyond it.
    day = p_entries(p, window(DAY2).start_ns)
    beyond = day[BATCH + BATCH // 2]
    to_ns = (beyond.receive_ns // SEC + 1) * SEC
    to = datetime.fromtimestamp(to_ns // SEC, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    async def main() -> list[Any]:
        rec = Recorder()
        rec.gate, rec.in_send = asyncio.Event(), asyncio.Event()
        replay = Replay(p, rec)
        task = asyncio.create_task(replay.run())
        await asyncio.wait_for(rec.in_send.wait(), 30)
        base = replay.control.url
        status, body = await _call(f"{base}/replay/seek?to={to}")
        assert status == 200
        status, body = await _call(f"{base}/replay/seek?to=yesterday")
        assert status == 400 and "not a time" in body["error"]
        status, body = await _call(f"{base}/replay/nowhere")
        assert status == 404 and "/replay/state" in body["endpoints"]
        rec.gate.set()
        await asyncio.wait_for(task, 60)
        assert replay.state()["finished"]
        return rec.entries

    entries = asyncio.run(main())
    first = entries[:BATCH]
    notice = entries[BATCH]
    assert notice.event is not None
    assert notice.event.record["event"] == "gap"
    assert notice.event.record["reason"].startswith(f"{NOTICE_PREFIX} seek from")
    after = entries[BATCH + 1 :]
    assert after and all(e.receive_ns >= to_ns for e in after)
    assert first[-1].receive_ns < to_ns  # the seek went back or forth from there
    expected = [e.receive_ns for e in p_entries(p, to_ns)]
    assert [e.receive_ns for e in after] == expected


def p_entries(p: Any, from_ns: int) -> list[Any]:
    from ssmd.replay.source import ReplaySource

    return list(ReplaySource(p.ds, p.start_ns, p.end_ns, p.tickers).entries(from_ns))


def test_pause_holds_the_replay_until_resume(captured: Capture) -> None:
    p = replay_plan(captured, DAY2.isoformat(), UNUSED_NATS)
    total = len(p_entries(p, p.start_ns))

    async def main() -> None:
        rec = Recorder()
        rec.gate, rec.in_send = asyncio.Event(), asyncio.Event()
        replay = Replay(p, rec)
        task = asyncio.create_task(replay.run())
        await asyncio.wait_for(rec.in_send.wait(), 30)
        base = replay.control.url
        status, body = await _call(f"{base}/replay/pause")
        assert status == 200 and body["paused"] is True
        rec.gate.set()
        await asyncio.wait_for(replay.clock.waiting.wait(), 30)
        _, body = await _call(f"{base}/replay/state")
        assert body["paused"] and body["frames"] == BATCH and not body["finished"]
        assert len(rec.entries) == BATCH and not task.done()
        status, body = await _call(f"{base}/replay/resume")
        assert status == 200 and body["paused"] is False
        await asyncio.wait_for(task, 60)
        assert len(rec.entries) == total
        assert replay.state()["frames"] == total

    asyncio.run(main())

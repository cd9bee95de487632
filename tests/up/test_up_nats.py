"""The embedded nats-server (start, stop, resume on its store) and the state other commands read."""

from __future__ import annotations

from pathlib import Path

import nats
import pytest

from _support import ROOT
from _support.upfix import RecordingDisplay
from ssmd.config import Overrides, load_environment
from ssmd.exceptions import AlreadyRunning
from ssmd.up.children import Supervisor
from ssmd.up.nats import free_port, jetstream_ready, nats_spec
from ssmd.upstate import UpLock, read_state, running_nats_url

EXCHANGES = ROOT / "exchanges"


async def _serve(sup: Supervisor, store: Path) -> str:
    port = free_port()
    await sup.launch(nats_spec(store, port, log_path=store.parent / "logs" / "nats.log"))
    return f"nats://127.0.0.1:{port}"


async def test_embedded_nats_keeps_streams_and_consumers_across_restarts(tmp_path: Path) -> None:
    store = tmp_path / "data" / "nats"
    sup = Supervisor(RecordingDisplay().event)
    url = await _serve(sup, store)
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(name="UPTEST", subjects=["up.>"])
    for i in range(5):
        await js.publish("up.x", str(i).encode(), headers={"Nats-Msg-Id": f"m{i}"})
    sub = await js.pull_subscribe("up.>", durable="reader", stream="UPTEST")
    for m in await sub.fetch(2, timeout=5):
        await m.ack_sync()
    await nc.close()
    first = await sup.stop("nats")
    assert first is not None and first.returncode == 0 and not first.killed
    assert not await jetstream_ready(url)

    # A new server on another port, the same store: everything is where it was.
    sup2 = Supervisor(RecordingDisplay().event)
    url2 = await _serve(sup2, store)
    nc = await nats.connect(url2)
    try:
        js = nc.jetstream()
        info = await js.stream_info("UPTEST")
        assert info.state.messages == 5
        consumer = await js.consumer_info("UPTEST", "reader")
        assert consumer.ack_floor.stream_seq == 2 and consumer.num_pending == 3
        # The duplicate window survived too: a re-publish of an id is a no-op.
        ack = await js.publish("up.x", b"again", headers={"Nats-Msg-Id": "m4"})
        assert ack.duplicate
    finally:
        await nc.close()
        await sup2.stop("nats")
    # Both runs logged to the same file.
    assert (tmp_path / "data" / "logs" / "nats.log").read_text().count("Server is ready") == 2


async def test_the_running_url_is_found_by_other_commands(tmp_path: Path) -> None:
    data = tmp_path / "data"

    def resolved_url() -> tuple[str, str]:
        env = load_environment("kalshi-sim", EXCHANGES, Overrides(data_dir=str(data)))
        return env.nats.url, env.sources["nats_url"]

    assert resolved_url() == ("embedded", "yaml")
    lock = UpLock(data)
    assert lock.acquire() is None
    try:
        lock.write(pid=1234, nats_url="nats://127.0.0.1:45678")
        assert running_nats_url(data) == "nats://127.0.0.1:45678"
        assert resolved_url() == ("nats://127.0.0.1:45678", "ssmd up")
        # A flag still wins over the running server.
        flagged = load_environment(
            "kalshi-sim", EXCHANGES, Overrides(data_dir=str(data), nats_url="nats://10.0.0.1:4222")
        )
        assert flagged.nats.url == "nats://10.0.0.1:4222"
        with pytest.raises(AlreadyRunning, match="pid 1234"):
            UpLock(data).acquire()
    finally:
        lock.release()
    # Stopped: the state file is gone and the environment says embedded again.
    assert read_state(data) is None
    assert running_nats_url(data) is None
    assert resolved_url() == ("embedded", "yaml")


async def test_state_left_by_a_killed_run_is_not_taken_for_a_running_one(tmp_path: Path) -> None:
    data = tmp_path / "data"
    lock = UpLock(data)
    lock.acquire()
    lock.write(pid=99, nats_url="nats://127.0.0.1:45679", pids={"nats": 99})
    lock.release(keep_state=True)  # what a kill -9 leaves: the file, but no lock holder
    assert running_nats_url(data) is None
    again = UpLock(data)
    previous = again.acquire()
    try:
        assert previous is not None and previous["pids"] == {"nats": 99}
    finally:
        again.release()

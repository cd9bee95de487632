"""A three-server NATS cluster under the whole pipeline: simulator -> connector -> cluster
(the stream at three replicas) -> archiver, each a process. In the middle of a capture one
server is killed with kill -9 (and started again), then the stream's leader; the connector
and the archiver move to another server of the environment's list. The archive must hold
every frame the simulator sent, once, its records, once, and no gap but the final stop
(the chaos tests' comparison with the simulator's ground truth)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from _support.chaoscheck import Outage, Run, compare, read_archive
from _support.chaosproc import ENV, FEED, STREAM, Pipeline
from ssmd.config import Overrides, load_environment
from ssmd.data.inventory import Archive
from ssmd.testing.nats import NatsCluster, NatsServer

FLOW = 1500  # records archived before each kill, and again after it


async def _kill_and_restart(pipe: Pipeline, server: NatsServer, cluster: NatsCluster) -> None:
    """kill -9 `server`; capture goes on through the others; start it again, caught up."""
    server.kill()
    await pipe.flowing(FLOW)
    await server.start(timeout=60)
    await cluster.settled(STREAM)


def _runs(pipe: Pipeline) -> list[Run]:
    connector = pipe.connector
    assert connector is not None
    said = [r["frames_received"] for r in connector.logs() if r.get("msg") == "connector stopped"]
    return [
        Run(started, stopped, code, said.pop(0) if code == 0 and said else None)
        for started, stopped, code in connector.runs
    ]


@pytest.mark.xdist_group("cluster")
async def test_kill_a_server_then_the_stream_leader(tmp_path: Path) -> None:
    truth_path = tmp_path / "truth.json"
    t0 = time.time()
    cluster = NatsCluster(tmp_path / "nats")
    async with Pipeline(tmp_path, nats=cluster, replicas=3) as pipe:
        leader = await cluster.settled(STREAM)
        info = await cluster.stream_cluster(STREAM)
        assert info is not None and len(info.replicas or []) == 2  # three copies
        await pipe.flowing(FLOW)
        follower = next(s for s in cluster.servers if s is not cluster.named(leader))
        await _kill_and_restart(pipe, follower, cluster)
        leader = await cluster.settled(STREAM)
        await _kill_and_restart(pipe, cluster.named(leader), cluster)
        assert await cluster.settled(STREAM) != leader  # the stream moved to another server
        await pipe.flowing(FLOW)
        _, stopped_at = await pipe.finish(truth_path)
        env = load_environment(
            ENV, pipe.config_dir, Overrides(data_dir=str(pipe.archiver_dir)), environ={}
        )
        archived = read_archive(Archive.from_environment(env), FEED)
    truth = json.loads(truth_path.read_text())
    # No gap but the end of the capture: the exchange side never stopped.
    outages = [Outage("connector_stopped", stopped_at, final=True)]
    fig = compare(truth, archived, outages, _runs(pipe), t0)
    print(fig.line("cluster-failover"))
    assert fig.archived > 0 and fig.lost == 0 and fig.duplicated == 0
    assert pipe.connector is not None
    # The connector logs each message JetStream stored ahead of an earlier one.
    ahead = [r["msg"] for r in pipe.connector.logs() if "stored ahead" in r.get("msg", "")]
    report = [fig.line("cluster-failover"), *fig.problems, f"{len(ahead)} reported out of order"]
    assert not fig.problems, "\n".join(report + ahead[:3])

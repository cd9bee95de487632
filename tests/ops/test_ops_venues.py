"""An environment that captures several venues runs its day as one: the worker starts a
simulator, a connector and an archiver per feed and one gateway for them all, waits
until data flows through every feed, and the teardown verifies each feed's archive
from its own stream's first sequence of the day."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from opsfix import Ops, temporal_server

from _support import ROOT
from ssmd.config import Overrides, load_environment
from ssmd.ops.kube import KubernetesRuntime

ENV = "multi-sim"
FEEDS = ("kalshi", "polymarket", "kraken")
VENUES = FEEDS[1:]


def _resolved(tmp: Path) -> tuple[Any, list[Any]]:
    overrides = Overrides(data_dir=str(tmp))
    own = load_environment(ENV, ROOT / "exchanges", overrides, environ={})
    venues = [
        load_environment(ENV, ROOT / "exchanges", overrides, feed=f, environ={}) for f in VENUES
    ]
    return own, venues


@pytest.mark.timeout(480)
@pytest.mark.xdist_group("ops-e2e")
@pytest.mark.services
async def test_a_day_of_three_venues_starts_flows_and_is_verified_per_feed(
    tmp_path: Path,
) -> None:
    async with temporal_server(tmp_path) as address:
        ops = Ops(tmp_path, address, env=ENV)
        try:
            ops.start_worker()
            started = ops.run("ops", "start", "--json")
            assert started.returncode == 0, started.stderr + started.stdout[-2000:]
            result = json.loads(started.stdout)["result"]
            names = [
                *(f"connector-{v}" for v in VENUES),
                *(f"archiver-{v}" for v in VENUES),
                "connector",
                "archiver",
                "gateway",
            ]
            assert {n: result[n] for n in names} == dict.fromkeys(names, "started")
            assert set(result["secmaster"]) == set(FEEDS)
            assert result["flow"]["records_archived"] > 0
            assert {"simulator", *(f"simulator-{v}" for v in VENUES)} <= set(result["prepare"])

            processes = ops.state()["processes"]
            assert {"nats", "simulator", *names, *(f"simulator-{v}" for v in VENUES)} == set(
                processes
            )
            # The one gateway serves every venue of the environment.
            health = httpx.get(f"http://127.0.0.1:{ops.gateway_port}/v1/health").json()
            assert set(health["venues"]) == set(VENUES)

            stopped = ops.run("ops", "stop", "--json")
            assert stopped.returncode == 0, stopped.stderr + stopped.stdout[-2000:]
            teardown = json.loads(stopped.stdout)["result"]
            assert set(teardown["drain"]) == set(FEEDS)
            assert all(d["caught_up"] for d in teardown["drain"].values()), teardown["drain"]
            day = teardown["day"]
            assert day["state"] == "ended", day["verification"]["problems"]
            verification = day["verification"]
            assert verification["ok"] and verification["gaps_final"]
            assert set(verification["venues"]) == set(VENUES)
            for feed in VENUES:
                one = verification["venues"][feed]
                # Each venue's raw frames of the day, found in its own archive (sealed
                # or spooled), and its manifests rebuilt after its connector stopped.
                assert one["ok"] and one["acked_checked"] > 0 and one["missing"] == 0, feed
                assert one["gaps_final"], feed
            venue_messages = sum(verification["venues"][f]["acked_messages"] for f in VENUES)
            assert verification["acked_messages"] > venue_messages  # plus Kalshi's own
            assert day["records"] == verification["acked_messages"]

            status = ops.run("ops", "status", "--json")
            states = {c["name"]: c["state"] for c in json.loads(status.stdout)["components"]}
            assert {n: states[n] for n in names} == dict.fromkeys(names, "stopped")
        finally:
            ops.down()
    left = ops.state().get("processes", {})
    assert not left, f"still recorded after `ops down`: {sorted(left)}"


class _Workloads:
    """The calls of AppsV1Api the runtime makes, on Deployments and StatefulSets kept in a
    dict by (kind, name); a workload's replica is ready as soon as it is wanted."""

    def __init__(self) -> None:
        self.replicas: dict[tuple[str, str], int] = {}
        self.scaled: list[tuple[str, str, int]] = []

    def _read(self, kind: str, name: str) -> Any:
        wanted = self.replicas.get((kind, name), 0)
        return SimpleNamespace(
            spec=SimpleNamespace(replicas=wanted),
            status=SimpleNamespace(ready_replicas=wanted, replicas=wanted),
            metadata=SimpleNamespace(annotations={}),
        )

    def _scale(self, kind: str, name: str, body: Any) -> None:
        self.scaled.append((kind, name, body["spec"]["replicas"]))
        self.replicas[(kind, name)] = body["spec"]["replicas"]

    def read_namespaced_deployment(self, name: str, namespace: str) -> Any:
        return self._read("deployment", name)

    def read_namespaced_stateful_set(self, name: str, namespace: str) -> Any:
        return self._read("stateful_set", name)

    def patch_namespaced_deployment_scale(
        self, name: str, namespace: str, body: Any, **_: Any
    ) -> None:
        self._scale("deployment", name, body)

    def patch_namespaced_stateful_set_scale(
        self, name: str, namespace: str, body: Any, **_: Any
    ) -> None:
        self._scale("stateful_set", name, body)


async def test_the_kubernetes_runtime_scales_each_venues_workloads(tmp_path: Path) -> None:
    """The objects `ssmd deploy render` writes: per feed a Deployment per shard group of
    the connector and a StatefulSet of the archiver, named after the feed."""
    own, venues = _resolved(tmp_path)
    api = _Workloads()
    rt = KubernetesRuntime(own, venues=venues, namespace="ssmd", api=api, poll=0.01)
    assert rt.components == {
        "connector": ["connector", "connector-polymarket", "connector-kraken"],
        "archiver": ["archiver", "archiver-polymarket", "archiver-kraken"],
        "gateway": ["gateway"],
    }
    assert await rt.start("connector-kraken") == "started"
    assert await rt.start("archiver-kraken") == "started"
    assert api.scaled == [
        ("deployment", "ssmd-multi-sim-connector-kraken", 1),
        ("stateful_set", "ssmd-multi-sim-archiver-kraken", 1),
    ]
    states = {s.name: s.state for s in await rt.states()}
    assert states["connector-kraken"] == states["archiver-kraken"] == "running"
    assert states["connector"] == states["archiver-polymarket"] == "stopped"
    assert await rt.stop("archiver-kraken") == "stopped"
    assert await rt.stop("archiver-kraken") == "already stopped"

    commands = await rt.sync_commands()
    assert list(commands) == list(FEEDS)
    assert "--feed" not in commands["kalshi"]
    for feed in VENUES:
        argv = commands[feed]
        assert argv[argv.index("--feed") + 1] == feed
        assert argv[argv.index("--env") + 1] == ENV


async def test_a_connector_of_several_shard_groups_is_one_deployment_per_group(
    tmp_path: Path,
) -> None:
    env = load_environment(
        "kalshi-prod",
        ROOT / "tests" / "deploy" / "tree",
        Overrides(data_dir=str(tmp_path)),
        environ={},
    )
    groups = env.environment.spec.deploy.connector.shard_groups
    api = _Workloads()
    rt = KubernetesRuntime(env, namespace="ssmd", api=api, poll=0.01)
    assert await rt.start("connector") == "started"
    wanted = [("deployment", f"ssmd-kalshi-prod-connector-{i}", 1) for i in range(groups)]
    assert api.scaled == wanted

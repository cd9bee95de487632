"""The ssmd components as Kubernetes objects, one function per component.

The same processes `ssmd up` runs on one machine (docs/up.md), each in its own pods,
named `ssmd-{env}-{component}` as the worker's Kubernetes runtime expects (docs/operations.md):
connector Deployments (one per shard group), the archiver StatefulSet with its spool
volume, the gateway Deployment with its Service and Ingress, the security master (live
updates, and the market sync as a CronJob plus once before each connector starts), the
Temporal worker when the environment names a Temporal server, and the simulator when the
feed is a loopback URL (the simulator environment).

Each feed the environment captures gets its own connectors, archiver, security master and
simulator; a further venue's (spec.venues) carry its name, as `ssmd up` names its children
(`ssmd-{env}-connector-kraken`, pods labelled `connector-kraken`), and run with
`--feed NAME`. One gateway serves every feed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final

from ssmd.config.models.common import parse_duration
from ssmd.deploy.plan import FeedPlan, Plan, Simulator
from ssmd.deploy.pods import (
    Object,
    claim,
    container,
    labels,
    metadata,
    pod_spec,
    selector,
    workload_name,
)

CONNECTOR_HEALTH_PORT: Final = 9464
ARCHIVER_HEALTH_PORT: Final = 9465
GATEWAY_PORT: Final = 8080
SCRAPE_LABEL: Final = "ssmd.io/scrape"
# Spool and overflow files of pods without a claim: bounded, gone with the pod.
SCRATCH: Final = {"emptyDir": {"sizeLimit": "2Gi"}}
WORKER_ACCOUNT: Final = "worker"  # the operations worker's ServiceAccount
SIM_DEFAULT_VENUE: Final = "kalshi"  # what `ssmd sim run` simulates without --venue


def shard_group_arg(index: int, groups: int) -> list[str]:
    """The connector's flag for group `index` (0-based) of `groups`; none for a single group."""
    return [] if groups == 1 else ["--shard-group", f"{index}/{groups}"]


def _scaled(plan: Plan, replicas: int) -> int | None:
    """The replicas of a component the day's cycle starts and stops: none written when the
    environment has the operations worker, which scales it (a count in the manifests would
    be put back by every apply, ArgoCD's self-heal included); else `replicas`."""
    return None if plan.spec.temporal is not None else replicas


def _deployment(
    plan: Plan, name: str, component: str, spec: Object, *, replicas: int | None, recreate: bool
) -> Object:
    strategy = {"type": "Recreate"} if recreate else {"type": "RollingUpdate"}
    pod_labels = labels(plan, component)
    match = selector(plan, component)
    if name != component:
        pod_labels = {**pod_labels, "ssmd.io/shard-group": name}
        match = {**match, "ssmd.io/shard-group": name}
    counted = {} if replicas is None else {"replicas": replicas}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(plan, workload_name(plan, name), component),
        "spec": {
            **counted,
            "strategy": strategy,
            "selector": {"matchLabels": match},
            "template": {"metadata": {"labels": pod_labels}, "spec": spec},
        },
    }


def _metrics_service(plan: Plan, name: str, component: str, port: int) -> Object:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(
            plan, name, component, labels={**labels(plan, component), SCRAPE_LABEL: "true"}
        ),
        "spec": {
            "clusterIP": "None",
            "selector": selector(plan, component),
            "ports": [{"name": "metrics", "port": port, "targetPort": "metrics"}],
        },
    }


def _market_sync(plan: Plan, feed: FeedPlan) -> Object:
    return container(
        plan, "market-sync", ["market", "sync", *feed.args], plan.deploy.secmaster.resources
    )


def _per_feed(plan: Plan, objects: Callable[[Plan, FeedPlan], list[Object]]) -> list[Object]:
    """`objects` of every feed the environment captures, spec.feed's first."""
    return [obj for feed in plan.feeds for obj in objects(plan, feed)]


def _health_args(command: list[str], port: int, feed: FeedPlan) -> list[str]:
    """A component serving /health and /metrics to the cluster, for `feed`."""
    return [*command, "--health-host", "0.0.0.0", "--health-port", str(port), *feed.args]


def connector_objects(plan: Plan) -> list[Object]:
    return _per_feed(plan, _feed_connectors)


def _feed_connectors(plan: Plan, feed: FeedPlan) -> list[Object]:
    groups = plan.deploy.connector.shard_groups
    component = feed.child("connector")
    out = []
    for index in range(groups):
        main = container(
            plan,
            "connector",
            [
                *_health_args(["connector", "run"], CONNECTOR_HEALTH_PORT, feed),
                *shard_group_arg(index, groups),
            ],
            plan.deploy.connector.resources,
            ports={"metrics": CONNECTOR_HEALTH_PORT},
            health="/health",
            health_port="metrics",
            live="/live",
        )
        spec = pod_spec(plan, [main], data=SCRATCH, grace=45)
        if feed.symbols.sync:
            # As under `ssmd up`: the selection reads the markets the sync stores.
            spec["initContainers"] = [_market_sync(plan, feed)]
        name = component if groups == 1 else f"{component}-{index}"
        # Recreate: two pods of one shard group would subscribe the same markets twice.
        replicas = _scaled(plan, 1)
        out.append(_deployment(plan, name, component, spec, replicas=replicas, recreate=True))
    metrics = feed.child("connector-metrics")
    out.append(_metrics_service(plan, metrics, component, CONNECTOR_HEALTH_PORT))
    return out


def archiver_objects(plan: Plan) -> list[Object]:
    return _per_feed(plan, _feed_archiver)


def _feed_archiver(plan: Plan, feed: FeedPlan) -> list[Object]:
    component = feed.child("archiver")
    main = container(
        plan,
        "archiver",
        _health_args(["archiver", "run"], ARCHIVER_HEALTH_PORT, feed),
        plan.deploy.archiver.resources,
        ports={"metrics": ARCHIVER_HEALTH_PORT},
        health="/health",
        health_port="metrics",
        live="/live",
    )
    replicas = _scaled(plan, 1)
    stateful_set = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(plan, workload_name(plan, component), component),
        "spec": {
            "serviceName": component,
            **({} if replicas is None else {"replicas": replicas}),
            "selector": {"matchLabels": selector(plan, component)},
            "template": {
                "metadata": {"labels": labels(plan, component)},
                # Its stop finishes the batch, seals what is due and writes the manifests.
                "spec": pod_spec(plan, [main], data=None, grace=60),
            },
            "volumeClaimTemplates": [claim(plan, plan.deploy.archiver.storage)],
        },
    }
    # The Service governing the StatefulSet, named as it: serviceName above.
    return [stateful_set, _metrics_service(plan, component, component, ARCHIVER_HEALTH_PORT)]


def gateway_objects(plan: Plan) -> list[Object]:
    spec = plan.deploy.gateway
    main = container(
        plan,
        "gateway",
        ["gateway", "run", "--host", "0.0.0.0", "--port", str(GATEWAY_PORT)],
        spec.resources,
        ports={"http": GATEWAY_PORT},
        health="/v1/health",
        health_port="http",
        live="/v1/live",
    )
    deployment = _deployment(
        plan,
        "gateway",
        "gateway",
        pod_spec(plan, [main], data=SCRATCH, grace=30),
        replicas=_scaled(plan, spec.replicas),
        recreate=False,
    )
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(
            plan, "gateway", "gateway", labels={**labels(plan, "gateway"), SCRAPE_LABEL: "true"}
        ),
        "spec": {
            "selector": selector(plan, "gateway"),
            "ports": [{"name": "http", "port": GATEWAY_PORT, "targetPort": "http"}],
        },
    }
    out = [deployment, service]
    if spec.ingress_host is not None:
        ingress_spec: Object = {}
        if spec.ingress_class is not None:
            ingress_spec["ingressClassName"] = spec.ingress_class
        if spec.tls_secret is not None:
            ingress_spec["tls"] = [{"hosts": [spec.ingress_host], "secretName": spec.tls_secret}]
        backend = {"service": {"name": "gateway", "port": {"name": "http"}}}
        path = {"path": "/", "pathType": "Prefix", "backend": backend}
        ingress_spec["rules"] = [{"host": spec.ingress_host, "http": {"paths": [path]}}]
        out.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "Ingress",
                "metadata": metadata(plan, "gateway", "gateway"),
                "spec": ingress_spec,
            }
        )
    return out


def sync_schedule(interval_seconds: float) -> str:
    """A cron schedule at least as frequent as symbols.sync_interval (cron counts minutes)."""
    minutes = max(1, math.floor(interval_seconds / 60))
    if minutes < 60:
        return f"*/{minutes} * * * *"
    hours = minutes // 60
    return f"0 */{hours} * * *" if hours < 24 else "0 0 * * *"


def secmaster_objects(plan: Plan) -> list[Object]:
    return _per_feed(plan, _feed_secmaster)


def _feed_secmaster(plan: Plan, feed: FeedPlan) -> list[Object]:
    component = feed.child("secmaster")
    out = []
    if feed.live_updates:
        live = container(
            plan, "secmaster", ["market", "live", *feed.args], plan.deploy.secmaster.resources
        )
        spec = pod_spec(plan, [live], data=SCRATCH, grace=30)
        out.append(_deployment(plan, component, component, spec, replicas=1, recreate=True))
    if feed.symbols.sync:
        out.append(_market_sync_job(plan, feed))
    return out


def _market_sync_job(plan: Plan, feed: FeedPlan) -> Object:
    interval = parse_duration(feed.symbols.sync_interval).total_seconds()
    job_spec = pod_spec(plan, [_market_sync(plan, feed)], data=SCRATCH, grace=30)
    job_spec["restartPolicy"] = "OnFailure"
    component = feed.child("secmaster")
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata(plan, workload_name(plan, feed.child("market-sync")), component),
        "spec": {
            "schedule": sync_schedule(interval),
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": 1,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "spec": {
                    "backoffLimit": 2,
                    "template": {
                        "metadata": {"labels": labels(plan, component)},
                        "spec": job_spec,
                    },
                }
            },
        },
    }


def worker_objects(plan: Plan) -> list[Object]:
    """The operations worker on its Kubernetes runtime: it scales the components' workloads
    in its namespace, with a service account allowed to do that and nothing else."""
    if plan.spec.temporal is None:
        return []
    args = ["worker", "run", "--runtime", "kubernetes", "--namespace", plan.namespace]
    main = container(plan, "worker", args, plan.deploy.worker.resources)
    spec = pod_spec(plan, [main], data=SCRATCH, grace=60)
    spec["serviceAccountName"] = WORKER_ACCOUNT
    deployment = _deployment(plan, "worker", "worker", spec, replicas=1, recreate=False)
    return [*_worker_access(plan), deployment]


def _worker_access(plan: Plan) -> list[Object]:
    """A ServiceAccount, a Role to read and scale the namespace's Deployments and
    StatefulSets (and keep a component's last error as an annotation), and its binding."""
    role = workload_name(plan, "worker")
    apps = ["deployments", "statefulsets"]
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": metadata(plan, WORKER_ACCOUNT, "worker"),
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": metadata(plan, role, "worker"),
            "rules": [
                {"apiGroups": ["apps"], "resources": apps, "verbs": ["get", "patch"]},
                {
                    "apiGroups": ["apps"],
                    "resources": [f"{kind}/scale" for kind in apps],
                    "verbs": ["get", "patch"],
                },
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": metadata(plan, role, "worker"),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role},
            "subjects": [
                {"kind": "ServiceAccount", "name": WORKER_ACCOUNT, "namespace": plan.namespace}
            ],
        },
    ]


def simulator_objects(plan: Plan) -> list[Object]:
    return [obj for feed, sim in plan.simulators for obj in _simulator(plan, feed, sim)]


def _sim_venue_arg(feed: str) -> list[str]:
    """`ssmd sim run`'s flag for the venue of `feed`; none for Kalshi, its default."""
    return [] if feed == SIM_DEFAULT_VENUE else ["--venue", feed]


def _simulator(plan: Plan, feed: FeedPlan, sim: Simulator) -> list[Object]:
    component = sim.service  # the feed's child "simulator", like its other components
    main = container(
        plan,
        "simulator",
        [
            "sim",
            "run",
            *_sim_venue_arg(feed.name),
            "--host",
            "0.0.0.0",
            "--port",
            str(sim.port),
        ],
        plan.deploy.simulator.resources,
        ports={"feed": sim.port},
        takes_env=False,
    )
    deployment = _deployment(
        plan,
        component,
        component,
        pod_spec(plan, [main], data=SCRATCH, grace=15),
        replicas=1,
        recreate=True,
    )
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(plan, sim.service, component),
        "spec": {
            "selector": selector(plan, component),
            "ports": [{"name": "feed", "port": sim.port, "targetPort": "feed"}],
        },
    }
    return [deployment, service]

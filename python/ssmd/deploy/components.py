"""The ssmd components as Kubernetes objects, one function per component.

The same processes `ssmd up` runs on one machine (docs/up.md), each in its own pods,
named `ssmd-{env}-{component}` as the worker's Kubernetes runtime expects (docs/operations.md):
connector Deployments (one per shard group), the archiver StatefulSet with its spool
volume, the gateway Deployment with its Service and Ingress, the security master (live
updates, and the market sync as a CronJob plus once before each connector starts), the
Temporal worker when the environment names a Temporal server, and the simulator when the
feed is a loopback URL (the simulator environment).
"""

from __future__ import annotations

import math
from typing import Final

from ssmd.config.models.common import parse_duration
from ssmd.deploy.plan import Plan
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


def shard_group_arg(index: int, groups: int) -> list[str]:
    """The connector's flag for group `index` (0-based) of `groups`; none for a single group."""
    return [] if groups == 1 else ["--shard-group", f"{index}/{groups}"]


def _deployment(
    plan: Plan, name: str, component: str, spec: Object, *, replicas: int, recreate: bool
) -> Object:
    strategy = {"type": "Recreate"} if recreate else {"type": "RollingUpdate"}
    pod_labels = labels(plan, component)
    match = selector(plan, component)
    if name != component:
        pod_labels = {**pod_labels, "ssmd.io/shard-group": name}
        match = {**match, "ssmd.io/shard-group": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(plan, workload_name(plan, name), component),
        "spec": {
            "replicas": replicas,
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


def _market_sync(plan: Plan, name: str) -> Object:
    return container(plan, name, ["market", "sync"], plan.deploy.secmaster.resources)


def connector_objects(plan: Plan) -> list[Object]:
    groups = plan.deploy.connector.shard_groups
    out = []
    for index in range(groups):
        main = container(
            plan,
            "connector",
            [
                "connector",
                "run",
                "--health-host",
                "0.0.0.0",
                "--health-port",
                str(CONNECTOR_HEALTH_PORT),
                *shard_group_arg(index, groups),
            ],
            plan.deploy.connector.resources,
            ports={"metrics": CONNECTOR_HEALTH_PORT},
            health="/health",
            health_port="metrics",
        )
        spec = pod_spec(plan, [main], data=SCRATCH, grace=45)
        if plan.spec.symbols.sync:
            # As under `ssmd up`: the selection reads the markets the sync stores.
            spec["initContainers"] = [_market_sync(plan, "market-sync")]
        name = "connector" if groups == 1 else f"connector-{index}"
        # Recreate: two pods of one shard group would subscribe the same markets twice.
        out.append(_deployment(plan, name, "connector", spec, replicas=1, recreate=True))
    out.append(_metrics_service(plan, "connector-metrics", "connector", CONNECTOR_HEALTH_PORT))
    return out


def archiver_objects(plan: Plan) -> list[Object]:
    main = container(
        plan,
        "archiver",
        [
            "archiver",
            "run",
            "--health-host",
            "0.0.0.0",
            "--health-port",
            str(ARCHIVER_HEALTH_PORT),
        ],
        plan.deploy.archiver.resources,
        ports={"metrics": ARCHIVER_HEALTH_PORT},
        health="/health",
        health_port="metrics",
    )
    stateful_set = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(plan, workload_name(plan, "archiver"), "archiver"),
        "spec": {
            "serviceName": "archiver",
            "replicas": 1,
            "selector": {"matchLabels": selector(plan, "archiver")},
            "template": {
                "metadata": {"labels": labels(plan, "archiver")},
                # Its stop finishes the batch, seals what is due and writes the manifests.
                "spec": pod_spec(plan, [main], data=None, grace=60),
            },
            "volumeClaimTemplates": [claim(plan, plan.deploy.archiver.storage)],
        },
    }
    return [stateful_set, _metrics_service(plan, "archiver", "archiver", ARCHIVER_HEALTH_PORT)]


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
    )
    deployment = _deployment(
        plan,
        "gateway",
        "gateway",
        pod_spec(plan, [main], data=SCRATCH, grace=30),
        replicas=spec.replicas,
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
    live = container(plan, "secmaster", ["market", "live"], plan.deploy.secmaster.resources)
    out = [
        _deployment(
            plan,
            "secmaster",
            "secmaster",
            pod_spec(plan, [live], data=SCRATCH, grace=30),
            replicas=1,
            recreate=True,
        )
    ]
    if plan.spec.symbols.sync:
        interval = parse_duration(plan.spec.symbols.sync_interval).total_seconds()
        job_spec = pod_spec(plan, [_market_sync(plan, "market-sync")], data=SCRATCH, grace=30)
        job_spec["restartPolicy"] = "OnFailure"
        out.append(
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "metadata": metadata(plan, workload_name(plan, "market-sync"), "secmaster"),
                "spec": {
                    "schedule": sync_schedule(interval),
                    "concurrencyPolicy": "Forbid",
                    "successfulJobsHistoryLimit": 1,
                    "failedJobsHistoryLimit": 3,
                    "jobTemplate": {
                        "spec": {
                            "backoffLimit": 2,
                            "template": {
                                "metadata": {"labels": labels(plan, "secmaster")},
                                "spec": job_spec,
                            },
                        }
                    },
                },
            }
        )
    return out


def worker_objects(plan: Plan) -> list[Object]:
    if plan.spec.temporal is None:
        return []
    main = container(plan, "worker", ["worker", "run"], plan.deploy.worker.resources)
    spec = pod_spec(plan, [main], data=SCRATCH, grace=60)
    return [_deployment(plan, "worker", "worker", spec, replicas=1, recreate=False)]


def simulator_objects(plan: Plan) -> list[Object]:
    if plan.simulator is None:
        return []
    port = plan.simulator.port
    main = container(
        plan,
        "simulator",
        ["sim", "run", "--host", "0.0.0.0", "--port", str(port)],
        plan.deploy.simulator.resources,
        ports={"feed": port},
        takes_env=False,
    )
    deployment = _deployment(
        plan,
        "simulator",
        "simulator",
        pod_spec(plan, [main], data=SCRATCH, grace=15),
        replicas=1,
        recreate=True,
    )
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(plan, "simulator", "simulator"),
        "spec": {
            "selector": selector(plan, "simulator"),
            "ports": [{"name": "feed", "port": port, "targetPort": "feed"}],
        },
    }
    return [deployment, service]

"""Pieces every ssmd pod shares: labels, the config volume, secrets, the container itself.

Every ssmd component runs the same image with its own command. Each gets the
environment's files at /etc/ssmd/exchanges (ConfigMaps), its settings through the
documented variables (SSMD_ENV, SSMD_NATS_URL, ...; docs/configuration.md), and the
environment's secrets as references to Kubernetes Secrets, never values.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import PurePosixPath
from typing import Any, Final

from ssmd.config import override_variables
from ssmd.config.models.deploy import Resources
from ssmd.deploy.plan import CONFIG_DIR, DATA_DIR, KEYS_DIR, Plan
from ssmd.ops.kube import deployment_name

Object = dict[str, Any]

USER_ID: Final = 10001  # the image's user (deploy/Dockerfile)
ENV_CONFIG_MAP: Final = "ssmd-environment"
FEED_CONFIG_MAP: Final = "ssmd-feed"


def labels(plan: Plan, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": component,
        "app.kubernetes.io/instance": plan.env,
        "app.kubernetes.io/part-of": "ssmd",
    }


def selector(plan: Plan, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": component, "app.kubernetes.io/instance": plan.env}


def workload_name(plan: Plan, component: str) -> str:
    """`ssmd-{env}-{component}`: the names `ssmd worker run --runtime kubernetes` scales."""
    return deployment_name(plan.env, component)


def metadata(plan: Plan, name: str, component: str, **extra: Any) -> Object:
    return {"name": name, "labels": labels(plan, component), **extra}


def resources(spec: Resources) -> Object:
    limits = {"memory": spec.memory}
    if spec.cpu_limit is not None:
        limits["cpu"] = spec.cpu_limit
    return {"requests": {"cpu": spec.cpu, "memory": spec.memory}, "limits": limits}


def nats_urls(plan: Plan) -> str:
    """Every server of the cluster, so that a client reconnects to another when one goes."""
    return ",".join(f"nats://nats-{i}.nats:4222" for i in range(plan.deploy.nats.replicas))


def _env(plan: Plan) -> list[Object]:
    values = [
        ("SSMD_ENV", plan.env),
        ("SSMD_CONFIG_DIR", str(CONFIG_DIR)),
        ("SSMD_DATA_DIR", str(DATA_DIR)),
        ("SSMD_NATS_URL", nats_urls(plan)),
    ]
    for feed, simulator in plan.simulators:
        # Every pod gets every simulated feed's: the gateway serves them all.
        variables = override_variables(feed.name)
        values += [
            (variables["ws_url"], simulator.ws_url),
            (variables["rest_url"], simulator.rest_url),
        ]
    if any(ref.scheme == "sealed" for ref in plan.secrets):
        values.append(("SSMD_SECRETS_DIR", str(KEYS_DIR)))
    env: list[Object] = [{"name": k, "value": v} for k, v in values]
    for ref in plan.secrets:
        if ref.scheme == "env":
            source = {"secretKeyRef": {"name": ref.secret_name, "key": ref.key}}
            env.append({"name": ref.target, "valueFrom": source})
    return env


def _secret_files(plan: Plan) -> dict[str, list[Object]]:
    """Folder -> projected sources: the file secrets, grouped by the folder they live in."""
    folders: dict[str, list[Object]] = defaultdict(list)
    for ref in plan.secrets:
        if ref.scheme in ("file", "sealed"):
            path = PurePosixPath(ref.target)
            item = {"key": ref.key, "path": path.name}
            folders[str(path.parent)].append({"secret": {"name": ref.secret_name, "items": [item]}})
    return dict(sorted(folders.items()))


def volumes(plan: Plan, *, data: Object | None) -> list[Object]:
    """The pod's volumes; `data` is the data dir's volume source (None: a claim template)."""
    config_items = [
        {
            "configMap": {
                "name": ENV_CONFIG_MAP,
                "items": [{"key": f"{plan.env}.yaml", "path": f"environments/{plan.env}.yaml"}],
            }
        },
        {
            "configMap": {
                "name": FEED_CONFIG_MAP,
                # Every feed the environment captures: the gateway reads them all.
                "items": [
                    {"key": f"{feed.name}.yaml", "path": f"feeds/{feed.name}.yaml"}
                    for feed in plan.feeds
                ],
            }
        },
    ]
    out: list[Object] = [
        {"name": "config", "projected": {"sources": config_items}},
        {"name": "tmp", "emptyDir": {}},
    ]
    if data is not None:
        out.append({"name": "data", **data})
    for index, sources in enumerate(_secret_files(plan).values()):
        out.append({"name": f"secret-files-{index}", "projected": {"sources": sources}})
    return out


def _mounts(plan: Plan) -> list[Object]:
    mounts: list[Object] = [
        {"name": "config", "mountPath": str(CONFIG_DIR), "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "data", "mountPath": str(DATA_DIR)},
    ]
    for index, folder in enumerate(_secret_files(plan)):
        mounts.append({"name": f"secret-files-{index}", "mountPath": folder, "readOnly": True})
    return mounts


def claim(plan: Plan, size: str) -> Object:
    """The volume claim template `data` of a StatefulSet."""
    return {
        "metadata": {"name": "data"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": plan.deploy.storage_class,
            "resources": {"requests": {"storage": size}},
        },
    }


def http_probe(path: str, port: str, *, period: int = 10, failures: int = 3) -> Object:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def container(
    plan: Plan,
    name: str,
    args: list[str],
    spec: Resources,
    *,
    ports: dict[str, int] | None = None,
    health: str | None = None,
    health_port: str | None = None,
    live: str | None = None,
    takes_env: bool = True,
) -> Object:
    """An ssmd container: `ssmd ARGS --env ENV` (the image's entrypoint is dumb-init ssmd).
    `health` (on `health_port`) says whether it is ready; `live` whether it must be
    restarted (default: `health`)."""
    out: Object = {
        "name": name,
        "image": plan.deploy.image,
        "imagePullPolicy": "IfNotPresent",
        "args": [*args, "--env", plan.env] if takes_env else args,
        "env": _env(plan),
        "ports": [
            {"name": port_name, "containerPort": port, "protocol": "TCP"}
            for port_name, port in (ports or {}).items()
        ],
        "resources": resources(spec),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": _mounts(plan),
    }
    if not out["ports"]:
        del out["ports"]
    if health is not None and health_port is not None:
        # Started: up to 5 minutes (the archiver seals what came due first); then watched.
        # Restarted only when it no longer answers at all: a component rides out NATS or a
        # store being away (its health is 503 meanwhile), and a restart would lose what it
        # holds in memory (the connector's frames waiting for NATS).
        live = live or health
        out["startupProbe"] = http_probe(live, health_port, period=5, failures=60)
        out["readinessProbe"] = http_probe(health, health_port)
        out["livenessProbe"] = http_probe(live, health_port, period=20, failures=6)
    return out


def pod_spec(plan: Plan, containers: list[Object], *, data: Object | None, grace: int) -> Object:
    return {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": USER_ID,
            "runAsGroup": USER_ID,
            "fsGroup": USER_ID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationGracePeriodSeconds": grace,
        "containers": containers,
        "volumes": volumes(plan, data=data),
    }

"""The Kubernetes runtime: each component is a Deployment scaled between 0 and 1.

Convention (docs/operations.md): the Deployment of component C in environment E is
`ssmd-{E}-{C}` in the worker's namespace (`ssmd-kalshi-prod-connector`). Starting
scales it to 1 and waits until its replica is ready (its readiness probe is the
component's /health); stopping scales it to 0 and waits until its pod is gone (the
pod's SIGTERM is the component's ordered stop, within its termination grace period).
NATS is the environment's server (a cluster runs its own; `embedded` has no meaning
there). The last error of a component is kept on its Deployment as the annotation
`ssmd.io/last-error`, so `ssmd ops status` shows it from anywhere.

The official `kubernetes` client is synchronous: its calls run in a thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Final

from ssmd.exceptions import ChildFailed, ConfigError
from ssmd.ops.runtime import COMPONENTS, ComponentState, Flow
from ssmd.up.components import ssmd_argv

__all__ = ["ERROR_ANNOTATION", "KubernetesRuntime", "deployment_name"]

ERROR_ANNOTATION: Final = "ssmd.io/last-error"
READY_TIMEOUT: Final = 300.0
STOP_TIMEOUT: Final = 120.0
POLL: Final = 1.0  # seconds between looks at a Deployment's status
# A dict body would otherwise go out as a JSON Patch (a list of operations), which the
# API server refuses for an object.
MERGE_PATCH: Final = "application/merge-patch+json"


def deployment_name(env: str, component: str) -> str:
    return f"ssmd-{env}-{component}"


def _no_heartbeat(*_details: Any) -> None:
    return None


class KubernetesRuntime:
    kind = "kubernetes"

    def __init__(
        self, env: Any, *, namespace: str = "default", api: Any = None, poll: float = POLL
    ) -> None:
        self.env, self.namespace, self.poll = env, namespace, poll
        self._api = api

    @property
    def api(self) -> Any:
        """AppsV1Api: in a pod, its service account; elsewhere, the kubeconfig."""
        if self._api is None:
            from kubernetes import client, config  # type: ignore[import-untyped]

            try:
                config.load_incluster_config()
            except config.ConfigException:
                try:
                    config.load_kube_config()
                except (config.ConfigException, FileNotFoundError) as exc:
                    raise ConfigError(
                        f"no Kubernetes API to talk to: {exc}. Fix: run the worker in the "
                        "cluster, or point $KUBECONFIG at the cluster's kubeconfig"
                    ) from None
            self._api = client.AppsV1Api()
        return self._api

    async def _call(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        from kubernetes.client.exceptions import ApiException  # type: ignore[import-untyped]

        try:
            return await asyncio.to_thread(fn, *args, **kw)
        except ApiException as exc:
            if exc.status == 404:
                raise ConfigError(
                    f"Kubernetes: {exc.reason} in namespace {self.namespace} "
                    f"(the Deployments are named ssmd-{self.env.name}-COMPONENT). Fix: deploy "
                    "the environment (docs/operations.md), or pass --namespace"
                ) from None
            raise

    async def _deployment(self, name: str) -> Any:
        return await self._call(
            self.api.read_namespaced_deployment,
            deployment_name(self.env.name, name),
            self.namespace,
        )

    async def _scale(self, name: str, replicas: int) -> None:
        await self._call(
            self.api.patch_namespaced_deployment_scale,
            deployment_name(self.env.name, name),
            self.namespace,
            {"spec": {"replicas": replicas}},
            _content_type=MERGE_PATCH,
        )

    async def prepare(self, heartbeat: Any = _no_heartbeat) -> dict[str, Any]:
        if self.env.nats.embedded:
            raise ConfigError(
                f"environment {self.env.name} uses nats_url: embedded, which only `ssmd up` "
                "and the local runtime start. Fix: name the cluster's NATS in "
                "spec.transport.nats_url"
            )
        return {"nats": self.env.nats.url}

    async def start(self, name: str, heartbeat: Any = _no_heartbeat) -> str:
        if name not in COMPONENTS:
            raise ValueError(f"unknown component {name!r}; expected one of {COMPONENTS}")
        dep = await self._deployment(name)
        outcome = "already running"
        if not dep.spec.replicas:
            await self._scale(name, 1)
            outcome = "started"
            dep = await self._deployment(name)
        deadline = time.monotonic() + READY_TIMEOUT
        while (dep.status.ready_replicas or 0) < 1:
            if time.monotonic() >= deadline:
                raise ChildFailed(name, f"no ready replica within {READY_TIMEOUT:g} s", [])
            heartbeat(f"waiting for {name}")
            await asyncio.sleep(self.poll)  # the Deployment's status is polled
            dep = await self._deployment(name)
        return outcome

    async def stop(self, name: str, heartbeat: Any = _no_heartbeat) -> str:
        dep = await self._deployment(name)
        if not dep.spec.replicas and not dep.status.replicas:
            return "already stopped"
        if dep.spec.replicas:
            await self._scale(name, 0)
        dep = await self._deployment(name)
        deadline = time.monotonic() + STOP_TIMEOUT
        while dep.status.replicas:
            if time.monotonic() >= deadline:
                raise ChildFailed(name, f"its pod still runs after {STOP_TIMEOUT:g} s", [])
            heartbeat(f"stopping {name}")
            await asyncio.sleep(self.poll)  # the Deployment's status is polled
            dep = await self._deployment(name)
        return "stopped"

    async def states(self) -> list[ComponentState]:
        out = []
        for name in COMPONENTS:
            try:
                dep = await self._deployment(name)
            except ConfigError as exc:
                out.append(ComponentState(name, "missing", "", str(exc)))
                continue
            ready = dep.status.ready_replicas or 0
            wanted = dep.spec.replicas or 0
            state = "running" if ready >= 1 else ("starting" if wanted else "stopped")
            error = (dep.metadata.annotations or {}).get(ERROR_ANNOTATION) or None
            out.append(ComponentState(name, state, f"{ready}/{wanted} ready", error))
        return out

    async def flow(self) -> Flow:
        """From NATS (the pods' metrics are not reachable from here): frames in the stream,
        the archiver's acks, and the gateway's ready replica."""
        import nats

        flow = Flow()
        nc = await nats.connect(self.env.nats.url, connect_timeout=5, max_reconnect_attempts=1)
        try:
            js = nc.jetstream()
            try:
                info = await js.consumer_info(self.env.nats.stream, "archiver")
                flow.frames_received = float(info.delivered.stream_seq or 0)
                flow.records_archived = float(info.ack_floor.stream_seq or 0)
            except Exception as exc:
                flow.errors.append(f"archiver consumer: {exc}")
        finally:
            await nc.close()
        gateway = await self._deployment("gateway")
        flow.gateway_ok = (gateway.status.ready_replicas or 0) >= 1
        return flow

    def nats_url(self) -> str:
        return str(self.env.nats.url)

    async def sync_command(self) -> list[str]:
        return [
            *ssmd_argv(),
            "market",
            "sync",
            "--env",
            self.env.name,
            "--config-dir",
            str(self.env.config_dir),
            "--data-dir",
            str(self.env.data_dir),
            "--nats-url",
            self.env.nats.url,
            "--json",
        ]

    def record_error(self, name: str, error: str | None) -> None:
        if name not in COMPONENTS:
            return  # only components have a Deployment to carry it
        body = {"metadata": {"annotations": {ERROR_ANNOTATION: error}}}
        try:
            self.api.patch_namespaced_deployment(
                deployment_name(self.env.name, name),
                self.namespace,
                body,
                _content_type=MERGE_PATCH,
            )
        except Exception:
            return  # the error is in the activity's failure too; the annotation is a view

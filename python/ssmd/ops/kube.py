"""The Kubernetes runtime: each component is a workload scaled between 0 and 1.

Convention (docs/operations.md), the objects `ssmd deploy render` writes: component C
of environment E is `ssmd-{E}-{C}` in the worker's namespace, a Deployment, but for the
archiver, a StatefulSet (`ssmd-kalshi-prod-connector`, `ssmd-kalshi-prod-archiver`); a
connector of several shard groups is one Deployment per group (`-connector-0`,
`-connector-1`). An environment that captures several venues has a connector and an
archiver per feed (`ssmd-{E}-connector-kraken`) and one gateway. Starting scales every
workload of the component to 1 and waits until each has a ready replica (its readiness
probe is the component's /health); stopping scales them to 0 and waits until their pods
are gone (the pod's SIGTERM is the component's ordered stop, within its termination
grace period). NATS is the environment's server (a cluster runs its own; `embedded` has
no meaning there). The last error of a component is kept on its (first) workload as the
annotation `ssmd.io/last-error`, so `ssmd ops status` shows it from anywhere.

The official `kubernetes` client is synchronous: its calls run in a thread.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from ssmd.exceptions import ChildFailed, ConfigError
from ssmd.ops.runtime import ComponentState, Flow, component_names, every_name
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


@dataclass(frozen=True)
class Workload:
    """One object a component runs as: `kind` is the API's word in its method names."""

    kind: str  # deployment | stateful_set
    name: str


def shard_groups(env: Any) -> int:
    """The connector's shard groups in the environment's deployment (1 without one)."""
    deploy = env.environment.spec.deploy
    return 1 if deploy is None else int(deploy.connector.shard_groups)


def gateway_replicas(env: Any) -> int:
    """The gateway's replicas in the environment's deployment (1 without one)."""
    deploy = env.environment.spec.deploy
    return 1 if deploy is None else int(deploy.gateway.replicas)


def _no_heartbeat(*_details: Any) -> None:
    return None


class KubernetesRuntime:
    kind = "kubernetes"

    def __init__(
        self,
        env: Any,
        *,
        venues: Sequence[Any] = (),
        namespace: str = "default",
        api: Any = None,
        poll: float = POLL,
    ) -> None:
        self.env, self.namespace, self.poll = env, namespace, poll
        self.envs = [env, *venues]  # the environment resolved for each feed, its own first
        self.components = component_names(self.envs)
        self._names = every_name(self.components)
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
                    f"(the workloads are named ssmd-{self.env.name}-COMPONENT). Fix: deploy "
                    "the environment (docs/operations.md), or pass --namespace"
                ) from None
            raise

    def workloads(self, name: str) -> list[Workload]:
        """The objects component `name` runs as."""
        if name not in self._names:
            raise ValueError(f"unknown component {name!r}; expected one of {self._names}")
        if name in self.components["archiver"]:
            return [Workload("stateful_set", deployment_name(self.env.name, name))]
        groups = shard_groups(self.env) if name in self.components["connector"] else 1
        names = [name] if groups == 1 else [f"{name}-{i}" for i in range(groups)]
        return [Workload("deployment", deployment_name(self.env.name, n)) for n in names]

    async def _read(self, w: Workload) -> Any:
        read = getattr(self.api, f"read_namespaced_{w.kind}")
        return await self._call(read, w.name, self.namespace)

    async def _scale(self, w: Workload, replicas: int) -> None:
        await self._call(
            getattr(self.api, f"patch_namespaced_{w.kind}_scale"),
            w.name,
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
        outcome = "already running"
        wanted = gateway_replicas(self.env) if name == "gateway" else 1
        for w in self.workloads(name):
            obj = await self._read(w)
            if not obj.spec.replicas:
                await self._scale(w, wanted)
                outcome = "started"
                obj = await self._read(w)
            await self._until(
                w,
                obj,
                lambda o: (o.status.ready_replicas or 0) >= 1,
                READY_TIMEOUT,
                ChildFailed(name, f"no ready replica within {READY_TIMEOUT:g} s", []),
                lambda: heartbeat(f"waiting for {name}"),
            )
        return outcome

    async def stop(self, name: str, heartbeat: Any = _no_heartbeat) -> str:
        outcome = "already stopped"
        for w in self.workloads(name):
            obj = await self._read(w)
            if not obj.spec.replicas and not obj.status.replicas:
                continue
            outcome = "stopped"
            if obj.spec.replicas:
                await self._scale(w, 0)
            await self._until(
                w,
                await self._read(w),
                lambda o: not o.status.replicas,
                STOP_TIMEOUT,
                ChildFailed(name, f"its pod still runs after {STOP_TIMEOUT:g} s", []),
                lambda: heartbeat(f"stopping {name}"),
            )
        return outcome

    async def _until(
        self,
        w: Workload,
        obj: Any,
        done: Callable[[Any], bool],
        timeout: float,
        late: Exception,
        beat: Callable[[], None],
    ) -> None:
        """Until the workload's status (`obj` as last read) satisfies `done`; `late`
        raised after `timeout`."""
        deadline = time.monotonic() + timeout
        while not done(obj):
            if time.monotonic() >= deadline:
                raise late
            beat()
            await asyncio.sleep(self.poll)  # the workload's status is polled
            obj = await self._read(w)

    async def states(self) -> list[ComponentState]:
        out = []
        for name in self._names:
            try:
                objs = [await self._read(w) for w in self.workloads(name)]
            except ConfigError as exc:
                out.append(ComponentState(name, "missing", "", str(exc)))
                continue
            ready = sum(1 for o in objs if (o.status.ready_replicas or 0) >= 1)
            wanted = sum(1 for o in objs if o.spec.replicas)
            state = "running" if ready == len(objs) else ("starting" if wanted else "stopped")
            error = (objs[0].metadata.annotations or {}).get(ERROR_ANNOTATION) or None
            out.append(ComponentState(name, state, f"{ready}/{len(objs)} ready", error))
        return out

    async def flow(self) -> Flow:
        """From NATS (the pods' metrics are not reachable from here): per feed, the
        messages in its stream the archiver took and acked, and the gateway's ready
        replica."""
        import nats

        flow = Flow()
        nc = await nats.connect(self.env.nats.url, connect_timeout=5, max_reconnect_attempts=1)
        try:
            js = nc.jetstream()
            for env in self.envs:
                try:
                    info = await js.consumer_info(env.nats.stream, "archiver")
                except Exception as exc:
                    flow.add(env.feed.name, 0.0, 0.0)
                    flow.errors.append(f"{env.feed.name} archiver consumer: {exc}")
                    continue
                delivered = float(info.delivered.stream_seq or 0)
                flow.add(env.feed.name, delivered, float(info.ack_floor.stream_seq or 0))
        finally:
            await nc.close()
        gateway = await self._read(self.workloads("gateway")[0])
        flow.gateway_ok = (gateway.status.ready_replicas or 0) >= 1
        return flow

    def nats_url(self) -> str:
        return str(self.env.nats.url)

    async def sync_commands(self) -> dict[str, list[str]]:
        return {env.feed.name: self._sync_command(env) for env in self.envs}

    def _sync_command(self, env: Any) -> list[str]:
        argv = [*ssmd_argv(), "market", "sync", "--env", env.name]
        argv += ["--config-dir", str(env.config_dir), "--data-dir", str(env.data_dir)]
        argv += ["--nats-url", env.nats.url, "--json"]
        return argv + (["--feed", env.extra_feed] if env.extra_feed else [])

    def record_error(self, name: str, error: str | None) -> None:
        if name not in self._names:
            return  # only components have a Deployment to carry it
        body = {"metadata": {"annotations": {ERROR_ANNOTATION: error}}}
        w = self.workloads(name)[0]
        try:
            getattr(self.api, f"patch_namespaced_{w.kind}")(
                w.name, self.namespace, body, _content_type=MERGE_PATCH
            )
        except Exception:
            return  # the error is in the activity's failure too; the annotation is a view

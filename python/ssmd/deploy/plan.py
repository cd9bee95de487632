"""What `ssmd deploy render` needs from one environment, checked before anything is written.

A plan is the environment as written (its `deploy:` section with defaults), the files
its ConfigMaps carry (the environment's, and one per feed it captures: spec.feed and each
of spec.venues), and the names derived from them. `make_plan` collects every
problem that would make the manifests wrong in a cluster (each naming the field, with its
fix) and raises them together, like `ssmd validate`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Final
from urllib.parse import urlsplit

from ssmd.config import load_environment
from ssmd.config.models.deploy import Deploy
from ssmd.config.models.environment import EnvironmentSpec, FeedSelection, Symbols, VenueCapture
from ssmd.config.models.feed import CUSTOM_ENDPOINT
from ssmd.config.problems import Loc, Problem, display_path, raise_problems
from ssmd.config.tree import ConfigTree
from ssmd.config.yamlio import parse_yaml
from ssmd.up.components import child_name
from ssmd.venues import venue

GATEWAY_KEYS_SECRET: Final = "gateway_api_keys"
# Where the image keeps things (deploy/Dockerfile).
CONFIG_DIR: Final = PurePosixPath("/etc/ssmd/exchanges")
HOME_DIR: Final = PurePosixPath("/var/lib/ssmd")
DATA_DIR: Final = HOME_DIR / "data"
# $SSMD_SECRETS_DIR in the pods: the Secrets of `sealed:NAME` references, one folder each.
KEYS_DIR: Final = PurePosixPath("/var/run/ssmd/keys")


@dataclass(frozen=True)
class SecretRef:
    """One spec.secrets entry and the Kubernetes Secret (and key in it) that holds its value."""

    name: str  # the spec.secrets key
    scheme: str  # env | file | sealed
    target: str  # variable name, or the file's path inside the container
    secret_name: str  # the Kubernetes Secret
    sealed: bool  # made by the sealed-secrets controller from a SealedSecret of that name
    key: str = "value"  # the key of the Secret that holds the value


@dataclass(frozen=True)
class Simulator:
    """The simulator in the cluster, for a feed whose URLs are on loopback."""

    service: str  # its Service's name, the host in the URLs below
    port: int
    ws_url: str  # the feed URLs with the host replaced by the simulator's Service
    rest_url: str


@dataclass(frozen=True)
class FeedPlan:
    """One feed the environment captures: spec.feed, or one of spec.venues (`extra`)."""

    selection: FeedSelection  # as written: name, endpoint, URLs
    symbols: Symbols
    extra: bool
    file: Path
    live_updates: bool  # its stream carries the market lifecycle `ssmd market live` applies

    @property
    def name(self) -> str:
        return self.selection.name

    def child(self, component: str) -> str:
        """The name of the feed's `component` (connector, connector-kraken), as `ssmd up`
        names its children: a further venue's objects never meet spec.feed's."""
        return child_name(component, self.name if self.extra else None)

    @property
    def args(self) -> list[str]:
        """What picks the feed on a component's command line (spec.feed needs nothing)."""
        return ["--feed", self.name] if self.extra else []

    @property
    def simulator(self) -> Simulator | None:
        return _simulator(self.selection, self.child("simulator"))


@dataclass(frozen=True)
class Plan:
    env: str
    namespace: str
    deploy: Deploy
    spec: EnvironmentSpec
    env_file: Path
    project_root: Path
    secrets: tuple[SecretRef, ...]
    feeds: tuple[FeedPlan, ...]  # spec.feed first

    @property
    def stream_replicas(self) -> int:
        return self.spec.transport.replicas

    @property
    def simulators(self) -> list[tuple[FeedPlan, Simulator]]:
        return [(feed, sim) for feed in self.feeds if (sim := feed.simulator) is not None]


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _simulator(feed: FeedSelection, service: str) -> Simulator | None:
    ws, rest = feed.ws_url, feed.rest_url
    if feed.endpoint != CUSTOM_ENDPOINT or ws is None or rest is None:
        return None
    if not (_is_loopback(ws) and _is_loopback(rest)):
        return None
    port = urlsplit(ws).port or 8765

    def in_cluster(url: str) -> str:
        parts = urlsplit(url)
        return parts._replace(netloc=f"{service}:{port}").geturl()

    return Simulator(service, port, in_cluster(ws), in_cluster(rest))


def _feed_plans(spec: EnvironmentSpec, tree: ConfigTree) -> tuple[FeedPlan, ...]:
    captures = [VenueCapture(feed=spec.feed, symbols=spec.symbols), *spec.venues]
    return tuple(
        FeedPlan(
            selection=capture.feed,
            symbols=capture.symbols,
            extra=index > 0,
            file=tree.path("Feed", capture.feed.name),
            # `ssmd market live` refuses a venue without them, as `ssmd up` skips it.
            live_updates=venue(capture.feed.name).lifecycle,
        )
        for index, capture in enumerate(captures)
    )


class _Checks:
    def __init__(self, file: Path, text: str) -> None:
        self.file = display_path(file)
        self.source = parse_yaml(text, self.file)[1]
        self.problems: list[Problem] = []

    def add(self, loc: Loc, message: str, expected: str, fix: str) -> None:
        line = self.source.line_of(("spec", *loc))
        field = ".".join(str(p) for p in ("spec", *loc))
        self.problems.append(Problem(self.file, line, field, message, expected, fix))


def _secret_refs(
    env: str, spec: EnvironmentSpec, deploy: Deploy, checks: _Checks
) -> list[SecretRef]:
    for name in sorted(set(deploy.secrets) - set(spec.secrets)):
        declared = ", ".join(sorted(spec.secrets)) or "none"
        checks.add(
            ("deploy", "secrets", name),
            f"names a secret that spec.secrets does not declare (declared: {declared})",
            "a key of spec.secrets",
            f"add `{name}: env:VAR` (or file:/path) to spec.secrets, or remove it here",
        )
    refs = []
    for name, ref in sorted(spec.secrets.items()):
        scheme, _, target = ref.partition(":")
        if scheme == "sealed":
            # `ssmd key set --seal-cert` sealed key `target` as a Secret of that name, one
            # entry per field; the pods read it as $SSMD_SECRETS_DIR/target/field.
            if name in deploy.secrets:
                checks.add(
                    ("deploy", "secrets", name),
                    f"spec.secrets.{name} is already {ref}, the SealedSecret of `ssmd key set`",
                    "no entry for a sealed: secret",
                    f"remove deploy.secrets.{name}",
                )
            path = str(KEYS_DIR / target / name)
            refs.append(SecretRef(name, scheme, path, target, True, key=name))
            continue
        if scheme == "file" and not target.startswith("/"):
            target = str(HOME_DIR / target.removeprefix("~/"))
        kind, _, secret_name = deploy.secrets.get(name, "").partition(":")
        if not secret_name:
            kind, secret_name = "secret", f"{env}-{name.replace('_', '-')}"
        refs.append(SecretRef(name, scheme, target, secret_name, kind == "sealed"))
    return refs


def _check_cluster(spec: EnvironmentSpec, deploy: Deploy, checks: _Checks) -> None:
    if deploy.storage_class is None:
        checks.add(
            ("deploy", "storage_class"),
            "not set; the NATS servers and the archiver keep their data on volumes of this class",
            "the name of a StorageClass of the cluster",
            "set spec.deploy.storage_class to one that `kubectl get storageclass` lists",
        )
    servers = deploy.nats.replicas
    if servers != 1 and (servers < 3 or servers % 2 == 0):
        checks.add(
            ("deploy", "nats", "replicas"),
            f"{servers} JetStream servers cannot keep a quorum when one is lost",
            "1, or an odd number from 3 (3, 5, 7)",
            "set spec.deploy.nats.replicas to 3",
        )
    if spec.transport.replicas > servers:
        checks.add(
            ("transport", "replicas"),
            f"the stream wants {spec.transport.replicas} replicas but the cluster has "
            f"{servers} NATS server(s)",
            f"at most spec.deploy.nats.replicas ({servers})",
            f"lower spec.transport.replicas to {servers} or raise spec.deploy.nats.replicas",
        )
    if spec.database is None:
        checks.add(
            ("database",),
            "not set; in a cluster the security master's store is shared by the secmaster, "
            "connector, gateway and worker pods, which a SQLite file on one pod cannot be",
            "spec.database.url: postgresql://USER@HOST:5432/DB",
            "add a database section naming a PostgreSQL server",
        )
    if GATEWAY_KEYS_SECRET not in spec.secrets:
        checks.add(
            ("secrets", GATEWAY_KEYS_SECRET),
            "missing; the gateway serves the cluster's network, which it refuses to do "
            "without API keys",
            f"`{GATEWAY_KEYS_SECRET}: env:SSMD_GATEWAY_API_KEYS` (keys from `ssmd gateway new-key`)",
            f"add {GATEWAY_KEYS_SECRET} to spec.secrets",
        )


def make_plan(
    env: str, config_dir: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> Plan:
    """The plan for `env`, or ConfigError listing every problem (file, line, field, fix)."""
    # Overrides from this shell must not leak into manifests: resolve with an empty environ.
    resolved = load_environment(env, config_dir, environ={} if environ is None else environ)
    tree = ConfigTree.at(config_dir, environ or {})
    spec = resolved.environment.spec
    checks = _Checks(resolved.file, resolved.file.read_text(encoding="utf-8"))
    if spec.deploy is None:
        checks.add(
            ("deploy",),
            "not set; `ssmd deploy render` lays out the environment from it",
            "a deploy section with at least storage_class (docs/deploy.md lists every field)",
            "add `deploy: {storage_class: NAME}` under spec",
        )
        raise_problems(checks.problems)
    deploy = spec.deploy
    secrets = _secret_refs(resolved.name, spec, deploy, checks)
    _check_cluster(spec, deploy, checks)
    if checks.problems:
        raise_problems(checks.problems)
    return Plan(
        env=resolved.name,
        namespace=deploy.namespace or f"ssmd-{resolved.name}",
        deploy=deploy,
        spec=spec,
        env_file=resolved.file,
        project_root=tree.project_root,
        secrets=tuple(secrets),
        feeds=_feed_plans(spec, tree),
    )

"""One interface over where the components run: local processes or Kubernetes.

The workflows' activities call a Runtime and nothing else to start, stop and look at
components, so the same DailyStartup and DailyTeardown drive a laptop and a cluster.
Every call is idempotent: starting a running component or stopping a stopped one
does nothing and says so (a retried activity, or one resumed after the worker was
killed, must never start a second connector).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Final, Protocol

from ssmd.up.components import child_name

__all__ = ["COMPONENTS", "ComponentState", "Flow", "Runtime", "component_names", "every_name"]

# The components a day starts, in order; the teardown stops them in the reverse
# order but one: the gateway is drained first (clients go, then the data stops).
COMPONENTS: Final = ("connector", "archiver", "gateway")


def component_names(envs: Sequence[Any]) -> dict[str, list[str]]:
    """Per kind, the components of an environment resolved for each feed it captures
    (its own first): a connector and an archiver per feed, named as `ssmd up` names
    them (`connector`, `connector-kraken`), and the one gateway that serves them all."""
    return {
        "connector": [child_name("connector", e.extra_feed) for e in envs],
        "archiver": [child_name("archiver", e.extra_feed) for e in envs],
        "gateway": ["gateway"],
    }


def every_name(components: dict[str, list[str]]) -> list[str]:
    """The names of `component_names`, in start order."""
    return [name for names in components.values() for name in names]


@dataclass
class ComponentState:
    name: str
    state: str  # running | stopped | starting | failed
    detail: str = ""  # pid, replicas, endpoint
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Flow:
    """What has flowed end to end so far (from the components' own metrics), summed over
    the feeds; `idle` names the feeds through which nothing has flowed yet."""

    frames_received: float = 0.0  # connectors, from the exchanges
    records_archived: float = 0.0  # archivers, written to files or their spools
    gateway_ok: bool = False
    errors: list[str] = field(default_factory=list)
    idle: list[str] = field(default_factory=list)

    def add(self, feed: str, frames_received: float, records_archived: float) -> None:
        self.frames_received += frames_received
        self.records_archived += records_archived
        if not (frames_received > 0 and records_archived > 0):
            self.idle.append(feed)

    @property
    def flowing(self) -> bool:
        return self.frames_received > 0 and not self.idle and self.gateway_ok


class Runtime(Protocol):
    """Where the components run. `name` is one of `components`."""

    kind: str
    components: dict[str, list[str]]  # component_names of the environment

    async def prepare(self, heartbeat: Any) -> dict[str, Any]:
        """What the components need before they start (local: NATS, the simulator)."""

    async def start(self, name: str, heartbeat: Any) -> str:
        """Start `name` and wait until it is ready; "started" or "already running"."""

    async def stop(self, name: str, heartbeat: Any) -> str:
        """Stop `name` (its own ordered stop, bounded); "stopped" or "already stopped"."""

    async def states(self) -> list[ComponentState]:
        """Each component's state and its last error."""

    async def flow(self) -> Flow:
        """What has flowed so far (the health check of a startup)."""

    def nats_url(self) -> str:
        """The NATS server the components use."""

    async def sync_commands(self) -> dict[str, list[str]]:
        """Per feed, the argv of one secmaster sync (`ssmd market sync`) for this runtime."""

    def record_error(self, name: str, error: str | None) -> None:
        """Remember (or clear) the last error of `name` for `ssmd ops status`."""

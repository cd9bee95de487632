"""One interface over where the components run: local processes or Kubernetes.

The workflows' activities call a Runtime and nothing else to start, stop and look at
components, so the same DailyStartup and DailyTeardown drive a laptop and a cluster.
Every call is idempotent: starting a running component or stopping a stopped one
does nothing and says so (a retried activity, or one resumed after the worker was
killed, must never start a second connector).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Final, Protocol

__all__ = ["COMPONENTS", "ComponentState", "Flow", "Runtime"]

# The components a day starts, in order; the teardown stops them in the reverse
# order but one: the gateway is drained first (clients go, then the data stops).
COMPONENTS: Final = ("connector", "archiver", "gateway")


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
    """What has flowed end to end so far (from the components' own metrics)."""

    frames_received: float = 0.0  # connector, from the exchange
    records_archived: float = 0.0  # archiver, written to files or its spool
    gateway_ok: bool = False
    errors: list[str] = field(default_factory=list)

    @property
    def flowing(self) -> bool:
        return self.frames_received > 0 and self.records_archived > 0 and self.gateway_ok


class Runtime(Protocol):
    """Where the components run. `name` is one of COMPONENTS."""

    kind: str

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

    async def sync_command(self) -> list[str]:
        """The argv of one secmaster sync (`ssmd market sync`) for this runtime."""

    def record_error(self, name: str, error: str | None) -> None:
        """Remember (or clear) the last error of `name` for `ssmd ops status`."""

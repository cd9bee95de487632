"""What a tenant's or a transformed client's WebSocket gets beyond the default delivery:
the tenant's connection, symbol and entitlement checks, its messages/s limit, and the
client's Lua transform (docs/tenants.md, docs/transforms.md).

The hub calls these at the edges of its own work, so clients without a tenant or a
transform stay on the shared path: one frame per message for all of them. A transformed
client's frames are rendered again for it alone, in its own Lua state, when they are
written; a script that fails or breaks a limit costs that client an error message and
its transform (the default format from then on), and is counted
(`ssmd_gateway_transform_failures_total{transform,reason}`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from ssmd.exceptions import AtLimit, TransformError
from ssmd.gateway import render, wire
from ssmd.gateway.transform import Transform

if TYPE_CHECKING:
    from ssmd.gateway.auth import ApiKey
    from ssmd.gateway.hub import Client, Hub

__all__ = [
    "admit",
    "allowance",
    "entitled",
    "rate_note",
    "release",
    "rendered",
    "throttled",
]

log = logging.getLogger(__name__)


def admit(hub: Hub, client: Client, key: ApiKey | None) -> None:
    """Set up a new client's tenant and transform; AtLimit when its tenant has its
    connections open already (the client is not taken)."""
    policy = hub.settings.tenants.of(key)
    if policy is not None:
        refusal = policy.admit()
        if refusal is not None:
            raise AtLimit(refusal)
        client.policy = policy
        if policy.limits.symbols is not None:
            client.max_symbols = min(client.max_symbols, policy.limits.symbols)
    name = (key.transform if key is not None else None) or (policy.transform if policy else None)
    spec = hub.settings.transforms.get(name) if name else None
    if spec is not None:
        try:
            client.transform = Transform(spec)
        except TransformError as exc:
            _failed(hub, client, spec.name, exc)


def release(client: Client) -> None:
    if client.policy is not None:
        client.policy.release()
        client.policy = None
    client.transform = None


def entitled(hub: Hub, client: Client, symbols: list[str]) -> list[str]:
    """The symbols the client's tenant may see; a `forbidden_symbol` error names the rest."""
    policy = client.policy
    if policy is None:
        return symbols
    denied = policy.forbidden(symbols)
    if not denied:
        return symbols
    policy.refuse("entitlement")
    hub.error(client, "forbidden_symbol", policy.forbidden_message(denied))
    return [s for s in symbols if policy.allows(s)]


def symbols_refused(client: Client) -> str:
    """A subscribe over the client's symbols limit: when the limit is its tenant's, count
    the refusal and name the limit (the error's tail)."""
    policy = client.policy
    if policy is None or policy.limits.symbols != client.max_symbols:
        return ""
    policy.refuse("symbols")
    return f" (tenant {policy.name}'s symbols limit)"


def throttled(hub: Hub, client: Client) -> bool:
    """True while the client's tenant is over its messages/s: the client is written again
    once the tenant's bucket has refilled (its queue waits meanwhile, books conflated)."""
    policy = client.policy
    if policy is None or policy.bucket is None:
        return False
    wait = policy.bucket.take(0)
    if wait <= 0:
        return False
    if not client.resume_scheduled:
        client.resume_scheduled = True
        policy.usage.throttled_seconds += wait
        asyncio.get_running_loop().call_later(wait, _resume, hub, client)
    return True


def allowance(client: Client, most: int) -> int:
    """Messages the client may be written now: what its tenant's bucket holds (at least
    one: `throttled` said it is not empty)."""
    policy = client.policy
    if policy is None or policy.bucket is None:
        return most
    return max(1, min(most, int(policy.bucket.tokens)))


def rate_note(client: Client) -> str:
    """Why a slow client's messages may have waited: its tenant's messages/s limit."""
    policy = client.policy
    if policy is None or policy.bucket is None:
        return ""
    return (
        f" (tenant {policy.name} is limited to {policy.limits.messages_per_second} "
        "messages/s over all its connections)"
    )


def _resume(hub: Hub, client: Client) -> None:
    client.resume_scheduled = False
    hub.writable_again(client)


def rendered(hub: Hub, client: Client, frames: list[bytes]) -> list[bytes]:
    """The frames as this client gets them: its transform's rendering, counted against
    its tenant's usage and messages/s."""
    transform = client.transform
    if transform is not None:
        out: list[bytes] = []
        for i, frame in enumerate(frames):
            try:
                data = transform.apply(wire.payload(frame))
            except TransformError as exc:
                _failed(hub, client, transform.spec.name, exc)
                out.append(_error_frame(hub, transform.spec.name, exc))
                out.extend(frames[i:])  # this message and the rest in the default format
                break
            if data is not None:
                out.append(wire.text_frame(data))
        frames = out
    policy = client.policy
    if policy is not None:
        policy.usage.messages += len(frames)
        if policy.bucket is not None:
            policy.bucket.take(len(frames))
    return frames


def _error_text(name: str, exc: TransformError) -> str:
    return render.error(
        "transform_failed",
        f"transform {name} failed ({exc.reason}: {exc}); messages come in the default "
        "format from now on",
    )


def _error_frame(hub: Hub, name: str, exc: TransformError) -> bytes:
    hub.metrics.client_errors.labels("transform_failed").inc()
    return wire.text_frame(_error_text(name, exc).encode())


def _failed(hub: Hub, client: Client, name: str, exc: TransformError) -> None:
    """Count the failure and drop the client's transform (its Lua state goes with it)."""
    log.warning("client %d: transform %s failed: %s: %s", client.number, name, exc.reason, exc)
    hub.metrics.transform_failures.labels(name, exc.reason).inc()
    client.transform = None
    if exc.reason == "load":  # never started: the error goes out with the first messages
        hub.metrics.client_errors.labels("transform_failed").inc()
        hub.reply(client, "error", _error_text(name, exc))

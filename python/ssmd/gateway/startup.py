"""The gateway's start-up reads: one-shot reads of the stream, and which book
checkpoints to restore from (ssmd.gateway.feed applies what they return)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import Any

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

from ssmd import core

__all__ = [
    "Checkpoint",
    "as_deliveries",
    "latest_checkpoints",
    "read_once",
    "replay_start",
    "stream_meta",
]

Checkpoint = tuple[int, int, bytes]  # (stream seq, stream ns, payload)


def stream_meta(reply: str) -> tuple[int, int, int]:
    """(stream sequence, stream timestamp ns, pending) from a JetStream reply subject."""
    meta = core.ack_meta(reply)
    if meta is None:
        raise ValueError(f"not a JetStream ack subject: {reply[:80]!r}")
    return meta


def as_deliveries(msgs: list[Msg]) -> core.Deliveries:
    """A start-up read's messages as the live path takes them, in stream order."""
    out: list[tuple[str, int, int, dict[str, str] | None, bytes]] = []
    for m in msgs:
        seq, ns, _ = stream_meta(m.reply)
        out.append((m.subject, seq, ns, None, m.data))
    out.sort(key=lambda d: d[1])
    return core.Deliveries(out)


async def read_once(
    js: JetStreamContext, stream: str, config: ConsumerConfig, batch: int
) -> AsyncGenerator[list[Msg], None]:
    """Batches of an ephemeral pull consumer without acks, until nothing is pending; the
    consumer is deleted at the end (or when the caller stops early)."""
    config.ack_policy = AckPolicy.NONE
    config.mem_storage = True
    config.num_replicas = 1
    config.inactive_threshold = 30.0
    assert config.filter_subjects
    sub = await js.pull_subscribe(config.filter_subjects[0], stream=stream, config=config)
    try:
        pending = (await sub.consumer_info()).num_pending or 0
        while pending > 0:
            try:
                msgs = await sub.fetch(batch, timeout=5.0)
            except nats.errors.TimeoutError:
                pending = (await sub.consumer_info()).num_pending or 0
                continue
            if not msgs:
                continue
            pending = stream_meta(msgs[-1].reply)[2]
            yield msgs
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        with contextlib.suppress(Exception):
            info = await sub.consumer_info()
            await js.delete_consumer(stream, info.name)


def latest_checkpoints(checkpoints: list[Checkpoint], horizon: float) -> list[Checkpoint]:
    """The checkpoints at most `horizon` seconds older than the newest, in stream order:
    the books the connector still holds (older ones it has dropped)."""
    newest = max(ts for _, ts, _ in checkpoints)
    floor = newest - int(horizon * 1e9)
    return sorted(c for c in checkpoints if c[1] >= floor)


def replay_start(kept: list[Checkpoint], recs: list[dict[str, Any]]) -> int:
    """The stream sequence to replay from: the first checkpoint of the connector's
    latest round (`recs`: the records of `kept`, one each).

    The connector checkpoints every book changed since its previous round (and every
    book now and then), so a book whose latest checkpoint is older than the latest
    round has not changed since: its checkpoint is its state at that round, and
    everything that changed after the round is in the stream after it. One round's
    checkpoints carry one receive time (within a second).
    """
    last_round = max(int(r["receive_ts"]) for r in recs)
    return min(
        seq
        for (seq, _, _), r in zip(kept, recs, strict=True)
        if int(r["receive_ts"]) >= last_round - 1_000_000_000
    )

"""The change journal: every secmaster change, published to `{env}.journal.secmaster`.

Changes are written to the `secmaster_outbox` table in the same transaction as the
change itself; `Journal.flush` publishes the outbox in order through JetStream with a
`Nats-Msg-Id` derived from the entry, waits for the acks and only then deletes the
rows. A crash between commit and ack republishes the same ids, which the stream's
duplicate window turns into no-ops. The stream `SSMD_<ENV>_JOURNAL` (subjects
`{env}.journal.>`) is created when missing and checked to cover the subject.

The outbox is filled whether or not NATS is reachable: what a run stores without NATS
is published by the next secmaster run that reaches it. Its limit is the stream's own
retention (`RETENTION`): an entry older than that is dropped unpublished, with a
warning, since the stream would have aged it out by now anyway.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Final

from nats.js import JetStreamContext

from ssmd.bus import subjects
from ssmd.bus.stream import provision
from ssmd.config.models.common import env_var_token
from ssmd.secmaster.db import Store

__all__ = ["RETENTION", "Journal", "journal_stream", "journal_subject"]

MSG_ID: Final = "Nats-Msg-Id"
RETENTION: Final = timedelta(days=7)  # the stream's max age, and the outbox's


def journal_subject(env: str, kind: str = "secmaster") -> str:
    return f"{env}.journal.{kind}"


def journal_stream(env: str) -> str:
    return f"SSMD_{env_var_token(env)}_JOURNAL"


class Journal:
    def __init__(
        self,
        js: JetStreamContext,
        env: str,
        *,
        retention: timedelta = RETENTION,
        duplicate_window: timedelta = timedelta(minutes=2),
        replicas: int = 1,
        batch: int = 500,
    ) -> None:
        self.js = js
        self.env = env
        self.subject = journal_subject(env)
        self.stream = journal_stream(env)
        self.retention = retention
        self.duplicate_window = duplicate_window
        self.replicas = replicas
        self.batch = batch
        self.published = 0
        self.duplicates = 0

    async def ensure_stream(self) -> None:
        """Create the journal stream when missing; ConfigError when it does not cover us."""
        await provision(
            self.js,
            self.stream,
            [subjects.under(self.env, "journal")],
            retention=self.retention,
            duplicate_window=self.duplicate_window,
            replicas=self.replicas,
            required=[self.subject],
        )

    async def flush(self, store: Store) -> int:
        """Publish everything in the outbox, in order; returns how many entries were sent."""
        sent = 0
        while True:
            rows = store.outbox(self.batch)
            if not rows:
                return sent
            acks = await asyncio.gather(
                *(
                    self.js.publish(subject, payload, headers={MSG_ID: msg_id})
                    for _, subject, msg_id, payload in rows
                )
            )
            self.duplicates += sum(1 for a in acks if a.duplicate)
            store.outbox_done([r[0] for r in rows])
            sent += len(rows)
            self.published += len(rows)

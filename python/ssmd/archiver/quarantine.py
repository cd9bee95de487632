"""Quarantine: messages the archiver cannot store where they belong, kept raw.

A message whose destination has no valid storage key (a raw subject whose message
type cannot name a file, say) must never stop the archiver: it was delivered, and
refusing it would bring it back after every restart. It goes instead, whole, to
the raw archive's `quarantined-HH.jsonl.zst` of the hour it was received, one line
each:

    {"ts":<receive ms>,"rns":<receive ns>,"type":"quarantined","subject":<subject>,
     "headers":<headers or null>,"data_b64":<payload>,"seq":<stream seq>,"reason":<why>}

The day's raw manifest lists them (`quarantined`) and counts them
(`quarantined_count`); docs/archiver.md.
"""

from __future__ import annotations

import base64
import struct

import orjson

from ssmd import core
from ssmd.store import keys

__all__ = ["quarantine_lines"]

_META = struct.Struct("<QQ")  # a Chunk's (stream seq, receive ns) per item


def quarantine_lines(
    chunk: core.Chunk, deliveries: core.Deliveries, reason: str
) -> dict[int, core.Chunk]:
    """The quarantine lines of a chunk's messages, by hour since the epoch.

    `deliveries`: the batch the chunk was routed from (it holds the messages whole).
    """
    wanted = [_META.unpack_from(chunk.meta, i * _META.size) for i in range(chunk.count)]
    hours: dict[int, tuple[list[bytes], list[tuple[int, int]]]] = {}
    for seq, ts in wanted:
        found = deliveries.message(seq)
        assert found is not None, f"sequence {seq} was routed from this batch"
        subject, headers, payload = found
        line = orjson.dumps(
            {
                "ts": ts // 1_000_000,
                "rns": ts,
                "type": keys.QUARANTINE_MSGTYPE,
                "subject": subject,
                "headers": headers,
                "data_b64": base64.b64encode(payload).decode(),
                "seq": seq,
                "reason": reason,
            }
        )
        items, meta = hours.setdefault(ts // core.HOUR_NS, ([], []))
        items.append(line + b"\n")
        meta.append((seq, ts))
    return {hour: core.Chunk(items, meta) for hour, (items, meta) in hours.items()}

"""Shard groups: the selected markets split across N connector processes (docs/connector.md).

`ssmd connector run --shard-group i/N` (i from 0 to N-1) captures the markets whose
ticker hashes to group i, by rendezvous (highest-random-weight) hashing: each group
scores the ticker with a hash of (group, ticker) and the highest score wins. A market's
group therefore depends on its ticker and N only, never on which other markets exist,
so markets coming and going never move the others; and changing N moves only the
markets the new group wins (about 1/N of them), where `hash mod N` would move most.
Every market is in exactly one group: the one with the highest score.

Each group is a connector identity of its own, with no id or number in common with
another group's, so the archiver can tell their events apart:
  - shard numbers: group i numbers its shards from `shard_base` = 1000 x (i + 1) (its
    global shard, which only group 0 runs, is that number; its heartbeat and `stopped`
    events carry it too); an ungrouped connector numbers them from 0;
  - connection and run ids: time_ns values that are i + 1 modulo 1000, so two groups
    never make the same message id, however close their clocks;
  - its spool file: connector-{env}.group-{i}-of-{N}.spool.
`group_key` gives an event's group back from its shard number (0: ungrouped).
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from typing import Final

from ssmd.exceptions import ConfigError

__all__ = ["GROUP_STRIDE", "MAX_GROUPS", "ShardGroup", "group_key", "group_of"]

GROUP_STRIDE: Final = 1000  # shard numbers (and id residues) per group
MAX_GROUPS: Final = 999  # group i's numbers stay below 1000 x (i + 2) within a UInt32

_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@functools.lru_cache(maxsize=131072)
def group_of(ticker: str, groups: int) -> int:
    """The group (0 .. groups-1) that captures `ticker`."""
    if groups == 1:
        return 0
    data = ticker.encode()
    scores = [
        hashlib.blake2b(data, digest_size=8, key=str(g).encode()).digest() for g in range(groups)
    ]
    return max(range(groups), key=scores.__getitem__)


def group_key(shard_number: int) -> int:
    """The group of an event by its shard number: i + 1 for group i, 0 when ungrouped."""
    return shard_number // GROUP_STRIDE


@dataclass(frozen=True)
class ShardGroup:
    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> ShardGroup:
        m = _SPEC.match(text)
        index, count = (int(m[1]), int(m[2])) if m else (-1, 0)
        if not 1 <= count <= MAX_GROUPS or not 0 <= index < count:
            raise ConfigError(
                f"--shard-group {text!r}: expected I/N with N from 1 to {MAX_GROUPS} and I "
                "from 0 to N-1, e.g. 0/2 and 1/2 for two connector processes"
            )
        return cls(index, count)

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def shard_base(self) -> int:
        return GROUP_STRIDE * (self.index + 1)

    @property
    def id_residue(self) -> int:
        return self.index + 1

    @property
    def spool_name(self) -> str:
        return f"group-{self.index}-of-{self.count}"

    def owns(self, ticker: str) -> bool:
        return group_of(ticker, self.count) == self.index

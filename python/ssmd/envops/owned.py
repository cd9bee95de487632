"""What an environment owns, found by its prefixes (docs/teardown.md).

Every prefix ends with a separator that an environment name cannot hold (names are
lower-case letters, digits and `-`), so the prefix of `kalshi` can never take in
anything of `kalshi-dev`:

    archive objects   {env}/                 raw and normalized buckets (keys.env_prefix)
    NATS streams      every subject {env}.   the environment's stream and its journal
    NATS KV buckets   {env}_                 bucket names
    Redis keys        {env}:                 the security master's cache
    connector spools  connector-{env}.       files under {data dir}/spool/
    directories       {data dir}/archiver/{env}/ (the archiver's spool), {data dir}/export/{env}/

A stream is the environment's only when all of its subjects are under `{env}.`: a
stream that also carries another environment's subjects is left alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from ssmd.config.models.common import NAME_PATTERN
from ssmd.store import keys

__all__ = ["Holding", "Prefixes"]


@dataclass(frozen=True)
class Prefixes:
    env: str

    def __post_init__(self) -> None:
        if not re.fullmatch(NAME_PATTERN, self.env):
            raise ValueError(f"{self.env!r} is not an environment name")

    @property
    def objects(self) -> str:
        return keys.env_prefix(self.env)

    @property
    def subjects(self) -> str:
        return f"{self.env}."

    @property
    def kv_bucket(self) -> str:
        return f"{self.env}_"

    @property
    def redis(self) -> str:
        return f"{self.env}:"

    @property
    def spool_file(self) -> str:
        return f"connector-{self.env}."

    def owns_object(self, key: str, day: date | None = None) -> bool:
        """A key of this environment's archive (of `day` only, when given)."""
        if not key.startswith(self.objects):
            return False
        if day is None:
            return True
        info = keys.parse_key(key)
        return info is not None and info.env == self.env and info.day == day

    def owns_stream(self, subjects: list[str]) -> bool:
        return bool(subjects) and all(s.startswith(self.subjects) for s in subjects)

    def owns_spool(self, name: str) -> bool:
        return name.startswith(self.spool_file)

    def directories(self, data_dir: Path) -> list[Path]:
        return [data_dir / "archiver" / self.env, data_dir / "export" / self.env]


@dataclass
class Holding:
    """One thing to delete: `count` items of `size` bytes in total."""

    kind: str  # raw objects, normalized objects, stream, kv bucket, redis keys, spool, directory
    where: str  # a bucket URL, NATS server, Redis server (no password) or directory
    name: str  # the prefix, stream, bucket or path
    count: int = 0
    size: int = 0
    items: list[str] = field(default_factory=list, repr=False)  # object keys, Redis keys

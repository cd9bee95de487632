"""The object-store interface shared by the local and S3 backends.

Keys are `/`-separated paths inside a bucket (a folder for local storage).
Objects appear atomically: `put_atomic` writes a temporary object and makes it
visible in one step (rename, or a single PUT / completed multipart upload), so
a reader sees either nothing or the whole object. `list` never yields temporary
objects (names starting with `.` or containing `.tmp`).
"""

from __future__ import annotations

import abc
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ssmd.exceptions import StorageError

if TYPE_CHECKING:
    from ssmd.config import Store

__all__ = ["ObjectInfo", "ObjectStore", "is_temp_name", "open_store"]

TMP_MARK = ".tmp"
PROBE_PREFIX = "_ssmd-write-check-"  # check_access's object, deleted right away


def is_temp_name(key: str) -> bool:
    """True for keys the stores use while writing (never listed, never read)."""
    name = key.rsplit("/", 1)[-1]
    return name.startswith(".") or TMP_MARK in name


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    key: str
    size: int


class ObjectStore(abc.ABC):
    """One bucket. Every failure other than a missing key raises StorageError."""

    @property
    @abc.abstractmethod
    def url(self) -> str:
        """Where the bucket is (file:///... or s3://bucket), for messages."""

    @abc.abstractmethod
    def put_atomic(self, key: str, data: bytes | Path) -> None:
        """Store `data` (bytes, or a file streamed from disk) under `key`, atomically."""

    @abc.abstractmethod
    def get(self, key: str) -> bytes:
        """The whole object; FileNotFoundError when missing."""

    @abc.abstractmethod
    def download(self, key: str, dest: Path) -> None:
        """Stream the object into `dest` (bounded memory); FileNotFoundError when missing."""

    @abc.abstractmethod
    def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """The object's bytes in chunks (bounded memory); FileNotFoundError when missing."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Objects whose key starts with `prefix`, sorted by key, temporaries excluded."""

    @abc.abstractmethod
    def exists(self, key: str) -> bool: ...

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; a missing key is not an error."""

    def check_access(self) -> None:
        """Prove that this bucket takes a write, a read and a delete (credentials,
        bucket, permissions) with a small probe object, removed again. StorageError
        (naming the bucket and the fix) otherwise."""
        key = f"{PROBE_PREFIX}{uuid.uuid4().hex}"
        data = b"ssmd write check\n"
        self.put_atomic(key, data)
        try:
            got = self.get(key)
        except FileNotFoundError:
            got = b""
        self.delete(key)
        if got != data:
            raise StorageError(
                f"{self.url}: an object just written read back different. Fix: check that "
                "the endpoint is an S3-compatible store (or the folder a plain local one)"
            )

    def discard_temporaries(self) -> int:
        """Remove what an interrupted `put_atomic` left behind; how many were removed.

        A single PUT leaves nothing, so by default there is nothing to do.
        """
        return 0


def open_store(location: Store) -> ObjectStore:
    """The backend for a resolved environment's `raw_store` / `normalized_store`."""
    from ssmd.config import LocalStore

    if isinstance(location, LocalStore):
        from ssmd.store.local import LocalObjectStore

        return LocalObjectStore(location.path)
    from ssmd.store.s3 import S3ObjectStore

    return S3ObjectStore(location.bucket, endpoint=location.endpoint, region=location.region)

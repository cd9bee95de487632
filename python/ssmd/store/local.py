"""A bucket as a local directory: temp file + fsync + rename, then fsync of the directory."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from ssmd.exceptions import DiskFullError, StorageError
from ssmd.store.base import ObjectInfo, ObjectStore, is_temp_name
from ssmd.store.space import disk_full, free_bytes, write_all

__all__ = ["LocalObjectStore", "fsync_dir", "write_durably"]


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes) -> None:
    """Replace `path` with `data` atomically and durably: temp file, fsync, rename,
    fsync of the directory. A kill at any point leaves the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb", buffering=0) as fh:
            write_all(fh, data)
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        # A full disk stays full with a half-written temp file on it.
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def _check_key(key: str) -> None:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid object key {key!r}")


class LocalObjectStore(ObjectStore):
    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    @property
    def url(self) -> str:
        return self.root.absolute().as_uri()

    def path(self, key: str) -> Path:
        _check_key(key)
        return self.root / key

    def put_atomic(self, key: str, data: bytes | Path) -> None:
        target = self.path(key)
        if is_temp_name(key):
            raise ValueError(f"refusing to store a temporary name {key!r}")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
            try:
                with open(tmp, "wb", buffering=0) as out:
                    if isinstance(data, Path):
                        with open(data, "rb") as src:
                            while chunk := src.read(1 << 20):
                                write_all(out, chunk)
                    else:
                        write_all(out, data)
                    os.fsync(out.fileno())
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                raise
            fsync_dir(target.parent)
        except (OSError, DiskFullError) as exc:
            if disk_full(exc) is not None:  # the object's size, not the failed write's
                size = data.stat().st_size if isinstance(data, Path) else len(data)
                raise DiskFullError(str(target), size, free_bytes(target)) from exc
            raise StorageError(
                f"cannot write {key} under {self.root}: {exc}. Fix: make {self.root} a "
                "writable folder for this user, or set another path in the environment's "
                "spec.storage"
            ) from exc

    def discard_temporaries(self) -> int:
        """Remove temp files of `put_atomic` calls cut short by a crash (kill -9)."""
        removed = 0
        if not self.root.exists():
            return 0
        for path in self.root.rglob(".*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
        return removed

    def get(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def download(self, key: str, dest: Path) -> None:
        shutil.copyfile(self.path(key), dest)

    def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        with open(self.path(key), "rb") as fh:
            while chunk := fh.read(chunk_size):
                yield chunk

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if not self.root.exists():
            return
        # Start the walk at the deepest directory the prefix names.
        base_rel = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        base = self.root / base_rel if base_rel else self.root
        if not base.is_dir():
            return
        found: list[ObjectInfo] = []
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel_dir = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                key = name if rel_dir == "." else f"{rel_dir}/{name}"
                if key.startswith(prefix) and not is_temp_name(key):
                    try:
                        size = os.stat(os.path.join(dirpath, name)).st_size
                    except FileNotFoundError:
                        continue
                    found.append(ObjectInfo(key, size))
        yield from sorted(found, key=lambda o: o.key)

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(key).unlink()

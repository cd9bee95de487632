"""The archiver's disk, filled to the last byte and emptied again.

As root it is a real filesystem: a small tmpfs mounted for the test, filled by a
ballast file. Without root, nothing can be mounted, so the archiver's storage fault
hook stands in: while the file named by SSMD_DISK_FULL_FLAG exists, every write of
the archiver's local files fails with ENOSPC.

    with archiver_disk(path) as disk:     # the archiver's data dir is disk.path
        start the archiver with disk.env
        disk.fill()
        disk.empty()
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

__all__ = ["FlaggedDisk", "Tmpfs", "archiver_disk"]

_CHUNK = 1 << 20
SIZE = 64 << 20  # room for a whole run's spool, journal and local buckets


class Tmpfs:
    """A mounted tmpfs at `path`; `fill` takes every free byte with a ballast file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.env: dict[str, str] = {}
        self.ballast = path / "ballast.fill"

    def fill(self) -> int:
        """Take every free byte; returns how many the ballast holds."""
        written = 0
        chunk = b"\0" * _CHUNK
        fd = os.open(self.ballast, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            while True:
                try:
                    written += os.write(fd, chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    if len(chunk) == 1:
                        return written
                    chunk = chunk[: len(chunk) // 2]
        finally:
            os.close(fd)

    def empty(self) -> None:
        self.ballast.unlink(missing_ok=True)


class FlaggedDisk:
    """A plain directory; full while the storage fault hook's flag file exists."""

    def __init__(self, path: Path) -> None:
        from ssmd.store.space import FULL_FLAG_ENV

        self.path = path
        self.flag = path.with_name(path.name + ".full")
        self.env = {FULL_FLAG_ENV: str(self.flag)}

    def fill(self) -> int:
        self.flag.touch()
        return 0

    def empty(self) -> None:
        self.flag.unlink(missing_ok=True)


@contextlib.contextmanager
def archiver_disk(path: Path) -> Iterator[Tmpfs | FlaggedDisk]:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        yield FlaggedDisk(path)
        return
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE},mode=0700", "tmpfs", str(path)],
        check=True,
        capture_output=True,
    )
    try:
        yield Tmpfs(path)
    finally:
        # lazy: a process still holding a file there must not make the test hang
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)

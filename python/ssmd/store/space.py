"""Local disk space: writes that say which file is full, and a fault hook for tests.

A full disk (ENOSPC, EDQUOT) is told apart from other storage errors because it is not a
misconfiguration: it goes away when space is freed, so the archiver waits for it
instead of exiting. `write_all` is the one way the archiver's local files are written
(spool, journal, state, markers, local buckets): a full disk raises DiskFullError
naming the file and the bytes the write needed.

Tests without root cannot fill a real filesystem, so while the file named by
SSMD_DISK_FULL_FLAG exists every `write_all` fails with ENOSPC and `free_bytes` is 0.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import BinaryIO, Final

from ssmd.exceptions import DiskFullError

__all__ = ["FULL_ERRNOS", "FULL_FLAG_ENV", "disk_full", "free_bytes", "write_all"]

FULL_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT})
FULL_FLAG_ENV: Final = "SSMD_DISK_FULL_FLAG"


def _flagged() -> bool:
    flag = os.environ.get(FULL_FLAG_ENV)
    return flag is not None and os.path.exists(flag)


def free_bytes(path: Path | str) -> int:
    """Bytes free for this user on the filesystem of `path` (or of its nearest existing
    parent); -1 when that cannot be read."""
    at = Path(path)
    while not at.exists() and at != at.parent:
        at = at.parent
    if _flagged():
        return 0
    try:
        return int(shutil.disk_usage(at).free)
    except OSError:
        return -1


def write_all(fh: BinaryIO, data: bytes | memoryview) -> None:
    """Write all of `data` to `fh` (an unbuffered file: a failed write leaves nothing
    behind in a buffer). A full disk raises DiskFullError naming the file."""
    view = memoryview(data)
    try:
        if _flagged():
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        while view:
            n = fh.write(view)
            if n is None:  # a non-blocking file; never one of ours
                raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))
            view = view[n:]
    except OSError as exc:
        if exc.errno in FULL_ERRNOS:
            raise DiskFullError(str(fh.name), len(view), free_bytes(str(fh.name))) from exc
        raise


def disk_full(exc: BaseException, where: Path | str = "") -> DiskFullError | None:
    """The full disk behind `exc` (itself, or a cause or context), or None. `where`
    names the place written to when the error names no file (a failed fsync)."""
    seen: set[int] = set()
    at: BaseException | None = exc
    while at is not None and id(at) not in seen:
        seen.add(id(at))
        if isinstance(at, DiskFullError):
            return at
        if isinstance(at, OSError) and at.errno in FULL_ERRNOS:
            path = str(at.filename or where or "the data dir")
            return DiskFullError(path, 0, free_bytes(path) if (at.filename or where) else -1)
        at = at.__cause__ or at.__context__
    return None

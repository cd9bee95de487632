"""Processes of `ssmd up` that must not outlive it, and knowing them again after a crash.

Dying with the parent: every child asks the kernel (Linux `prctl(PR_SET_PDEATHSIG)`,
set between fork and exec) for a SIGTERM when `ssmd up` dies, however it dies
(SIGKILL, OOM). SIGTERM, not SIGKILL: each component then stops as on a requested
stop (the connector drains, the archiver seals and writes its manifests).

Knowing a process again: a pid alone may have been reused by an unrelated process
by the time the next `ssmd up` reads the state file, so a child is recorded as its
pid and its start time (clock ticks since boot, /proc/PID/stat field 22), with the
boot's id; a process matches only if all three do.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

__all__ = ["boot_id", "die_with_parent", "identity", "is_running", "start_ticks"]

_PR_SET_PDEATHSIG: Final = 1


def die_with_parent() -> Callable[[], None] | None:
    """A pre-exec hook that makes the child get SIGTERM when this process dies
    (None where the kernel has no such request: then only the next run's cleanup helps)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here, not in the child
    parent = os.getpid()

    def hook() -> None:
        # Runs in the child between fork and exec: nothing here may take a lock.
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the request was made
            os._exit(1)

    return hook


def start_ticks(pid: int) -> int | None:
    """When `pid` started (clock ticks since boot); None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or ")".
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] == "Z":
        return None  # exited, not yet reaped
    return int(fields[19])  # field 22 of the line; fields[0] is field 3


def boot_id() -> str:
    """This boot's id: start times count from the boot, so they compare within one."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def identity(pid: int) -> dict[str, Any] | None:
    """What the state file records of a running child: {"pid", "start"}."""
    start = start_ticks(pid)
    return None if start is None else {"pid": pid, "start": start}


def is_running(record: Any, boot: str) -> bool:
    """True while the process a state file recorded (in boot `boot`) still runs."""
    if not isinstance(record, dict) or boot != boot_id():
        return False
    pid, start = record.get("pid"), record.get("start")
    if not isinstance(pid, int) or not isinstance(start, int) or pid <= 0:
        return False
    return start_ticks(pid) == start

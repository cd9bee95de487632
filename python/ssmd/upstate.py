"""What a running `ssmd up` tells other commands: `{data dir}/up/state.json` and a lock.

The lock (`{data dir}/up/lock`, flock) is held for as long as `ssmd up` runs, so
"is it running" never depends on a pid that may have been reused: the kernel drops
the lock when the process dies, however it dies. The state file says where the
embedded NATS server listens and which processes `ssmd up` started; a command
that resolves an environment with `nats_url: embedded` reads the URL from it
(`running_nats_url`), and the next `ssmd up` stops processes a killed one left.

Only the standard library and ssmd.exceptions here: ssmd.config imports this module,
and `ssmd up` (ssmd.up) writes what it reads.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path
from typing import Any, Final

from ssmd.exceptions import AlreadyRunning

__all__ = [
    "LOCK_FILE",
    "STATE_FILE",
    "UpLock",
    "read_state",
    "running_env",
    "running_nats_url",
]

STATE_DIR: Final = "up"
LOCK_FILE: Final = "lock"
STATE_FILE: Final = "state.json"


def _dir(data_dir: Path) -> Path:
    return Path(data_dir) / STATE_DIR


def _held(lock_path: Path) -> bool:
    """True when some process holds the lock (this one included, through another open)."""
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's own shared lock, if it got one
    return False


def read_state(data_dir: Path) -> dict[str, Any] | None:
    """The state file as written (None when missing or unreadable)."""
    try:
        data = json.loads((_dir(data_dir) / STATE_FILE).read_text())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def running_nats_url(data_dir: Path) -> str | None:
    """The URL of the NATS server a running `ssmd up` started for `data_dir`, if any."""
    if not _held(_dir(data_dir) / LOCK_FILE):
        return None
    state = read_state(data_dir)
    url = state.get("nats_url") if state else None
    return url if isinstance(url, str) and url else None


def running_env(data_dir: Path) -> str | None:
    """The environment a running `ssmd up` on `data_dir` captures; "" while it starts
    (the lock is held before the state names it); None when none runs."""
    if not _held(_dir(data_dir) / LOCK_FILE):
        return None
    state = read_state(data_dir)
    env = state.get("env") if state else None
    return env if isinstance(env, str) else ""


class UpLock:
    """The data directory's lock and state file, for the `ssmd up` that owns them."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = _dir(data_dir)
        self.state: dict[str, Any] = {}
        self._fd: int | None = None

    @property
    def state_path(self) -> Path:
        return self.dir / STATE_FILE

    def acquire(self) -> dict[str, Any] | None:
        """Take the lock; returns the state a previous run left (None if none).

        Raises AlreadyRunning (with the other run's pid) when the lock is held.
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            other = read_state(self.dir.parent) or {}
            raise AlreadyRunning(
                f"another `ssmd up` (pid {other.get('pid', '?')}) is running on "
                f"{self.dir.parent}; stop it first or use another --data-dir"
            ) from None
        self._fd = fd
        return read_state(self.dir.parent)

    def write(self, **changes: Any) -> None:
        """Update the state file atomically (readers never see half of it)."""
        self.state.update(changes)
        tmp = self.dir / f".{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(self.state, indent=2, sort_keys=True))
        os.replace(tmp, self.state_path)

    def release(self, *, keep_state: bool = False) -> None:
        if not keep_state:
            with contextlib.suppress(FileNotFoundError):
                self.state_path.unlink()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

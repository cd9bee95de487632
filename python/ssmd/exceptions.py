"""The one exception hierarchy of ssmd.

The Rust core (ssmd._core) raises these classes too: it looks them up here, so
every error a caller can catch is defined in this file.
"""

from __future__ import annotations


class SsmdError(Exception):
    """Base class of every error ssmd raises on purpose."""


class CoreVersionError(SsmdError, ImportError):
    """The compiled extension ssmd._core does not match the Python package."""


class DecodeError(SsmdError, ValueError):
    """Bytes that should hold normalized records (Cap'n Proto) could not be decoded."""


class ArchiveError(SsmdError, ValueError):
    """An archive is damaged somewhere other than a truncated tail."""


class DataError(SsmdError, LookupError):
    """A question the archive cannot answer: an unknown data type or ticker, a range with
    no data. The message says what exists instead (the closest names, the dates held)."""


class BusProtocolError(SsmdError, ValueError):
    """NATS protocol trouble: the server sent what the protocol does not allow, or a
    message to publish cannot be written (a subject with whitespace, a header value with
    a line break)."""


class BusAuthError(SsmdError):
    """The NATS server refused the connection's credentials (user and password, token,
    nkey or credentials file); retrying with the same ones cannot help."""


class ConfigError(SsmdError):
    """Configuration is invalid. The message names the file, the field and the fix."""


class AuthenticationError(SsmdError):
    """The exchange refused the credentials (HTTP 401 on the WebSocket upgrade or REST)."""


class StorageError(SsmdError):
    """Object storage failed or refused the request (credentials, permissions, network).

    Never an empty result: an authentication failure raises this instead.
    """


class DiskFullError(StorageError):
    """A local write failed for lack of space (ENOSPC, EDQUOT): which file, how many bytes
    the write needed and how many were free then (-1 = unknown).

    Not a misconfiguration: the archiver waits for space instead of exiting.
    """

    def __init__(self, path: str, needed: int, free: int) -> None:
        self.path, self.needed, self.free = path, needed, free
        need = f"needs {needed:,} bytes" if needed > 0 else "needs more space"
        have = f", {free:,} free" if free >= 0 else ""
        super().__init__(
            f"disk full: cannot write {path} ({need}{have}). Fix: free space on that "
            "filesystem, or move the data dir (--data-dir) to a bigger one"
        )


class StoreUnavailableError(StorageError):
    """A request to a remote bucket failed while the archiver needs it.

    `transient`: the store did not answer or failed (connection refused or reset, a
    timeout, a 5xx, throttling) and will most likely be back; otherwise it refused the
    request (a missing bucket, denied or revoked credentials), which needs a fix.
    `state` says which in a few words for /health (`s3 unreachable: BUCKET at ENDPOINT`);
    `bucket` names the bucket, `code` the error class.
    """

    def __init__(
        self, message: str, *, bucket: str, state: str, code: str, transient: bool
    ) -> None:
        super().__init__(message)
        self.bucket, self.state, self.code, self.transient = bucket, state, code, transient

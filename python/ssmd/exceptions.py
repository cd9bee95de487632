"""The one exception hierarchy of ssmd.

The Rust core (ssmd._core) raises these classes too: CoreError and its subclasses,
one per kind of the core's own error type, bound once when the extension loads. Every
error a caller can catch is defined in this file.
"""

from __future__ import annotations


class SsmdError(Exception):
    """Base class of every error ssmd raises on purpose."""


class CoreVersionError(SsmdError, ImportError):
    """The compiled extension ssmd._core does not match the Python package."""


class CoreError(SsmdError, ValueError):
    """Raised by the Rust core: an argument it does not accept (this class), or one of
    the subclasses below."""


class DecodeError(CoreError):
    """Bytes that should hold normalized records (Cap'n Proto) could not be decoded."""


class ArchiveError(CoreError):
    """An archive is damaged somewhere other than a truncated tail."""


class DataError(SsmdError, LookupError):
    """A question the archive cannot answer: an unknown data type or ticker, a range with
    no data. The message says what exists instead (the closest names, the dates held)."""


class BusProtocolError(CoreError):
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


class StreamRecreatedError(StorageError):
    """The stream an archiver reads was deleted and created again while it ran: its
    sequences started over. The archiver stops after sealing what it holds; started
    again, it seals the old stream's spool and archives the new stream from its start."""


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


class HistoryError(SsmdError):
    """A history request the gateway refuses: HTTP `status`, an error `code` and a
    message for the client."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class BadRequest(SsmdError, ValueError):
    """A query parameter the API cannot use; the message says which and why."""


class TransformError(SsmdError):
    """A gateway transform that failed: `reason` is one of ssmd.gateway.transform.REASONS."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class IssueError(SsmdError, ValueError):
    """A report or a request about data issues that cannot be taken; the message says which
    field and how to fix it."""


class ActionError(SsmdError):
    """A TUI action that could not be done; the message says why and what to do."""


class AlreadyRunning(SsmdError):
    """Another `ssmd up` holds the data directory."""


class ChildFailed(SsmdError):
    """A child of `ssmd up` exited or never became ready."""

    def __init__(self, name: str, why: str, tail: list[str]) -> None:
        self.name, self.why, self.tail = name, why, tail
        super().__init__(f"{name} {why}")


class ControlError(SsmdError):
    """`ssmd up` does not answer on its control socket."""


class RestError(SsmdError):
    """A venue's REST API could not be read after retries, or the venue refused the
    request."""


class SessionError(SsmdError):
    """A venue's WebSocket connection failed or died (retryable)."""


class NoReply(SessionError):
    """A venue did not answer a command within its reply timeout, on a connection that is
    still up: the command may or may not have been carried out."""


class StoreError(SsmdError):
    """The security master's database refused an operation, or its schema is not what
    this version expects."""


class KeyRejected(AuthenticationError):
    """The exchange refused the key (the CLI says `authentication failed`)."""


class GatewayError(SsmdError):
    """The gateway refused a request (status and code as it sent them) or did not answer."""

    def __init__(self, message: str, status: int = 0, code: str = "unreachable") -> None:
        super().__init__(message)
        self.status, self.code = status, code


class AtLimit(SsmdError):
    """A gateway connection refused by its key's or its tenant's connection limit (closed
    with 4429 and this message)."""


class HandshakeRefused(SsmdError):
    """A simulator client's WebSocket upgrade was answered with another status than 101."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the server refused the WebSocket upgrade: HTTP {status}")
        self.status = status


class CommandError(SsmdError):
    """A Kalshi WebSocket command that a server of ssmd's (the simulator, the replay)
    refuses: Kalshi's error `code` and message, and the fields its error frame adds."""

    def __init__(self, code: int, text: str, **extra: object) -> None:
        super().__init__(text)
        self.code, self.text, self.extra = code, text, extra

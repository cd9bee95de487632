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


class ConfigError(SsmdError):
    """Configuration is invalid. The message names the file, the field and the fix."""


class AuthenticationError(SsmdError):
    """The exchange refused the credentials (HTTP 401 on the WebSocket upgrade or REST)."""


class StorageError(SsmdError):
    """Object storage failed or refused the request (credentials, permissions, network).

    Never an empty result: an authentication failure raises this instead.
    """

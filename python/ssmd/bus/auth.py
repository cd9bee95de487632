"""How ssmd reaches and proves itself to a NATS server: the server list of a URL, its
credentials, TLS. Both NATS clients (ssmd.bus.connection for nats-py, ssmd.bus.wire for
the hot path) take them from here, so a URL means the same to both.

- `nats://host:port` or `tls://host:port`, comma-separated for a cluster;
- `user:password@` or `token@` in a URL;
- a credentials file (a user JWT and the nkey seed that signs the server's nonce), named
  by SSMD_NATS_CREDS, as `nsc generate creds` writes it;
- TLS for `tls://` URLs or a server that requires it; the CA bundle is SSMD_NATS_CA,
  else the system's.
"""

from __future__ import annotations

import base64
import binascii
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from ssmd.exceptions import ConfigError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

__all__ = [
    "CA_ENV",
    "CREDS_ENV",
    "Credentials",
    "Server",
    "credentials",
    "parse_servers",
    "tls_context",
]

CREDS_ENV = "SSMD_NATS_CREDS"
CA_ENV = "SSMD_NATS_CA"


@dataclass(frozen=True, slots=True)
class Server:
    host: str
    port: int
    tls: bool = False
    user: str | None = None
    password: str | None = None
    token: str | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def parse_servers(url: str) -> list[Server]:
    """The servers of a comma-separated URL list (nats:// or tls://)."""
    out = []
    for u in url.split(","):
        u = u.strip()
        if not u:
            continue
        parts = urlsplit(u if "://" in u else f"nats://{u}")
        if parts.scheme not in ("nats", "tls") or not parts.hostname:
            raise ConfigError(
                f"NATS URL {parts.scheme}://{parts.hostname or ''}... is not nats://host:port "
                "or tls://host:port. Fix: --nats-url (or SSMD_NATS_URL)"
            )
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        out.append(
            Server(
                parts.hostname,
                parts.port or 4222,
                parts.scheme == "tls",
                user if password is not None else None,
                password,
                user if password is None else None,
            )
        )
    if not out:
        raise ConfigError("no NATS server in the URL. Fix: --nats-url (or SSMD_NATS_URL)")
    return out


class Credentials:
    """A NATS credentials file: the user JWT and the nkey seed that signs nonces."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(
                f"cannot read the NATS credentials file {path}: {exc.strerror}. "
                f"Fix: {CREDS_ENV} names a readable .creds file"
            ) from None
        self.jwt = _block(text, "JWT", path)
        self._key = _ed25519_key(_block(text, "SEED", path), path)

    def sign(self, nonce: str) -> str:
        sig = self._key.sign(nonce.encode())
        return base64.urlsafe_b64encode(sig).rstrip(b"=").decode()


def _block(text: str, kind: str, path: str) -> str:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("-----BEGIN") and kind in line:
            for body in lines[i + 1 :]:
                if body.strip():
                    return body.strip()
    raise ConfigError(
        f"the NATS credentials file {path} has no {kind} block. Fix: use the .creds file "
        "that `nsc generate creds` writes"
    )


def _ed25519_key(seed: str, path: str) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        raw = base64.b32decode(seed + "=" * (-len(seed) % 8))
    except ValueError:
        raw = b""
    # A seed is 2 prefix bytes, 32 key bytes and a CRC-16; its first letter is "S".
    if (
        len(raw) != 36
        or not seed.startswith("S")
        or binascii.crc_hqx(raw[:-2], 0) != int.from_bytes(raw[-2:], "little")
    ):
        raise ConfigError(
            f"the nkey seed in {path} is damaged. Fix: generate the credentials again"
        )
    return Ed25519PrivateKey.from_private_bytes(raw[2:34])


def credentials() -> Credentials | None:
    """The credentials file that SSMD_NATS_CREDS names, if it names one."""
    path = os.environ.get(CREDS_ENV)
    return Credentials(path) if path else None


def tls_context() -> ssl.SSLContext:
    """Verifies the server against SSMD_NATS_CA, or the system's CAs when unset."""
    return ssl.create_default_context(cafile=os.environ.get(CA_ENV) or None)

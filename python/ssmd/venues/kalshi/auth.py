"""Kalshi request signing (RSA-PSS, SHA-256) and its verification.

The signed string is ``timestamp_ms + METHOD + path`` with the path starting at
``/trade-api/`` and without the query string. The signature is RSA-PSS with SHA-256,
MGF1-SHA-256 and a salt as long as the digest, encoded as standard base64.

Messages raised from here name the key file but never include key material.
"""

from __future__ import annotations

import base64
import binascii
import time
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ssmd.exceptions import ConfigError

__all__ = [
    "HEADER_KEY",
    "HEADER_SIGNATURE",
    "HEADER_TIMESTAMP",
    "auth_headers",
    "load_private_key",
    "load_public_key",
    "message_to_sign",
    "private_key_from_pem",
    "sign",
    "verify",
]

HEADER_KEY = "KALSHI-ACCESS-KEY"
HEADER_TIMESTAMP = "KALSHI-ACCESS-TIMESTAMP"
HEADER_SIGNATURE = "KALSHI-ACCESS-SIGNATURE"


def _pss() -> padding.PSS:
    return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)


def load_private_key(path: str | Path) -> rsa.RSAPrivateKey:
    """Load an unencrypted PEM RSA private key (PKCS#1 or PKCS#8).

    Raises ConfigError naming the path when the file is missing, unreadable or not an
    RSA private key.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"Kalshi private key file {p} does not exist; set KALSHI_PRIVATE_KEY_PATH "
            "to the PEM file downloaded when the API key was created"
        ) from None
    except OSError as exc:
        raise ConfigError(
            f"Kalshi private key file {p} cannot be read ({exc.strerror}); check its permissions"
        ) from None
    return private_key_from_pem(data, f"file {p}")


def private_key_from_pem(data: bytes, where: str) -> rsa.RSAPrivateKey:
    """An unencrypted PEM RSA private key from bytes; ConfigError naming `where` (never
    the bytes) when they are not one."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigError(
            f"Kalshi private key {where} is not an unencrypted PEM private key "
            "(expected BEGIN RSA PRIVATE KEY or BEGIN PRIVATE KEY)"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"Kalshi private key {where} holds a non-RSA key; Kalshi keys are RSA")
    return key


def load_public_key(source: str | Path | bytes) -> rsa.RSAPublicKey:
    """Load a PEM RSA public key from a path or from PEM bytes."""
    if isinstance(source, bytes):
        data, where = source, "<PEM bytes>"
    else:
        where = str(source)
        try:
            data = Path(source).read_bytes()
        except OSError as exc:
            raise ConfigError(f"public key file {where} cannot be read ({exc.strerror})") from None
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigError(f"public key {where} is not a PEM public key") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ConfigError(f"public key {where} is not an RSA key")
    return key


def message_to_sign(timestamp_ms: int | str, method: str, path: str) -> bytes:
    """The exact bytes Kalshi signs: timestamp + METHOD + path (query string removed)."""
    bare = path.split("?", 1)[0]
    return f"{timestamp_ms}{method.upper()}{bare}".encode()


def sign(private_key: rsa.RSAPrivateKey, timestamp_ms: int | str, method: str, path: str) -> str:
    """Sign one request; returns the base64 value of KALSHI-ACCESS-SIGNATURE."""
    sig = private_key.sign(message_to_sign(timestamp_ms, method, path), _pss(), hashes.SHA256())
    return base64.b64encode(sig).decode("ascii")


def auth_headers(
    key_id: str,
    private_key: rsa.RSAPrivateKey,
    method: str,
    path: str,
    now_ms: int | None = None,
) -> dict[str, str]:
    """The three KALSHI-ACCESS-* headers for one request."""
    ts = int(time.time() * 1000) if now_ms is None else now_ms
    return {
        HEADER_KEY: key_id,
        HEADER_TIMESTAMP: str(ts),
        HEADER_SIGNATURE: sign(private_key, ts, method, path),
    }


def verify(
    public_key: rsa.RSAPublicKey,
    signature_b64: str,
    timestamp_ms: int | str,
    method: str,
    path: str,
) -> bool:
    """True when the signature is valid for this timestamp, method and path."""
    try:
        sig = base64.b64decode(signature_b64, validate=True)
    except (binascii.Error, ValueError):
        return False
    try:
        public_key.verify(sig, message_to_sign(timestamp_ms, method, path), _pss(), hashes.SHA256())
    except InvalidSignature:
        return False
    return True

"""SealedSecrets: a Kubernetes Secret encrypted for one cluster's Sealed Secrets controller.

The format is the controller's own (kubeseal writes the same), so the controller decrypts
what this writes and makes the Secret from it. Each value is sealed on its own:

  1. a random 32-byte session key;
  2. that key encrypted with the cluster's RSA public key (from its certificate), RSA-OAEP
     with SHA-256 (MGF1 SHA-256) and, as the OAEP label, "NAMESPACE/NAME" (the strict
     scope: the value opens only in a Secret of that name in that namespace);
  3. the value encrypted with AES-256-GCM under the session key, with a zero 12-byte
     nonce (safe: each session key is used once) and no additional data;
  4. the output: the RSA ciphertext's length (2 bytes, big-endian), the RSA ciphertext,
     then the AES-GCM ciphertext with its 16-byte tag; base64 (standard) in the manifest.

docs/keys.md says the same for people.
"""

from __future__ import annotations

import base64
import os
import struct
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ssmd.exceptions import ConfigError

__all__ = ["SESSION_KEY_BYTES", "hybrid_encrypt", "load_certificate", "oaep", "sealed_secret"]

SESSION_KEY_BYTES: Final = 32
NONCE: Final = bytes(12)  # AES-GCM's standard nonce size, all zero


def oaep(label: bytes) -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=label)


def load_certificate(path: Path) -> rsa.RSAPublicKey:
    """The RSA public key of the controller's certificate (`kubeseal --fetch-cert`)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"certificate {path} cannot be read ({exc.strerror})") from None
    try:
        key = x509.load_pem_x509_certificate(data).public_key()
    except ValueError:
        raise ConfigError(
            f"{path} is not a PEM certificate. Fix: fetch the controller's with "
            "`kubeseal --fetch-cert > cert.pem`"
        ) from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ConfigError(f"certificate {path} holds a non-RSA key; the controller's is RSA")
    return key


def hybrid_encrypt(public_key: rsa.RSAPublicKey, plaintext: bytes, label: bytes) -> bytes:
    session = os.urandom(SESSION_KEY_BYTES)
    wrapped = public_key.encrypt(session, oaep(label))
    return (
        struct.pack(">H", len(wrapped)) + wrapped + AESGCM(session).encrypt(NONCE, plaintext, None)
    )


def sealed_secret(
    public_key: rsa.RSAPublicKey, namespace: str, name: str, data: dict[str, bytes]
) -> dict[str, Any]:
    """A SealedSecret manifest (bitnami.com/v1alpha1, strict scope) for Secret `name`."""
    label = f"{namespace}/{name}".encode()
    meta = {"name": name, "namespace": namespace}
    return {
        "apiVersion": "bitnami.com/v1alpha1",
        "kind": "SealedSecret",
        "metadata": dict(meta),
        "spec": {
            "encryptedData": {
                key: base64.b64encode(hybrid_encrypt(public_key, value, label)).decode()
                for key, value in sorted(data.items())
            },
            "template": {"metadata": dict(meta), "type": "Opaque"},
        },
    }

"""SealedSecrets in the controller's format: sealed here, opened the controller's way."""

from __future__ import annotations

import base64
import struct
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from keyfix import new_rsa, self_signed_cert

from ssmd.exceptions import ConfigError
from ssmd.keys.sealing import hybrid_encrypt, load_certificate, oaep, sealed_secret


def unseal(private_key: rsa.RSAPrivateKey, sealed: bytes, label: bytes) -> bytes:
    """The controller's HybridDecrypt: 2-byte big-endian length of the RSA ciphertext, the
    RSA-OAEP (SHA-256) encrypted session key, then AES-256-GCM with a zero nonce."""
    (rsa_len,) = struct.unpack(">H", sealed[:2])
    session = private_key.decrypt(sealed[2 : 2 + rsa_len], oaep(label))
    assert len(session) == 32  # AES-256
    return AESGCM(session).decrypt(bytes(12), sealed[2 + rsa_len :], None)


def test_round_trip_with_the_controllers_algorithm() -> None:
    cluster = new_rsa()
    sealed = hybrid_encrypt(cluster.public_key(), b"the secret", b"ssmd-prod/kalshi")
    assert b"the secret" not in sealed
    assert struct.unpack(">H", sealed[:2])[0] == 256  # a 2048-bit key's ciphertext
    assert unseal(cluster, sealed, b"ssmd-prod/kalshi") == b"the secret"
    # every seal uses a new session key
    assert hybrid_encrypt(cluster.public_key(), b"the secret", b"x") != hybrid_encrypt(
        cluster.public_key(), b"the secret", b"x"
    )


def test_strict_scope_opens_only_under_its_namespace_and_name() -> None:
    cluster = new_rsa()
    sealed = hybrid_encrypt(cluster.public_key(), b"v", b"ssmd-prod/kalshi")
    with pytest.raises(ValueError):
        unseal(cluster, sealed, b"ssmd-dev/kalshi")
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(InvalidTag):
        unseal(cluster, tampered, b"ssmd-prod/kalshi")


def test_manifest_is_a_sealed_secret_for_that_secret(tmp_path: Path) -> None:
    cluster = new_rsa()
    public = load_certificate(self_signed_cert(cluster, tmp_path / "cert.pem"))
    doc = sealed_secret(public, "ssmd-prod", "kalshi", {"a": b"1", "b": b"two"})
    assert doc["apiVersion"] == "bitnami.com/v1alpha1" and doc["kind"] == "SealedSecret"
    assert doc["metadata"] == {"name": "kalshi", "namespace": "ssmd-prod"}
    assert doc["spec"]["template"]["metadata"] == doc["metadata"]
    opened = {
        k: unseal(cluster, base64.b64decode(v), b"ssmd-prod/kalshi")
        for k, v in doc["spec"]["encryptedData"].items()
    }
    assert opened == {"a": b"1", "b": b"two"}


def test_a_file_that_is_not_a_certificate_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cert.pem"
    path.write_text("not a certificate")
    with pytest.raises(ConfigError, match="kubeseal --fetch-cert"):
        load_certificate(path)

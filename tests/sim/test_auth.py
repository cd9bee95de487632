from __future__ import annotations

import base64
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ssmd.exceptions import ConfigError
from ssmd.sim import DEMO_PRIVATE_KEY_PATH
from ssmd.venues.kalshi import auth


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_signature_verifies_with_cryptography_pss_digest_salt(key: rsa.RSAPrivateKey) -> None:
    sig = auth.sign(key, 1784557800123, "get", "/trade-api/ws/v2")
    # Independent check: the documented scheme, done directly with the cryptography library.
    key.public_key().verify(
        base64.b64decode(sig),
        b"1784557800123GET/trade-api/ws/v2",
        padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        hashes.SHA256(),
    )
    assert auth.verify(key.public_key(), sig, 1784557800123, "GET", "/trade-api/ws/v2")


def test_query_string_is_not_signed(key: rsa.RSAPrivateKey) -> None:
    sig = auth.sign(key, 5, "GET", "/trade-api/v2/markets?limit=5")
    assert auth.verify(key.public_key(), sig, 5, "GET", "/trade-api/v2/markets")


def test_bad_signatures_are_rejected(key: rsa.RSAPrivateKey) -> None:
    sig = auth.sign(key, 1000, "GET", "/trade-api/ws/v2")
    pub = key.public_key()
    assert not auth.verify(pub, sig, 1001, "GET", "/trade-api/ws/v2")  # other timestamp
    assert not auth.verify(pub, sig, 1000, "POST", "/trade-api/ws/v2")
    assert not auth.verify(pub, sig, 1000, "GET", "/trade-api/v2")
    assert not auth.verify(pub, "not base64!!", 1000, "GET", "/trade-api/ws/v2")
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert not auth.verify(other.public_key(), sig, 1000, "GET", "/trade-api/ws/v2")


def test_headers(key: rsa.RSAPrivateKey) -> None:
    h = auth.auth_headers("kid", key, "GET", "/trade-api/ws/v2", now_ms=42)
    assert h[auth.HEADER_KEY] == "kid" and h[auth.HEADER_TIMESTAMP] == "42"
    assert auth.verify(key.public_key(), h[auth.HEADER_SIGNATURE], 42, "GET", "/trade-api/ws/v2")


@pytest.mark.parametrize(
    "fmt", [serialization.PrivateFormat.TraditionalOpenSSL, serialization.PrivateFormat.PKCS8]
)
def test_loads_pkcs1_and_pkcs8(
    tmp_path: Path, key: rsa.RSAPrivateKey, fmt: serialization.PrivateFormat
) -> None:
    p = tmp_path / "k.pem"
    p.write_bytes(key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption()))
    loaded = auth.load_private_key(p)
    assert loaded.private_numbers() == key.private_numbers()


def test_load_errors_name_the_path_and_hide_material(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist") as e1:
        auth.load_private_key(tmp_path / "missing.pem")
    assert "missing.pem" in str(e1.value)
    junk = tmp_path / "junk.pem"
    junk.write_text("-----BEGIN PRIVATE KEY-----\nAAAASECRETMATERIAL\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigError) as e2:
        auth.load_private_key(junk)
    assert "junk.pem" in str(e2.value) and "SECRETMATERIAL" not in str(e2.value)


def test_demo_key_loads() -> None:
    assert auth.load_private_key(DEMO_PRIVATE_KEY_PATH).key_size == 2048

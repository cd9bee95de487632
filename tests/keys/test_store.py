"""The local key store (owner-only files), mounted Secrets, and `sealed:NAME` references."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest
from keyfix import new_rsa, write_pem

from _support import ROOT
from ssmd.config import load_environment
from ssmd.connector.runner import load_credentials
from ssmd.exceptions import ConfigError
from ssmd.keys.store import KalshiKey, KeyStore, fingerprint, keys_dir, load_key, mounted_entries


def _key(tmp: Path, key_id: str = "key-1") -> KalshiKey:
    pem = write_pem(new_rsa(), tmp / f"{key_id}.pem").read_bytes()
    return KalshiKey.from_pem(key_id, pem, "test")


def test_keys_dir_is_under_the_data_dir_else_the_users_config(tmp_path: Path) -> None:
    assert keys_dir({"SSMD_DATA_DIR": str(tmp_path)}) == tmp_path / "keys"
    assert keys_dir({"HOME": str(tmp_path)}) == tmp_path / ".config" / "ssmd" / "keys"


def test_a_kept_key_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    environ = {"SSMD_DATA_DIR": str(tmp_path / "data")}
    key = _key(tmp_path)
    store = KeyStore("kalshi-prod", environ)
    path = store.save("kalshi", key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    again = load_key("kalshi-prod", "kalshi", environ)
    assert again.key_id == "key-1" and again.fingerprint == key.fingerprint
    assert key.fingerprint == fingerprint(key.private_key.public_key())
    # another environment's keys are its own
    with pytest.raises(ConfigError, match="no key 'kalshi' for environment kalshi-dev"):
        load_key("kalshi-dev", "kalshi", environ)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="can be read by others"):
        load_key("kalshi-prod", "kalshi", environ)


def test_listing_shows_no_material(tmp_path: Path) -> None:
    environ = {"SSMD_DATA_DIR": str(tmp_path / "data")}
    store = KeyStore("kalshi-prod", environ)
    key = _key(tmp_path)
    store.save("kalshi", key, created=1_000.0)
    store.save_sealed("kalshi-cluster", _key(tmp_path, "key-2"), tmp_path / "s.yaml")
    rows = [e.as_dict(now=1_000.0 + 86_400 * 3) for e in store.entries()]
    assert [(r["name"], r["backend"], r["age_days"]) for r in rows] == [
        ("kalshi", "file", 3.0),
        ("kalshi-cluster", "sealed", 0.0),
    ]
    assert rows[0]["fingerprint"] == key.fingerprint
    assert "PRIVATE KEY" not in str(rows) and "key-1" not in str(rows)
    sealed_index = store.path("kalshi-cluster").read_text()
    assert "PRIVATE KEY" not in sealed_index and "key-2" not in sealed_index
    with pytest.raises(ConfigError, match="sealed for a cluster"):
        load_key("kalshi-prod", "kalshi-cluster", environ)


def test_a_mounted_secret_comes_first(tmp_path: Path) -> None:
    key = _key(tmp_path, "mounted-id")
    folder = tmp_path / "secrets" / "kalshi"
    folder.mkdir(parents=True)
    for name, value in key.fields().items():
        (folder / name).write_bytes(value)
    environ = {
        "SSMD_DATA_DIR": str(tmp_path / "data"),
        "SSMD_SECRETS_DIR": str(tmp_path / "secrets"),
    }
    KeyStore("kalshi-prod", environ).save("kalshi", _key(tmp_path, "local-id"))
    assert load_key("kalshi-prod", "kalshi", environ).key_id == "mounted-id"
    assert [(e.name, e.backend) for e in mounted_entries(environ)] == [("kalshi", "mounted")]


def test_bad_names_are_refused(tmp_path: Path) -> None:
    store = KeyStore("kalshi-prod", {"SSMD_DATA_DIR": str(tmp_path)})
    for bad in ("", "../x", "Kalshi", ".hidden", "a/b"):
        with pytest.raises(ConfigError, match="key name"):
            store.path(bad)


def _tree_with_sealed_refs(tmp: Path) -> Path:
    tree = tmp / "exchanges"
    shutil.copytree(ROOT / "exchanges", tree)
    env_file = tree / "environments" / "kalshi-sim.yaml"
    text = env_file.read_text()
    text = text.replace("kalshi_api_key: env:KALSHI_API_KEY", "kalshi_api_key: sealed:kalshi")
    text = text.replace(
        "kalshi_private_key: env:KALSHI_PRIVATE_KEY_PATH", "kalshi_private_key: sealed:kalshi"
    )
    assert text.count("sealed:kalshi") == 2
    env_file.write_text(text)
    return tree


def test_sealed_references_read_the_key(tmp_path: Path) -> None:
    tree = _tree_with_sealed_refs(tmp_path)
    environ = {"SSMD_DATA_DIR": str(tmp_path / "data")}
    env = load_environment("kalshi-sim", tree, environ=environ)
    secret = env.secret("kalshi_api_key")
    assert secret.scheme == "sealed" and not secret.is_available()
    with pytest.raises(ConfigError, match="ssmd key set --env kalshi-sim kalshi"):
        secret.reveal()
    key = _key(tmp_path, "sealed-id")
    KeyStore("kalshi-sim", environ).save("kalshi", key)
    assert secret.is_available() and secret.reveal() == "sealed-id"
    assert "sealed-id" not in repr(secret) and "sealed-id" not in str(secret)
    creds = load_credentials(env)  # the connector's: the PEM itself, not a path
    assert creds.key_id == "sealed-id"
    assert fingerprint(creds.private_key) == key.fingerprint


def test_sealed_names_follow_the_key_name_rules(tmp_path: Path) -> None:
    tree = _tree_with_sealed_refs(tmp_path)
    env_file = tree / "environments" / "kalshi-sim.yaml"
    env_file.write_text(env_file.read_text().replace("sealed:kalshi", "sealed:Bad_Name", 1))
    with pytest.raises(ConfigError, match="sealed:KEY_NAME"):
        load_environment("kalshi-sim", tree, environ={})

"""A Kalshi API key and where ssmd keeps it.

A key has a name (chosen by its owner, e.g. `kalshi`) and two fields named after the
environment secrets they fill: `kalshi_api_key` (the key id) and `kalshi_private_key`
(the RSA private key, PEM). An environment refers to them with `sealed:NAME`:

    spec:
      secrets:
        kalshi_api_key: sealed:kalshi
        kalshi_private_key: sealed:kalshi

Where a key is read from, first found first:
  1. $SSMD_SECRETS_DIR/NAME/FIELD: a Kubernetes Secret mounted as files, as the Sealed
     Secrets controller makes it from `ssmd key set --seal-cert`'s SealedSecret;
  2. the local key store: KEYS_DIR/ENV/NAME.json, where KEYS_DIR is $SSMD_DATA_DIR/keys
     when SSMD_DATA_DIR is set, else ~/.config/ssmd/keys. The directory is 0700 and the
     file 0600 (the owner only); a key sealed for a cluster leaves only an index entry
     there (backend, fingerprint, when), never its material.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ssmd.exceptions import ConfigError
from ssmd.venues.kalshi import auth

__all__ = [
    "FIELDS",
    "KEY_ID_FIELD",
    "PRIVATE_KEY_FIELD",
    "SECRETS_DIR_ENV",
    "Entry",
    "KalshiKey",
    "KeyStore",
    "check_name",
    "fingerprint",
    "keys_dir",
    "load_key",
    "mounted_entries",
]

KEY_ID_FIELD: Final = "kalshi_api_key"
PRIVATE_KEY_FIELD: Final = "kalshi_private_key"
FIELDS: Final = (KEY_ID_FIELD, PRIVATE_KEY_FIELD)
SECRETS_DIR_ENV: Final = "SSMD_SECRETS_DIR"
DATA_DIR_ENV: Final = "SSMD_DATA_DIR"
NAME_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-.")

Backend = Literal["file", "sealed", "mounted"]


def fingerprint(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> str:
    """SHA256:<base64> of the public key (its DER SubjectPublicKeyInfo): safe to show,
    the same for a key and its public half."""
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")


@dataclass(frozen=True)
class KalshiKey:
    key_id: str = field(repr=False)
    private_key: rsa.RSAPrivateKey = field(repr=False)

    @classmethod
    def from_pem(cls, key_id: str, pem: bytes, where: str) -> KalshiKey:
        if not key_id.strip():
            raise ConfigError(f"the key id of {where} is empty. Fix: pass the Kalshi key id")
        return cls(key_id.strip(), auth.private_key_from_pem(pem, where))

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.private_key)

    def pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def field(self, name: str) -> str:
        """The value an environment secret named `name` takes from this key."""
        if name == KEY_ID_FIELD:
            return self.key_id
        if name == PRIVATE_KEY_FIELD:
            return self.pem().decode()
        raise KeyError(name)

    def fields(self) -> dict[str, bytes]:
        return {f: self.field(f).encode() for f in FIELDS}


@dataclass(frozen=True)
class Entry:
    """What `ssmd key list` shows of a key: never its material."""

    name: str
    backend: Backend
    fingerprint: str
    created: float  # Unix time it was set
    where: str  # the file, the SealedSecret written, or the mounted folder

    def as_dict(self, now: float | None = None) -> dict[str, object]:
        now = time.time() if now is None else now
        return {
            "name": self.name,
            "backend": self.backend,
            "fingerprint": self.fingerprint,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.created)),
            "age_days": round(max(0.0, now - self.created) / 86400, 1),
            "where": self.where,
        }


def check_name(name: str) -> str:
    if not name or not set(name) <= NAME_CHARS or name[0] in "-.":
        raise ConfigError(
            f"key name {name!r} is not valid: expected lower-case letters, digits, '-' and '.', "
            "starting with a letter or digit (it names a file and a Kubernetes Secret)"
        )
    return name


def keys_dir(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    data = environ.get(DATA_DIR_ENV)
    if data:
        return Path(data).expanduser() / "keys"
    home = environ.get("HOME")
    return (Path(home) if home else Path.home()) / ".config" / "ssmd" / "keys"


class KeyStore:
    """The local key store of one environment: ROOT/ENV/NAME.json, the owner only."""

    def __init__(self, env: str, environ: Mapping[str, str] | None = None) -> None:
        self.env = env
        self.environ = os.environ if environ is None else environ
        self.dir = keys_dir(self.environ) / env

    def path(self, name: str) -> Path:
        return self.dir / f"{check_name(name)}.json"

    def _ensure_dir(self) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # mkdir's mode is masked by umask and does not apply to an existing folder
        for folder in (self.dir.parent, self.dir):
            os.chmod(folder, 0o700)

    def _write(self, name: str, doc: dict[str, object]) -> Path:
        self._ensure_dir()
        path = self.path(name)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, orjson.dumps(doc, option=orjson.OPT_INDENT_2))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        return path

    def save(self, name: str, key: KalshiKey, created: float | None = None) -> Path:
        """Keep `key` (both fields) in a file only its owner can read."""
        return self._write(
            name,
            {
                "backend": "file",
                "created": time.time() if created is None else created,
                "fingerprint": key.fingerprint,
                KEY_ID_FIELD: key.key_id,
                PRIVATE_KEY_FIELD: key.pem().decode(),
            },
        )

    def save_sealed(self, name: str, key: KalshiKey, manifest: Path) -> Path:
        """Record that `key` was sealed into `manifest` (its fingerprint, not its material)."""
        return self._write(
            name,
            {
                "backend": "sealed",
                "created": time.time(),
                "fingerprint": key.fingerprint,
                "manifest": str(manifest),
            },
        )

    def _read(self, name: str) -> dict[str, object] | None:
        path = self.path(name)
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            return None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"key file {path} can be read by others (mode {stat.filemode(mode)}); refusing "
                f"to use it. Fix: chmod 600 {path}, then rotate the key if others could read it"
            )
        try:
            doc = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise ConfigError(f"key file {path} cannot be read as JSON ({exc})") from None
        if not isinstance(doc, dict):
            raise ConfigError(f"key file {path}: expected a JSON object")
        return doc

    def load(self, name: str) -> KalshiKey | None:
        """The key kept here under `name`; None when there is none. ConfigError when it was
        sealed for a cluster (its material is not here) or the file is not right."""
        doc = self._read(name)
        if doc is None:
            return None
        path = self.path(name)
        if doc.get("backend") != "file":
            raise ConfigError(
                f"key {name} of environment {self.env} was sealed for a cluster "
                f"({doc.get('manifest')}); its material is only there. Fix: run this where "
                f"the Secret is mounted ({SECRETS_DIR_ENV}), or `ssmd key set` it locally"
            )
        key_id, pem = doc.get(KEY_ID_FIELD), doc.get(PRIVATE_KEY_FIELD)
        if not isinstance(key_id, str) or not isinstance(pem, str):
            raise ConfigError(
                f"key file {path}: expected {KEY_ID_FIELD} and {PRIVATE_KEY_FIELD} strings"
            )
        return KalshiKey.from_pem(key_id, pem.encode(), f"in {path}")

    def entries(self) -> list[Entry]:
        out = []
        paths = sorted(self.dir.glob("*.json"), key=lambda p: p.stem) if self.dir.is_dir() else []
        for path in paths:
            doc = self._read(path.stem)
            if doc is None:
                continue
            backend: Backend = "sealed" if doc.get("backend") == "sealed" else "file"
            out.append(
                Entry(
                    path.stem,
                    backend,
                    str(doc.get("fingerprint", "")),
                    float(str(doc.get("created", 0))),
                    str(doc.get("manifest", path)),
                )
            )
        return out

    def remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path(name).unlink()


def _mounted(name: str, environ: Mapping[str, str]) -> Path | None:
    root = environ.get(SECRETS_DIR_ENV)
    if not root:
        return None
    folder = Path(root) / check_name(name)
    return folder if (folder / KEY_ID_FIELD).is_file() else None


def load_key(env: str, name: str, environ: Mapping[str, str] | None = None) -> KalshiKey:
    """Key `name` of environment `env`: the mounted Secret first, then the local store.
    ConfigError naming where it looked when it is in neither."""
    environ = os.environ if environ is None else environ
    folder = _mounted(name, environ)
    if folder is not None:
        try:
            key_id = (folder / KEY_ID_FIELD).read_text(encoding="utf-8")
            pem = (folder / PRIVATE_KEY_FIELD).read_bytes()
        except OSError as exc:
            raise ConfigError(f"mounted key {folder}: cannot read ({exc.strerror})") from None
        return KalshiKey.from_pem(key_id, pem, f"mounted at {folder}")
    store = KeyStore(env, environ)
    key = store.load(name)
    if key is None:
        mounted = environ.get(SECRETS_DIR_ENV)
        also = f" nor under {mounted}/{name}/" if mounted else ""
        raise ConfigError(
            f"no key {name!r} for environment {env}: not in {store.path(name)}{also}. "
            f"Fix: ssmd key set --env {env} {name} --key-id ID --private-key FILE"
        )
    return key


def mounted_entries(environ: Mapping[str, str]) -> list[Entry]:
    """The keys mounted under $SSMD_SECRETS_DIR (none when it is not set)."""
    root = environ.get(SECRETS_DIR_ENV)
    if not root or not Path(root).is_dir():
        return []
    out = []
    for folder in sorted(Path(root).iterdir()):
        if (folder / KEY_ID_FIELD).is_file():
            key = load_key("", folder.name, environ)
            created = (folder / KEY_ID_FIELD).stat().st_mtime
            out.append(Entry(folder.name, "mounted", key.fingerprint, created, str(folder)))
    return out

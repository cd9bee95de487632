"""Secret references (`env:VAR`, `file:/path`, `sealed:NAME`) resolved only when asked.

`sealed:NAME` reads the field named like the secret from key NAME, kept by `ssmd key set`
(a Secret mounted from a SealedSecret, or the local key store: ssmd.keys.store).

A `Secret` holds the reference, never the value: its str() and repr() show the
reference and `****`. `reveal()` reads the value at the moment it is needed, so
rotating a key file or variable needs no config change, and a value never sits
in a config object that might be logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ssmd.exceptions import ConfigError

MASK = "****"


@dataclass(frozen=True)
class Secret:
    name: str
    ref: str
    origin: str = field(default="", compare=False)  # the file that declared it, for error messages
    environ: Mapping[str, str] | None = field(default=None, compare=False, repr=False)
    env: str = field(default="", compare=False)  # the environment, for sealed: keys

    @property
    def scheme(self) -> str:
        return self.ref.partition(":")[0]

    @property
    def target(self) -> str:
        return self.ref.partition(":")[2]

    def _env(self) -> Mapping[str, str]:
        return os.environ if self.environ is None else self.environ

    def is_available(self) -> bool:
        if self.scheme == "env":
            return bool(self._env().get(self.target))
        if self.scheme == "sealed":
            try:
                self.reveal()
            except ConfigError:
                return False
            return True
        return Path(self.target).expanduser().is_file()

    def reveal(self) -> str:
        """The secret's value; ConfigError (without any value) if it is not there."""
        where = f" (declared in {self.origin})" if self.origin else ""
        if self.scheme == "env":
            value = self._env().get(self.target)
            if not value:
                raise ConfigError(
                    f"secret {self.name}{where}: environment variable {self.target} is not set; "
                    f"expected it to hold the secret. Fix: export {self.target}=... or change "
                    f"spec.secrets.{self.name}"
                )
            return value
        if self.scheme == "sealed":
            return self._sealed(where)
        path = Path(self.target).expanduser()
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise ConfigError(
                f"secret {self.name}{where}: cannot read {path} ({error.strerror}); expected a "
                f"readable file. Fix: create the file or change spec.secrets.{self.name}"
            ) from None

    def _sealed(self, where: str) -> str:
        from ssmd.keys.store import FIELDS, load_key

        if self.name not in FIELDS:
            raise ConfigError(
                f"secret {self.name}{where}: sealed:{self.target} fills only the secrets "
                f"{' and '.join(FIELDS)} (the fields of a key set by `ssmd key set`). Fix: use "
                f"env: or file: for {self.name}"
            )
        try:
            key = load_key(self.env, self.target, self._env())
        except ConfigError as exc:
            raise ConfigError(f"secret {self.name}{where}: {exc}") from None
        return key.field(self.name)

    def __str__(self) -> str:
        return f"{self.ref} ({MASK})"

    def __repr__(self) -> str:
        return f"Secret(name={self.name!r}, ref={self.ref!r}, value={MASK})"

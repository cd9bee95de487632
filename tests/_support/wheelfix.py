"""A release wheel of the working tree, built as `just wheel` builds it, once per source state.

A release build takes minutes, so the wheel is kept in
$CARGO_TARGET_DIR (else ./target)/wheel-test/<key>/, where the key hashes every file
the wheel is made from and the interpreter it is built for. A fresh clone, or any
changed source, builds a new wheel and removes the older ones.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from _support import ROOT

__all__ = ["release_wheel"]

# What the wheel is made from (paths relative to the repository root).
SOURCES = ("rust", "python", "schemas", "Cargo.toml", "Cargo.lock", "pyproject.toml", "README.md")
# Build outputs and caches inside those paths, which are not sources.
IGNORED_DIRS = frozenset({"__pycache__", ".mypy_cache", ".ruff_cache"})
IGNORED_SUFFIXES = (".so", ".pyc")


def _source_files() -> list[Path]:
    files = []
    for name in SOURCES:
        top = ROOT / name
        if top.is_file():
            files.append(top)
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if d not in IGNORED_DIRS)
            files.extend(
                Path(dirpath) / f for f in sorted(filenames) if not f.endswith(IGNORED_SUFFIXES)
            )
    return files


def source_key() -> str:
    digest = hashlib.sha256(sys.version.encode())
    for path in _source_files():
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def release_wheel() -> Path:
    """The wheel of the current sources: from the cache, else built now."""
    cache = Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target") / "wheel-test"
    key = source_key()
    done = cache / key
    found = sorted(done.glob("ssmd-*.whl"))
    if found:
        return found[0]
    building = cache / f"{key}.building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "VIRTUAL_ENV": str(bin_dir.parent),
        # maturin --zig runs the zig of the ziglang wheel with this venv's python.
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        # Its own target dir: zig-linked objects would otherwise replace those that
        # `just build` keeps in the shared one, and each would rebuild everything.
        "CARGO_TARGET_DIR": str(cache / "target"),
    }
    # The flags of `just wheel`; the manylinux2014 tag comes from [tool.maturin].
    command = [str(bin_dir / "maturin"), "build", "--release", "--zig", "-q"]
    command += ["--interpreter", sys.executable, "--out", str(building)]
    built = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert built.returncode == 0, f"{' '.join(command)} failed:\n{built.stderr[-4000:]}"
    try:
        building.rename(done)
    except OSError:  # another run stored the same wheel first
        shutil.rmtree(building, ignore_errors=True)
    for old in cache.iterdir():
        # Wheels of older sources; not the target dir nor another run's build in progress.
        if old.is_dir() and old.name != key and len(old.name) == len(key) and "." not in old.name:
            shutil.rmtree(old, ignore_errors=True)
    [wheel] = done.glob("ssmd-*.whl")
    return wheel

"""The package as a user gets it: the CLI, the version gate, the wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ssmd import __version__, core
from ssmd.cli import app
from support import ROOT


def test_the_extension_matches_the_package() -> None:
    assert core._core.__version__ == __version__
    assert core.build_profile == "release"


def test_a_mismatched_binary_is_refused() -> None:
    code = "from ssmd import _core; _core.__version__ = '0.0.0-stale'; import ssmd.core"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert "CoreVersionError" in result.stderr
    assert "0.0.0-stale" in result.stderr and "just setup" in result.stderr


def test_normalize_prints_the_bundled_sample() -> None:
    result = CliRunner().invoke(app, ["normalize"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "15 frames from bundled sample -> 13 normalized records" in result.output
    assert "KXBTC15M-26JUL201045-45" in result.output
    assert "malformed" in result.output and "unknown_type" in result.output


def test_normalize_reads_a_capture_file(tmp_path: Path) -> None:
    capture = tmp_path / "capture.jsonl"
    capture.write_bytes((ROOT / "tests/data/kalshi/trade_c.json").read_bytes() + b"\n\n{not json\n")
    result = CliRunner().invoke(app, ["normalize", str(capture)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "2 frames" in result.output and "1 normalized records" in result.output
    assert "60 @ $0.34 taker no" in result.output


@pytest.mark.slow
def test_the_wheel_installs_into_a_fresh_virtualenv(tmp_path: Path) -> None:
    maturin = Path(sys.executable).parent / "maturin"
    subprocess.run(
        [str(maturin), "build", "--release", "--out", str(tmp_path / "dist"), "-q"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        env={**os.environ, "VIRTUAL_ENV": str(Path(sys.executable).parent.parent)},
    )
    [wheel] = (tmp_path / "dist").glob("ssmd-*.whl")
    # Data files the running system reads ship in the wheel.
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("index.html", "app.js", "style.css"):
        assert f"ssmd/gateway/static/{needed}" in names, needed
    assert any(n.startswith("ssmd/secmaster/migrations/") and n.endswith(".sql") for n in names)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True)
    probe = "import ssmd.core, ssmd._core as c; print(c.__version__, c.build_profile, ssmd.core.SCALE_E6)"
    out = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    assert out.stdout.split() == [__version__, "release", "1000000"]


def test_the_cli_scale_matches_the_core() -> None:
    from ssmd.cli import demo

    assert demo.SCALE_E6 == core.SCALE_E6


def test_test_modules_have_unique_names() -> None:
    # tests/ subfolders are not packages, so two test files with one name shadow each other.
    names = [
        p.name
        for p in (ROOT / "tests").rglob("*.py")
        if p.name not in ("__init__.py", "conftest.py")
    ]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert duplicates == [], f"rename one of each: {duplicates}"

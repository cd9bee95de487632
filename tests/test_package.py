"""The package as a user gets it: the CLI, the version gate, the wheel."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
import venv
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from _support import ROOT
from _support.wheelfix import release_wheel
from ssmd import __version__, core
from ssmd.cli import app
from ssmd.config import RECORD_TYPES
from ssmd.config.hashing import hash_bytes
from ssmd.schemas import CAPNP_FILE
from ssmd.up.nats import free_port
from ssmd.up.procs import is_running
from ssmd.upstate import read_state


def test_the_extension_matches_the_package() -> None:
    assert core._core.__version__ == __version__
    assert core.build_profile == "release"


def test_a_mismatched_binary_is_refused() -> None:
    code = "from ssmd import _core; _core.__version__ = '0.0.0-stale'; import ssmd.core"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert "CoreVersionError" in result.stderr
    assert "0.0.0-stale" in result.stderr and "just setup" in result.stderr


def test_version_names_the_package_and_the_core() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"ssmd {__version__}, core {core.version} (release build)"


def test_the_package_ships_schemas_ssmd_capnp_unchanged() -> None:
    source = (ROOT / "schemas" / "ssmd.capnp").read_bytes()
    assert CAPNP_FILE.read_bytes() == source, "run `just gen-schemas` and commit the result"


def test_schema_path_names_the_shipped_schema() -> None:
    result = CliRunner().invoke(app, ["schema", "path"])
    assert result.exit_code == 0, result.output
    assert Path(result.stdout.strip()) == CAPNP_FILE


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


def _wait_for_archived_records(log: Path, up: subprocess.Popen[bytes]) -> int:
    """Records archived, from the first `status` line of `ssmd up --json-logs` that has some."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert up.poll() is None, log.read_text()[-3000:]
        for line in log.read_text().splitlines():
            record = json.loads(line) if line.startswith("{") else {}
            if record.get("msg") == "status" and record.get("archived_records", 0) > 0:
                return int(record["archived_records"])
        time.sleep(0.5)
    raise AssertionError("no records archived in 120 s:\n" + log.read_text()[-3000:])


@pytest.mark.slow
@pytest.mark.timeout(900)  # a first build of the wheel takes minutes
@pytest.mark.xdist_group("up-e2e")  # not beside the other `ssmd up` run on two cores
def test_the_wheel_runs_everything_from_an_empty_directory(tmp_path: Path) -> None:
    wheel = release_wheel()
    # A tag chosen on purpose (glibc 2.17), not the glibc of the machine that built it.
    assert f"manylinux_2_17_{platform.machine()}" in wheel.name
    # Data files the running system reads ship in the wheel.
    packed = zipfile.ZipFile(wheel)
    names = set(packed.namelist())
    for needed in ("index.html", "app.js", "style.css"):
        assert f"ssmd/gateway/static/{needed}" in names, needed
    assert any(n.startswith("ssmd/secmaster/migrations/") and n.endswith(".sql") for n in names)
    schema = (ROOT / "schemas" / "ssmd.capnp").read_bytes()
    assert packed.read("ssmd/schemas/ssmd.capnp") == schema

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    subprocess.run([env_dir / "bin" / "python", "-m", "pip", "install", "-q", wheel], check=True)
    # A user's shell: no repository, no ssmd settings, not this virtualenv.
    ours = str(Path(sys.executable).parent)
    path = [str(env_dir / "bin")] + [p for p in os.environ["PATH"].split(os.pathsep) if p != ours]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSMD_")}
    env.pop("VIRTUAL_ENV", None)
    env.pop("PYTHONPATH", None)
    env["PATH"] = os.pathsep.join(path)
    home = tmp_path / "empty"
    home.mkdir()

    def ssmd(*args: str) -> subprocess.CompletedProcess[str]:
        command = [str(env_dir / "bin" / "ssmd"), *args]
        done = subprocess.run(command, cwd=home, env=env, capture_output=True, text=True)
        assert done.returncode == 0, f"ssmd {' '.join(args)}: {done.stderr}"
        return done

    assert (
        ssmd("--version").stdout.strip()
        == f"ssmd {__version__}, core {__version__} (release build)"
    )
    ssmd("init")
    assert "valid" in ssmd("validate").stdout
    registry = json.loads(ssmd("schema", "list", "--json").stdout)
    assert sorted(e["name"] for e in registry) == sorted(RECORD_TYPES)
    assert {e["hash"] for e in registry} == {hash_bytes(schema)}
    installed = Path(ssmd("schema", "path").stdout.strip())
    assert installed.is_relative_to(env_dir) and installed.read_bytes() == schema

    log = tmp_path / "up.log"
    with log.open("wb") as stderr:
        up = subprocess.Popen(
            [env_dir / "bin" / "ssmd", "up", "--env", "kalshi-sim", "--json-logs",
             "--port", str(free_port()), "--sim-markets", "20"],
            cwd=home, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
        try:
            assert _wait_for_archived_records(log, up) > 0
            up.send_signal(signal.SIGINT)
            assert up.wait(timeout=120) == 0, log.read_text()[-3000:]
        finally:
            if up.poll() is None:
                up.kill()
                up.wait()
            state = read_state(home / "data") or {}
            for record in (state.get("children") or {}).values():
                if is_running(record, state["boot_id"]):  # never a pid reused since
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(record["pid"], signal.SIGKILL)
    rows = json.loads(ssmd("data", "inventory", "--env", "kalshi-sim", "--json").stdout)
    assert sum(r["records"] + r["pending_records"] for r in rows) > 0


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

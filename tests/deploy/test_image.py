"""The container image, built from Debian's packages (deploy/debian-image.sh), runs ssmd.

The image is deploy/Dockerfile's runtime stage on a bookworm root file system, with the
wheel of this tree as `just wheel` builds it (tests/wheelfix.py: built once per source
state). In it: `ssmd --help`; a non-root user; and the simulator-to-archive pipeline (`ssmd up --env kalshi-sim`) until records are archived, stopped by `docker stop`
(SIGTERM through dumb-init: the ordered stop must exit 0), and started again one day
later (libfaketime, for the ssmd processes only) so that the archiver seals the hours and
the day of the first run at its start: the archive then holds sealed files. The image's
HEALTHCHECK must report the running system healthy.

Needs docker, mmdebstrap, libfaketime on this machine (Debian: apt-get install mmdebstrap
libfaketime), and on a cold cache the Debian mirror and the package index.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deployfix import unavailable

from _support.wheelfix import release_wheel

REPO = Path(__file__).parents[2]
TAG = "ssmd:test-image"
FAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
ENV = "kalshi-sim"

# A cold build (root file system, wheels, image) takes minutes; a warm one seconds.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.services,
    pytest.mark.xdist_group("image"),
    pytest.mark.timeout(1800),
]


def docker(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check:
        assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr}"
    return result


def wait_for(what: str, check: Any, timeout: float, every: float = 2.0) -> Any:
    """Poll `check` until it returns something true, or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)  # polling interval of a condition with a deadline


@pytest.fixture(scope="module")
def image() -> Iterator[str]:
    if shutil.which("docker") is None or docker("info", check=False).returncode != 0:
        unavailable("docker is not installed or its daemon does not answer")
    if shutil.which("mmdebstrap") is None:
        unavailable("mmdebstrap is missing (Debian: apt-get install mmdebstrap)")
    started = time.monotonic()
    wheel = release_wheel()  # the manylinux wheel of `just wheel`, shared with test_package
    build = subprocess.run(
        [str(REPO / "deploy" / "debian-image.sh"), TAG],
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
        env={**os.environ, "SSMD_WHEEL": str(wheel)},
    )
    assert build.returncode == 0, build.stderr[-3000:]
    print(f"image {TAG} built in {time.monotonic() - started:.0f} s")
    yield TAG
    docker("rmi", TAG, check=False)


def test_help_runs_as_a_non_root_user(image: str) -> None:
    result = docker("run", "--rm", image, "--help")
    assert "Usage: ssmd" in result.stdout and "deploy" in result.stdout
    who = docker("run", "--rm", "--entrypoint", "id", image).stdout
    assert who.startswith("uid=10001(ssmd) gid=10001(ssmd)"), who
    config = json.loads(docker("image", "inspect", image).stdout)[0]["Config"]
    assert config["Entrypoint"] == ["dumb-init", "--", "ssmd"]
    assert config["Healthcheck"]["Test"] == ["CMD", "python", "-m", "ssmd.deploy.healthcheck"]


def _runtime_stage(path: Path) -> list[str]:
    """The lines from the ENV of the runtime stage on: what both Dockerfiles must share."""
    lines = [line.rstrip() for line in path.read_text().splitlines() if not line.startswith("#")]
    return lines[next(i for i, line in enumerate(lines) if line.startswith("ENV PATH=")) :]


def test_the_tested_image_matches_deploy_dockerfile() -> None:
    assert _runtime_stage(REPO / "deploy" / "debian.Dockerfile") == _runtime_stage(
        REPO / "deploy" / "Dockerfile"
    )


class Pipeline:
    """`ssmd up --env kalshi-sim` in a container on a data dir of this test."""

    def __init__(self, image: str, data: Path) -> None:
        self.image, self.data = image, data
        self.mounts = [
            "-v", f"{data}:/var/lib/ssmd/data",
            "-v", f"{REPO / 'exchanges'}:/etc/ssmd/exchanges:ro",
        ]  # fmt: skip

    def start(self, name: str, *extra: str) -> str:
        docker("rm", "-f", name, check=False)
        docker("run", "-d", "--name", name, *self.mounts, *extra, self.image,
               "up", "--env", ENV, "--json-logs")  # fmt: skip
        return name

    def health(self, name: str) -> str:
        state = json.loads(docker("inspect", name).stdout)[0]["State"]
        if not state["Running"]:
            logs = docker("logs", "--tail", "40", name, check=False)
            pytest.fail(f"{name} exited {state['ExitCode']}:\n{logs.stdout}{logs.stderr}")
        return str(state["Health"]["Status"])

    def spooled_bytes(self) -> int:
        spool = self.data / "archiver" / ENV / "spool"
        return sum(p.stat().st_size for p in spool.rglob("*") if p.is_file())

    def inventory(self) -> list[dict[str, Any]]:
        result = docker("run", "--rm", *self.mounts, self.image, "data", "inventory",
                        "--env", ENV, "--json", check=False)  # fmt: skip
        return json.loads(result.stdout) if result.returncode == 0 else []

    def stop(self, name: str) -> int:
        """docker stop: SIGTERM to dumb-init, which hands it to `ssmd up`."""
        docker("stop", "-t", "90", name, timeout=150)
        code = int(docker("inspect", "-f", "{{.State.ExitCode}}", name).stdout)
        if code != 0:
            logs = docker("logs", "--tail", "60", name, check=False)
            print(logs.stdout, logs.stderr)
        docker("rm", name, check=False)
        return code


def test_simulator_to_sealed_archive_in_the_container(image: str, tmp_path: Path) -> None:
    if not FAKETIME.is_file():
        unavailable(f"{FAKETIME} is missing (Debian: apt-get install libfaketime)")
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, 10001, 10001)  # the image's user
    pipeline = Pipeline(image, data)

    first = pipeline.start("ssmd-test-first")
    try:
        wait_for("the HEALTHCHECK to pass", lambda: pipeline.health(first) == "healthy", 300)
        wait_for("records in the archiver's spool", lambda: pipeline.spooled_bytes() > 0, 120)
        assert pipeline.stop(first) == 0
    finally:
        docker("rm", "-f", first, check=False)
    # The stop wrote the manifests: records waiting in the spool, nothing sealed within the hour.
    rows = pipeline.inventory()
    assert sum(r["pending_records"] for r in rows) > 0, rows
    assert sum(r["files"] for r in rows) == 0, rows

    # One day later for the ssmd processes (nats-server keeps the real clock): the archiver
    # seals the first run's hours and day before it reports healthy.
    later = pipeline.start(
        "ssmd-test-later",
        "-v", f"{FAKETIME}:/opt/faketime/libfaketime.so.1:ro",
        "-e", "LD_PRELOAD=/opt/faketime/libfaketime.so.1",
        "-e", "FAKETIME=+1d",
        "-e", "FAKETIME_DONT_FAKE_MONOTONIC=1",
    )  # fmt: skip
    try:
        wait_for("the second start", lambda: pipeline.health(later) == "healthy", 300)
        assert pipeline.stop(later) == 0
    finally:
        docker("rm", "-f", later, check=False)
    raw = list((data / "raw" / ENV).rglob("*.jsonl.zst"))
    normalized = list((data / "normalized" / ENV).rglob("*.zst"))
    assert raw and normalized, f"sealed: raw {raw}, normalized {normalized}"
    rows = pipeline.inventory()
    sealed = [r for r in rows if r["files"] > 0]
    assert {r["data_type"] for r in sealed} >= {"raw", "trade"}, rows
    assert sum(r["records"] for r in sealed) > 0, rows

"""Storage that cannot work fails at start: the archiver writes, reads and deletes a probe
object in each bucket and exits 3 with one line naming the bucket, the endpoint and the
fix (never a secret); `ssmd data` says the same in one line instead of a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from _support.archfix import (
    ENV,
    ROOT,
    MotoServer,
    environment,
    make_bucket,
    make_stream,
    s3_config,
    s3_credentials,
    spawn,
    wait_exit,
)
from ssmd.config import Overrides, load_environment
from ssmd.store.base import PROBE_PREFIX
from ssmd.store.s3 import S3ObjectStore
from ssmd.testing.nats import nats_server

S3_ENV = "kalshi-s3"
SECRET = "n0t-a-real-secret-Xq7"
SSMD = str(Path(sys.executable).parent / "ssmd")


def _s3_config(tmp: Path) -> Path:
    return s3_config(tmp, S3_ENV)


async def _make_s3_stream(config: Path, nats_url: str, data: Path) -> None:
    env = load_environment(S3_ENV, config, Overrides(nats_url=nats_url, data_dir=str(data)))
    await make_stream(nats_url, env)


def _credentials(key_id: str = "testing") -> dict[str, str]:
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "SSMD_S3_ENDPOINT"
    }
    environ.update(
        AWS_ACCESS_KEY_ID=key_id,
        AWS_SECRET_ACCESS_KEY=SECRET,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
    )
    return environ


def _archiver(config: Path, nats_url: str, data: Path, endpoint: str, environ: dict[str, str]):  # type: ignore[no-untyped-def]
    return subprocess.run(
        [
            SSMD, "archiver", "run", "--env", S3_ENV, "--config-dir", str(config),
            "--nats-url", nats_url, "--data-dir", str(data), "--s3-endpoint", endpoint,
            "--log-level", "WARNING",
        ],
        capture_output=True, text=True, timeout=30, env=environ,
    )  # fmt: skip


@pytest.fixture
def moto(tmp_path: Path) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path)
    server.start()
    yield server
    server.stop()


async def test_a_missing_bucket_fails_at_start_naming_bucket_endpoint_and_fix(
    tmp_path: Path, moto: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3_credentials(monkeypatch)  # this process makes a bucket half way
    config = _s3_config(tmp_path)
    async with nats_server(tmp_path / "nats") as ns:
        await _make_s3_stream(config, ns.url, tmp_path)
        environ = _credentials()
        done = _archiver(config, ns.url, tmp_path, moto.url, environ)
        assert done.returncode == 3, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        line = lines[0]
        env_file = config / "environments" / f"{S3_ENV}.yaml"
        assert line.startswith(f"error: spec.storage.raw of {env_file}: "), line
        assert "NoSuchBucket" in line, line
        assert "s3://ssmd-raw" in line and moto.url in line, line
        assert f"Fix: create it (`aws s3 mb s3://ssmd-raw --endpoint-url {moto.url}`)" in line
        assert SECRET not in line

        # The raw bucket made, its check passes (and leaves nothing behind); the next fails.
        make_bucket(moto.url, "ssmd-raw")
        done = _archiver(config, ns.url, tmp_path, moto.url, environ)
        assert done.returncode == 3  # normalized is still missing
        assert "s3://ssmd-normalized" in done.stderr and "s3://ssmd-raw" not in done.stderr
        raw = S3ObjectStore("ssmd-raw", endpoint=moto.url)
        assert not [o.key for o in raw.list(PROBE_PREFIX)]


async def test_wrong_credentials_fail_at_start_without_showing_them(tmp_path: Path) -> None:
    moto = MotoServer(tmp_path, auth=True)
    moto.start()
    try:
        async with nats_server(tmp_path / "nats") as ns:
            config = _s3_config(tmp_path)
            await _make_s3_stream(config, ns.url, tmp_path)
            done = _archiver(
                config,
                ns.url,
                tmp_path,
                moto.url,
                _credentials("AKIAWRONGWRONGWRONG1"),
            )
    finally:
        moto.stop()
    assert done.returncode == 3, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Fix: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY" in lines[0], lines[0]
    assert SECRET not in lines[0]


@pytest.fixture
def read_only_raw(tmp_path: Path) -> Iterator[Path]:
    """The data dir, with its raw bucket folder read-only (a read-only mount when root,
    who may write into any folder)."""
    raw = tmp_path / "raw"
    raw.mkdir()
    if os.geteuid() == 0:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(raw)], capture_output=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a read-only tmpfs: {done.stderr!r}")
        try:
            yield tmp_path
        finally:
            subprocess.run(["umount", "-l", str(raw)], check=False)
        return
    raw.chmod(0o555)
    try:
        yield tmp_path
    finally:
        raw.chmod(0o755)


async def test_a_read_only_bucket_folder_fails_at_start(read_only_raw: Path) -> None:
    async with nats_server(read_only_raw / "nats") as ns:
        await make_stream(ns.url, environment(read_only_raw, ns.url))
        proc = spawn(read_only_raw, ns.url)
        assert wait_exit(proc) == 3
    lines = (read_only_raw / "archiver.log").read_text().strip().splitlines()
    assert len(lines) == 1, lines
    env_file = ROOT / "exchanges" / "environments" / f"{ENV}.yaml"
    assert lines[0].startswith(f"error: spec.storage.raw of {env_file}: cannot write"), lines
    assert str(read_only_raw / "raw") in lines[0]
    assert "Fix: make" in lines[0]


def test_data_commands_say_missing_credentials_in_one_line(tmp_path: Path) -> None:
    config = _s3_config(tmp_path)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    environ.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        SSMD_S3_ENDPOINT="http://127.0.0.1:9",  # never reached: no credentials to sign with
    )
    common = ["--env", S3_ENV, "--config-dir", str(config), "--data-dir", str(tmp_path)]
    for command in (
        ["inventory"],
        ["gaps", "--date", "2026-07-20"],
        ["quality", "--date", "2026-07-20"],
    ):
        done = subprocess.run(
            [SSMD, "data", *command, *common],
            capture_output=True,
            text=True,
            env=environ,
            timeout=60,
        )
        assert done.returncode == 3, (command, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, (command, done.stderr)
        assert lines[0].startswith("error: ") and "Unable to locate credentials" in lines[0]
        assert "Fix: set AWS_ACCESS_KEY_ID" in lines[0]

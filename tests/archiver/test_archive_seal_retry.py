"""A seal that fails without a crash (the store away) is retried in the same process
while the spool keeps taking data for that file: whether or not the store took the
object before its answer was lost, every item ends up in the object exactly once."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from ssmd import core
from ssmd.archiver.seal import seal
from ssmd.archiver.spool import Spool
from ssmd.exceptions import StoreUnavailableError
from ssmd.store.local import LocalObjectStore

KEY = "kalshi-sim/kalshi/2026/07/20/trade-14.jsonl.zst"


class AnswerLost(LocalObjectStore):
    """Stores the next object put, then fails as if the answer never came (or, with
    `store_it` false, fails before storing it)."""

    def __init__(self, root: Path, store_it: bool) -> None:
        super().__init__(root)
        self.store_it = store_it
        self.armed = False

    def put_atomic(self, key: str, data: bytes | Path) -> None:
        if self.armed and key == KEY:
            self.armed = False
            if self.store_it:
                super().put_atomic(key, data)
            raise StoreUnavailableError(
                "put failed (ConnectionClosedError)",
                bucket="raw",
                state="s3 unreachable: raw",
                code="ConnectionClosedError",
                transient=True,
            )
        super().put_atomic(key, data)


def _append(spool: Spool, seqs: range) -> None:
    lines = [orjson.dumps({"ts": 1, "rns": 10**6 + s, "seq": s}) + b"\n" for s in seqs]
    spool.append("raw", KEY, core.Chunk(lines, [(s, 10**6 + s) for s in seqs]))
    spool.commit()


@pytest.mark.parametrize("store_it", [True, False], ids=["put-stored", "put-not-stored"])
@pytest.mark.parametrize("sealed_before", [False, True], ids=["new", "appended"])
def test_a_failed_seal_then_more_data_is_sealed_once(
    tmp_path: Path, store_it: bool, sealed_before: bool
) -> None:
    store = AnswerLost(tmp_path / "bucket", store_it)
    spool = Spool(tmp_path / "spool")
    if sealed_before:
        _append(spool, range(1, 11))
        seal(spool, spool.files[("raw", KEY)], store)
    _append(spool, range(11, 21))
    store.armed = True
    with pytest.raises(StoreUnavailableError):
        seal(spool, spool.files[("raw", KEY)], store)
    _append(spool, range(21, 31))  # late data while the store is away
    meta = seal(spool, spool.files[("raw", KEY)], store)
    assert not spool.files
    spool.close()
    lines = core.read_archive(store.get(KEY)).data.splitlines()
    seqs = [orjson.loads(line)["seq"] for line in lines]
    first = 1 if sealed_before else 11
    assert seqs == list(range(first, 31))
    assert meta is not None and meta.records == len(seqs)
    assert (meta.seq_first, meta.seq_last) == (first, 30)


class Killed(Exception):
    """Stands for a kill -9: the seal stops where it is, nothing is cleaned up."""


@pytest.mark.parametrize("left", [("index", "marker"), ("marker",)], ids=["index+marker", "marker"])
def test_a_kill_while_a_sealed_spool_is_deleted_then_late_data(
    tmp_path: Path, left: tuple[str, ...]
) -> None:
    # Step 4 deletes the spool file, its index and its marker in turn; a kill between
    # two of those leaves an index or a marker with no spool. Late data for the same
    # file must then be sealed on top of the object exactly once, not cut or dropped.
    store = LocalObjectStore(tmp_path / "bucket")
    spool = Spool(tmp_path / "spool")
    _append(spool, range(1, 11))
    sf = spool.files[("raw", KEY)]

    def kill_after_the_object(step: str) -> None:
        if step == "object":
            raise Killed

    with pytest.raises(Killed):
        seal(spool, sf, store, crash_hook=kill_after_the_object)
    spool.abandon()
    gone = {"data": sf.path, "index": sf.index_path, "marker": sf.marker_path}
    for name, path in gone.items():
        if name not in left:
            path.unlink()
    again = Spool(tmp_path / "spool")
    assert again.recover() == []
    assert [p for p in gone.values() if p.exists()] == [], "what a deleted spool left is gone"
    _append(again, range(11, 21))
    meta = seal(again, again.files[("raw", KEY)], store)
    again.close()
    seqs = [
        orjson.loads(line)["seq"] for line in core.read_archive(store.get(KEY)).data.splitlines()
    ]
    assert seqs == list(range(1, 21))
    assert meta is not None and meta.records == 20 and (meta.seq_first, meta.seq_last) == (1, 20)

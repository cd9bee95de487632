"""ssmd.data over an S3 archive (a moto server): the same frames as from local disk."""

from __future__ import annotations

from pathlib import Path

import pytest

import ssmd.data
from _support.archfix import MotoServer, make_bucket, s3_credentials
from _support.datafix import DAY1, DAY2, ENV, Capture
from ssmd.data.inventory import Archive
from ssmd.data.source import Dataset
from ssmd.store import open_store
from ssmd.store.s3 import S3ObjectStore

pytestmark = pytest.mark.xdist_group("data_api")


def test_scan_and_book_at_read_an_s3_archive_through_the_store(
    captured: Capture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s3_credentials(monkeypatch)
    moto = MotoServer(tmp_path)
    moto.start()
    try:
        stores = {}
        for name, local in (
            ("raw", captured.env.raw_store),
            ("normalized", captured.env.normalized_store),
        ):
            make_bucket(moto.url, name)
            stores[name] = S3ObjectStore(name, endpoint=moto.url)
            source = open_store(local)
            for obj in source.list(f"{ENV}/"):
                stores[name].put_atomic(obj.key, source.get(obj.key))
        on_s3 = Dataset(
            Archive(ENV, stores["raw"], stores["normalized"], None), "kalshi", tmp_path / "data"
        )
        local = Dataset.open(ENV, data_dir=captured.data_dir)
        for kind in ("trade", "book_delta", "connector_event"):
            want = ssmd.data.scan(kind, DAY1, DAY2, dataset=local, include_open=False)
            got = ssmd.data.scan(kind, DAY1, DAY2, dataset=on_s3)
            assert got.collect().equals(want.collect()), kind
        raw = ssmd.data.raw(DAY1, DAY2, dataset=on_s3).collect()
        assert sorted(raw["frame"]) == sorted(captured.frames)
        at = list(captured.books)[-1] + 10**9 - 1
        ticker = next(t for t, s in captured.books[at - 10**9 + 1].items() if s.yes)
        assert ssmd.data.book_at(ticker, at, dataset=on_s3) == ssmd.data.book_at(
            ticker, at, dataset=local
        )
    finally:
        moto.stop()

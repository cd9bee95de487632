"""How a page of history rows is written in each format of /v1/history/{kind}.

A page streams: `head()` once, `rows(chunk)` for every chunk of rows as it is read,
`tail(count, cursor)` once; each returns the bytes to send. `cursor` is the `next` of a
truncated page (None at the end of the query). Where each format puts it:

- json: `{"kind", "rows": [...], "count", "truncated", "next"}`;
- ndjson: one row a line, then `{"truncated": true, "next": ...}` when truncated;
- csv: a header line, the rows, then `#next=CURSOR` when truncated;
- arrow: an Arrow IPC stream (one record batch a chunk); a truncated page ends with an
  empty batch whose custom metadata holds `ssmd.next` (pyarrow:
  `RecordBatchStreamReader.read_next_batch_with_custom_metadata`);
- parquet: a Parquet file (zstd, one row group a chunk), its footer's key-value
  metadata `ssmd.truncated` and, when truncated, `ssmd.next`.

The binary formats are written into a buffer that each call drains, so a page's memory is
one chunk however many rows it has.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import orjson

if TYPE_CHECKING:
    import polars as pl
    import pyarrow as pa

__all__ = ["FORMATS", "PageWriter", "page_writer"]

FORMATS: Final = {
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
    "arrow": "application/vnd.apache.arrow.stream",
    "parquet": "application/vnd.apache.parquet",
}


class PageWriter:
    """json, ndjson and csv: text made from each chunk's NDJSON or CSV rendering."""

    def __init__(self, fmt: str, kind: str) -> None:
        self.fmt, self.kind = fmt, kind
        self.first = True

    def head(self) -> bytes:
        return b'{"kind":%b,"rows":[' % orjson.dumps(self.kind) if self.fmt == "json" else b""

    def rows(self, chunk: pl.DataFrame) -> bytes:
        first, self.first = self.first, False
        if self.fmt == "csv":
            return chunk.write_csv(include_header=first).encode()
        lines = chunk.write_ndjson().encode()
        if self.fmt == "ndjson":
            return lines
        body = lines.rstrip(b"\n").replace(b"\n", b",")
        return body if first else b"," + body

    def tail(self, count: int, cursor: str | None) -> bytes:
        if self.fmt == "json":
            truncated = b"true" if cursor is not None else b"false"
            return b'],"count":%d,"truncated":%b,"next":%b}' % (
                count,
                truncated,
                orjson.dumps(cursor),
            )
        if cursor is None:
            return b""
        if self.fmt == "ndjson":
            return orjson.dumps({"truncated": True, "next": cursor}) + b"\n"
        return f"#next={cursor}\n".encode()


class _Drain:
    """A write-only file for pyarrow's writers whose bytes are taken as they come."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.written = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.written += len(data)
        return len(data)

    def tell(self) -> int:
        return self.written

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


class _BinaryPageWriter(PageWriter):
    """A pyarrow writer (`_open`) into a buffer that each call drains."""

    def __init__(self, fmt: str, kind: str, schema: pa.Schema) -> None:
        super().__init__(fmt, kind)
        self.drain = _Drain()
        self.schema = schema
        self.writer = self._open()

    def _open(self) -> Any:
        raise NotImplementedError

    def head(self) -> bytes:
        return self.drain.take()

    def rows(self, chunk: pl.DataFrame) -> bytes:
        self.writer.write_table(chunk.to_arrow().cast(self.schema))
        return self.drain.take()


class ArrowPageWriter(_BinaryPageWriter):
    """An Arrow IPC stream of the page's rows."""

    def _open(self) -> Any:
        import pyarrow as pa

        return pa.ipc.new_stream(self.drain, self.schema)

    def tail(self, count: int, cursor: str | None) -> bytes:
        import pyarrow as pa

        if cursor is not None:
            empty = pa.RecordBatch.from_pylist([], schema=self.schema)
            self.writer.write_batch(empty, custom_metadata={"ssmd.next": cursor})
        self.writer.close()
        return self.drain.take()


class ParquetPageWriter(_BinaryPageWriter):
    """A Parquet file of the page's rows, the cursor in its footer."""

    def _open(self) -> Any:
        import pyarrow.parquet as pq

        return pq.ParquetWriter(self.drain, self.schema, compression="zstd")

    def tail(self, count: int, cursor: str | None) -> bytes:
        meta = {"ssmd.truncated": "true" if cursor is not None else "false"}
        if cursor is not None:
            meta["ssmd.next"] = cursor
        self.writer.add_key_value_metadata(meta)
        self.writer.close()
        return self.drain.take()


def page_writer(fmt: str, kind: str, schema: pl.Schema) -> PageWriter:
    """The writer of one page in `fmt` (a key of FORMATS) of rows with `schema`."""
    if fmt in ("arrow", "parquet"):
        import polars as pl

        arrow_schema = pl.DataFrame(schema=schema).to_arrow().schema
        cls = ArrowPageWriter if fmt == "arrow" else ParquetPageWriter
        return cls(fmt, kind, arrow_schema)
    return PageWriter(fmt, kind)

"""Records: Cap'n Proto compatibility with pycapnp and the capnp tool, round
trips, the Arrow/Polars hand-off, and fuzzing of the normalizer."""

from __future__ import annotations

import subprocess
from pathlib import Path

import capnp  # type: ignore[import-untyped]
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ssmd.records
from _support import ROOT, kalshi_fixture, kalshi_fixture_names, require_binary
from ssmd import core
from ssmd.exceptions import CoreError

SCHEMA_PATH = ROOT / "schemas" / "ssmd.capnp"
schema = capnp.load(str(SCHEMA_PATH))


def all_fixture_records() -> bytes:
    names = kalshi_fixture_names()
    return core.normalize_kalshi([kalshi_fixture(n) for n in names], [10**18] * len(names), 3).data


def pycapnp_values(message: object) -> dict[str, object]:
    """The fields pycapnp reads, in the keys decode_records uses."""
    body_kind = message.which()  # type: ignore[attr-defined]
    body = getattr(message, body_kind)
    out: dict[str, object] = {
        "receive_ts": message.receiveTs,  # type: ignore[attr-defined]
        "exchange_ts": message.exchangeTs,  # type: ignore[attr-defined]
        "sid": message.sid,  # type: ignore[attr-defined]
        "seq": message.seq,  # type: ignore[attr-defined]
        "kind": body_kind,
    }
    if body_kind == "trade":
        out.update(
            ticker=body.ticker, trade_id=body.tradeId, price_e6=body.priceE6, size_e6=body.sizeE6
        )
    elif body_kind == "bookSnapshot":
        out.update(ticker=body.ticker, yes=[(lv.priceE6, lv.sizeE6) for lv in body.yes])
    elif body_kind == "bookDelta":
        out.update(ticker=body.ticker, price_e6=body.priceE6, delta_e6=body.deltaE6)
    elif body_kind == "ticker":
        out.update(ticker=body.ticker, volume_e6=body.volumeE6)
    return out


KIND_NAMES = {
    "trade": "trade",
    "book_snapshot": "bookSnapshot",
    "book_delta": "bookDelta",
    "ticker": "ticker",
    "lifecycle": "lifecycle",
    "event_lifecycle": "eventLifecycle",
}


def test_pycapnp_reads_what_rust_writes() -> None:
    data = all_fixture_records()
    ours = core.decode_records(data)
    theirs = list(schema.Record.read_multiple_bytes_packed(data))
    assert len(theirs) == len(ours) > 30
    undef = -(2**63)
    for mine, message in zip(ours, theirs, strict=True):
        values = pycapnp_values(message)
        assert values["kind"] == KIND_NAMES[str(mine["kind"])]
        for key, value in values.items():
            if key == "kind":
                continue
            expected = mine[key]
            if key == "yes":
                expected = [(p, s) for p, s in expected]  # type: ignore[union-attr]
            if expected is None:
                expected = undef if key.endswith("e6") else ""
            assert value == expected, (mine["kind"], key)


def test_rust_reads_what_pycapnp_writes() -> None:
    message = schema.Record.new_message()
    message.receiveTs = 1_784_557_805_412_000_000
    message.exchangeTs = 1_784_557_805_409_000_000
    message.connId = 77
    message.sid = 4
    message.seq = 9
    trade = message.init("trade")
    trade.ticker = "KXBTCD-26MAR1213-T69499.99"
    trade.tradeId = "t-1"
    trade.priceE6 = 999_000
    trade.noPriceE6 = 1_000
    trade.sizeE6 = 110_000
    trade.takerOutcome = "yes"
    data = message.to_bytes_packed() * 2
    records = core.decode_records(data)
    assert len(records) == 2
    assert records[0]["ticker"] == "KXBTCD-26MAR1213-T69499.99"
    assert (records[0]["price_e6"], records[0]["size_e6"], records[0]["taker_outcome"]) == (
        999_000,
        110_000,
        "yes",
    )
    assert records[0]["conn_id"] == 77


def test_the_capnp_tool_decodes_our_records(tmp_path: Path) -> None:
    tool = require_binary("capnp", "Debian package capnproto")
    data = core.normalize_kalshi([kalshi_fixture("trade_c_subcent_fractional")], [5], 1).data
    out = subprocess.run(
        [tool, "decode", "--packed", "-I", str(SCHEMA_PATH.parent), str(SCHEMA_PATH), "Record"],
        input=data,
        capture_output=True,
        check=True,
    ).stdout.decode()
    assert "priceE6 = 999000" in out
    assert "sizeE6 = 110000" in out
    assert 'ticker = "KXBTC15M-26JUL201045-45"' in out


def units_e6(units: int, decimals: int) -> int:
    """Units of 10^-decimals as the nearest 1e-6 (half away from zero; positive here)."""
    if decimals <= 6:
        return units * 10 ** (6 - decimals)
    div = 10 ** (decimals - 6)
    return (units + div // 2) // div


def expected_rows(decoded: list[dict[str, object]], kind: str) -> list[dict[str, object]]:
    """The rows a table of `kind` should hold, from decoded records."""
    if kind == "spot_level":
        rows = []
        for r in decoded:
            if r["kind"] != "spot_book":
                continue
            pd, qd = int(r["price_decimals"]), int(r["qty_decimals"])  # type: ignore[call-overload]
            for side, key in (("bid", "bids"), ("ask", "asks")):
                for i, (price, qty) in enumerate(r[key]):  # type: ignore[call-overload]
                    rows.append(
                        {
                            **r,
                            "side": side,
                            "level": i,
                            "price_units": price,
                            "size_units": qty,
                            "price_e6": units_e6(price, pd),
                            "size_e6": units_e6(qty, qd),
                            "size_decimals": qd,
                        }
                    )
        return rows
    if kind != "book_level":
        rows = [dict(r) for r in decoded if r["kind"] == kind]
        for row in rows:
            if kind == "lifecycle":
                row["event_type"] = row["event_type_text"]
            if kind == "connector_event":
                row["tickers"] = ",".join(row["tickers"])  # type: ignore[arg-type]
            if kind == "trade":
                row["taker_side"] = row["side"] if row.get("spot") else None
            if kind == "spot_ticker":
                row["size_decimals"] = row["qty_decimals"]
        return rows
    rows = []
    for r in decoded:
        if r["kind"] == "book_snapshot":
            for side in ("yes", "no"):
                for i, (price, size) in enumerate(r[side]):  # type: ignore[arg-type]
                    rows.append({**r, "side": side, "level": i, "price_e6": price, "size_e6": size})
    return rows


# A spot pair's records as the Kraken codec makes them: price at 2 decimals, qty at 8.
_PAIR = {"ticker": "BTC/USD", "price_decimals": 2, "conn_id": 4, "sid": 1, "receive_ts": 7}
SPOT_RECORDS: list[dict[str, object]] = [
    {
        **_PAIR,
        "kind": "spot_book",
        "snapshot": True,
        "bids": [(6_500_010, 150_000_000), (6_499_990, 5)],
        "asks": [(6_500_100, 2_500_000)],
        "qty_decimals": 8,
        "checksum": 3_141_592_653,
        "checksum_ok": True,
        "depth": 10,
    },
    {
        **_PAIR,
        "kind": "spot_book",
        "snapshot": False,
        "bids": [(6_500_010, 0)],
        "asks": [],
        "qty_decimals": 8,
        "checksum": 1,
        "checksum_ok": False,
        "depth": 10,
    },
    {
        **_PAIR,
        "kind": "trade",
        "spot": True,
        "trade_id": "77",
        "price_units": 6_500_100,
        "size_units": 2_500_000,
        "size_decimals": 8,
        "side": "sell",
        "ord_type": "market",
    },
    {
        **_PAIR,
        "kind": "spot_ticker",
        "bid": 6_500_010,
        "bid_qty": 150_000_000,
        "ask": 6_500_100,
        "ask_qty": None,
        "last": 6_500_100,
        "volume": 123_456_789_012,
        "vwap": 6_410_012,
        "low": 6_400_000,
        "high": 6_600_000,
        "change": -12_050,
        "change_pct": -27,
        "qty_decimals": 8,
    },
]


def test_arrow_columns_equal_decoded_records() -> None:
    extra = core.encode_records(
        [
            {
                "kind": "status",
                "ticker": "KXBTC15M-26JUL201045-45",
                "status": "open",
                "status_text": "active",
                "receive_ts": 5,
                "exchange_ts": 0,
            },
            {
                "kind": "connector_event",
                "event": "gap",
                "shard": 2,
                "reason": "seq gap on sid 3",
                "expected_seq": 10,
                "received_seq": 12,
                "tickers": ["A-1", "B.2"],
                "receive_ts": 6,
            },
            *SPOT_RECORDS,
        ]
    )
    data = all_fixture_records() + extra
    decoded = core.decode_records(data)
    for kind in ssmd.records.TABLE_KINDS:
        frame = ssmd.records.to_polars(data, kind)
        expected = expected_rows(decoded, kind)
        assert frame.height == len(expected) > 0, kind
        for row, record in zip(frame.to_dicts(), expected, strict=True):
            for column, value in row.items():
                want = record[column]
                if column.endswith("_ts") or column == "strike_date":
                    got = None if value is None else int(value.timestamp() * 1_000_000) * 1000
                    want = None if want == 0 else want
                    # Python datetimes hold microseconds; compare at that precision.
                    assert got == (None if want is None else want // 1000 * 1000), (kind, column)  # type: ignore[operator]
                else:
                    assert value == want, (kind, column)


def test_arrow_exact_timestamps_and_unknown_kind() -> None:
    data = core.normalize_kalshi([kalshi_fixture("orderbook_delta_a_nanoseconds")], [7], 1).data
    table = ssmd.records.to_arrow(data, "book_delta")
    assert table.column("exchange_ts").cast("int64").to_pylist() == [1_755_032_432_539_836_022]
    with pytest.raises(CoreError, match="no column layout"):
        ssmd.records.to_arrow(data, "nonsense")


outcomes = st.sampled_from([None, "yes", "no"])
e6 = st.one_of(st.none(), st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1))
texts = st.one_of(st.none(), st.text(min_size=1, max_size=80))
u64 = st.integers(min_value=0, max_value=2**64 - 1)
common = {
    "receive_ts": u64,
    "exchange_ts": u64,
    "conn_id": u64,
    "sid": st.integers(min_value=0, max_value=2**32 - 1),
    "seq": u64,
}
record_dicts = st.one_of(
    st.fixed_dictionaries(
        {
            **common,
            "kind": st.just("trade"),
            "ticker": texts,
            "trade_id": texts,
            "price_e6": e6,
            "no_price_e6": e6,
            "size_e6": e6,
            "taker_outcome": outcomes,
            "taker_book_side": outcomes,
            "is_block_trade": st.booleans(),
        }
    ),
    st.fixed_dictionaries(
        {
            **common,
            "kind": st.just("book_snapshot"),
            "ticker": texts,
            "market_id": texts,
            "yes": st.lists(st.tuples(e6, e6), max_size=5),
            "no": st.lists(st.tuples(e6, e6), max_size=5),
            "use_yes_price": st.booleans(),
        }
    ),
    st.fixed_dictionaries(
        {
            **common,
            "kind": st.just("book_delta"),
            "ticker": texts,
            "market_id": texts,
            "side": outcomes,
            "price_e6": e6,
            "delta_e6": e6,
            "client_order_id": texts,
        }
    ),
    st.fixed_dictionaries(
        {
            **common,
            "kind": st.just("connector_event"),
            "event": st.sampled_from(
                [
                    "connected",
                    "disconnected",
                    "gap",
                    "resync",
                    "buffer_full",
                    "heartbeat",
                    "stopped",
                ]
            ),
            "shard": st.integers(min_value=0, max_value=2**32 - 1),
            "reason": texts,
            "duration_ns": u64,
            "expected_seq": u64,
            "received_seq": u64,
            "tickers": st.lists(st.text(max_size=20), max_size=4),
        }
    ),
    st.fixed_dictionaries(
        {
            **common,
            "kind": st.just("status"),
            "ticker": texts,
            "status": st.sampled_from(
                ["open", "closed", "halted", "initialized", "determined", "settled", "unknown"]
            ),
            "status_text": texts,
        }
    ),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(record_dicts, min_size=1, max_size=5))
def test_encode_decode_round_trip(records: list[dict[str, object]]) -> None:
    decoded = core.decode_records(core.encode_records(records))
    assert len(decoded) == len(records)
    for original, back in zip(records, decoded, strict=True):
        for key, value in original.items():
            if key == "tickers" or key in ("yes", "no"):
                assert list(back[key]) == [
                    tuple(v) if isinstance(v, tuple) else v for v in value
                ], key  # type: ignore[union-attr]
            elif key == "ticker" and original["kind"] == "connector_event":
                continue
            else:
                assert back[key] == value, key
    # And pycapnp agrees on how many messages there are.
    assert len(list(schema.Record.read_multiple_bytes_packed(core.encode_records(records)))) == len(
        records
    )


@settings(max_examples=500)
@given(st.lists(st.binary(max_size=300), max_size=20))
def test_random_bytes_never_break_a_batch(frames: list[bytes]) -> None:
    batch = core.normalize_kalshi(frames, [1] * len(frames), 0)
    assert len(batch) == len(frames)
    assert len(core.decode_records(batch.data)) == len(batch.records)


@settings(max_examples=500)
@given(
    st.sampled_from(kalshi_fixture_names()),
    st.lists(st.tuples(st.integers(0, 600), st.integers(0, 255)), min_size=1, max_size=6),
)
def test_mutated_frames_never_break_a_batch(name: str, edits: list[tuple[int, int]]) -> None:
    frame = bytearray(kalshi_fixture(name))
    for at, byte in edits:
        if frame:
            frame[at % len(frame)] = byte
    batch = core.normalize_kalshi([bytes(frame), kalshi_fixture("trade_c")], [1, 2], 0)
    assert batch.records[-1][1:3] == ("trade", "KXBTCD-26JUL2017-T119999.99")
    assert len(core.decode_records(batch.data)) == len(batch.records)

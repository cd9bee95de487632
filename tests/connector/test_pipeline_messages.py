"""The messages the pipeline lays out in Rust (one OutBatch per batch), checked against a
plain-Python statement of the layout: subjects, ids, headers, payloads, in order."""

from __future__ import annotations

import orjson
import pytest

from ssmd import core
from ssmd.bus import subjects
from ssmd.bus.publisher import OutMsg
from ssmd.connector.capture_queue import Item
from ssmd.connector.pipeline import Pipeline
from ssmd.exceptions import BusProtocolError
from ssmd.venues.polymarket.venue import PolymarketCodec

YES = "71321045679252212594626385532706912750332728571942532289631379312455583992563"
NO = "52114319501245915516055106046884209969926127482827954674443846427813813222426"
MARKET = "0x5f65177b394277fd294cd75650044e32ba009a95022d88a0c1d565897d72f8f1"


def _book(token: str, ts: int) -> dict[str, object]:
    return {
        "event_type": "book",
        "market": MARKET,
        "asset_id": token,
        "timestamp": str(ts),
        "hash": "0" * 40,
        "bids": [{"price": "0.40", "size": "500"}],
        "asks": [{"price": "0.47", "size": "75"}],
    }


def _trade(ts: int) -> bytes:
    return orjson.dumps(
        {
            "event_type": "last_trade_price",
            "asset_id": YES,
            "market": MARKET,
            "price": "0.45",
            "size": "10",
            "side": "BUY",
            "timestamp": str(ts),
        }
    )


def _items() -> list[Item]:
    return [
        # two records from one frame, then one, then none (kept raw and counted)
        Item(
            3,
            10,
            1_000,
            orjson.dumps([_book(YES, 1_790_000_000_001), _book(NO, 1_790_000_000_002)]),
        ),
        Item(3, 11, 2_000, _trade(1_790_000_000_003)),
        Item(3, 12, 3_000, b"{not json"),
        Item(4, 1, 4_000, _trade(1_790_000_000_004)),
    ]


def _expected(pipeline: Pipeline, items: list[Item], exchange: bool) -> list[tuple[object, ...]]:
    """The layout, stated plainly: per run of one connection's frames, each frame raw,
    then each record; (subject, id, header lines, payload, receive ns, is frame)."""
    codec = PolymarketCodec("off")
    out: list[tuple[object, ...]] = []
    for conn in (3, 4):
        group = [it for it in items if it.conn_id == conn]
        batch = codec.normalize([it.data for it in group], [it.receive_ns for it in group], conn)
        records = batch.records
        times = core.exchange_times(batch.data) if exchange else []
        first: dict[int, int] = {}
        if exchange:
            for (fi, *_), ns in zip(records, times, strict=True):
                first.setdefault(fi, ns)
        for k, it in enumerate(group):
            lines = f"{core.RECEIVE_HEADER}: {it.receive_ns}\r\n{core.CONN_HEADER}: {conn}\r\n"
            if k in first:
                lines += f"{core.EXCHANGE_HEADER}: {first[k]}\r\n"
            subject = pipeline.raw_subjects[batch.kinds[k]]
            out.append(
                (subject, f"{conn}:{it.frame_no}", lines.encode(), it.data, it.receive_ns, True)
            )
        nth: dict[int, int] = {}
        for r, (fi, rtype, ticker, start, end) in enumerate(records):
            n = nth[fi] = nth.get(fi, -1) + 1
            it = group[fi]
            msg_id = f"{conn}:{it.frame_no}:n" + (str(n) if n else "")
            lines = ""
            if exchange:
                lines = f"{core.RECEIVE_HEADER}: {it.receive_ns}\r\n"
                lines += f"{core.EXCHANGE_HEADER}: {times[r]}\r\n"
            subject = subjects.record(pipeline.env, pipeline.feed, rtype, ticker)
            payload = batch.data[start:end]
            out.append((subject, msg_id, lines.encode(), payload, it.receive_ns, False))
    return out


def _laid_out(batch: core.OutBatch) -> list[tuple[object, ...]]:
    return [
        (
            batch.subject(i),
            batch.msg_id(i),
            batch.header_lines(i),
            batch.payload(i),
            batch.receive_ns(i),
            batch.is_frame(i),
        )
        for i in range(len(batch))
    ]


@pytest.mark.parametrize("exchange", [False, True], ids=["connector", "replay"])
def test_messages_match_the_layout(exchange: bool) -> None:
    pipeline = Pipeline("pm", "polymarket", PolymarketCodec("off"), exchange_headers=exchange)
    items = _items()
    outcome = pipeline.process(items)
    got = _laid_out(outcome.messages)
    assert got == _expected(Pipeline("pm", "polymarket", PolymarketCodec("off")), items, exchange)
    assert [m[1] for m in got if not m[5]] == ["3:10:n", "3:10:n1", "3:11:n", "4:1:n"]
    assert outcome.problems["malformed"] == 1
    assert outcome.messages.payload_bytes == sum(len(m[3]) for m in got)  # type: ignore[arg-type]


def test_events_and_checkpoints_go_in_order_with_the_frames() -> None:
    pipeline = Pipeline("pm", "polymarket", PolymarketCodec("off"))
    event = Item(3, 13, 5_000, b"", "heartbeat")
    outcome = pipeline.process([*_items()[:2], event])
    ids = [outcome.messages.msg_id(i) for i in range(len(outcome.messages))]
    assert ids == ["3:10", "3:11", "3:10:n", "3:10:n1", "3:11:n", "ev:3:13"]
    assert outcome.messages.subject(5) == subjects.event("pm", "polymarket", "heartbeat")
    assert outcome.messages.receive_ns(5) == 5_000 and not outcome.messages.is_frame(5)


def test_an_outbatch_refuses_what_nats_would_and_keeps_the_rest() -> None:
    batch = core.OutBatch([OutMsg("a.b", b"1", "id:1", {"K": "v"})])
    with pytest.raises(BusProtocolError, match="whitespace"):
        batch.append(OutMsg("a b", b"2", "id:2"))
    with pytest.raises(BusProtocolError, match="line break"):
        batch.append(OutMsg("a.c", b"3", "id:3", {"K": "v\r\nX: y"}))
    more = core.OutBatch()
    more.extend(batch)
    more.extend(batch)
    assert [more.msg_id(i) for i in range(len(more))] == ["id:1", "id:1"]
    assert more.header_lines(1) == b"K: v\r\n" and more.payload(1) == b"1"
    with pytest.raises(IndexError):
        more.subject(2)

"""Per venue: normalize + encode in Rust against a pure-Python baseline doing the same
work, in the same run, one core.

Each venue registers a `VenueBench` in `VENUES`: a deterministic frame stream, the Rust
path (the venue's codec, batches of `BATCH` frames of one connection, every integrity
check it does in production included) and the Python baseline (orjson, Decimal, the same
book state and checks, pycapnp packed encoding), one frame at a time.

    python benches/venues.py [--frames N] [--venue NAME ...] [--dump DIR]

Prints one JSON line per venue: frames/s of each path and the ratio. Targets: Rust at
least 1,000,000 frames/s and at least 10x the baseline. `--dump DIR` writes each venue's
frames (`NAME.jsonl`) and the listing fields its codec is given (`NAME.tsv`) for the
Rust-only example `cargo run --release --example venue_file -- NAME DIR/NAME.jsonl
DIR/NAME.tsv`, which a profiler can run without Python.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import capnp  # type: ignore[import-untyped]
import orjson

from ssmd.sim.kraken.server import checksum
from ssmd.sim.kraken.universe import KrPair, fmt, make_universe
from ssmd.sim.polymarket.book import ONE, MarketBook, book_hash, dec
from ssmd.venues.kraken.venue import KrakenCodec
from ssmd.venues.polymarket.venue import PolymarketCodec

ROOT = Path(__file__).resolve().parent.parent

schema = capnp.load(str(ROOT / "schemas" / "ssmd.capnp"))
BATCH = 1024
E6 = Decimal(1_000_000)


@dataclass
class VenueBench:
    frames: Callable[[int], list[bytes]]
    listing: Callable[[list[bytes]], list[tuple[str, str, str]]]  # what the codec is given
    rust: Callable[[list[bytes]], int]  # returns records written
    python: Callable[[list[bytes]], int]


def _codec_run(codec: Any, frames: list[bytes]) -> tuple[int, float]:
    """A venue codec on batches of BATCH frames of one connection, with its integrity
    events: (bytes written, seconds)."""
    recv = list(range(BATCH))
    written = 0
    start = time.perf_counter()
    for i in range(0, len(frames), BATCH):
        chunk = frames[i : i + BATCH]
        batch = codec.normalize(chunk, recv[: len(chunk)], 1)
        codec.integrity(batch)
        written += len(batch.data)
    return written, time.perf_counter() - start


# ---- Polymarket ------------------------------------------------------------------------


def polymarket_frames(n: int, markets: int = 20, seed: int = 5) -> list[bytes]:
    """A consistent market-channel stream: 70% mirrored price_change, 20% trades, 10%
    books of both tokens (hashed as the venue does)."""
    rng = random.Random(seed)
    books = []
    for i in range(markets):
        b = MarketBook()
        for k in range(1, 6):
            b.set(True, Decimal(40 - k) / 100, Decimal(rng.randint(10, 900)))
            b.set(False, Decimal(60 + k) / 100, Decimal(rng.randint(10, 900)))
        books.append((f"0x{i:064x}", str(10**76 + 2 * i), str(10**76 + 2 * i + 1), b))
    out: list[bytes] = []
    ts = 1_790_000_000_000
    while len(out) < n:
        ts += 1
        market, yes, no, book = books[rng.randrange(markets)]
        roll = rng.random()
        if roll < 0.7:
            bid = rng.random() < 0.5
            best_bid, best_ask = book.best(True)
            price = (
                (best_ask - Decimal(rng.randint(1, 4)) / 100)
                if bid
                else (best_bid + Decimal(rng.randint(1, 4)) / 100)
            )
            if not Decimal(0) < price < ONE:
                continue
            size = Decimal(rng.randint(0, 900))
            book.set(bid, price, size)
            yb, ya = book.best(True)
            nb, na = book.best(False)
            items = [
                {
                    "asset_id": yes,
                    "price": dec(price),
                    "size": dec(size),
                    "side": "BUY" if bid else "SELL",
                    "hash": "a" * 40,
                    "best_bid": dec(yb),
                    "best_ask": dec(ya),
                },
                {
                    "asset_id": no,
                    "price": dec(ONE - price),
                    "size": dec(size),
                    "side": "SELL" if bid else "BUY",
                    "hash": "b" * 40,
                    "best_bid": dec(nb),
                    "best_ask": dec(na),
                },
            ]
            out.append(
                orjson.dumps(
                    {
                        "event_type": "price_change",
                        "market": market,
                        "timestamp": str(ts),
                        "price_changes": items,
                    }
                )
            )
        elif roll < 0.9:
            out.append(
                orjson.dumps(
                    {
                        "event_type": "last_trade_price",
                        "asset_id": yes,
                        "market": market,
                        "price": dec(book.best(True)[1]),
                        "size": "12.5",
                        "side": "BUY",
                        "fee_rate_bps": "0",
                        "timestamp": str(ts),
                        "transaction_hash": "0x" + "c" * 64,
                    }
                )
            )
        else:
            for token, is_yes in ((yes, True), (no, False)):
                bids, asks = book.levels(is_yes)
                summary: dict[str, Any] = {
                    "market": market,
                    "asset_id": token,
                    "timestamp": str(ts),
                    "hash": "",
                    "bids": [{"price": dec(p), "size": dec(s)} for p, s in bids],
                    "asks": [{"price": dec(p), "size": dec(s)} for p, s in asks],
                    "min_order_size": "5",
                    "tick_size": "0.01",
                    "neg_risk": False,
                    "last_trade_price": "",
                }
                out.append(
                    orjson.dumps(
                        {
                            "event_type": "book",
                            "market": market,
                            "asset_id": token,
                            "timestamp": str(ts),
                            "hash": book_hash(summary),
                            "tick_size": "0.01",
                            "last_trade_price": "",
                            "bids": summary["bids"],
                            "asks": summary["asks"],
                        }
                    )
                )
    return out[:n]


def _tokens(frames: list[bytes]) -> set[str]:
    out = set()
    for f in frames:
        body = orjson.loads(f)
        if body.get("event_type") == "book":
            out.add(body["asset_id"])
    return out


def polymarket_listing(frames: list[bytes]) -> list[tuple[str, str, str]]:
    """(asset id, min order size, neg risk) of every token with a book."""
    return [(token, "5", "false") for token in sorted(_tokens(frames))]


def polymarket_rust(frames: list[bytes]) -> int:
    codec = PolymarketCodec("auto")
    for token, min_size, neg_risk in polymarket_listing(frames):
        codec.set_token(token, min_size, neg_risk == "true")
    written, polymarket_rust.seconds = _codec_run(codec, frames)  # type: ignore[attr-defined]
    return written


def _e6(text: str) -> int:
    return int(Decimal(text) * E6)


def polymarket_python(frames: list[bytes]) -> int:
    """The same work in Python: parse, exact decimals, the token books, the best bid/ask
    check, the hash of every book, packed Cap'n Proto."""
    books: dict[str, tuple[dict[int, int], dict[int, int]]] = {}
    written = 0
    start = time.perf_counter()
    for frame in frames:
        body = orjson.loads(frame)
        kind = body.get("event_type")
        ts = int(body["timestamp"]) * 1_000_000
        if kind == "book":
            summary = {
                "market": body["market"],
                "asset_id": body["asset_id"],
                "timestamp": body["timestamp"],
                "hash": "",
                "bids": body["bids"],
                "asks": body["asks"],
                "min_order_size": "5",
                "tick_size": body["tick_size"],
                "neg_risk": False,
                "last_trade_price": body["last_trade_price"],
            }
            text = json.dumps(summary, separators=(",", ":"), ensure_ascii=False)
            if hashlib.sha1(text.encode()).hexdigest() != body["hash"]:
                continue
            bids = {_e6(lv["price"]): _e6(lv["size"]) for lv in body["bids"]}
            asks = {_e6(lv["price"]): _e6(lv["size"]) for lv in body["asks"]}
            books[body["asset_id"]] = (bids, asks)
            rec = schema.Record.new_message(exchangeTs=ts, connId=1)
            snap = rec.init("bookSnapshot")
            snap.ticker = body["asset_id"]
            snap.marketId = body["market"]
            snap.useYesPrice = True
            for name, levels in (("yes", body["bids"]), ("no", body["asks"])):
                out = snap.init(name, len(levels))
                for j, lv in enumerate(levels):
                    p, s = _e6(lv["price"]), _e6(lv["size"])
                    out[j].priceE6, out[j].sizeE6 = p, s
                    out[j].price, out[j].size = p / 1e6, min(round(s / 1e6), 2**32 - 1)
            written += len(rec.to_bytes_packed())
        elif kind == "price_change":
            for item in body["price_changes"]:
                book = books.get(item["asset_id"])
                if book is None:
                    continue
                side = book[0] if item["side"] == "BUY" else book[1]
                p, s = _e6(item["price"]), _e6(item["size"])
                old = side.get(p, 0)
                if s:
                    side[p] = s
                else:
                    side.pop(p, None)
                best_bid = max(book[0]) if book[0] else 0
                best_ask = min(book[1]) if book[1] else 1_000_000
                if best_bid != _e6(item["best_bid"]) or best_ask != _e6(item["best_ask"]):
                    books.pop(item["asset_id"])
                rec = schema.Record.new_message(exchangeTs=ts, connId=1)
                d = rec.init("bookDelta")
                d.ticker = item["asset_id"]
                d.marketId = body["market"]
                d.side = "yes" if item["side"] == "BUY" else "no"
                d.priceE6, d.deltaE6 = p, s - old
                written += len(rec.to_bytes_packed())
        elif kind == "last_trade_price":
            rec = schema.Record.new_message(exchangeTs=ts, connId=1)
            t = rec.init("trade")
            t.ticker = body["asset_id"]
            t.timestamp = ts
            p, s = _e6(body["price"]), _e6(body["size"])
            t.priceE6, t.sizeE6, t.price, t.size = p, s, p / 1e6, round(s / 1e6)
            t.noPriceE6 = -(2**63)
            t.takerOutcome = "yes" if body["side"] == "BUY" else "no"
            written += len(rec.to_bytes_packed())
    polymarket_python.seconds = time.perf_counter() - start  # type: ignore[attr-defined]
    return written


# ---- Kraken ----------------------------------------------------------------------------

KRAKEN_DEPTH = 10


def _kraken_levels(pair: KrPair, levels: list[tuple[int, int]]) -> str:
    pd, qd = pair.price_decimals, pair.qty_decimals
    return ",".join(f'{{"price":{fmt(p, pd)},"qty":{fmt(q, qd)}}}' for p, q in levels)


def _kraken_book(pair: KrPair, kind: str, bids: Any, asks: Any, ts: str) -> bytes:
    top_bids, top_asks = pair.top(KRAKEN_DEPTH)
    return (
        f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"{pair.symbol}",'
        f'"bids":[{_kraken_levels(pair, bids)}],"asks":[{_kraken_levels(pair, asks)}],'
        f'"checksum":{checksum(pair, top_bids, top_asks)},"timestamp":"{ts}"}}]}}'
    ).encode()


def kraken_frames(n: int, pairs: int = 6, seed: int = 5) -> list[bytes]:
    """A consistent spot WebSocket v2 stream at depth 10: a snapshot per pair, then 75%
    book updates (a level changed, deleted with the next level refilling the window, or a
    better level pushing the worst out), 20% trades, 5% tickers; every book message with
    the CRC32 of the top 10 levels, numbers at each pair's precision."""
    rng = random.Random(seed)
    universe = make_universe(seed, pairs)  # 30 levels a side, constant below
    ts = "2026-05-04T10:00:01.102334Z"
    out = [_kraken_book(p, "snapshot", *p.top(KRAKEN_DEPTH), ts) for p in universe]
    while len(out) < n:
        pair = rng.choice(universe)
        roll = rng.random()
        bid = rng.random() < 0.5
        side = pair.bids if bid else pair.asks
        ranked = sorted(side, reverse=bid)
        if roll < 0.75:
            what = rng.random()
            if what < 0.5:
                price = ranked[rng.randrange(KRAKEN_DEPTH)]
                side[price] = rng.randint(1, 9_000) * 10 ** (pair.qty_decimals // 2)
                changes = [(price, side[price])]
            elif what < 0.75:
                price = ranked[rng.randrange(KRAKEN_DEPTH)]
                del side[price]
                refill = ranked[KRAKEN_DEPTH]
                changes = [(price, 0), (refill, side[refill])]
                side[ranked[-1] + (-1 if bid else 1)] = side[refill]  # a new deepest level
            else:
                price = ranked[0] + (1 if bid else -1)
                other = pair.asks if bid else pair.bids
                if price in other:
                    continue
                side[price] = rng.randint(1, 9_000) * 10 ** (pair.qty_decimals // 2)
                changes = [(price, side[price])]
                side.pop(ranked[-1])  # the deepest level goes: the book stays bounded
            bids, asks = (changes, []) if bid else ([], changes)
            out.append(_kraken_book(pair, "update", bids, asks, ts))
        elif roll < 0.95:
            pair.last_trade_id += 1
            price = ranked[0]
            out.append(
                (
                    f'{{"channel":"trade","type":"update","data":[{{"symbol":"{pair.symbol}",'
                    f'"side":"{"sell" if bid else "buy"}","price":{fmt(price, pair.price_decimals)},'
                    f'"qty":{fmt(side[price] // 3 + 1, pair.qty_decimals)},"ord_type":"market",'
                    f'"trade_id":{pair.last_trade_id},"timestamp":"{ts}"}}]}}'
                ).encode()
            )
        else:
            (b, bq), (a, aq) = pair.top(1)[0][0], pair.top(1)[1][0]
            pd, qd = pair.price_decimals, pair.qty_decimals
            out.append(
                (
                    f'{{"channel":"ticker","type":"update","data":[{{"symbol":"{pair.symbol}",'
                    f'"bid":{fmt(b, pd)},"bid_qty":{fmt(bq, qd)},"ask":{fmt(a, pd)},'
                    f'"ask_qty":{fmt(aq, qd)},"last":{fmt(b, pd)},"volume":{fmt(bq * 7, qd)},'
                    f'"vwap":{fmt(a, pd)},"low":{fmt(b, pd)},"high":{fmt(a, pd)},'
                    f'"change":1.5,"change_pct":0.12,"timestamp":"{ts}"}}]}}'
                ).encode()
            )
    return out[:n]


def kraken_listing(frames: list[bytes]) -> list[tuple[str, str, str]]:
    """(symbol, price decimals, quantity decimals) of every pair of `kraken_frames`."""
    return [(p.symbol, str(p.price_decimals), str(p.qty_decimals)) for p in make_universe(5, 6)]


def kraken_rust(frames: list[bytes]) -> int:
    codec = KrakenCodec()
    for symbol, price_decimals, qty_decimals in kraken_listing(frames):
        codec.set_precision(symbol, int(price_decimals), int(qty_decimals))
    written, kraken_rust.seconds = _codec_run(codec, frames)  # type: ignore[attr-defined]
    if codec.checksum_mismatches:
        raise SystemExit(f"kraken: {codec.checksum_mismatches} checksum mismatches in the stream")
    return written


def _units(d: Decimal, decimals: int) -> int:
    return int(d.scaleb(decimals))


def kraken_python(frames: list[bytes]) -> int:
    """The same work in Python: parse with exact decimals (json + Decimal: orjson has no
    exact numbers), the books cut to depth, zlib's CRC32 of every book message, packed
    Cap'n Proto."""
    precision = {p.symbol: (p.price_decimals, p.qty_decimals) for p in make_universe(5, 6)}
    books: dict[str, tuple[dict[int, int], dict[int, int]]] = {}
    written = 0
    start = time.perf_counter()
    for frame in frames:
        body = json.loads(frame, parse_float=Decimal)
        channel = body.get("channel")
        if channel == "book":
            item = body["data"][0]
            symbol = item["symbol"]
            pd, qd = precision[symbol]
            snapshot = body["type"] == "snapshot"
            if snapshot:
                books[symbol] = ({}, {})
            bids, asks = books[symbol]
            rec = schema.Record.new_message(connId=1, sid=1)
            sb = rec.init("spotBook")
            sb.ticker, sb.snapshot, sb.priceDecimals, sb.qtyDecimals = symbol, snapshot, pd, qd
            for name, side, levels in (("bids", bids, item["bids"]), ("asks", asks, item["asks"])):
                out = sb.init(name, len(levels))
                for j, lv in enumerate(levels):
                    p, q = _units(lv["price"], pd), _units(lv["qty"], qd)
                    out[j].price, out[j].qty = p, q
                    if q:
                        side[p] = q
                    else:
                        side.pop(p, None)
            for side, worst in ((bids, min), (asks, max)):
                while len(side) > KRAKEN_DEPTH:
                    del side[worst(side)]
            text = "".join(f"{p}{asks[p]}" for p in sorted(asks)[:10])
            text += "".join(f"{p}{bids[p]}" for p in sorted(bids, reverse=True)[:10])
            ok = zlib.crc32(text.encode()) & 0xFFFFFFFF == item["checksum"]
            sb.checksum, sb.checksumOk, sb.depth = item["checksum"], ok, KRAKEN_DEPTH
            written += len(rec.to_bytes_packed())
        elif channel == "trade":
            for t in body["data"]:
                pd, qd = precision[t["symbol"]]
                rec = schema.Record.new_message(connId=1, sid=2)
                x = rec.init("trade")
                x.ticker, x.tradeId, x.ordType, x.spot = (
                    t["symbol"],
                    str(t["trade_id"]),
                    t["ord_type"],
                    True,
                )
                x.priceUnits, x.sizeUnits = _units(t["price"], pd), _units(t["qty"], qd)
                x.priceDecimals, x.sizeDecimals = pd, qd
                x.priceE6, x.sizeE6 = _units(t["price"], 6), _units(t["qty"], 6)
                x.side = "buy" if t["side"] == "buy" else "sell"
                written += len(rec.to_bytes_packed())
        elif channel == "ticker":
            t = body["data"][0]
            pd, qd = precision[t["symbol"]]
            rec = schema.Record.new_message(connId=1, sid=3)
            x = rec.init("spotTicker")
            x.ticker = t["symbol"]
            for key, field in (
                ("bid", "bid"),
                ("ask", "ask"),
                ("last", "last"),
                ("vwap", "vwap"),
                ("low", "low"),
                ("high", "high"),
                ("change", "change"),
            ):
                setattr(x, field, _units(t[key], pd))
            x.bidQty, x.askQty, x.volume = (
                _units(t[k], qd) for k in ("bid_qty", "ask_qty", "volume")
            )
            x.changePct = _units(t["change_pct"], 2)
            written += len(rec.to_bytes_packed())
    kraken_python.seconds = time.perf_counter() - start  # type: ignore[attr-defined]
    return written


VENUES: dict[str, VenueBench] = {
    "polymarket": VenueBench(
        polymarket_frames, polymarket_listing, polymarket_rust, polymarket_python
    ),
    "kraken": VenueBench(kraken_frames, kraken_listing, kraken_rust, kraken_python),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=400_000)
    parser.add_argument("--baseline-frames", type=int, default=40_000)
    parser.add_argument("--venue", action="append", choices=sorted(VENUES))
    parser.add_argument("--dump", type=Path, help="write the frames and listings here, then stop")
    args = parser.parse_args()
    if args.dump is not None:
        args.dump.mkdir(parents=True, exist_ok=True)
        for name in args.venue or sorted(VENUES):
            frames = VENUES[name].frames(args.frames)
            (args.dump / f"{name}.jsonl").write_bytes(b"\n".join(frames) + b"\n")
            rows = VENUES[name].listing(frames)
            (args.dump / f"{name}.tsv").write_text("".join("\t".join(r) + "\n" for r in rows))
        return
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    for name in args.venue or sorted(VENUES):
        bench = VENUES[name]
        frames = bench.frames(args.frames)
        rust_best = py_best = float("inf")
        for _ in range(2):  # turns, best kept
            bench.rust(frames)
            rust_best = min(rust_best, bench.rust.seconds)  # type: ignore[attr-defined]
            bench.python(frames[: args.baseline_frames])
            py_best = min(py_best, bench.python.seconds)  # type: ignore[attr-defined]
        rust_fps = len(frames) / rust_best
        py_fps = args.baseline_frames / py_best
        print(
            json.dumps(
                {
                    "venue": name,
                    "frames": len(frames),
                    "rust_frames_per_s": round(rust_fps),
                    "python_frames_per_s": round(py_fps),
                    "ratio": round(rust_fps / py_fps, 1),
                    "machine": f"{platform.machine()} {os.cpu_count()} cpus, {platform.python_version()}",
                }
            )
        )


if __name__ == "__main__":
    main()

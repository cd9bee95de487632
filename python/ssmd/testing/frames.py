"""A deterministic, realistic mix of era-C Kalshi frames for benchmarks.

Markets carry a book that deltas keep consistent; trades and tickers follow
the book; a few lifecycle frames are mixed in. Proportions follow what a
crypto-heavy capture looks like: mostly deltas, then tickers and trades.
"""

from __future__ import annotations

import random

import orjson

MIX = (("orderbook_delta", 0.60), ("ticker", 0.20), ("trade", 0.17), ("market_lifecycle_v2", 0.03))


def _dollars(e4: int) -> str:
    return f"{e4 // 10000}.{e4 % 10000:04d}"


def _count(e2: int) -> str:
    return f"{e2 // 100}.{e2 % 100:02d}"


def frame_mix(n: int, seed: int = 7, markets: int = 200) -> list[bytes]:
    """`n` frames as the exchange sends them (compact JSON bytes)."""
    rng = random.Random(seed)
    tickers = [
        f"KXBTCD-26JUL{20 + i // 50:02d}17-T{118000 + (i % 50) * 250 - 0.01:.2f}"
        for i in range(markets)
    ]
    mids = {t: rng.randrange(2000, 8000) for t in tickers}
    seqs = {t: 1 for t in tickers}
    trade_seq = 0
    life_seq = 0
    ts_ms = 1_784_557_800_000
    kinds = [k for k, _ in MIX]
    weights = [w for _, w in MIX]
    out: list[bytes] = []
    for _ in range(n):
        ts_ms += rng.randrange(0, 3)
        ticker = rng.choice(tickers)
        kind = rng.choices(kinds, weights)[0]
        mid = mids[ticker] = min(9900, max(100, mids[ticker] + rng.randrange(-30, 31)))
        if kind == "orderbook_delta":
            seqs[ticker] += 1
            side = rng.choice(("yes", "no"))
            price = (
                mid - rng.randrange(0, 500)
                if side == "yes"
                else 10000 - mid - rng.randrange(0, 500)
            )
            msg = {
                "market_ticker": ticker,
                "market_id": "3f0c6a52-9d1e-4b7a-8e2f-5b9c1d7e4a10",
                "price_dollars": _dollars(max(price, 1)),
                "delta_fp": _count(rng.randrange(-50000, 50000)),
                "side": side,
                "ts_ms": ts_ms,
            }
            frame = {"type": kind, "sid": 3, "seq": seqs[ticker], "msg": msg}
        elif kind == "ticker":
            msg = {
                "market_ticker": ticker,
                "market_id": "3f0c6a52-9d1e-4b7a-8e2f-5b9c1d7e4a10",
                "price_dollars": _dollars(mid),
                "yes_bid_dollars": _dollars(mid - 100),
                "yes_ask_dollars": _dollars(mid + 100),
                "yes_bid_size_fp": _count(rng.randrange(0, 10**6)),
                "yes_ask_size_fp": _count(rng.randrange(0, 10**6)),
                "last_trade_size_fp": _count(rng.randrange(1, 10**5)),
                "volume_fp": _count(rng.randrange(10**6, 10**9)),
                "open_interest_fp": _count(rng.randrange(10**5, 10**8)),
                "dollar_volume": rng.randrange(1000, 10**6),
                "dollar_open_interest": rng.randrange(1000, 10**6),
                "ts": ts_ms // 1000,
                "ts_ms": ts_ms,
            }
            frame = {"type": kind, "sid": 1, "msg": msg}
        elif kind == "trade":
            trade_seq += 1
            taker = rng.choice(("yes", "no"))
            msg = {
                "trade_id": f"{rng.getrandbits(128):032x}",
                "market_ticker": ticker,
                "yes_price_dollars": _dollars(mid),
                "no_price_dollars": _dollars(10000 - mid),
                "count_fp": _count(rng.randrange(1, 100000)),
                "taker_side": taker,
                "taker_outcome_side": taker,
                "taker_book_side": "bid" if taker == "yes" else "ask",
                "is_block_trade": False,
                "ts": ts_ms // 1000,
                "ts_ms": ts_ms,
            }
            frame = {"type": kind, "sid": 2, "seq": trade_seq, "msg": msg}
        else:
            life_seq += 1
            event = rng.choice(("determined", "settled", "close_date_updated"))
            msg = {"market_ticker": ticker, "event_type": event}
            if event == "determined":
                msg.update(
                    result=rng.choice(("yes", "no")),
                    settlement_value="1.0000",
                    determination_ts=ts_ms // 1000,
                )
            elif event == "settled":
                msg["settled_ts"] = ts_ms // 1000
            else:
                msg["close_ts"] = ts_ms // 1000 + 3600
            frame = {"type": kind, "sid": 5, "seq": life_seq, "msg": msg}
        out.append(orjson.dumps(frame))
    return out


def trades_only(n: int, seed: int = 11) -> list[bytes]:
    """`n` trade frames (for the archive-to-Polars benchmark)."""
    frames: list[bytes] = []
    rng = random.Random(seed)
    while len(frames) < n:
        frames.extend(
            f
            for f in frame_mix(20_000, seed=rng.randrange(10**9))
            if f.startswith(b'{"type":"trade"')
        )
    return frames[:n]


def book_stream(n: int, seed: int = 5, markets: int = 200, levels: int = 20) -> list[bytes]:
    """A snapshot of each market's book (`levels` a side, at most 24: whole cents below a
    mid of 25c to 75c), then `n` deltas that keep every book consistent (a level is only
    ever reduced by at most its size), on one subscription with no gap: what an order-book
    consumer applies (the book benchmarks)."""
    rng = random.Random(seed)
    tickers = [f"KXBTCD-26JUL2017-T{118000 + i * 250 - 0.01:.2f}" for i in range(markets)]
    books: dict[str, dict[str, dict[int, int]]] = {}
    out: list[bytes] = []
    seq = 0

    def frame(kind: str, msg: dict[str, object]) -> bytes:
        nonlocal seq
        seq += 1
        return orjson.dumps({"type": kind, "sid": 4, "seq": seq, "msg": msg})

    for t in tickers:
        mid = rng.randrange(25, 76) * 100  # whole cents, 25c to 75c
        book = books[t] = {
            "yes": {mid - 100 * (i + 1): rng.randrange(100, 10**6) for i in range(levels)},
            "no": {10000 - mid - 100 * (i + 1): rng.randrange(100, 10**6) for i in range(levels)},
        }
        msg: dict[str, object] = {"market_ticker": t, "market_id": t}
        for side, held in book.items():
            msg[f"{side}_dollars_fp"] = [[_dollars(p), _count(s)] for p, s in sorted(held.items())]
        out.append(frame("orderbook_snapshot", msg))
    for _ in range(n):
        t = rng.choice(tickers)
        side = rng.choice(("yes", "no"))
        held = books[t][side]
        price = rng.choice(list(held))
        if rng.random() < 0.5 or held[price] == 0:
            delta = rng.randrange(1, 10**5)
        else:
            delta = -rng.randrange(1, held[price] + 1)
        held[price] += delta
        body = {"market_ticker": t, "market_id": t, "side": side, "price_dollars": _dollars(price)}
        sign = "-" if delta < 0 else ""
        out.append(frame("orderbook_delta", {**body, "delta_fp": sign + _count(abs(delta))}))
    return out

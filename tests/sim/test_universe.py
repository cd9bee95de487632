"""Ticker date and hour codes are in US Eastern time, across daylight-saving changes; the
markets that open on the hour get order flow."""

from __future__ import annotations

from datetime import UTC, datetime

from ssmd.sim.flow import FlowEngine
from ssmd.sim.universe import Universe


def _utc(s: str) -> float:
    return datetime.fromisoformat(s).replace(tzinfo=UTC).timestamp()


def _run(u: Universe, until: float) -> dict[str, int | None]:
    """Advance the schedule; every event ticker ever listed, with its strike date."""
    seen = {e.event_ticker: e.strike_date for e in u.events.values()}
    while (t := u.next_time()) is not None and t <= until:
        u.pop_due(t)
        seen.update({e.event_ticker: e.strike_date for e in u.events.values()})
    return seen


def test_hourly_ladder_code_is_eastern_time() -> None:
    u = Universe(1, _utc("2026-07-20T20:10:00"), markets=20)
    ladder = [m for m in u.markets.values() if m.event_ticker == "KXBTCD-26JUL2017"]
    assert ladder  # 17:00 EDT is 21:00 UTC
    assert {m.close_ts for m in ladder} == {int(_utc("2026-07-20T21:00:00"))}
    assert all(m.ticker.startswith("KXBTCD-26JUL2017-T") and "." in m.ticker for m in ladder)
    assert "KXBTC15M-26JUL201615" in u.events  # the window closing 20:15 UTC = 16:15 EDT


def test_spring_forward_skips_the_2am_hour() -> None:
    u = Universe(1, _utc("2026-03-08T06:10:00"), markets=20)  # 01:10 EST
    seen = _run(u, _utc("2026-03-08T08:00:00"))
    ladders = sorted(e for e in seen if e.startswith("KXBTCD-26MAR08"))
    assert "KXBTCD-26MAR0801" in ladders and "KXBTCD-26MAR0803" in ladders
    assert not [e for e in ladders if e.endswith("02")]  # 02:00 never happens that night
    assert seen["KXBTCD-26MAR0801"] == int(_utc("2026-03-08T06:00:00"))  # 01:00 EST
    assert seen["KXBTCD-26MAR0803"] == int(_utc("2026-03-08T07:00:00"))  # 03:00 EDT
    assert seen["KXBTC15M-26MAR080145"] == int(_utc("2026-03-08T06:45:00"))
    assert seen["KXBTC15M-26MAR080300"] == int(_utc("2026-03-08T07:00:00"))


def test_fall_back_repeated_hour_keeps_tickers_unique() -> None:
    u = Universe(1, _utc("2026-11-01T04:10:00"), markets=20)  # 00:10 EDT
    seen = _run(u, _utc("2026-11-01T06:40:00"))  # through 01:00-01:59 EDT and again EST
    assert seen["KXBTCD-26NOV0101"] == int(_utc("2026-11-01T05:00:00"))  # 01:00 EDT, not EST
    assert seen["KXBTCD-26NOV0102"] == int(_utc("2026-11-01T07:00:00"))  # 02:00 EST
    assert seen["KXBTC15M-26NOV010115"] == int(_utc("2026-11-01T05:15:00"))  # EDT one kept
    for m in u.markets.values():
        assert m.ticker.startswith(m.event_ticker + "-")
        assert u.events[m.event_ticker].series_ticker == m.series_ticker
    crypto = [m for m in u.markets.values() if m.series_ticker.startswith(("KXBTC", "KXETH"))]
    assert len({m.ticker for m in crypto}) == len(crypto)
    assert all(m.close_ts != int(_utc("2026-11-01T06:00:00")) for m in crypto)


def test_the_next_hours_ladder_trades_once_the_hour_turns() -> None:
    """The hour's ladder closes on the hour and the next one opens then: from that moment
    the order flow trades exactly the tradable markets, the new ladder among them."""
    u = Universe(1, _utc("2026-07-20T20:59:50"), markets=20)
    flow = FlowEngine(u, seed=1)
    turn = _utc("2026-07-20T21:00:00")
    while (t := u.next_time()) is not None and t <= turn + 5:
        tr = u.pop_due(t)
        if tr is not None:
            flow.transition(tr)
    traded = {msg.ticker for _ in range(5000) for msg in flow.step(turn + 5)}
    tradable = {m.ticker for m in u.markets.values() if m.tradable}
    new_ladder = {m.ticker for m in u.markets.values() if m.event_ticker == "KXBTCD-26JUL2018"}
    assert len(new_ladder) == u.ladder_size and new_ladder <= tradable
    assert traded == tradable

"""The gateway's web page in headless Chromium, against the real pipeline.

The simulator, the connector, nats-server and the gateway run as in production (in this
process's event loop, on the real clock); the page is opened in the system Chromium
(/usr/bin/chromium, the Debian package `chromium`, driven by playwright: no browser is
downloaded). The page must open on the most active open market, list open markets first
with a scrollbar in the page's dark theme, search, and for a selected market show the
book ladder, the trade tape with trades that arrived after it loaded, and the price
chart; screenshots under the test's tmp dir are checked for the same. A second test
checks the key prompt when the gateway requires API keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import struct
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from _support import require_binary
from _support.connfix import open_markets, running, settings_for
from _support.gwfix import running_gateway
from ssmd.config import Overrides, ResolvedEnvironment, load_environment
from ssmd.gateway.auth import KeyRing, new_key
from ssmd.gateway.settings import GatewaySettings
from ssmd.secmaster.service import sync_environment
from ssmd.sim import Simulator
from ssmd.sim.faults import Fault, FaultKind
from ssmd.testing import until
from ssmd.testing.connector import streaming, tickers_symbols
from ssmd.testing.nats import NatsServer, nats_server

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.services, pytest.mark.slow, pytest.mark.timeout(240)]

VIEWPORT = {"width": 1280, "height": 800}
WAIT_MS = 45_000  # longest wait for one condition in the page
MARKETS = 6  # markets the connector captures


# ---- browser --------------------------------------------------------------------------


def _missing(message: str) -> None:
    if os.environ.get("SSMD_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


def _chromium() -> str:
    path = require_binary("chromium", "apt-get install chromium")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        _missing("playwright is not installed (pip install -e '.[dev]')")
    return path


@contextlib.asynccontextmanager
async def browser_page() -> AsyncIterator[tuple[Any, list[str]]]:
    """A page in a fresh headless Chromium, and the list its script errors go to."""
    from playwright.async_api import async_playwright

    executable = _chromium()
    async with async_playwright() as pw:
        # --no-sandbox: CI runs as root in a container, where Chromium's sandbox cannot start.
        # Scrollbars are drawn, as for a user (playwright hides them by default).
        browser = await pw.chromium.launch(
            executable_path=executable,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
            ignore_default_args=["--hide-scrollbars"],
        )
        try:
            page = await browser.new_page(viewport=VIEWPORT, device_scale_factor=1)
            page.set_default_timeout(WAIT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
            yield page, errors
        finally:
            await browser.close()


# ---- pipeline -------------------------------------------------------------------------


def environment(nats: NatsServer, tmp: Path, sim: Simulator | None = None) -> ResolvedEnvironment:
    urls = {"ws_url": sim.ws_url, "rest_url": sim.rest_url} if sim else {}
    return load_environment(
        "kalshi-sim",
        ROOT / "exchanges",
        Overrides(nats_url=nats.url, data_dir=str(tmp), **urls),
        environ={},
    )


def gateway_settings(env: ResolvedEnvironment, **changes: Any) -> GatewaySettings:
    settings = GatewaySettings.from_environment(env, host="127.0.0.1")
    return dataclasses.replace(settings, **changes)


async def busiest_market(base: str, tickers: list[str]) -> str:
    """The captured market with the most trades on the gateway so far (at least 2)."""
    counts: dict[str, int] = {}
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        for _ in range(300):
            for t in tickers:
                # The ticker has dots: it goes into the path encoded, as the page sends it.
                r = await http.get(f"/v1/markets/{quote(t, safe='')}/trades", params={"limit": 100})
                counts[t] = len(r.json()["trades"]) if r.status_code == 200 else 0
            best = max(tickers, key=lambda t: counts[t])
            if counts[best] >= 2:
                return best
            await asyncio.sleep(0.2)
    raise AssertionError(f"no captured market traded on the gateway: {counts}")


# ---- screenshots ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Image:
    width: int
    height: int
    channels: int
    pixels: bytes  # rows top to bottom, `channels` bytes per pixel

    def region(self, box: dict[str, float]) -> list[tuple[int, int, int]]:
        """The RGB pixels inside a playwright bounding box (CSS px = image px here)."""
        x0, y0 = max(0, int(box["x"])), max(0, int(box["y"]))
        x1 = min(self.width, int(box["x"] + box["width"]))
        y1 = min(self.height, int(box["y"] + box["height"]))
        c, out = self.channels, []
        for y in range(y0, y1):
            row = self.pixels[(y * self.width + x0) * c : (y * self.width + x1) * c]
            out.extend(zip(row[0::c], row[1::c], row[2::c], strict=True))
        return out


def decode_png(data: bytes) -> Image:
    """An 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes) to pixels."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, []
    width = height = channels = 0
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype in (2, 6) and not interlace, (depth, ctype, interlace)
            channels = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat.append(body)
    raw = zlib.decompress(b"".join(idat))
    stride, c = width * channels, channels
    out = bytearray()
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:  # Sub
            for i in range(c, stride):
                line[i] = (line[i] + line[i - c]) & 0xFF
        elif kind == 2:  # Up
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev, strict=True))
        elif kind == 3:  # Average
            for i in range(stride):
                left = line[i - c] if i >= c else 0
                line[i] = (line[i] + (left + prev[i]) // 2) & 0xFF
        elif kind == 4:  # Paeth
            for i in range(stride):
                a = line[i - c] if i >= c else 0
                b, cc = prev[i], (prev[i - c] if i >= c else 0)
                p = a + b - cc
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - cc)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else cc)) & 0xFF
        out += line
        prev = line
    return Image(width, height, channels, bytes(out))


def green(p: tuple[int, int, int]) -> bool:  # bid prices
    return p[1] > p[0] + 60 and p[1] > p[2] + 30


def red(p: tuple[int, int, int]) -> bool:  # ask prices
    return p[0] > p[1] + 60 and p[0] > p[2] + 60


def blue(p: tuple[int, int, int]) -> bool:  # the chart's line
    return p[2] > p[0] + 80 and p[2] > p[1] + 40


def both_sides(image: Image, ladder: dict[str, float]) -> bool:
    """Bid (green) and ask (red) prices on the ladder: one level's price is ~70 pixels."""
    pixels = image.region(ladder)
    return sum(map(green, pixels)) > 20 and sum(map(red, pixels)) > 20


async def screenshot_with_book(page: Any, path: Path, ladder: dict[str, float]) -> Image:
    """A screenshot of the page whose ladder shows both sides. A side of a thin book can
    be empty for a moment (a taker took its last level), so this tries a few books."""
    for _ in range(20):
        await page.wait_for_function(BOTH_SIDES)
        await page.screenshot(path=str(path))
        image = decode_png(path.read_bytes())
        if both_sides(image, ladder):
            return image
    raise AssertionError("no screenshot showed both bid and ask levels on the ladder")


async def boxes(page: Any, *selectors: str) -> dict[str, dict[str, float]]:
    out = {}
    for s in selectors:
        box = await page.locator(s).bounding_box()
        assert box is not None, f"{s} is not visible"
        out[s] = box
    return out


# ---- page conditions (JavaScript evaluated in the page) -------------------------------

LIVE_TRADE_AFTER = """(origin) => [...document.querySelectorAll('#tape li[data-source="live"]')]
    .some((li) => Number(li.dataset.ts) >= origin)"""

BOTH_SIDES = """() => { const l = document.querySelector('#ladder');
    return l.dataset.valid === 'true' && Number(l.dataset.bids) > 0
        && Number(l.dataset.asks) > 0
        && document.querySelector('#book-state').textContent === 'live'; }"""

# The stale state can last a frame only (the connector resyncs at once): record it.
WATCH_STALE = """() => {
    window.staleBadge = null;
    const ladder = document.querySelector('#ladder');
    new MutationObserver(() => {
        if (ladder.dataset.valid === 'false') {
            window.staleBadge = document.querySelector('#book-state').textContent;
        }
    }).observe(ladder, { attributes: true, attributeFilter: ['data-valid'] });
}"""

# The market list's scrollbar: the strip right of its content (the list has no border).
SCROLLBAR = """() => { const l = document.querySelector('#markets');
    const r = l.getBoundingClientRect();
    return { x: r.left + l.clientWidth, y: r.top, width: l.offsetWidth - l.clientWidth,
             height: l.clientHeight }; }"""

SEARCH_DONE = """([query, ticker]) => {
    const items = [...document.querySelectorAll('#markets .market')];
    const q = query.toLowerCase();
    return items.some((b) => b.dataset.ticker === ticker)
        && items.every((b) => b.textContent.toLowerCase().includes(q));
}"""


# ---- tests ----------------------------------------------------------------------------


async def test_page_shows_live_book_tape_and_chart(tmp_path: Path) -> None:
    _chromium()
    async with (
        nats_server(tmp_path / "nats") as nats,
        Simulator(
            seed=11, rate=150, markets=80, rest_tokens_per_s=10_000, rest_bucket=10_000
        ) as sim,
    ):
        # The security master gives the list its titles and statuses, as under `ssmd up`.
        env = environment(nats, tmp_path, sim)
        await sync_environment(env, everything=True, journal=False, redis=False)
        # Dotted tickers (strike ladders): the page must encode them in URLs.
        tickers = open_markets(sim, MARKETS, dotted=True)
        assert len(tickers) == MARKETS
        conn_settings = settings_for(sim, nats, tmp_path, symbols=tickers_symbols(tickers))
        async with (
            running(conn_settings) as conn,
            running_gateway(gateway_settings(env)) as gw,
            browser_page() as (page, errors),
        ):
            await until(lambda: streaming(conn, MARKETS), 30, "the connector to subscribe")
            base = gw.http
            ticker = await busiest_market(base, tickers)

            await page.goto(base + "/")
            origin = await page.evaluate("performance.timeOrigin")
            # Without a market in the address the page opens the top of the list: the most
            # active open market, one the connector captures (no other market trades), with
            # its live book; the address stays as it was.
            picked = await page.wait_for_selector('#markets .market[aria-current="true"]')
            top_item = page.locator("#markets .market").first
            assert await picked.get_attribute("data-ticker") == await top_item.get_attribute(
                "data-ticker"
            )
            top = await page.text_content("#market-ticker")
            assert top in tickers
            assert await page.text_content("#market-status") == "open"
            await page.wait_for_function(BOTH_SIDES)
            assert "ticker=" not in page.url

            # The market list fills from /v1/markets a page at a time, open markets first.
            count = "() => document.querySelectorAll('#markets .market').length"
            await page.wait_for_function(f"({count})() >= 50")
            await page.click("#more")
            await page.wait_for_function(f"({count})() > 50")
            listed = await page.evaluate(count)
            assert await page.locator(".market .m-title").first.text_content()
            statuses = await page.eval_on_selector_all(
                "#markets .market",
                "(bs) => bs.map((b) => b.querySelector('.status').dataset.status)",
            )
            opened = statuses.count("open")
            assert 0 < opened < len(statuses) and statuses[:opened] == ["open"] * opened, statuses
            # The list scrolls, and its scrollbar is drawn in the page's dark colours (the
            # browser's default one is light grey).
            bar = await page.evaluate(SCROLLBAR)
            assert bar["width"] > 0, "the market list has no scrollbar"
            await page.screenshot(path=str(tmp_path / "gateway-page-list.png"))
            listing = decode_png((tmp_path / "gateway-page-list.png").read_bytes())
            pixels = listing.region(bar)
            assert pixels and max(sum(p) / 3 for p in pixels) < 110, "a light scrollbar"

            # Search narrows the list to the strikes of the market's event.
            query = ticker.rsplit("-", 1)[0]
            await page.fill("#search", query)
            await page.wait_for_function(SEARCH_DONE, arg=[query, ticker])
            assert 1 <= await page.evaluate(count) < listed
            await page.click(f'#markets .market[data-ticker="{ticker}"]')
            assert await page.text_content("#market-ticker") == ticker
            assert (
                await page.get_attribute(
                    f'#markets .market[data-ticker="{ticker}"]', "aria-current"
                )
                == "true"
            )

            # The socket is live, the ladder has levels of a valid book, trades arrive
            # after the page loaded, and the chart has drawn them.
            await page.wait_for_selector('#conn-state[data-state="open"]')
            await page.wait_for_function(
                "() => document.querySelector('#venue').textContent !== ''"
            )
            assert await page.text_content("#venue") == f"{env.feed.name} · {env.name}"
            await page.wait_for_function(BOTH_SIDES)
            await page.wait_for_function(LIVE_TRADE_AFTER, arg=origin)
            await page.wait_for_function(
                "() => Number(document.querySelector('#chart').dataset.points) > 1"
            )
            rows = await page.locator("#tape li").count()
            assert 0 < rows <= 100
            assert await page.locator("#ladder .lvl[data-side]").count() > 0

            # The screenshot shows the same: green bids and red asks on the ladder, text on
            # the tape, a blue line on the chart.
            regions = await boxes(page, "#ladder", "#tape", "#chart")
            shot = tmp_path / "gateway-page.png"
            first = await screenshot_with_book(page, shot, regions["#ladder"])
            live_before = int(await page.get_attribute("#tape", "data-live") or 0)
            assert (first.width, first.height) == (1280, 800)
            tape = first.region(regions["#tape"])
            assert len(set(tape)) > 10, "the tape region is blank"
            assert sum(map(blue, first.region(regions["#chart"]))) > 30, "no chart line drawn"

            # More trades arrive and the tape region of a later screenshot changes.
            await page.wait_for_function(
                "(n) => Number(document.querySelector('#tape').dataset.live) > n",
                arg=live_before,
            )
            later = tmp_path / "gateway-page-later.png"
            await page.screenshot(path=str(later))
            second = decode_png(later.read_bytes())
            assert second.region(regions["#tape"]) != tape, "the tape did not change"

            # The exchange drops the connector: the book shows as stale, then valid again
            # once the connector has reconnected and the gateway has a new snapshot.
            await page.evaluate(WATCH_STALE)
            sim.inject(Fault(FaultKind.DISCONNECT, at=0))  # `at` is ignored by inject
            await page.wait_for_function("() => window.staleBadge !== null")
            assert "STALE" in await page.evaluate("window.staleBadge")
            await page.wait_for_selector('#ladder[data-valid="true"]')
            assert errors == []


async def test_page_asks_for_a_key_on_401(tmp_path: Path) -> None:
    _chromium()
    key, line = new_key("page")
    async with nats_server(tmp_path / "nats") as nats:
        settings = gateway_settings(environment(nats, tmp_path), keys=KeyRing.parse(line))
        # No stream yet: the gateway serves at once; the page needs no data here.
        async with (
            running_gateway(settings, ready=False) as gw,
            browser_page() as (page, errors),
        ):
            base = gw.http
            # No key: REST answers 401 and the socket closes with 4401; the page says so
            # and points at the key box.
            await page.goto(base + "/")
            await page.wait_for_selector('#banner[data-kind="auth"]:not([hidden])')
            await page.wait_for_selector('#conn-state[data-state="auth"]')
            await page.wait_for_selector("#key-form.attention")
            assert "API key" in (await page.text_content("#banner") or "")
            await page.screenshot(path=str(tmp_path / "gateway-page-401.png"))

            # A wrong key is rejected too.
            await page.fill("#api-key", "ssmd_wrong")
            await page.press("#api-key", "Enter")
            await page.wait_for_function(
                "() => document.querySelector('#banner').textContent.includes('rejected')"
            )

            # The right key: the prompt goes, the socket opens, the key is kept.
            await page.fill("#api-key", key)
            await page.press("#api-key", "Enter")
            await page.wait_for_selector('#conn-state[data-state="open"]')
            await page.wait_for_selector("#banner", state="hidden")
            await page.wait_for_selector('#markets[data-count="0"]')
            assert await page.evaluate("localStorage.getItem('ssmd.apiKey')") == key

            # A key in the address is used, stored, and taken out of the address.
            await page.evaluate("localStorage.clear()")
            await page.goto(f"{base}/?api_key={quote(key, safe='')}")
            await page.wait_for_selector('#conn-state[data-state="open"]')
            assert "api_key" not in page.url
            assert await page.evaluate("localStorage.getItem('ssmd.apiKey')") == key
            assert errors == []


async def test_page_picks_a_venue_of_a_gateway_that_serves_several(tmp_path: Path) -> None:
    """Two venues on one gateway: the header names both, a picker lists the further
    venue's markets, and its market opens with its own book (not the own venue's market
    of the same ticker) under its `venue:ticker` symbol."""
    from _support.gwfix import CENT, E6, publisher, snapshot, trade
    from _support.gwfix import gateway_settings as stream_settings

    _chromium()
    ticker = "SAME-25-X"
    async with (
        nats_server(tmp_path / "nats") as nats,
        publisher(nats.url) as own,
        publisher(nats.url, "kraken") as further,
    ):
        await own.publish(snapshot(ticker, [(40 * CENT, 10 * E6)], [(55 * CENT, 5 * E6)]))
        await further.publish(
            snapshot(ticker, [(61 * CENT, 7 * E6), (60 * CENT, 1 * E6)], [(30 * CENT, 2 * E6)])
        )
        await further.publish(trade(ticker, 62 * CENT, 3 * E6, seq=1))
        settings = dataclasses.replace(
            stream_settings(nats.url), venues=(stream_settings(nats.url, "kraken"),)
        )
        async with running_gateway(settings) as gw, browser_page() as (page, errors):
            await page.goto(gw.http + "/")
            await page.wait_for_selector("#venue-pick:not([hidden])")
            assert await page.text_content("#venue") == "kalshi, kraken · gwtest"
            own_item = f'#markets .market[data-ticker="{ticker}"]'
            await page.wait_for_selector(own_item)
            await page.select_option("#venue-pick", "kraken")
            theirs = f'#markets .market[data-ticker="kraken:{ticker}"]'
            await page.wait_for_selector(theirs)
            assert await page.locator(own_item).count() == 0
            await page.click(theirs)
            # Kraken's book: two bid levels and one ask (Kalshi's market has one of each).
            await page.wait_for_selector('#ladder[data-valid="true"][data-bids="2"][data-asks="1"]')
            await page.wait_for_selector('#tape[data-count="1"]')
            assert "ticker=kraken%3ASAME-25-X" in page.url
            await page.screenshot(path=str(tmp_path / "gateway-page-venues.png"))
            # Opened at that address, the page lists Kraken's markets around it.
            await page.reload()
            await page.wait_for_selector(theirs + '[aria-current="true"]')
            assert await page.input_value("#venue-pick") == "kraken"
            await page.wait_for_selector('#ladder[data-valid="true"][data-bids="2"][data-asks="1"]')
            assert errors == []

// ssmd live page: market list, book ladder, trade tape and price chart for one market,
// fed by the gateway's REST API and its WebSocket /v1/stream. No libraries, no build step.
"use strict";

const PAGE_SIZE = 50;          // markets per /v1/markets request
const HISTORY = 50;            // trades fetched when a market is selected
const TAPE_ROWS = 100;         // rows the tape shows
const KEEP_TRADES = 2000;      // trades kept for the chart
const LADDER_LEVELS = 14;      // levels shown per side
const SEARCH_DELAY_MS = 250;   // wait for typing to pause before searching
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15000;
const STABLE_MS = 10000;       // a socket open this long resets the backoff
const KEY_STORE = "ssmd.apiKey";

const state = {
  key: "",
  markets: new Map(),        // symbol -> market object from /v1/markets
  venue: "",                 // whose markets the list shows ("": the gateway's own)
  query: "",
  cursor: null,
  listSeq: 0,                // the latest market-list request; older answers are dropped
  ticker: null,              // the selected market's symbol (venue:ticker off the own venue)
  pickFirst: false,          // select the list's top market when it comes (no ?ticker=)
  book: null,                // last orderbook message of the selected market
  trades: [],                // selected market's trades, newest first
  liveTrades: 0,             // trades of the selected market that came over the socket
  ws: null,
  wsOpenedAt: 0,
  attempt: 0,                // reconnect attempts since the last stable connection
  retryTimer: null,
  dirty: new Set(),          // panels to redraw on the next animation frame
};

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- formatting

// Prices are dollars (0.45); the page shows cents, which is how the contracts are quoted.
// Sub-cent ticks (0.999) keep their decimals: 99.9¢.
function fmtCents(price) {
  if (price == null || !Number.isFinite(price)) return "–";
  return `${Number((price * 100).toFixed(2))}¢`;
}

function fmtDollars(price) {
  return price == null ? "" : `$${price.toFixed(4)}`;
}

// Sizes can be fractional (contracts with 2 decimals).
function fmtSize(size) {
  if (size == null || !Number.isFinite(size)) return "–";
  return size.toLocaleString("en-US", { maximumFractionDigits: 2 });
}

// Local wall-clock time to the second (Kalshi stamps trades to the second).
function fmtTime(ts) {
  return new Date(ts).toLocaleTimeString("en-GB", { hour12: false });
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  // textContent only: titles and tickers come from the exchange and are never parsed as HTML.
  if (text != null) node.textContent = text;
  return node;
}

// ---------------------------------------------------------------- banner and connection state

function showBanner(text, kind = "warn") {
  const b = $("banner");
  b.textContent = text;
  b.dataset.kind = kind;
  b.hidden = false;
}

function hideBanner(kind) {
  const b = $("banner");
  if (!kind || b.dataset.kind === kind) b.hidden = true;
}

function setConn(stateName, text) {
  const pill = $("conn-state");
  pill.dataset.state = stateName;
  pill.textContent = text;
}

// ---------------------------------------------------------------- API key

// A key in the URL wins over the stored one; it is then stored and taken out of the
// address bar so that it does not linger in history or screenshots.
function loadKey() {
  const url = new URL(location.href);
  const fromUrl = url.searchParams.get("api_key");
  if (fromUrl) {
    saveKey(fromUrl);
    url.searchParams.delete("api_key");
    history.replaceState(null, "", url.pathname + url.search + url.hash);
  } else {
    try { state.key = localStorage.getItem(KEY_STORE) || ""; } catch { state.key = ""; }
  }
  $("api-key").value = state.key;
}

function saveKey(key) {
  state.key = key.trim();
  try {
    if (state.key) localStorage.setItem(KEY_STORE, state.key);
    else localStorage.removeItem(KEY_STORE);
  } catch { /* storage may be disabled; the key still works for this page */ }
}

function askForKey(message) {
  showBanner(message, "auth");
  $("key-form").classList.add("attention");
  $("api-key").focus();
}

function onKeySubmit(event) {
  event.preventDefault();
  saveKey($("api-key").value);
  $("key-form").classList.remove("attention");
  hideBanner("auth");
  loadMarkets(true);
  if (state.ticker) loadHistory(state.ticker);
  reconnectNow();
}

// ---------------------------------------------------------------- REST

class AuthError extends Error {}

async function getJSON(path) {
  const headers = state.key ? { "X-API-Key": state.key } : {};
  const resp = await fetch(path, { headers });
  if (resp.status === 401) {
    askForKey(state.key
      ? "The gateway rejected this API key: enter a valid one above."
      : "This gateway needs an API key: enter it above.");
    throw new AuthError("401");
  }
  if (!resp.ok) throw new Error(`${path}: HTTP ${resp.status}`);
  return resp.json();
}

// ---------------------------------------------------------------- market list

// Most active first: open markets that traded lately, then the other open ones, then the
// rest (the gateway's sort=activity), so the list starts with markets that have a book.
async function loadMarkets(reset) {
  const seq = ++state.listSeq;
  const params = new URLSearchParams({ q: state.query, limit: String(PAGE_SIZE), sort: "activity" });
  if (!reset && state.cursor) params.set("cursor", state.cursor);
  if (state.venue) params.set("venue", state.venue);
  let page;
  try {
    page = await getJSON(`/v1/markets?${params}`);
  } catch (err) {
    if (seq !== state.listSeq) return;
    if (err instanceof AuthError) {
      $("markets").replaceChildren(el("li", "empty", "An API key is needed to list markets."));
    } else {
      showBanner(`Could not load markets: ${err.message}`);
    }
    return;
  }
  if (seq !== state.listSeq) return; // the user typed again meanwhile
  if (reset) {
    state.markets.clear();
    $("markets").replaceChildren();
  }
  hideBanner("warn");
  for (const m of page.markets || []) {
    // The ranking moves between pages: a market already listed is not listed twice.
    const id = symbolOf(m);
    if (state.markets.has(id)) continue;
    state.markets.set(id, m);
    $("markets").append(marketItem(m));
    // A market selected from the address before the list came in gets its title now.
    if (id === state.ticker) showMarket(m);
  }
  // Without a market in the address, open the most active one (the top of the list) so
  // the page starts with a live book, unless nothing is open.
  if (state.pickFirst && reset) {
    state.pickFirst = false;
    const top = (page.markets || [])[0];
    if (top && top.status === "open") selectMarket(symbolOf(top), false);
  }
  state.cursor = page.next_cursor || null;
  $("more").hidden = !state.cursor;
  const count = state.markets.size;
  $("markets").dataset.count = String(count);
  if (count === 0) $("markets").append(el("li", "empty", "No markets match."));
}

// What the stream and the market paths take: the ticker, with `venue:` before it for a
// further venue of a gateway that serves several.
function symbolOf(m) {
  return m.symbol || m.ticker;
}

function marketItem(m) {
  const id = symbolOf(m);
  const li = el("li");
  const btn = el("button", "market");
  btn.type = "button";
  btn.dataset.ticker = id;
  btn.setAttribute("aria-current", String(id === state.ticker));
  btn.append(el("span", "m-title", m.title || m.ticker));
  const sub = subtitle(m);
  if (sub) btn.append(el("span", "m-sub", sub));
  const meta = el("span", "m-meta");
  // A last price of 0 means "never traded": no contract trades at 0.
  const last = m.last_trade ? m.last_trade.price : m.last_price;
  // Without a title (no security master) the ticker is the title line already.
  meta.append(el("span", "m-ticker", m.title ? m.ticker : ""),
    el("span", "m-last", last ? fmtCents(last) : ""), statusBadge(m.status));
  btn.append(meta);
  btn.title = id;
  btn.addEventListener("click", () => selectMarket(id));
  li.append(btn);
  return li;
}

function statusBadge(status) {
  const s = el("span", "status");
  setStatus(s, status);
  return s;
}

// A market's status may be unknown until the stream says (no security master).
function setStatus(node, status) {
  node.hidden = !status;
  node.textContent = status || "";
  node.dataset.status = status || "";
}

let searchTimer = null;
function onSearchInput() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => {
    state.query = $("search").value.trim();
    loadMarkets(true);
  }, SEARCH_DELAY_MS);
}

// ---------------------------------------------------------------- selecting a market

// `remember`: keep the market in the address (a choice of the user's, not the default).
function selectMarket(ticker, remember = true) {
  if (ticker === state.ticker) return;
  state.pickFirst = false;
  const previous = state.ticker;
  state.ticker = ticker;
  state.book = null;
  state.trades = [];
  state.liveTrades = 0;
  for (const b of document.querySelectorAll(".market")) {
    b.setAttribute("aria-current", String(b.dataset.ticker === ticker));
  }
  showMarket(state.markets.get(ticker) || { ticker });
  $("book-state").textContent = "waiting for book…";
  $("book-state").dataset.valid = "none";
  // Keep the selection in the address so a reload or a shared link opens the same market.
  if (remember) {
    const url = new URL(location.href);
    url.searchParams.set("ticker", ticker);
    history.replaceState(null, "", url.pathname + url.search);
  }
  if (previous) send({ action: "unsubscribe", symbols: [previous] });
  send({ action: "subscribe", symbols: [ticker] });
  loadHistory(ticker);
  markDirty("book", "tape", "chart");
}

// The markets of one event (the strikes of one hour) share a title: the subtitle tells them apart.
function subtitle(m) {
  return m.subtitle || m.yes_sub_title || "";
}

function marketName(m) {
  const title = m.title || m.ticker;
  return subtitle(m) ? `${title} · ${subtitle(m)}` : title;
}

function showMarket(m) {
  $("market-title").textContent = marketName(m);
  $("market-title").title = marketName(m);
  $("market-ticker").textContent = m.title ? symbolOf(m) : "";
  setStatus($("market-status"), m.status);
}

// Recent trades from REST. Also called after a reconnect, to fill in what the socket missed;
// mergeHistory drops the ones already on the tape.
async function loadHistory(ticker) {
  let body;
  try {
    body = await getJSON(`/v1/markets/${encodeURIComponent(ticker)}/trades?limit=${HISTORY}`);
  } catch (err) {
    if (!(err instanceof AuthError)) showBanner(`Could not load trades: ${err.message}`);
    return;
  }
  if (ticker !== state.ticker) return; // another market was selected meanwhile
  mergeHistory(body.trades || []);
}

// ---------------------------------------------------------------- trades

// Trades carry no id, and Kalshi stamps them to the second: two distinct trades can look
// alike. So a live trade is always kept, and history is merged as a multiset: a history
// trade is dropped only when the tape holds a look-alike not matched by another one yet.
function tradeKey(t) {
  return `${t.ts}|${t.price}|${t.size}|${t.side}`;
}

function mergeHistory(list) {
  const held = new Map();
  for (const t of state.trades) held.set(tradeKey(t), (held.get(tradeKey(t)) || 0) + 1);
  const added = [];
  for (const t of list) {
    const key = tradeKey(t);
    const n = held.get(key) || 0;
    if (n > 0) held.set(key, n - 1);
    else added.push({ ...t, source: "history", fresh: false });
  }
  if (added.length) addTrades(added);
}

function onTrade(msg) {
  state.liveTrades += 1;
  addTrades([{ ...msg, source: "live", fresh: true }]);
}

function addTrades(list) {
  state.trades.push(...list);
  // Newest first; a stable sort keeps arrival order among trades of the same second.
  state.trades.sort((a, b) => b.ts - a.ts);
  state.trades.length = Math.min(state.trades.length, KEEP_TRADES);
  markDirty("tape", "chart", "stats");
}

function renderTape() {
  const rows = state.trades.slice(0, TAPE_ROWS).map((t) => {
    const li = el("li", t.fresh ? "fresh" : "");
    t.fresh = false;
    li.dataset.side = t.side || "";
    li.dataset.source = t.source;
    li.dataset.ts = String(t.ts);
    li.title = fmtDollars(t.price);
    li.append(el("span", "time", fmtTime(t.ts)), el("span", "side", t.side || ""),
      el("span", "px", fmtCents(t.price)), el("span", "sz", fmtSize(t.size)));
    return li;
  });
  const tape = $("tape");
  tape.replaceChildren(...rows);
  tape.dataset.count = String(rows.length);
  tape.dataset.live = String(state.liveTrades);
}

// ---------------------------------------------------------------- book

function onBook(msg) {
  state.book = msg;
  markDirty("book", "stats");
}

function ladderRow(side, [price, size], maxSize) {
  const row = el("div", "lvl");
  row.dataset.side = side;
  row.dataset.price = String(price);
  row.title = fmtDollars(price);
  row.style.setProperty("--depth", maxSize > 0 ? (size / maxSize).toFixed(3) : "0");
  row.append(el("span", "px", fmtCents(price)), el("span", "sz", fmtSize(size)));
  return row;
}

function renderBook() {
  const book = state.book;
  const bids = book ? (book.bids || []).slice(0, LADDER_LEVELS) : [];
  const asks = book ? (book.asks || []).slice(0, LADDER_LEVELS) : [];
  const maxSize = Math.max(0, ...bids.map((l) => l[1]), ...asks.map((l) => l[1]));
  // Asks arrive best first; they are drawn worst first so the best ask sits on the spread.
  $("asks").replaceChildren(...asks.slice().reverse().map((l) => ladderRow("ask", l, maxSize)));
  $("bids").replaceChildren(...bids.map((l) => ladderRow("bid", l, maxSize)));
  const spread = bids.length && asks.length ? asks[0][0] - bids[0][0] : null;
  $("spread").textContent = spread == null ? "–" : `spread ${fmtCents(spread)}`;

  const ladder = $("ladder");
  const valid = book ? String(book.valid !== false) : "none";
  ladder.dataset.valid = valid;
  ladder.dataset.bids = String(bids.length);
  ladder.dataset.asks = String(asks.length);
  const badge = $("book-state");
  badge.dataset.valid = valid;
  if (book) badge.textContent = book.valid === false ? "STALE · awaiting resync" : "live";
}

function renderStats() {
  const book = state.book;
  const bid = book && book.bids && book.bids.length ? book.bids[0][0] : null;
  const ask = book && book.asks && book.asks.length ? book.asks[0][0] : null;
  $("stat-bid").textContent = fmtCents(bid);
  $("stat-ask").textContent = fmtCents(ask);
  $("stat-spread").textContent = bid != null && ask != null ? fmtCents(ask - bid) : "–";
  $("stat-last").textContent = state.trades.length ? fmtCents(state.trades[0].price) : "–";
}

// ---------------------------------------------------------------- chart

// Nice tick step (1, 2 or 5 times a power of ten) for about `count` ticks over `span`.
function tickStep(span, count) {
  const raw = span / count;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const unit = raw / pow;
  return (unit >= 5 ? 5 : unit >= 2 ? 2 : 1) * pow;
}

function renderChart() {
  const canvas = $("chart");
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth;
  const h = canvas.clientHeight;
  if (!w || !h) return;
  // The backing store follows the element's size so lines stay sharp after a resize.
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const css = getComputedStyle(document.documentElement);
  const color = (name) => css.getPropertyValue(name).trim();
  ctx.font = `11px ${color("--mono")}`;

  const pts = state.trades.slice().reverse(); // oldest first
  canvas.dataset.points = String(pts.length);
  if (!pts.length) {
    ctx.fillStyle = color("--muted");
    ctx.textAlign = "center";
    ctx.fillText(state.ticker ? "No trades yet" : "Select a market", w / 2, h / 2);
    return;
  }

  const pad = { left: 10, right: 58, top: 12, bottom: 24 };
  const plotW = w - pad.left - pad.right;
  const plotH = h - pad.top - pad.bottom;
  const t0 = pts[0].ts;
  const t1 = Math.max(pts[pts.length - 1].ts, t0 + 1000);
  let lo = Math.min(...pts.map((p) => p.price));
  let hi = Math.max(...pts.map((p) => p.price));
  // At least one cent of range, so a flat series draws as a line in the middle.
  if (hi - lo < 0.01) { const mid = (hi + lo) / 2; lo = mid - 0.005; hi = mid + 0.005; }
  const margin = (hi - lo) * 0.08;
  lo = Math.max(0, lo - margin);
  hi = Math.min(1, hi + margin);
  const x = (ts) => pad.left + ((ts - t0) / (t1 - t0)) * plotW;
  const y = (p) => pad.top + (1 - (p - lo) / (hi - lo)) * plotH;

  // Grid and price labels (right axis, in cents).
  ctx.strokeStyle = color("--line");
  ctx.fillStyle = color("--muted");
  ctx.lineWidth = 1;
  ctx.textAlign = "left";
  ctx.textBaseline = "middle";
  const step = tickStep(hi - lo, 4);
  for (let p = Math.ceil(lo / step) * step; p <= hi + 1e-9; p += step) {
    const yy = Math.round(y(p)) + 0.5;
    ctx.beginPath(); ctx.moveTo(pad.left, yy); ctx.lineTo(pad.left + plotW, yy); ctx.stroke();
    ctx.fillText(fmtCents(p), pad.left + plotW + 6, yy);
  }
  // Time labels at both ends and the middle.
  ctx.textBaseline = "top";
  [[t0, "left"], [(t0 + t1) / 2, "center"], [t1, "right"]].forEach(([ts, align]) => {
    ctx.textAlign = align;
    ctx.fillText(fmtTime(ts), x(ts), h - pad.bottom + 6);
  });

  // The price holds until the next trade: a step line.
  ctx.strokeStyle = color("--accent");
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  ctx.moveTo(x(pts[0].ts), y(pts[0].price));
  for (let i = 1; i < pts.length; i++) {
    ctx.lineTo(x(pts[i].ts), y(pts[i - 1].price));
    ctx.lineTo(x(pts[i].ts), y(pts[i].price));
  }
  ctx.stroke();
  const last = pts[pts.length - 1];
  ctx.fillStyle = color("--accent");
  ctx.beginPath(); ctx.arc(x(last.ts), y(last.price), 3, 0, 2 * Math.PI); ctx.fill();
}

// ---------------------------------------------------------------- drawing

// Books and trades can arrive hundreds of times a second; panels are redrawn at most
// once per animation frame, whatever the message rate.
let frameQueued = false;
function markDirty(...panels) {
  for (const p of panels) state.dirty.add(p);
  if (frameQueued) return;
  frameQueued = true;
  requestAnimationFrame(() => {
    frameQueued = false;
    const d = state.dirty;
    if (d.has("book")) renderBook();
    if (d.has("tape")) renderTape();
    if (d.has("chart")) renderChart();
    if (d.has("stats") || d.has("book") || d.has("tape")) renderStats();
    d.clear();
  });
}

// ---------------------------------------------------------------- WebSocket

function streamUrl() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const query = state.key ? `?api_key=${encodeURIComponent(state.key)}` : "";
  return `${proto}//${location.host}/v1/stream${query}`;
}

function send(msg) {
  if (state.ws && state.ws.readyState === WebSocket.OPEN) state.ws.send(JSON.stringify(msg));
  // Otherwise nothing to do: onOpen subscribes to the selected market.
}

function connect() {
  clearTimeout(state.retryTimer);
  setConn(state.attempt ? "reconnecting" : "connecting", "Connecting…");
  const ws = new WebSocket(streamUrl());
  state.ws = ws;
  ws.onopen = () => {
    state.wsOpenedAt = Date.now();
    setConn("open", "Live");
    hideBanner("warn");
    if (state.ticker) {
      send({ action: "subscribe", symbols: [state.ticker] });
      // Trades that happened while the socket was down come from REST.
      if (state.attempt) loadHistory(state.ticker);
    }
  };
  ws.onmessage = (event) => onMessage(event.data);
  ws.onclose = (event) => { if (state.ws === ws) onClose(event); };
}

function onClose(event) {
  state.ws = null;
  // Reset the backoff only after a connection that lasted: a server that accepts and
  // then drops us at once must not be hammered.
  if (state.wsOpenedAt && Date.now() - state.wsOpenedAt > STABLE_MS) state.attempt = 0;
  state.wsOpenedAt = 0;
  if (state.ticker && state.book) {
    // The book no longer updates: show it as stale until the next snapshot.
    state.book = { ...state.book, valid: false };
    markDirty("book");
  }
  if (event.code === 4401) {
    setConn("auth", state.key ? "API key rejected" : "API key needed");
    askForKey(state.key
      ? "The stream rejected this API key (4401): enter a valid one above."
      : "This gateway needs an API key (4401): enter it above.");
    return; // retrying with the same key is pointless; a new key reconnects
  }
  const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** state.attempt) * (0.5 + Math.random() / 2);
  state.attempt += 1;
  const secs = Math.max(1, Math.round(delay / 1000));
  if (event.code === 4408) {
    setConn("reconnecting", `Too slow · retry in ${secs}s`);
    showBanner("The gateway dropped this page for reading too slowly (4408); reconnecting.");
  } else if (event.code === 4429) {
    setConn("reconnecting", `Refused · retry in ${secs}s`);
    showBanner("This API key has all its connections open already (4429); retrying.");
  } else {
    setConn("reconnecting", `Disconnected (${event.code}) · retry in ${secs}s`);
  }
  state.retryTimer = setTimeout(connect, delay);
}

function reconnectNow() {
  const old = state.ws;
  state.ws = null;
  if (old) old.close(1000);
  state.attempt = 0;
  connect();
}

function onMessage(data) {
  let msg;
  try { msg = JSON.parse(data); } catch { return; }
  switch (msg.type) {
    case "trade":
    case "orderbook":
    case "status":
      // Messages for a market just left can still be in flight after the unsubscribe.
      if (msg.ticker !== state.ticker) return;
      if (msg.type === "trade") onTrade(msg);
      else if (msg.type === "orderbook") onBook(msg);
      else onStatus(msg);
      break;
    case "subscribed":
      if (state.ticker && (msg.symbols || []).includes(state.ticker) && !state.book) {
        $("book-state").textContent = "subscribed · waiting for book…";
      }
      break;
    case "error":
      showBanner(`Gateway: ${msg.message || msg.code}`);
      break;
    default:
      break; // unsubscribed, and types this page does not know
  }
}

function onStatus(msg) {
  setStatus($("market-status"), msg.status);
  const m = state.markets.get(msg.ticker);
  if (m) m.status = msg.status;
  const badge = document.querySelector(`.market[data-ticker="${CSS.escape(msg.ticker)}"] .status`);
  if (badge) setStatus(badge, msg.status);
}

// ---------------------------------------------------------------- start

// The venues and environment this gateway serves, from its health (open without a key).
// With further venues, a picker chooses whose markets the list shows.
async function showVenue() {
  let body;
  try {
    body = await (await fetch("/v1/health")).json();
  } catch (_) {
    return; // No answer: the header stays without it; the stream's own state says the rest.
  }
  const further = Object.keys(body.venues || {});
  if (body.feed) $("venue").textContent = [body.feed, ...further].join(", ") + ` · ${body.env}`;
  if (!further.length) return;
  const pick = $("venue-pick");
  pick.replaceChildren(...[body.feed, ...further].map((v, i) => {
    const option = el("option", "", v);
    option.value = i ? v : "";
    return option;
  }));
  pick.hidden = false;
  // A further venue's market in the address: list that venue's markets beside it.
  const head = (state.ticker || "").split(":", 1)[0];
  if (state.ticker && state.ticker.includes(":") && further.includes(head)) {
    pick.value = head;
    onVenuePick();
  }
}

function onVenuePick() {
  state.venue = $("venue-pick").value;
  state.cursor = null;
  loadMarkets(true);
}

function start() {
  showVenue();
  loadKey();
  $("key-form").addEventListener("submit", onKeySubmit);
  $("search").addEventListener("input", onSearchInput);
  $("venue-pick").addEventListener("change", onVenuePick);
  $("more").addEventListener("click", () => loadMarkets(false));
  new ResizeObserver(() => markDirty("chart")).observe($("chart"));
  const initial = new URL(location.href).searchParams.get("ticker");
  state.pickFirst = !initial;
  loadMarkets(true);
  connect();
  if (initial) selectMarket(initial);
  markDirty("book", "tape", "chart", "stats");
}

start();

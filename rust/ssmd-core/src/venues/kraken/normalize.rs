//! Kraken spot WebSocket v2 frames -> normalized records, with every book kept
//! exact and its checksum verified on every message.
//!
//! Routing is on `channel` (data) or `method` (replies) only; extra or missing
//! optional fields are tolerated (`heartbeat` has no `type`). Numbers are read
//! from their JSON text, never through floats, into integers at the
//! instrument's precision: learned from the `instrument` channel, set by the
//! caller from the REST listing ([`Kraken::set_precision`]), or else taken
//! from the digits of the book snapshot (v2 prints numbers at full precision,
//! trailing zeros included).
//!
//! Loss: the book channel has no sequence numbers; a message lost, doubled or
//! corrupted shows as a checksum mismatch on its symbol's next message. The
//! book then becomes invalid, a [`Event::Gap`] names it, and updates are not
//! applied until a new snapshot makes it exact again ([`Event::Resynced`]).

use rustc_hash::FxHashMap;
use std::borrow::Cow;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::book::ExactBook;
use crate::codec::Encoder;
use crate::fixed;
use crate::model::{
    Body, BookView, Instrument, Level, Record, SpotBook, SpotLevel, SpotTicker, SpotTrade,
    VenueStatus,
};
use crate::normalize::Spans;
use crate::scalar::Key;
use crate::time::rfc3339_to_ns;

/// Stream numbers (the records' `sid`): one per channel, as Kraken has no ids.
pub const STREAM_STATUS: u32 = 0;
pub const STREAM_BOOK: u32 = 1;
pub const STREAM_TRADE: u32 = 2;
pub const STREAM_TICKER: u32 = 3;
pub const STREAM_INSTRUMENT: u32 = 4;

/// The book depth when the subscription's ack has not said otherwise.
pub const DEFAULT_DEPTH: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Book,
    Trade,
    Ticker,
    Instrument,
    Status,
    Heartbeat,
    Pong,
    Subscribe,
    Unsubscribe,
    Error,
    Unknown,
    Malformed,
}

impl FrameKind {
    pub const ALL: [FrameKind; 12] = [
        FrameKind::Book,
        FrameKind::Trade,
        FrameKind::Ticker,
        FrameKind::Instrument,
        FrameKind::Status,
        FrameKind::Heartbeat,
        FrameKind::Pong,
        FrameKind::Subscribe,
        FrameKind::Unsubscribe,
        FrameKind::Error,
        FrameKind::Unknown,
        FrameKind::Malformed,
    ];

    /// The message type in raw subjects and archive file names.
    pub fn name(self) -> &'static str {
        match self {
            FrameKind::Book => "book",
            FrameKind::Trade => "trade",
            FrameKind::Ticker => "ticker",
            FrameKind::Instrument => "instrument",
            FrameKind::Status => "status",
            FrameKind::Heartbeat => "heartbeat",
            FrameKind::Pong => "pong",
            FrameKind::Subscribe => "subscribe",
            FrameKind::Unsubscribe => "unsubscribe",
            FrameKind::Error => "error",
            FrameKind::Unknown => "unknown",
            FrameKind::Malformed => "malformed",
        }
    }

    pub fn code(self) -> u8 {
        FrameKind::ALL.iter().position(|k| *k == self).unwrap_or(0) as u8
    }
}

/// What the books need the caller to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// These books are invalid until a new snapshot: resubscribe them.
    Gap {
        conn_id: u64,
        stream: u32,
        tickers: Vec<String>,
        reason: String,
    },
    /// A snapshot made an invalid book exact again.
    Resynced { ticker: String },
}

/// What became of one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameOutcome {
    pub kind: FrameKind,
    /// (problem, detail): "malformed", "unknown_type", "field", "no_record",
    /// "venue_error", "checksum".
    pub problems: Vec<(&'static str, String)>,
}

#[derive(Debug, Default)]
pub struct Batch {
    pub conn_id: u64,
    pub data: Vec<u8>,
    pub records: Spans,
    pub frames: Vec<FrameOutcome>,
    pub events: Vec<Event>,
}

struct BookState {
    book: ExactBook,
    conn_id: u64,
    valid: bool,
    /// (price, qty) decimals of the book's integers, fixed by its snapshot.
    decimals: (u8, u8),
    /// Exchange time of the last message applied, ns (0: none had one).
    exchange_ts: u64,
    /// Changed since the last checkpoint.
    dirty: bool,
}

/// The normalizer's state for one connector process: precisions, depths and
/// books by symbol.
#[derive(Default)]
pub struct Kraken {
    // Keyed by pair, looked up several times per frame: FxHash, not SipHash (the keys
    // are the venue's pairs subscribed to, not an attacker's choice).
    precision: FxHashMap<String, (u8, u8)>,
    depth: FxHashMap<String, usize>,
    books: FxHashMap<String, BookState>,
    encoder: Encoder,
    /// Book messages whose checksum did not match, since creation.
    pub checksum_mismatches: u64,
}

// ---- wire ------------------------------------------------------------------------

#[derive(Default, Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    channel: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "type")]
    typ: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    success: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    #[serde(borrow, default)]
    symbol: Option<Cow<'a, str>>,
}

/// One pass over a frame: the envelope, and a book channel's `data` read as book items
/// at once when `channel` came before it (as Kraken writes it), instead of kept raw and
/// read a second time. Anything this pass does not take (a duplicate key, a field of
/// the wrong type, badly shaped book data) makes it fail, and the frame is then read
/// as before (`Envelope`, data raw), so what is reported does not depend on the pass.
fn read_frame_once(bytes: &[u8]) -> Result<(Envelope<'_>, Option<Vec<BookData<'_>>>), ()> {
    // Checked as UTF-8 once, rather than string by string as a byte slice would be.
    let text = std::str::from_utf8(bytes).map_err(|_| ())?;
    let mut de = serde_json::Deserializer::from_str(text);
    let mut out = (Envelope::default(), None);
    OnePass(&mut out).deserialize(&mut de).map_err(|_| ())?;
    de.end().map_err(|_| ())?;
    Ok(out)
}

struct OnePass<'m, 'a>(&'m mut (Envelope<'a>, Option<Vec<BookData<'a>>>));

impl<'de: 'a, 'a> DeserializeSeed<'de> for OnePass<'_, 'a> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for OnePass<'_, 'a> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a frame object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (env, books) = self.0;
        let text = |v: Option<Key<'de>>| v.map(|k| k.0);
        let mut seen = [false; 8];
        let mut once = |i: usize, name: &'static str| {
            if std::mem::replace(&mut seen[i], true) {
                Err(de::Error::duplicate_field(name))
            } else {
                Ok(())
            }
        };
        while let Some(key) = map.next_key::<Key<'de>>()? {
            match key.0.as_ref() {
                "channel" => {
                    once(0, "channel")?;
                    env.channel = text(map.next_value()?);
                }
                "type" => {
                    once(1, "type")?;
                    env.typ = text(map.next_value()?);
                }
                "data" if env.channel.as_deref() == Some("book") => {
                    once(2, "data")?;
                    *books = Some(map.next_value()?);
                }
                "data" => {
                    once(2, "data")?;
                    env.data = map.next_value()?;
                }
                "method" => {
                    once(3, "method")?;
                    env.method = text(map.next_value()?);
                }
                "success" => {
                    once(4, "success")?;
                    env.success = map.next_value()?;
                }
                "error" => {
                    once(5, "error")?;
                    env.error = text(map.next_value()?);
                }
                "result" => {
                    once(6, "result")?;
                    env.result = map.next_value()?;
                }
                "symbol" => {
                    once(7, "symbol")?;
                    env.symbol = text(map.next_value()?);
                }
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct RawLevel<'a> {
    #[serde(borrow)]
    price: &'a RawValue,
    #[serde(borrow)]
    qty: &'a RawValue,
}

#[derive(Deserialize)]
struct BookData<'a> {
    #[serde(borrow, default)]
    symbol: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    bids: Option<Vec<RawLevel<'a>>>,
    #[serde(borrow, default)]
    asks: Option<Vec<RawLevel<'a>>>,
    #[serde(borrow, default)]
    checksum: Option<&'a RawValue>,
    #[serde(borrow, default)]
    timestamp: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct TradeData<'a> {
    #[serde(borrow, default)]
    symbol: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    side: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    price: Option<&'a RawValue>,
    #[serde(borrow, default)]
    qty: Option<&'a RawValue>,
    #[serde(borrow, default)]
    ord_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    trade_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    timestamp: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct TickerData<'a> {
    #[serde(borrow, default)]
    symbol: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    bid: Option<&'a RawValue>,
    #[serde(borrow, default)]
    bid_qty: Option<&'a RawValue>,
    #[serde(borrow, default)]
    ask: Option<&'a RawValue>,
    #[serde(borrow, default)]
    ask_qty: Option<&'a RawValue>,
    #[serde(borrow, default)]
    last: Option<&'a RawValue>,
    #[serde(borrow, default)]
    volume: Option<&'a RawValue>,
    #[serde(borrow, default)]
    vwap: Option<&'a RawValue>,
    #[serde(borrow, default)]
    low: Option<&'a RawValue>,
    #[serde(borrow, default)]
    high: Option<&'a RawValue>,
    #[serde(borrow, default)]
    change: Option<&'a RawValue>,
    #[serde(borrow, default)]
    change_pct: Option<&'a RawValue>,
    #[serde(borrow, default)]
    timestamp: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct PairData<'a> {
    #[serde(borrow, default)]
    symbol: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    base: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    quote: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    price_precision: Option<&'a RawValue>,
    #[serde(borrow, default)]
    qty_precision: Option<&'a RawValue>,
    #[serde(borrow, default)]
    price_increment: Option<&'a RawValue>,
    #[serde(borrow, default)]
    qty_increment: Option<&'a RawValue>,
    #[serde(borrow, default)]
    qty_min: Option<&'a RawValue>,
    #[serde(borrow, default)]
    cost_min: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct InstrumentData<'a> {
    #[serde(borrow, default)]
    pairs: Option<Vec<PairData<'a>>>,
}

#[derive(Deserialize)]
struct StatusData<'a> {
    #[serde(borrow, default)]
    system: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    api_version: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    connection_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    version: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct AckResult<'a> {
    #[serde(borrow, default)]
    channel: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    symbol: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    depth: Option<&'a RawValue>,
}

// ---- numbers ---------------------------------------------------------------------

/// The text of a JSON number (or of a number in a string, as v1 sent them).
fn number_text(raw: &RawValue) -> &str {
    let t = raw.get().trim();
    t.strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(t)
}

/// Digits after the decimal point in a plain decimal's text.
fn decimals_of(text: &str) -> u8 {
    text.split_once('.')
        .map_or(0, |(_, f)| u8::try_from(f.len()).unwrap_or(u8::MAX))
}

/// A plain decimal in units of 10^-decimals, exactly: fewer digits are padded,
/// more are accepted only when they are zeros.
pub fn parse_units(text: &str, decimals: u8) -> Result<i64, &'static str> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    if int.is_empty() && frac.is_empty() {
        return Err("not a decimal number");
    }
    if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not a plain decimal number");
    }
    let d = usize::from(decimals);
    let (kept, extra) = if frac.len() > d {
        frac.split_at(d)
    } else {
        (frac, "")
    };
    if extra.bytes().any(|b| b != b'0') {
        return Err("more decimals than the instrument's precision");
    }
    let digits = int
        .bytes()
        .chain(kept.bytes())
        .chain(std::iter::repeat_n(b'0', d - kept.len()));
    let v = if int.len() + d <= 18 {
        // At most 18 digits: below i64::MAX whatever they are, no check needed.
        digits.fold(0i64, |v, b| v * 10 + i64::from(b - b'0'))
    } else {
        let mut v: i64 = 0;
        for b in digits {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(i64::from(b - b'0')))
                .ok_or("out of range")?;
        }
        v
    };
    Ok(if negative { -v } else { v })
}

/// Like [`parse_units`], but a finer value is rounded half away from zero
/// (24 h statistics such as vwap are not at the instrument's precision).
fn parse_rounded(text: &str, decimals: u8) -> Option<i64> {
    if let Ok(v) = parse_units(text, decimals) {
        return Some(v);
    }
    let have = decimals_of(text);
    if have <= decimals || have > 30 {
        return None;
    }
    let exact = parse_units(text, have).ok()?;
    let div = 10i128.checked_pow(u32::from(have - decimals))?;
    let v = i128::from(exact);
    let q = if v >= 0 {
        (v + div / 2) / div
    } else {
        (v - div / 2) / div
    };
    i64::try_from(q).ok()
}

fn small_int(raw: Option<&RawValue>) -> Option<u8> {
    raw.and_then(|r| number_text(r).parse::<u8>().ok())
}

// ---- the normalizer --------------------------------------------------------------

fn record(body: Body<'_>, receive_ts: u64, exchange_ts: u64, conn_id: u64, sid: u32) -> Record<'_> {
    Record {
        receive_ts,
        exchange_ts,
        conn_id,
        sid,
        seq: 0,
        body,
    }
}

struct Out<'b> {
    batch: &'b mut Batch,
    frame: usize,
}

impl Kraken {
    pub fn new() -> Kraken {
        Kraken::default()
    }

    /// The precisions of a symbol (from the REST listing).
    pub fn set_precision(&mut self, symbol: &str, price_decimals: u8, qty_decimals: u8) {
        self.precision
            .insert(symbol.to_string(), (price_decimals, qty_decimals));
    }

    pub fn precision(&self, symbol: &str) -> Option<(u8, u8)> {
        self.precision.get(symbol).copied()
    }

    /// The depth a symbol's book is cut to (the subscription's).
    pub fn set_depth(&mut self, symbol: &str, depth: usize) {
        self.depth.insert(symbol.to_string(), depth.max(1));
    }

    /// A connection ended: its books are invalid until snapshots on the next.
    /// Returns their symbols, sorted.
    pub fn forget(&mut self, conn_id: u64) -> Vec<String> {
        let mut out: Vec<String> = self
            .books
            .iter_mut()
            .filter(|(_, b)| b.conn_id == conn_id && b.valid)
            .map(|(s, b)| {
                b.valid = false;
                b.dirty = true;
                s.clone()
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// The exact book of a symbol, whether it is valid, and its (price, qty)
    /// decimals.
    pub fn book(&self, symbol: &str) -> Option<(&ExactBook, bool, (u8, u8))> {
        self.books
            .get(symbol)
            .map(|b| (&b.book, b.valid, b.decimals))
    }

    /// A `book` record (schema OrderBookUpdate with `spot` set: bids and asks
    /// best first, in units of 1e-6) per book changed since the last call, or
    /// every book. A view is marked invalid when a price has no exact 1e-6
    /// value (a precision finer than 6 decimals), since nearest values could
    /// merge two levels.
    pub fn checkpoint(&mut self, receive_ts: u64, everything: bool) -> Vec<Record<'static>> {
        let mut out = Vec::new();
        for (symbol, state) in self.books.iter_mut() {
            if !(state.dirty || everything) {
                continue;
            }
            state.dirty = false;
            let (pd, qd) = state.decimals;
            let mut exact = true;
            let mut side = |levels: &mut dyn Iterator<Item = (i64, i64)>| -> Vec<Level> {
                levels
                    .map(|(p, q)| {
                        exact &= pd <= 6
                            || 10i64
                                .checked_pow(u32::from(pd - 6))
                                .is_some_and(|d| p % d == 0);
                        Level {
                            price_e6: fixed::rescale_e6(p, pd),
                            size_e6: fixed::rescale_e6(q, qd),
                        }
                    })
                    .collect()
            };
            let bids = side(&mut state.book.bids());
            let asks = side(&mut state.book.asks());
            out.push(Record {
                receive_ts,
                exchange_ts: state.exchange_ts,
                conn_id: state.conn_id,
                sid: STREAM_BOOK,
                seq: 0,
                body: Body::SpotView(BookView {
                    ticker: Some(Cow::Owned(symbol.clone())),
                    bids,
                    asks,
                    valid: state.valid && exact,
                }),
            });
        }
        out.sort_unstable_by(|a, b| a.body.ticker().cmp(&b.body.ticker()));
        out
    }

    /// Normalizes frames received on connection `conn_id`, each with its
    /// receive time in Unix nanoseconds.
    pub fn normalize<'f>(
        &mut self,
        frames: impl IntoIterator<Item = (u64, &'f [u8])>,
        conn_id: u64,
    ) -> Batch {
        let frames = frames.into_iter();
        let n = frames.size_hint().0;
        let mut batch = Batch {
            conn_id,
            data: Vec::with_capacity(n * 96),
            records: Spans::with_capacity(n),
            frames: Vec::with_capacity(n),
            events: Vec::new(),
        };
        for (index, (receive_ts, bytes)) in frames.enumerate() {
            batch.frames.push(FrameOutcome {
                kind: FrameKind::Unknown,
                problems: Vec::new(),
            });
            let mut out = Out {
                batch: &mut batch,
                frame: index,
            };
            let kind = self.frame(bytes, receive_ts, conn_id, &mut out);
            batch.frames[index].kind = kind;
        }
        batch
    }

    fn emit(&mut self, out: &mut Out<'_>, record: &Record<'_>) {
        let start = out.batch.data.len();
        self.encoder.encode(record, &mut out.batch.data);
        out.batch.records.push(
            out.frame,
            record.body.record_type(),
            record.body.ticker().unwrap_or_default(),
            start,
            out.batch.data.len(),
        );
    }

    fn problem(out: &mut Out<'_>, what: &'static str, detail: impl Into<String>) {
        out.batch.frames[out.frame]
            .problems
            .push((what, detail.into()));
    }

    fn frame(
        &mut self,
        bytes: &[u8],
        receive_ts: u64,
        conn_id: u64,
        out: &mut Out<'_>,
    ) -> FrameKind {
        let (env, books) = match read_frame_once(bytes) {
            Ok(read) => read,
            Err(()) => match serde_json::from_slice::<Envelope<'_>>(bytes) {
                Ok(env) => (env, None),
                Err(e) => {
                    Self::problem(out, "malformed", e.to_string());
                    return FrameKind::Malformed;
                }
            },
        };
        if let Some(method) = env.method.as_deref() {
            return self.reply(method, &env, out);
        }
        let Some(channel) = env.channel.as_deref() else {
            Self::problem(out, "unknown_type", "neither channel nor method");
            return FrameKind::Unknown;
        };
        let rec = |body, exchange_ts, sid| record(body, receive_ts, exchange_ts, conn_id, sid);
        let data = env.data.map(RawValue::get).unwrap_or("null");
        match channel {
            "heartbeat" => FrameKind::Heartbeat,
            "book" => {
                let snapshot = env.typ.as_deref() == Some("snapshot");
                let items = match books {
                    Some(items) => Ok(items),
                    None => serde_json::from_str::<Vec<BookData<'_>>>(data),
                };
                match items {
                    Ok(items) => {
                        for item in items {
                            self.apply_book(item, snapshot, receive_ts, conn_id, out);
                        }
                    }
                    Err(e) => {
                        // Some book changed and which one cannot be told.
                        Self::problem(out, "no_record", format!("book data: {e}"));
                        let tickers = self.forget(conn_id);
                        if !tickers.is_empty() {
                            out.batch.events.push(Event::Gap {
                                conn_id,
                                stream: STREAM_BOOK,
                                tickers,
                                reason: "a book message could not be read".into(),
                            });
                        }
                    }
                }
                FrameKind::Book
            }
            "trade" => {
                match serde_json::from_str::<Vec<TradeData<'_>>>(data) {
                    Ok(items) => {
                        for t in items {
                            let Some(symbol) = t.symbol else {
                                Self::problem(out, "no_record", "trade without symbol");
                                continue;
                            };
                            let (pd, qd) = self.decimals_for(&symbol, t.price, t.qty);
                            let price = self.number(out, "price", t.price, pd);
                            let qty = self.number(out, "qty", t.qty, qd);
                            let taker_buys = match t.side.as_deref() {
                                Some("buy") => Some(true),
                                Some("sell") => Some(false),
                                other => {
                                    Self::problem(out, "field", format!("side: {other:?}"));
                                    None
                                }
                            };
                            let ts = t.timestamp.as_deref().and_then(rfc3339_to_ns).unwrap_or(0);
                            let body = Body::SpotTrade(SpotTrade {
                                ticker: Some(symbol),
                                trade_id: t.trade_id.map(|r| Cow::Borrowed(number_text(r))),
                                price,
                                qty,
                                price_decimals: pd,
                                qty_decimals: qd,
                                taker_buys,
                                ord_type: t.ord_type,
                            });
                            self.emit(out, &rec(body, ts, STREAM_TRADE));
                        }
                    }
                    Err(e) => Self::problem(out, "no_record", format!("trade data: {e}")),
                }
                FrameKind::Trade
            }
            "ticker" => {
                match serde_json::from_str::<Vec<TickerData<'_>>>(data) {
                    Ok(items) => {
                        for t in items {
                            let Some(symbol) = t.symbol else {
                                Self::problem(out, "no_record", "ticker without symbol");
                                continue;
                            };
                            let (pd, qd) = self.decimals_for(&symbol, t.bid, t.bid_qty);
                            let p = |v: Option<&RawValue>| {
                                v.and_then(|r| parse_rounded(number_text(r), pd))
                            };
                            let q = |v: Option<&RawValue>| {
                                v.and_then(|r| parse_rounded(number_text(r), qd))
                            };
                            let ts = t.timestamp.as_deref().and_then(rfc3339_to_ns).unwrap_or(0);
                            let body = Body::SpotTicker(SpotTicker {
                                bid: p(t.bid),
                                bid_qty: q(t.bid_qty),
                                ask: p(t.ask),
                                ask_qty: q(t.ask_qty),
                                last: p(t.last),
                                volume: q(t.volume),
                                vwap: p(t.vwap),
                                low: p(t.low),
                                high: p(t.high),
                                change: p(t.change),
                                change_pct: t
                                    .change_pct
                                    .and_then(|r| parse_rounded(number_text(r), 2)),
                                price_decimals: pd,
                                qty_decimals: qd,
                                ticker: Some(symbol),
                            });
                            self.emit(out, &rec(body, ts, STREAM_TICKER));
                        }
                    }
                    Err(e) => Self::problem(out, "no_record", format!("ticker data: {e}")),
                }
                FrameKind::Ticker
            }
            "instrument" => {
                match serde_json::from_str::<InstrumentData<'_>>(data) {
                    Ok(d) => {
                        for pair in d.pairs.unwrap_or_default() {
                            let Some(symbol) = pair.symbol else {
                                Self::problem(out, "no_record", "pair without symbol");
                                continue;
                            };
                            let (Some(pd), Some(qd)) = (
                                small_int(pair.price_precision),
                                small_int(pair.qty_precision),
                            ) else {
                                Self::problem(out, "field", format!("{symbol}: precision missing"));
                                continue;
                            };
                            self.precision.insert(symbol.to_string(), (pd, qd));
                            let p = |v: Option<&RawValue>| {
                                v.and_then(|r| parse_rounded(number_text(r), pd))
                            };
                            let q = |v: Option<&RawValue>| {
                                v.and_then(|r| parse_rounded(number_text(r), qd))
                            };
                            let body = Body::Instrument(Instrument {
                                base: pair.base,
                                quote: pair.quote,
                                status: pair.status,
                                price_decimals: pd,
                                qty_decimals: qd,
                                price_increment: p(pair.price_increment),
                                qty_increment: q(pair.qty_increment),
                                qty_min: q(pair.qty_min),
                                cost_min: pair.cost_min.map(|r| Cow::Borrowed(number_text(r))),
                                ticker: Some(symbol),
                            });
                            self.emit(out, &rec(body, 0, STREAM_INSTRUMENT));
                        }
                    }
                    Err(e) => Self::problem(out, "no_record", format!("instrument data: {e}")),
                }
                FrameKind::Instrument
            }
            "status" => {
                match serde_json::from_str::<Vec<StatusData<'_>>>(data) {
                    Ok(items) => {
                        for s in items {
                            let body = Body::VenueStatus(VenueStatus {
                                system: s.system,
                                api_version: s.api_version,
                                connection_id: s
                                    .connection_id
                                    .and_then(|r| number_text(r).parse().ok())
                                    .unwrap_or(0),
                                version: s.version,
                            });
                            self.emit(out, &rec(body, 0, STREAM_STATUS));
                        }
                    }
                    Err(e) => Self::problem(out, "no_record", format!("status data: {e}")),
                }
                FrameKind::Status
            }
            other => {
                Self::problem(out, "unknown_type", other.to_string());
                FrameKind::Unknown
            }
        }
    }

    /// A reply to a request: acks learn the book depth; failures are counted.
    fn reply(&mut self, method: &str, env: &Envelope<'_>, out: &mut Out<'_>) -> FrameKind {
        let ok = env.success.map(|r| r.get().trim() == "true");
        if ok == Some(false) {
            let symbol = env.symbol.as_deref().unwrap_or("");
            let error = env.error.as_deref().unwrap_or("");
            Self::problem(out, "venue_error", format!("{method} {symbol}: {error}"));
            return FrameKind::Error;
        }
        match method {
            "pong" => FrameKind::Pong,
            "subscribe" | "unsubscribe" => {
                let result = env
                    .result
                    .and_then(|r| serde_json::from_str::<AckResult<'_>>(r.get()).ok());
                let book = result
                    .as_ref()
                    .filter(|r| r.channel.as_deref() == Some("book"))
                    .and_then(|r| r.symbol.as_deref());
                if method == "subscribe" {
                    let depth = result
                        .as_ref()
                        .and_then(|r| r.depth)
                        .and_then(|d| number_text(d).parse::<usize>().ok());
                    if let (Some(symbol), Some(depth)) = (book, depth) {
                        self.set_depth(symbol, depth);
                    }
                    FrameKind::Subscribe
                } else {
                    // No more updates come for it: the book is no longer kept exact
                    // (a checkpoint says so; a new snapshot resyncs it).
                    if let Some(state) = book.and_then(|s| self.books.get_mut(s)) {
                        if state.valid {
                            state.valid = false;
                            state.dirty = true;
                        }
                    }
                    FrameKind::Unsubscribe
                }
            }
            other => {
                Self::problem(out, "unknown_type", format!("method {other}"));
                FrameKind::Unknown
            }
        }
    }

    /// A symbol's (price, qty) decimals: known, else from the numbers' text.
    fn decimals_for(
        &self,
        symbol: &str,
        price: Option<&RawValue>,
        qty: Option<&RawValue>,
    ) -> (u8, u8) {
        self.precision.get(symbol).copied().unwrap_or_else(|| {
            (
                price.map_or(0, |r| decimals_of(number_text(r))),
                qty.map_or(0, |r| decimals_of(number_text(r))),
            )
        })
    }

    fn number(
        &self,
        out: &mut Out<'_>,
        field: &'static str,
        raw: Option<&RawValue>,
        decimals: u8,
    ) -> Option<i64> {
        let raw = raw?;
        match parse_units(number_text(raw), decimals) {
            Ok(v) => Some(v),
            Err(why) => {
                Self::problem(out, "field", format!("{field} {}: {why}", raw.get()));
                None
            }
        }
    }

    fn apply_book(
        &mut self,
        item: BookData<'_>,
        snapshot: bool,
        receive_ts: u64,
        conn_id: u64,
        out: &mut Out<'_>,
    ) {
        let Some(symbol) = item.symbol else {
            Self::problem(out, "no_record", "book without symbol");
            return;
        };
        let held = self
            .books
            .get(symbol.as_ref())
            .map(|b| (b.valid, b.conn_id));
        if !snapshot && held.is_none_or(|(valid, _)| !valid) {
            // Nothing to apply it to: the book awaits its snapshot. Reported once.
            Self::problem(
                out,
                "no_record",
                format!("{symbol}: update without a valid book"),
            );
            if held.is_none() {
                self.books.insert(
                    symbol.to_string(),
                    BookState {
                        book: ExactBook::new(DEFAULT_DEPTH),
                        conn_id,
                        valid: false,
                        decimals: (0, 0),
                        exchange_ts: 0,
                        dirty: false,
                    },
                );
                out.batch.events.push(Event::Gap {
                    conn_id,
                    stream: STREAM_BOOK,
                    tickers: vec![symbol.to_string()],
                    reason: "an update before any snapshot".into(),
                });
            }
            return;
        }
        if !snapshot && held.is_some_and(|(_, c)| c != conn_id) {
            // A late update from a connection the book has left: not this book's.
            Self::problem(
                out,
                "no_record",
                format!("{symbol}: update from a former connection"),
            );
            return;
        }
        let bids_raw = item.bids.unwrap_or_default();
        let asks_raw = item.asks.unwrap_or_default();
        let decimals = match self.precision.get(symbol.as_ref()) {
            // An update is read at its book's scale, fixed by the snapshot.
            _ if !snapshot => self
                .books
                .get(symbol.as_ref())
                .map_or((0, 0), |b| b.decimals),
            Some(d) => *d,
            None => {
                // Not announced: the snapshot's digits (v2 keeps trailing zeros).
                let mut d = (0u8, 0u8);
                for l in bids_raw.iter().chain(asks_raw.iter()) {
                    d.0 = d.0.max(decimals_of(number_text(l.price)));
                    d.1 = d.1.max(decimals_of(number_text(l.qty)));
                }
                d
            }
        };
        let mut bad = None;
        let mut levels = |raw: &[RawLevel<'_>]| -> Vec<SpotLevel> {
            let mut v = Vec::with_capacity(raw.len());
            for l in raw {
                let price = parse_units(number_text(l.price), decimals.0);
                let qty = parse_units(number_text(l.qty), decimals.1);
                match (price, qty) {
                    (Ok(price), Ok(qty)) => v.push(SpotLevel { price, qty }),
                    (Err(why), _) | (_, Err(why)) => {
                        bad.get_or_insert_with(|| {
                            format!("level {} x {}: {why}", l.price.get(), l.qty.get())
                        });
                    }
                }
            }
            v
        };
        let bids = levels(&bids_raw);
        let asks = levels(&asks_raw);
        let checksum = item
            .checksum
            .and_then(|r| number_text(r).parse::<u32>().ok());
        let depth = self
            .depth
            .get(symbol.as_ref())
            .copied()
            .unwrap_or(DEFAULT_DEPTH);
        let exchange_ts = item
            .timestamp
            .as_deref()
            .and_then(rfc3339_to_ns)
            .unwrap_or(0);

        let known = self.books.contains_key(symbol.as_ref());
        let state = self
            .books
            .entry(symbol.to_string())
            .or_insert_with(|| BookState {
                book: ExactBook::new(depth),
                conn_id,
                valid: false,
                decimals,
                exchange_ts: 0,
                dirty: true,
            });
        let was_valid = state.valid;
        let mut ok = false;
        let mut reason = None;
        if let Some(why) = &bad {
            Self::problem(out, "field", format!("{symbol}: {why}"));
            reason = Some(format!("a level could not be read ({why})"));
        } else if snapshot {
            state.book = ExactBook::new(depth);
            state.book.snapshot(&bids, &asks);
            state.conn_id = conn_id;
            state.decimals = decimals;
            ok = true;
        } else {
            // A valid book on this connection (checked above).
            state.book.update(&bids, &asks);
            ok = true;
        }
        if ok {
            let computed = state.book.checksum();
            match checksum {
                Some(c) if c == computed => {}
                Some(c) => {
                    ok = false;
                    self.checksum_mismatches += 1;
                    Self::problem(
                        out,
                        "checksum",
                        format!("{symbol}: sent {c}, computed {computed}"),
                    );
                    reason = Some(format!("checksum mismatch: sent {c}, computed {computed}"));
                }
                None => {
                    ok = false;
                    Self::problem(out, "field", format!("{symbol}: checksum missing"));
                    reason = Some("checksum missing".to_string());
                }
            }
        }
        let valid_now = ok;
        let state = self.books.get_mut(symbol.as_ref()).expect("inserted above");
        state.valid = valid_now;
        state.dirty = true;
        if exchange_ts != 0 {
            state.exchange_ts = exchange_ts;
        }
        if valid_now && snapshot && known && !was_valid {
            out.batch.events.push(Event::Resynced {
                ticker: symbol.to_string(),
            });
        }
        if let Some(reason) = reason {
            // Report a book once when it turns invalid (or never was valid).
            if was_valid || snapshot || !known {
                out.batch.events.push(Event::Gap {
                    conn_id,
                    stream: STREAM_BOOK,
                    tickers: vec![symbol.to_string()],
                    reason,
                });
            }
        }
        let body = Body::SpotBook(SpotBook {
            ticker: Some(symbol),
            snapshot,
            bids,
            asks,
            price_decimals: decimals.0,
            qty_decimals: decimals.1,
            checksum: checksum.unwrap_or(0),
            checksum_ok: valid_now,
            depth: u16::try_from(depth).unwrap_or(u16::MAX),
        });
        let record = Record {
            receive_ts,
            exchange_ts,
            conn_id,
            sid: STREAM_BOOK,
            seq: 0,
            body,
        };
        self.emit(out, &record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::decode_all;

    // The worked example: XYZ/USD, price precision 4, qty precision 8 (numbers as v2
    // prints them, trailing zeros included).
    const SNAPSHOT: &str = r#"{"channel":"book","type":"snapshot","data":[{"symbol":"XYZ/USD","bids":[{"price":0.1235,"qty":3000.00000000},{"price":0.1233,"qty":75.12345678},{"price":0.1229,"qty":10.00000000}],"asks":[{"price":0.1236,"qty":1200.50000000},{"price":0.1238,"qty":250.00000000},{"price":0.1240,"qty":0.00010000}],"checksum":1377533586}]}"#;
    const UPDATE: &str = r#"{"channel":"book","type":"update","data":[{"symbol":"XYZ/USD","bids":[{"price":0.1235,"qty":0.00000000}],"asks":[{"price":0.1237,"qty":40.00000000}],"checksum":3470963259,"timestamp":"2026-05-04T10:00:01.102334Z"}]}"#;

    fn run(k: &mut Kraken, frames: &[&str], conn_id: u64) -> Batch {
        k.normalize(frames.iter().map(|f| (7u64, f.as_bytes())), conn_id)
    }

    fn bodies(batch: &Batch) -> Vec<Body<'static>> {
        decode_all(&batch.data)
            .expect("records decode")
            .into_iter()
            .map(|r| r.body)
            .collect()
    }

    fn problems(batch: &Batch) -> Vec<&'static str> {
        batch
            .frames
            .iter()
            .flat_map(|f| f.problems.iter().map(|p| p.0))
            .collect()
    }

    #[test]
    fn a_snapshot_and_an_update_are_exact_and_checksummed() {
        let mut k = Kraken::new();
        let batch = run(&mut k, &[SNAPSHOT, UPDATE], 1);
        assert!(problems(&batch).is_empty(), "{:?}", batch.frames);
        assert!(batch.events.is_empty());
        let b = bodies(&batch);
        let Body::SpotBook(snap) = &b[0] else {
            panic!("{:?}", b[0])
        };
        assert!(snap.snapshot && snap.checksum_ok);
        assert_eq!((snap.price_decimals, snap.qty_decimals), (4, 8));
        assert_eq!(
            snap.bids[1],
            SpotLevel {
                price: 1233,
                qty: 7_512_345_678
            }
        );
        assert_eq!(
            snap.asks[2],
            SpotLevel {
                price: 1240,
                qty: 10_000
            }
        );
        let Body::SpotBook(upd) = &b[1] else {
            panic!("{:?}", b[1])
        };
        assert!(!upd.snapshot && upd.checksum_ok && upd.checksum == 3_470_963_259);
        let (book, valid, _) = k.book("XYZ/USD").expect("a book");
        assert!(valid);
        assert_eq!(book.bids().next(), Some((1233, 7_512_345_678)));
        assert_eq!(book.asks().next(), Some((1236, 120_050_000_000)));
    }

    #[test]
    fn numbers_without_trailing_zeros_are_read_at_the_listed_precision() {
        // As a float re-serialiser would print them: the tokens would lose their
        // zeros, but the precision from the listing restores them.
        let mut k = Kraken::new();
        k.set_precision("XYZ/USD", 4, 8);
        let floats = SNAPSHOT
            .replace("3000.00000000", "3000.0")
            .replace("10.00000000", "10")
            .replace("0.1240", "0.124");
        let batch = run(&mut k, &[&floats, UPDATE], 1);
        assert!(batch.events.is_empty(), "{:?}", batch.events);
        assert_eq!(k.checksum_mismatches, 0);
    }

    #[test]
    fn a_checksum_mismatch_invalidates_the_book_until_a_new_snapshot() {
        let mut k = Kraken::new();
        let corrupt = UPDATE.replace("3470963259", "3470963258");
        let late = UPDATE.replace("0.1237", "0.1239");
        let batch = run(&mut k, &[SNAPSHOT, &corrupt, &late], 1);
        assert_eq!(k.checksum_mismatches, 1);
        assert_eq!(problems(&batch), vec!["checksum", "no_record"]);
        assert_eq!(
            batch.events,
            vec![Event::Gap {
                conn_id: 1,
                stream: STREAM_BOOK,
                tickers: vec!["XYZ/USD".into()],
                reason: "checksum mismatch: sent 3470963258, computed 3470963259".into(),
            }]
        );
        // The update after the mismatch is not applied (and not reported again).
        assert_eq!(batch.records.len(), 2);
        assert!(!k.book("XYZ/USD").unwrap().1);
        // The fresh snapshot makes it exact again.
        let batch = run(&mut k, &[SNAPSHOT], 1);
        assert_eq!(
            batch.events,
            vec![Event::Resynced {
                ticker: "XYZ/USD".into()
            }]
        );
        assert!(k.book("XYZ/USD").unwrap().1);
    }

    #[test]
    fn a_missed_update_shows_on_the_next_checksum() {
        let mut k = Kraken::new();
        // The next update after UPDATE, with the checksum of the book that has UPDATE
        // applied: delete ask 0.1240. Received without UPDATE, the book differs.
        let mut truth = Kraken::new();
        run(&mut truth, &[SNAPSHOT, UPDATE], 1);
        let (b, _, _) = truth.book("XYZ/USD").unwrap();
        let mut after = b.clone();
        after.update(
            &[],
            &[SpotLevel {
                price: 1240,
                qty: 0,
            }],
        );
        let next = format!(
            r#"{{"channel":"book","type":"update","data":[{{"symbol":"XYZ/USD","bids":[],"asks":[{{"price":0.1240,"qty":0}}],"checksum":{}}}]}}"#,
            after.checksum()
        );
        let with_all = run(&mut truth, &[&next], 1);
        assert!(with_all.events.is_empty());
        let missed = run(&mut k, &[SNAPSHOT, &next], 1);
        assert!(
            matches!(&missed.events[..], [Event::Gap { tickers, .. }] if tickers == &["XYZ/USD"])
        );
    }

    #[test]
    fn an_update_before_any_snapshot_is_a_gap_and_a_late_one_is_not_applied() {
        let mut k = Kraken::new();
        let batch = run(&mut k, &[UPDATE], 1);
        assert!(
            matches!(&batch.events[..], [Event::Gap { reason, .. }] if reason == "an update before any snapshot")
        );
        // The book moves to connection 2; an update still in flight from 1 is dropped.
        run(&mut k, &[SNAPSHOT], 2);
        let batch = run(&mut k, &[UPDATE], 1);
        assert_eq!(problems(&batch), vec!["no_record"]);
        assert!(batch.records.is_empty());
        assert!(k.book("XYZ/USD").unwrap().1);
        // A lost connection: its books are invalid, listed once.
        assert_eq!(k.forget(2), vec!["XYZ/USD".to_string()]);
        assert!(k.forget(2).is_empty());
    }

    #[test]
    fn the_ack_sets_the_depth_the_book_is_cut_to() {
        let mut k = Kraken::new();
        let ack = r#"{"method":"subscribe","result":{"channel":"book","depth":2,"snapshot":true,"symbol":"XYZ/USD"},"success":true,"time_in":"2026-05-04T10:00:00.123456Z","time_out":"2026-05-04T10:00:00.123501Z","req_id":7}"#;
        let batch = run(&mut k, &[ack, SNAPSHOT], 1);
        assert_eq!(batch.frames[0].kind, FrameKind::Subscribe);
        // The snapshot's checksum covers 3 levels per side, the book holds 2: a mismatch.
        assert_eq!(problems(&batch), vec!["checksum"]);
        assert_eq!(k.book("XYZ/USD").unwrap().0.asks().count(), 2);
    }

    #[test]
    fn an_unsubscribed_book_is_no_longer_exact_until_its_next_snapshot() {
        let mut k = Kraken::new();
        run(&mut k, &[SNAPSHOT], 1);
        let unsub = r#"{"method":"unsubscribe","result":{"channel":"book","depth":10,"symbol":"XYZ/USD"},"success":true,"req_id":8}"#;
        let batch = run(&mut k, &[unsub], 1);
        assert_eq!(batch.frames[0].kind, FrameKind::Unsubscribe);
        assert!(!k.book("XYZ/USD").unwrap().1);
        assert!(
            matches!(&k.checkpoint(1, false)[..], [r] if matches!(&r.body, Body::SpotView(v) if !v.valid))
        );
        // Subscribing again: the snapshot makes it exact, and says so.
        let batch = run(&mut k, &[SNAPSHOT], 1);
        assert_eq!(
            batch.events,
            vec![Event::Resynced {
                ticker: "XYZ/USD".into()
            }]
        );
    }

    #[test]
    fn trade_ticker_instrument_status_and_control_frames() {
        let mut k = Kraken::new();
        let frames = [
            r#"{"channel":"status","type":"update","data":[{"system":"online","api_version":"v2","connection_id":12393906104898154338,"version":"2.0.10"}]}"#,
            r#"{"channel":"instrument","type":"snapshot","data":{"assets":[{"id":"BTC","status":"enabled","precision":10}],"pairs":[{"symbol":"BTC/USD","base":"BTC","quote":"USD","status":"online","price_precision":1,"qty_precision":8,"price_increment":0.1,"qty_increment":0.00000001,"qty_min":0.0001,"cost_min":"0.5","marginable":true}]}}"#,
            r#"{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"sell","price":45283.5,"qty":0.01000000,"ord_type":"market","trade_id":4665906,"timestamp":"2026-05-04T10:00:01.102334Z"},{"symbol":"BTC/USD","side":"buy","price":45283.6,"qty":0.00100000,"ord_type":"limit","trade_id":4665907,"timestamp":"2026-05-04T10:00:01.102334Z"}]}"#,
            r#"{"channel":"ticker","type":"snapshot","data":[{"symbol":"BTC/USD","bid":45283.5,"bid_qty":0.10000000,"ask":45283.6,"ask_qty":1.5,"last":45283.6,"volume":1234.56789012,"vwap":45100.123456,"low":44000.0,"high":46000.0,"change":-120.5,"change_pct":-0.27,"timestamp":"2026-05-04T10:00:01.102334Z"}]}"#,
            r#"{"channel":"heartbeat"}"#,
            r#"{"method":"pong","req_id":101,"time_in":"2026-05-04T10:00:00.123456Z","time_out":"2026-05-04T10:00:00.123501Z"}"#,
        ];
        let batch = run(&mut k, &frames, 1);
        assert!(problems(&batch).is_empty(), "{:?}", batch.frames);
        let kinds: Vec<FrameKind> = batch.frames.iter().map(|f| f.kind).collect();
        use FrameKind as F;
        assert_eq!(
            kinds,
            [
                F::Status,
                F::Instrument,
                F::Trade,
                F::Ticker,
                F::Heartbeat,
                F::Pong
            ]
        );
        assert_eq!(k.precision("BTC/USD"), Some((1, 8)));
        let b = bodies(&batch);
        assert!(
            matches!(&b[0], Body::VenueStatus(s) if s.connection_id == 12_393_906_104_898_154_338 && s.system.as_deref() == Some("online"))
        );
        let Body::Instrument(i) = &b[1] else { panic!() };
        assert_eq!(
            (i.price_increment, i.qty_increment, i.qty_min),
            (Some(1), Some(1), Some(10_000))
        );
        assert_eq!(i.cost_min.as_deref(), Some("0.5"));
        let Body::SpotTrade(t) = &b[2] else { panic!() };
        assert_eq!(
            (t.price, t.qty, t.taker_buys),
            (Some(452_835), Some(1_000_000), Some(false))
        );
        assert_eq!(
            (t.trade_id.as_deref(), t.ord_type.as_deref()),
            (Some("4665906"), Some("market"))
        );
        assert!(matches!(&b[3], Body::SpotTrade(t) if t.taker_buys == Some(true)));
        let Body::SpotTicker(x) = &b[4] else { panic!() };
        assert_eq!(
            (x.bid, x.ask_qty, x.volume),
            (Some(452_835), Some(150_000_000), Some(123_456_789_012))
        );
        // vwap is finer than the pair's precision: the nearest value.
        assert_eq!(
            (x.vwap, x.change, x.change_pct),
            (Some(451_001), Some(-1205), Some(-27))
        );
    }

    #[test]
    fn one_pass_and_two_passes_read_a_frame_alike() {
        // `data` before `channel` cannot be read in the envelope's pass: the frame is
        // read in two. Both orders give the same records, problems and events.
        let data_first = |f: &str| {
            // Each frame below ends with its `data`.
            let at = f.find(",\"data\":").expect("data");
            let data = &f[at + 8..f.len() - 1];
            format!("{{\"data\":{data},{}}}", &f[1..at])
        };
        let frames = [
            SNAPSHOT,
            UPDATE,
            r#"{"channel":"book","type":"update","data":[{"symbol":"XYZ/USD","bids":5,"checksum":1}]}"#,
            r#"{"channel":"book","type":"update","data":[{"symbol":7,"bids":[],"asks":[],"checksum":1}]}"#,
        ];
        let swapped: Vec<String> = frames.iter().map(|f| data_first(f)).collect();
        assert!(
            swapped[0].starts_with(r#"{"data":[{"symbol":"XYZ/USD""#),
            "{}",
            swapped[0]
        );
        let swapped: Vec<&str> = swapped.iter().map(String::as_str).collect();
        let books_read = |f: &str| read_frame_once(f.as_bytes()).is_ok_and(|(_, b)| b.is_some());
        assert!(books_read(frames[0]) && !books_read(swapped[0]));
        assert!(
            read_frame_once(frames[2].as_bytes()).is_err(),
            "bids: 5 is left to two passes"
        );
        let (mut one, mut two) = (Kraken::new(), Kraken::new());
        let (a, b) = (run(&mut one, &frames, 1), run(&mut two, &swapped, 1));
        assert_eq!(a.data, b.data);
        assert_eq!(a.frames, b.frames);
        assert_eq!(a.events, b.events);
        assert_eq!(
            problems(&a),
            ["no_record", "no_record"],
            "badly typed book data is a gap, not a malformed frame"
        );
        // A key given twice is malformed, as the envelope's own reading says.
        let twice = r#"{"channel":"book","channel":"book","type":"update","data":[]}"#;
        let c = run(&mut Kraken::new(), &[twice], 1);
        assert_eq!(c.frames[0].kind, FrameKind::Malformed);
    }

    #[test]
    fn bad_frames_are_counted_and_yield_no_record() {
        let mut k = Kraken::new();
        let frames = [
            "{not json",
            r#"{"channel":"ohlc","type":"update","data":[]}"#,
            r#"{"foo":1}"#,
            r#"{"error":"Currency pair not supported ABC/XYZ","method":"subscribe","req_id":3,"success":false,"symbol":"ABC/XYZ","time_in":"2026-05-04T10:00:00.123456Z","time_out":"2026-05-04T10:00:00.123501Z"}"#,
            r#"{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"up","price":1e3,"qty":"x","trade_id":1}]}"#,
            r#"{"channel":"book","type":"update","data":{"symbol":"XYZ/USD"}}"#,
        ];
        let batch = run(&mut k, &frames, 1);
        let kinds: Vec<FrameKind> = batch.frames.iter().map(|f| f.kind).collect();
        use FrameKind as F;
        assert_eq!(
            kinds,
            [
                F::Malformed,
                F::Unknown,
                F::Unknown,
                F::Error,
                F::Trade,
                F::Book
            ]
        );
        assert_eq!(
            problems(&batch),
            [
                "malformed",
                "unknown_type",
                "unknown_type",
                "venue_error",
                "field",
                "field",
                "field",
                "no_record"
            ]
        );
        // The trade is kept with what could be read.
        let b = bodies(&batch);
        assert!(
            matches!(&b[..], [Body::SpotTrade(t)] if t.price.is_none() && t.qty.is_none() && t.taker_buys.is_none()),
            "{b:?}"
        );
    }

    #[test]
    fn checkpoints_hold_changed_books_and_say_when_they_are_invalid() {
        let mut k = Kraken::new();
        run(&mut k, &[SNAPSHOT, UPDATE], 1);
        let cp = k.checkpoint(99, false);
        let [r] = &cp[..] else { panic!("{cp:?}") };
        let Body::SpotView(v) = &r.body else { panic!() };
        assert!(v.valid);
        assert_eq!(
            v.bids[0],
            Level {
                price_e6: Some(123_300),
                size_e6: Some(75_123_457)
            }
        );
        assert!(k.checkpoint(100, false).is_empty());
        assert_eq!(k.checkpoint(100, true).len(), 1);
        k.forget(1);
        assert!(
            matches!(&k.checkpoint(101, false)[..], [r] if matches!(&r.body, Body::SpotView(v) if !v.valid))
        );
    }

    #[test]
    fn units_are_exact_or_refused() {
        assert_eq!(parse_units("0.00100000", 8), Ok(100_000));
        assert_eq!(parse_units("45285.2", 1), Ok(452_852));
        assert_eq!(parse_units("12", 3), Ok(12_000));
        assert_eq!(parse_units("-0.5", 2), Ok(-50));
        assert_eq!(
            parse_units("0.12345", 4),
            Err("more decimals than the instrument's precision")
        );
        assert!(parse_units("1e3", 2).is_err());
        assert!(parse_units("99999999999999999999", 0).is_err());
        // Around the 18 digits that cannot overflow, and i64's own limit.
        assert_eq!(
            parse_units("999999999999999999", 0),
            Ok(999_999_999_999_999_999)
        );
        assert_eq!(
            parse_units("9999999999.99999999", 8),
            Ok(999_999_999_999_999_999)
        );
        assert_eq!(parse_units("92233720368.54775807", 8), Ok(i64::MAX));
        assert_eq!(parse_units("-9223372036854775807", 0), Ok(-i64::MAX));
        assert_eq!(parse_units("92233720368.54775808", 8), Err("out of range"));
        assert_eq!(parse_rounded("45100.15", 1), Some(451_002));
        assert_eq!(parse_rounded("-0.275", 2), Some(-28));
    }
}

//! Polymarket market-channel frame -> events -> normalized records.
//!
//! A text frame is a JSON object, a JSON array of objects, or a bare control
//! word (`PONG`, `INVALID OPERATION`, `NO NEW ASSETS`). Objects are routed by
//! `event_type`; an object with `bids`/`asks` and no `event_type` is a `book`.
//! Every number is a string; prices are decimals of 1 and sizes decimals,
//! both read exactly into 1e-6 units. Token (asset) ids are kept as strings:
//! they exceed 64 bits.
//!
//! Mapping (docs/venues/polymarket.md):
//! - `book` -> bookSnapshot: ticker = asset id, marketId = condition id,
//!   `yes` = the token's bids, `no` = its asks on the token's own price scale
//!   (`useYesPrice` set), both in the venue's order (worst first).
//! - `price_change` item -> bookDelta: side yes = BUY (bid), no = SELL (ask),
//!   on the token's scale; the venue sends the level's new absolute size, the
//!   normalizer's book turns it into `deltaE6` (see `super::state`).
//! - `last_trade_price` -> trade (side buy = the taker bought the token).
//! - `best_bid_ask` -> ticker (yesBid/yesAsk are the token's best bid/ask).
//! - `tick_size_change` -> lifecycle metadataUpdated (metadataJson holds the ticks).
//! - `new_market` -> lifecycle created, `market_resolved` -> lifecycle
//!   determined, both keyed by condition id, metadataJson = the event verbatim.

use super::messages::{read_event, Event, List, WireChange, WireLevel};
use crate::fixed;
use crate::scalar::Scalar;
use crate::time;
use crate::venues::kalshi::parse::{FieldError, Problem};
use serde_json::value::RawValue;
use std::borrow::Cow;

/// The kind of one event (or of a control frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    Book,
    PriceChange,
    LastTradePrice,
    TickSizeChange,
    BestBidAsk,
    NewMarket,
    MarketResolved,
    /// The text `PONG`: the answer to the client's `PING`.
    Pong,
    /// Another bare control word (`INVALID OPERATION`, `NO NEW ASSETS`, ...).
    Control,
    /// An empty array: a subscription to unknown or closed tokens.
    Empty,
    /// A JSON object whose `event_type` is missing or not known to this version.
    Unknown,
    /// Not JSON, or JSON that is neither an object nor an array of objects.
    Malformed,
}

impl EventKind {
    pub const ALL: [EventKind; 12] = [
        EventKind::Book,
        EventKind::PriceChange,
        EventKind::LastTradePrice,
        EventKind::TickSizeChange,
        EventKind::BestBidAsk,
        EventKind::NewMarket,
        EventKind::MarketResolved,
        EventKind::Pong,
        EventKind::Control,
        EventKind::Empty,
        EventKind::Unknown,
        EventKind::Malformed,
    ];

    /// The venue's name for the type, or ssmd's name for the others.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::Book => "book",
            EventKind::PriceChange => "price_change",
            EventKind::LastTradePrice => "last_trade_price",
            EventKind::TickSizeChange => "tick_size_change",
            EventKind::BestBidAsk => "best_bid_ask",
            EventKind::NewMarket => "new_market",
            EventKind::MarketResolved => "market_resolved",
            EventKind::Pong => "pong",
            EventKind::Control => "control",
            EventKind::Empty => "empty",
            EventKind::Unknown => "unknown",
            EventKind::Malformed => "malformed",
        }
    }

    fn from_type(text: &str) -> EventKind {
        EventKind::ALL[..7]
            .iter()
            .copied()
            .find(|k| k.name() == text)
            .unwrap_or(EventKind::Unknown)
    }

    /// True for events that carry market data.
    pub fn is_data(self) -> bool {
        EventKind::ALL[..7].contains(&self)
    }
}

/// One level with the strings the venue sent (kept for the book hash).
#[derive(Debug, Clone, PartialEq)]
pub struct RawLevel<'a> {
    pub price: Cow<'a, str>,
    pub size: Cow<'a, str>,
    pub price_e6: Option<i64>,
    pub size_e6: Option<i64>,
}

/// A `book` event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BookEvent<'a> {
    pub asset_id: Option<Cow<'a, str>>,
    pub market: Option<Cow<'a, str>>,
    pub timestamp: Option<Cow<'a, str>>,
    pub hash: Option<Cow<'a, str>>,
    pub tick_size: Option<Cow<'a, str>>,
    pub last_trade_price: Option<Cow<'a, str>>,
    pub bids: Vec<RawLevel<'a>>,
    pub asks: Vec<RawLevel<'a>>,
    /// A level could not be read: the book is not usable.
    pub broken: bool,
}

/// One level change of a `price_change` event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Change<'a> {
    pub asset_id: Option<Cow<'a, str>>,
    /// true: a bid (BUY); false: an ask (SELL); None: unreadable.
    pub bid: Option<bool>,
    pub price_e6: Option<i64>,
    /// The level's new absolute size.
    pub size_e6: Option<i64>,
    /// The token's best bid and ask after the change, when sent.
    pub best_bid_e6: Option<i64>,
    pub best_ask_e6: Option<i64>,
}

/// A `last_trade_price` event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TradeEvent<'a> {
    pub asset_id: Option<Cow<'a, str>>,
    pub price_e6: Option<i64>,
    pub size_e6: Option<i64>,
    /// true: the taker bought the token.
    pub buy: Option<bool>,
    /// The price as sent.
    pub price_text: Option<Cow<'a, str>>,
}

/// What one event says, with the fields the normalizer needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Body<'a> {
    Book(BookEvent<'a>),
    PriceChange(Vec<Change<'a>>),
    Trade(TradeEvent<'a>),
    TickSize {
        asset_id: Option<Cow<'a, str>>,
        old: Option<Cow<'a, str>>,
        new: Option<Cow<'a, str>>,
    },
    BestBidAsk {
        asset_id: Option<Cow<'a, str>>,
        bid_e6: Option<i64>,
        ask_e6: Option<i64>,
    },
    /// new_market (created) or market_resolved (determined).
    Market {
        created: bool,
        title: Option<Cow<'a, str>>,
        result: Option<Cow<'a, str>>,
        json: &'a str,
    },
    None,
}

/// One parsed event.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed<'a> {
    pub kind: EventKind,
    /// The event's own `event_type` (for unknown types), or the control word.
    pub type_text: Option<Cow<'a, str>>,
    pub market: Option<Cow<'a, str>>,
    /// Exchange time in Unix ns; 0 when absent.
    pub exchange_ts: u64,
    pub body: Body<'a>,
    pub field_errors: Vec<FieldError>,
    /// Why the frame is malformed (kind Malformed only).
    pub malformed: Option<String>,
}

impl<'a> Parsed<'a> {
    fn bare(kind: EventKind, type_text: Option<Cow<'a, str>>) -> Parsed<'a> {
        Parsed {
            kind,
            type_text,
            market: None,
            exchange_ts: 0,
            body: Body::None,
            field_errors: Vec::new(),
            malformed: None,
        }
    }

    fn malformed(reason: String) -> Parsed<'a> {
        let mut p = Parsed::bare(EventKind::Malformed, None);
        p.malformed = Some(reason);
        p
    }
}

/// Parses one frame into its events (one for an object or a control word,
/// one per element for an array, one `Empty` for `[]`). Never panics.
pub fn parse_frame(frame: &[u8]) -> Vec<Parsed<'_>> {
    let mut out = Vec::new();
    parse_frame_into(frame, &mut out);
    out
}

/// `parse_frame` into `out` (cleared first), so that a batch reuses one vector.
pub fn parse_frame_into<'f>(frame: &'f [u8], out: &mut Vec<Parsed<'f>>) {
    out.clear();
    let text = match std::str::from_utf8(frame) {
        Ok(text) => text,
        Err(e) => return out.push(Parsed::malformed(format!("not UTF-8 ({e})"))),
    };
    let trimmed = text.trim();
    match trimmed.as_bytes().first() {
        Some(b'{') => out.push(parse_object(trimmed)),
        Some(b'[') => match serde_json::from_str::<Vec<&RawValue>>(trimmed) {
            Ok(items) if items.is_empty() => out.push(Parsed::bare(EventKind::Empty, None)),
            Ok(items) => out.extend(items.into_iter().map(|raw| {
                let inner = raw.get();
                if inner.starts_with('{') {
                    parse_object(inner)
                } else {
                    Parsed::malformed("an array element is not an object".to_owned())
                }
            })),
            Err(e) => out.push(Parsed::malformed(format!("invalid JSON: {e}"))),
        },
        _ if is_control_word(trimmed) => {
            let kind = if trimmed == "PONG" {
                EventKind::Pong
            } else {
                EventKind::Control
            };
            out.push(Parsed::bare(kind, Some(Cow::Borrowed(trimmed))))
        }
        _ => out.push(Parsed::malformed(
            "neither a JSON object, an array nor a control word".to_owned(),
        )),
    }
}

/// A bare upper-case word or phrase such as `PONG` or `INVALID OPERATION`.
fn is_control_word(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b == b' ' || b == b'_')
}

fn parse_object(text: &str) -> Parsed<'_> {
    let mut event = Event::default();
    if let Err(e) = read_event(text, &mut event) {
        return Parsed::malformed(format!("invalid JSON: {e}"));
    }
    let mut f = Fields { errors: Vec::new() };
    let (kind, type_text) = match &event.event_type {
        Scalar::Str(t) => (EventKind::from_type(t), Some(t.clone())),
        Scalar::Missing | Scalar::Null
            if !matches!(event.bids, List::Missing) || !matches!(event.asks, List::Missing) =>
        {
            (EventKind::Book, None)
        }
        _ => (EventKind::Unknown, None),
    };
    let exchange_ts = if kind.is_data() {
        f.timestamp(&event.timestamp)
    } else {
        0
    };
    let market = f.opt_text(&event.market);
    let body = match kind {
        EventKind::Book => Body::Book(f.book(&event)),
        EventKind::PriceChange => Body::PriceChange(f.price_change(&event)),
        EventKind::LastTradePrice => Body::Trade(TradeEvent {
            asset_id: f.text("asset_id", &event.asset_id),
            price_e6: f.decimal("price", &event.price),
            size_e6: f.decimal("size", &event.size),
            buy: f.side("side", &event.side),
            price_text: match &event.price {
                Scalar::Str(s) => Some(s.clone()),
                _ => None,
            },
        }),
        EventKind::TickSizeChange => Body::TickSize {
            asset_id: f.text("asset_id", &event.asset_id),
            old: f.text("old_tick_size", &event.old_tick_size),
            new: f.text("new_tick_size", &event.new_tick_size),
        },
        EventKind::BestBidAsk => Body::BestBidAsk {
            asset_id: f.text("asset_id", &event.asset_id),
            bid_e6: f.decimal_or_empty("best_bid", &event.best_bid),
            ask_e6: f.decimal_or_empty("best_ask", &event.best_ask),
        },
        EventKind::NewMarket => Body::Market {
            created: true,
            title: f.opt_text(&event.question),
            result: None,
            json: text,
        },
        EventKind::MarketResolved => Body::Market {
            created: false,
            title: f.opt_text(&event.question),
            result: f.opt_text(&event.winning_outcome),
            json: text,
        },
        _ => Body::None,
    };
    if kind.is_data() && market.is_none() && kind != EventKind::NewMarket {
        f.error("market", Problem::Missing);
    }
    Parsed {
        kind,
        type_text,
        market,
        exchange_ts,
        body,
        field_errors: f.errors,
        malformed: None,
    }
}

struct Fields {
    errors: Vec<FieldError>,
}

impl Fields {
    fn error(&mut self, field: &'static str, problem: Problem) {
        self.errors.push(FieldError { field, problem });
    }

    fn opt_text<'a>(&mut self, v: &Scalar<'a>) -> Option<Cow<'a, str>> {
        match v {
            Scalar::Str(s) if !s.is_empty() => Some(s.clone()),
            _ => None,
        }
    }

    /// A required non-empty string.
    fn text<'a>(&mut self, field: &'static str, v: &Scalar<'a>) -> Option<Cow<'a, str>> {
        match v {
            Scalar::Str(s) if !s.is_empty() => Some(s.clone()),
            Scalar::Str(_) => {
                self.error(field, Problem::Invalid("empty"));
                None
            }
            Scalar::Missing | Scalar::Null => {
                self.error(field, Problem::Missing);
                None
            }
            other => {
                self.error(field, Problem::WrongType(other.type_name()));
                None
            }
        }
    }

    /// A decimal string (numbers are accepted too: they are exact when integral
    /// and read through their shortest decimal text otherwise).
    fn decimal(&mut self, field: &'static str, v: &Scalar<'_>) -> Option<i64> {
        let parsed = match v {
            Scalar::Str(s) => fixed::parse_e6(s.trim()),
            Scalar::I64(i) => fixed::int_to_e6(*i, 1),
            Scalar::U64(u) => i64::try_from(*u)
                .map_err(|_| fixed::NumberError::Overflow)
                .and_then(|i| fixed::int_to_e6(i, 1)),
            Scalar::F64(x) => fixed::parse_e6(&x.to_string()),
            Scalar::Missing | Scalar::Null => {
                self.error(field, Problem::Missing);
                return None;
            }
            other => {
                self.error(field, Problem::WrongType(other.type_name()));
                return None;
            }
        };
        match parsed {
            Ok(v) => Some(v),
            Err(e) => {
                self.error(field, Problem::Invalid(e.as_str()));
                None
            }
        }
    }

    /// A decimal where `""` (or absence) means "no such price" without a problem.
    fn decimal_or_empty(&mut self, field: &'static str, v: &Scalar<'_>) -> Option<i64> {
        match v {
            Scalar::Missing | Scalar::Null => None,
            Scalar::Str(s) if s.is_empty() => None,
            other => self.decimal(field, other),
        }
    }

    fn side(&mut self, field: &'static str, v: &Scalar<'_>) -> Option<bool> {
        match v {
            Scalar::Str(s) if s.eq_ignore_ascii_case("BUY") => Some(true),
            Scalar::Str(s) if s.eq_ignore_ascii_case("SELL") => Some(false),
            Scalar::Str(_) => {
                self.error(field, Problem::Invalid("not BUY or SELL"));
                None
            }
            Scalar::Missing | Scalar::Null => {
                self.error(field, Problem::Missing);
                None
            }
            other => {
                self.error(field, Problem::WrongType(other.type_name()));
                None
            }
        }
    }

    /// Unix milliseconds as a decimal string (or an integer).
    fn timestamp(&mut self, v: &Scalar<'_>) -> u64 {
        let ms = match v {
            Scalar::Str(s) => s.trim().parse::<i64>().ok(),
            Scalar::I64(i) => Some(*i),
            Scalar::U64(u) => i64::try_from(*u).ok(),
            Scalar::Missing | Scalar::Null => {
                self.error("timestamp", Problem::Missing);
                return 0;
            }
            other => {
                self.error("timestamp", Problem::WrongType(other.type_name()));
                return 0;
            }
        };
        match ms.and_then(time::ms_to_ns) {
            Some(ns) => ns,
            None => {
                self.error("timestamp", Problem::Invalid("not Unix milliseconds"));
                0
            }
        }
    }

    fn levels<'a>(
        &mut self,
        field: &'static str,
        list: &List<WireLevel<'a>>,
        broken: &mut bool,
    ) -> Vec<RawLevel<'a>> {
        let items = match list {
            List::Items(items) => items,
            List::Missing | List::Null => return Vec::new(),
            List::NotList => {
                self.error(field, Problem::WrongType("not a list"));
                *broken = true;
                return Vec::new();
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            let Some(level) = item else {
                self.error(field, Problem::Invalid("a level is not an object"));
                *broken = true;
                continue;
            };
            let (Scalar::Str(price), Scalar::Str(size)) = (&level.price, &level.size) else {
                self.error(
                    field,
                    Problem::Invalid("a level without price and size strings"),
                );
                *broken = true;
                continue;
            };
            let price_e6 = self.decimal(field, &level.price);
            let size_e6 = self.decimal(field, &level.size);
            *broken |= price_e6.is_none() || size_e6.is_none();
            out.push(RawLevel {
                price: price.clone(),
                size: size.clone(),
                price_e6,
                size_e6,
            });
        }
        out
    }

    fn book<'a>(&mut self, e: &Event<'a>) -> BookEvent<'a> {
        let mut broken = false;
        // Older documentation names the sides buys/sells.
        let (bids, asks) = match (&e.bids, &e.asks) {
            (List::Missing, List::Missing) => (&e.buys, &e.sells),
            _ => (&e.bids, &e.asks),
        };
        let bids = self.levels("bids", bids, &mut broken);
        let asks = self.levels("asks", asks, &mut broken);
        BookEvent {
            asset_id: self.text("asset_id", &e.asset_id),
            market: self.opt_text(&e.market),
            timestamp: match &e.timestamp {
                Scalar::Str(s) => Some(s.clone()),
                _ => None,
            },
            hash: self.opt_text(&e.hash),
            tick_size: self.opt_text(&e.tick_size),
            last_trade_price: match &e.last_trade_price {
                Scalar::Str(s) => Some(s.clone()),
                _ => None,
            },
            bids,
            asks,
            broken,
        }
    }

    fn change<'a>(&mut self, c: &WireChange<'a>, asset: &Scalar<'a>) -> Change<'a> {
        let asset_id = match &c.asset_id {
            Scalar::Missing | Scalar::Null => asset,
            other => other,
        };
        let best_bid_e6 = self.decimal_or_empty("best_bid", &c.best_bid);
        let best_ask_e6 = self.decimal_or_empty("best_ask", &c.best_ask);
        Change {
            asset_id: self.text("asset_id", asset_id),
            bid: self.side("side", &c.side),
            price_e6: self.decimal("price", &c.price),
            size_e6: self.decimal("size", &c.size),
            best_bid_e6,
            best_ask_e6,
        }
    }

    fn price_change<'a>(&mut self, e: &Event<'a>) -> Vec<Change<'a>> {
        // Current schema: price_changes[] with an asset id per item; legacy
        // (before 2025-09-15): changes[] under a top-level asset id.
        let list = match (&e.price_changes, &e.changes) {
            (List::Missing, List::Items(_)) => &e.changes,
            _ => &e.price_changes,
        };
        let items = match list {
            List::Items(items) => items,
            List::NotList => {
                self.error("price_changes", Problem::WrongType("not a list"));
                return Vec::new();
            }
            List::Missing | List::Null => {
                self.error("price_changes", Problem::Missing);
                return Vec::new();
            }
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Some(c) => out.push(self.change(c, &e.asset_id)),
                None => self.error(
                    "price_changes",
                    Problem::Invalid("an item is not an object"),
                ),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_of_every_shape_are_classified() {
        let kinds = |f: &str| -> Vec<EventKind> {
            parse_frame(f.as_bytes()).iter().map(|p| p.kind).collect()
        };
        assert_eq!(kinds("PONG"), vec![EventKind::Pong]);
        assert_eq!(kinds("INVALID OPERATION"), vec![EventKind::Control]);
        assert_eq!(kinds("NO NEW ASSETS"), vec![EventKind::Control]);
        assert_eq!(kinds("[]"), vec![EventKind::Empty]);
        assert_eq!(kinds("{\"event_type\":\"book\",\"asset_id\":\"1\",\"market\":\"0x1\",\"timestamp\":\"5\",\"bids\":[],\"asks\":[]"), vec![EventKind::Malformed]);
        assert_eq!(kinds("pong?"), vec![EventKind::Malformed]);
        assert_eq!(kinds("[1]"), vec![EventKind::Malformed]);
        assert_eq!(
            kinds("{\"event_type\":\"shiny\"}"),
            vec![EventKind::Unknown]
        );
        assert_eq!(kinds("{\"x\":1}"), vec![EventKind::Unknown]);
        assert_eq!(kinds(&"\u{1}".repeat(3)), vec![EventKind::Malformed]);
        // A book without event_type is still a book.
        assert_eq!(
            kinds("[{\"asset_id\":\"1\",\"market\":\"0x1\",\"timestamp\":\"5\",\"bids\":[],\"asks\":[]},{\"event_type\":\"last_trade_price\",\"asset_id\":\"1\",\"market\":\"0x1\",\"price\":\"0.5\",\"size\":\"1\",\"side\":\"BUY\",\"timestamp\":\"5\"}]"),
            vec![EventKind::Book, EventKind::LastTradePrice]
        );
        assert!(parse_frame(&[0xff, 0xfe])
            .iter()
            .all(|p| p.kind == EventKind::Malformed));
    }

    #[test]
    fn book_keeps_strings_and_reads_exact_decimals() {
        let f = r#"{"event_type":"book","market":"0xabc","asset_id":"71321045679252212594626385532706912750332728571942532289631379312455583992563","timestamp":"1790000000000","hash":"00ff","tick_size":"0.01","last_trade_price":"","bids":[{"price":".48","size":"219.217767"},{"price":"0.50","size":"1"}],"asks":[{"price":"0.140","size":"3"}]}"#;
        let parsed = parse_frame(f.as_bytes());
        let Body::Book(book) = &parsed[0].body else {
            panic!("not a book: {parsed:?}");
        };
        assert!(
            parsed[0].field_errors.is_empty(),
            "{:?}",
            parsed[0].field_errors
        );
        assert_eq!(parsed[0].exchange_ts, 1_790_000_000_000_000_000);
        assert_eq!(book.asset_id.as_deref().map(str::len), Some(77));
        assert_eq!(book.bids[0].price, ".48");
        assert_eq!(book.bids[0].price_e6, Some(480_000));
        assert_eq!(book.bids[0].size_e6, Some(219_217_767));
        assert_eq!(book.asks[0].price_e6, Some(140_000));
        assert_eq!(book.last_trade_price.as_deref(), Some(""));
        assert!(!book.broken);
    }

    #[test]
    fn price_change_reads_both_schemas() {
        let current = r#"{"event_type":"price_change","market":"0x1","timestamp":"1790000000123","price_changes":[{"asset_id":"11","price":"0.44","size":"60","side":"BUY","hash":"h","best_bid":"0.44","best_ask":"0.45"},{"asset_id":"22","price":"0.56","size":"0","side":"SELL","hash":"h","best_bid":"0.55","best_ask":"0.57"}]}"#;
        let parsed = parse_frame(current.as_bytes());
        let Body::PriceChange(changes) = &parsed[0].body else {
            panic!()
        };
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].asset_id.as_deref(), Some("11"));
        assert_eq!(changes[0].bid, Some(true));
        assert_eq!(changes[1].bid, Some(false));
        assert_eq!(changes[1].size_e6, Some(0));
        assert_eq!(changes[0].best_ask_e6, Some(450_000));
        let legacy = r#"{"event_type":"price_change","asset_id":"11","market":"0x1","hash":"h","timestamp":"1","changes":[{"price":"0.4","side":"SELL","size":"5"}]}"#;
        let parsed = parse_frame(legacy.as_bytes());
        let Body::PriceChange(changes) = &parsed[0].body else {
            panic!()
        };
        assert_eq!(changes[0].asset_id.as_deref(), Some("11"));
        assert_eq!(changes[0].best_bid_e6, None);
    }

    #[test]
    fn bad_fields_are_nulled_and_named() {
        let f = r#"{"event_type":"last_trade_price","market":"0x1","asset_id":"1","price":"abc","size":7,"side":"HOLD","timestamp":"x"}"#;
        let p = &parse_frame(f.as_bytes())[0];
        let Body::Trade(t) = &p.body else { panic!() };
        assert_eq!(t.price_e6, None);
        assert_eq!(t.size_e6, Some(7_000_000));
        assert_eq!(t.buy, None);
        let fields: Vec<&str> = p.field_errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, vec!["timestamp", "price", "side"]);
    }
}

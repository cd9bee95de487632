//! Kalshi frame -> normalized record, in every format era.
//!
//! Rules (docs/connector.md):
//! - Routing relies only on `type` and the ticker.
//! - A missing or wrongly typed field nulls that field and adds a
//!   `FieldError`; the rest of the record is kept. Only a data frame without a
//!   readable ticker yields no record (it cannot be attributed).
//! - Decimal strings are exact; numbers where Kalshi documents strings are
//!   accepted (they have been seen on the wire), strings where it documents
//!   integers are wrong types.
//! - When eras overlap (era B sends cents and dollars), the exact string wins.

use super::messages::{read_frame, AdditionalMetadata, Envelope, Msg, MsgShape};
use crate::fixed::{self, NumberError};
use crate::model::{
    Body, BookDelta, BookSnapshot, EventLifecycle, Level, LifecycleEvent, MarketLifecycle, Outcome,
    Record, Ticker, Trade,
};
use crate::scalar::{Levels, ObjectOr, Scalar};
use crate::time;
use std::borrow::Cow;
use std::fmt;

/// The kind of a frame, from its `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameKind {
    OrderbookSnapshot,
    OrderbookDelta,
    Trade,
    Ticker,
    MarketLifecycle,
    EventLifecycle,
    Subscribed,
    Ok,
    Unsubscribed,
    Error,
    /// Valid JSON object whose `type` is missing or not known to this version.
    Unknown,
    /// Not a JSON object.
    Malformed,
}

impl FrameKind {
    pub const ALL: [FrameKind; 12] = [
        FrameKind::OrderbookSnapshot,
        FrameKind::OrderbookDelta,
        FrameKind::Trade,
        FrameKind::Ticker,
        FrameKind::MarketLifecycle,
        FrameKind::EventLifecycle,
        FrameKind::Subscribed,
        FrameKind::Ok,
        FrameKind::Unsubscribed,
        FrameKind::Error,
        FrameKind::Unknown,
        FrameKind::Malformed,
    ];

    /// Kalshi's name for the type, or "unknown" / "malformed".
    pub fn name(self) -> &'static str {
        match self {
            FrameKind::OrderbookSnapshot => "orderbook_snapshot",
            FrameKind::OrderbookDelta => "orderbook_delta",
            FrameKind::Trade => "trade",
            FrameKind::Ticker => "ticker",
            FrameKind::MarketLifecycle => "market_lifecycle_v2",
            FrameKind::EventLifecycle => "event_lifecycle",
            FrameKind::Subscribed => "subscribed",
            FrameKind::Ok => "ok",
            FrameKind::Unsubscribed => "unsubscribed",
            FrameKind::Error => "error",
            FrameKind::Unknown => "unknown",
            FrameKind::Malformed => "malformed",
        }
    }

    fn from_type(text: &str) -> FrameKind {
        FrameKind::ALL[..10]
            .iter()
            .copied()
            .find(|k| k.name() == text)
            .unwrap_or(FrameKind::Unknown)
    }

    /// True for frames that carry market data (and so a record).
    pub fn is_data(self) -> bool {
        matches!(
            self,
            FrameKind::OrderbookSnapshot
                | FrameKind::OrderbookDelta
                | FrameKind::Trade
                | FrameKind::Ticker
                | FrameKind::MarketLifecycle
                | FrameKind::EventLifecycle
        )
    }
}

/// What was wrong with one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// A field the record needs was absent or null.
    Missing,
    /// The JSON type was not one this field can hold (the type found).
    WrongType(&'static str),
    /// The value had the right type but could not be used.
    Invalid(&'static str),
}

/// One unusable field of a frame: it was nulled in the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldError {
    /// Kalshi's field name ("count_fp", "msg.market_ticker" for nesting is not used).
    pub field: &'static str,
    pub problem: Problem,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.problem {
            Problem::Missing => write!(f, "{}: missing", self.field),
            Problem::WrongType(found) => write!(f, "{}: wrong type ({found})", self.field),
            Problem::Invalid(why) => write!(f, "{}: {why}", self.field),
        }
    }
}

/// A data frame's place in its subscription's sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqPosition {
    /// The data kind the frame's `type` names (also when the frame is malformed).
    pub kind: FrameKind,
    pub sid: u32,
    pub seq: u64,
}

/// The outcome of parsing one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed<'a> {
    pub kind: FrameKind,
    /// The frame's own `type` when it is a string (for unknown types).
    pub type_text: Option<Cow<'a, str>>,
    pub sid: Option<u32>,
    pub seq: Option<u64>,
    /// The command id echoed by control frames.
    pub cmd_id: Option<u64>,
    /// `error` frames: Kalshi's error code.
    pub error_code: Option<i64>,
    /// The normalized record of a data frame.
    pub record: Option<Record<'a>>,
    pub field_errors: Vec<FieldError>,
    /// Why the frame is malformed (kind Malformed only).
    pub malformed: Option<String>,
    /// The (sid, seq) a data frame takes, whether or not it yields a record: a
    /// frame whose market or body cannot be read still took its seq, so the
    /// next frame of the sid is not a gap. Also set for a malformed frame whose
    /// `type`, `sid` and `seq` were read whole before the text broke.
    pub position: Option<SeqPosition>,
}

impl<'a> Parsed<'a> {
    fn malformed(reason: String, envelope: &Envelope<'_>) -> Parsed<'a> {
        Parsed {
            kind: FrameKind::Malformed,
            type_text: None,
            sid: None,
            seq: None,
            cmd_id: None,
            error_code: None,
            record: None,
            field_errors: Vec::new(),
            malformed: Some(reason),
            position: match &envelope.kind {
                Scalar::Str(t) => position(FrameKind::from_type(t), &envelope.sid, &envelope.seq),
                _ => None,
            },
        }
    }
}

/// A data frame's place in its sid's sequence, when its sid and seq are
/// positive integers that fit (seq 0 is no seq).
fn position(kind: FrameKind, sid: &Scalar<'_>, seq: &Scalar<'_>) -> Option<SeqPosition> {
    let (Scalar::U64(sid), Scalar::U64(seq)) = (sid, seq) else {
        return None;
    };
    let sid = u32::try_from(*sid).ok()?;
    (kind.is_data() && *seq > 0).then_some(SeqPosition {
        kind,
        sid,
        seq: *seq,
    })
}

/// Parses one Kalshi WebSocket frame. Never panics, whatever the bytes.
pub fn parse_frame(frame: &[u8], receive_ts: u64, conn_id: u64) -> Parsed<'_> {
    // One UTF-8 check over the whole frame is cheaper than one per string.
    let mut envelope = Envelope::default();
    let text = match std::str::from_utf8(frame) {
        Ok(text) => text,
        Err(e) => return Parsed::malformed(format!("invalid JSON: not UTF-8 ({e})"), &envelope),
    };
    let mut msg = Msg::default();
    match read_frame(text, &mut envelope, &mut msg) {
        Ok(true) => {}
        Ok(false) => return Parsed::malformed("not a JSON object".to_owned(), &envelope),
        Err(e) => return Parsed::malformed(format!("invalid JSON: {e}"), &envelope),
    }
    let mut errors = Vec::new();
    let mut f = Fields {
        errors: &mut errors,
    };
    let (kind, type_text) = match &envelope.kind {
        Scalar::Str(t) => (FrameKind::from_type(t), Some(t.clone())),
        _ => (FrameKind::Unknown, None),
    };
    let sid = f
        .uint("sid", &envelope.sid)
        .and_then(|v| u32::try_from(v).ok());
    let seq = f.uint("seq", &envelope.seq);
    let cmd_id = f.uint("id", &envelope.id);

    let msg = match envelope.msg {
        MsgShape::Object => Some(msg),
        MsgShape::NotObject if kind.is_data() => {
            f.error("msg", Problem::WrongType("not an object"));
            None
        }
        MsgShape::Missing if kind.is_data() => {
            f.error("msg", Problem::Missing);
            None
        }
        _ => None,
    };

    let mut error_code = None;
    let mut exchange_ts = 0;
    let body = match (&msg, kind) {
        (Some(m), FrameKind::Trade) => Some(Body::Trade(f.trade(m))),
        (Some(m), FrameKind::Ticker) => Some(Body::Ticker(f.ticker(m))),
        (Some(m), FrameKind::OrderbookSnapshot) => Some(Body::BookSnapshot(f.snapshot(m))),
        (Some(m), FrameKind::OrderbookDelta) => Some(Body::BookDelta(f.delta(m))),
        (Some(m), FrameKind::MarketLifecycle) => Some(Body::Lifecycle(f.lifecycle(m))),
        (Some(m), FrameKind::EventLifecycle) => Some(Body::EventLifecycle(f.event_lifecycle(m))),
        (Some(m), FrameKind::Error) => {
            error_code = m.code.as_i64();
            None
        }
        _ => None,
    };
    if let Some(m) = &msg {
        if kind.is_data() {
            exchange_ts = f.exchange_ts(m);
        }
    }
    // A record nobody can attribute to a market is not a record; the raw frame keeps it.
    let record = body.filter(|b| b.ticker().is_some()).map(|body| Record {
        receive_ts,
        exchange_ts,
        conn_id,
        sid: sid.unwrap_or(0),
        seq: seq.unwrap_or(0),
        body,
    });
    Parsed {
        kind,
        type_text,
        sid,
        seq,
        cmd_id,
        error_code,
        record,
        field_errors: errors,
        malformed: None,
        position: position(kind, &envelope.sid, &envelope.seq),
    }
}

/// How a numeric field is written on the wire.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// Dollar string ("0.4500"); JSON numbers accepted as dollars.
    Dollars,
    /// Integer cents (eras A and B).
    Cents,
    /// Fixed-point contract string ("10.00"); JSON numbers accepted.
    Contracts,
    /// Integer contracts (eras A and B).
    IntContracts,
}

/// Allowed range of a value in 1e-6 units.
#[derive(Clone, Copy)]
enum Range {
    /// A price of a binary contract: 0 to 1 dollar.
    Price,
    /// Sizes, volumes, counts: never negative.
    NonNegative,
    /// Signed changes.
    Any,
}

fn number_problem(e: NumberError) -> Problem {
    Problem::Invalid(e.as_str())
}

/// Reads fields and collects what was wrong with them.
struct Fields<'e> {
    errors: &'e mut Vec<FieldError>,
}

impl Fields<'_> {
    fn error(&mut self, field: &'static str, problem: Problem) {
        self.errors.push(FieldError { field, problem });
    }

    fn text<'a>(
        &mut self,
        field: &'static str,
        v: &Scalar<'a>,
        required: bool,
    ) -> Option<Cow<'a, str>> {
        match v {
            Scalar::Str(s) if !s.is_empty() => Some(s.clone()),
            Scalar::Str(_) | Scalar::Missing | Scalar::Null => {
                if required {
                    self.error(field, Problem::Missing);
                }
                None
            }
            other => {
                self.error(field, Problem::WrongType(other.type_name()));
                None
            }
        }
    }

    fn uint(&mut self, field: &'static str, v: &Scalar<'_>) -> Option<u64> {
        match v {
            Scalar::Missing | Scalar::Null => None,
            Scalar::U64(n) => Some(*n),
            Scalar::I64(_) => {
                self.error(field, Problem::Invalid("negative"));
                None
            }
            other => {
                self.error(field, Problem::WrongType(other.type_name()));
                None
            }
        }
    }

    fn int(&mut self, field: &'static str, v: &Scalar<'_>) -> Option<i64> {
        match v {
            Scalar::Missing | Scalar::Null => None,
            Scalar::I64(n) => Some(*n),
            Scalar::U64(n) => i64::try_from(*n).ok().or_else(|| {
                self.error(field, Problem::Invalid("out of range"));
                None
            }),
            other => {
                self.error(field, Problem::WrongType(other.type_name()));
                None
            }
        }
    }

    fn boolean(&mut self, field: &'static str, v: &Scalar<'_>) -> bool {
        match v {
            Scalar::Bool(b) => *b,
            Scalar::Missing | Scalar::Null => false,
            other => {
                self.error(field, Problem::WrongType(other.type_name()));
                false
            }
        }
    }

    /// One numeric value in 1e-6 units; `Ok(None)` when absent or `""`.
    fn value_e6(v: &Scalar<'_>, unit: Unit) -> Result<Option<i64>, Problem> {
        let converted = match (v, unit) {
            (Scalar::Missing | Scalar::Null, _) => return Ok(None),
            (Scalar::Str(s), Unit::Dollars | Unit::Contracts) => {
                if s.is_empty() {
                    return Ok(None);
                }
                fixed::parse_e6(s)
            }
            (Scalar::I64(n), Unit::Dollars | Unit::Contracts | Unit::IntContracts) => {
                fixed::int_to_e6(*n, 1)
            }
            (Scalar::U64(n), Unit::Dollars | Unit::Contracts | Unit::IntContracts) => {
                i64::try_from(*n)
                    .map_err(|_| NumberError::Overflow)
                    .and_then(|n| fixed::int_to_e6(n, 1))
            }
            (Scalar::I64(n), Unit::Cents) => fixed::int_to_e6(*n, 100),
            (Scalar::U64(n), Unit::Cents) => i64::try_from(*n)
                .map_err(|_| NumberError::Overflow)
                .and_then(|n| fixed::int_to_e6(n, 100)),
            (Scalar::F64(x), Unit::Cents) => fixed::f64_to_e6(*x / 100.0),
            (Scalar::F64(x), _) => fixed::f64_to_e6(*x),
            (other, _) => return Err(Problem::WrongType(other.type_name())),
        };
        converted.map(Some).map_err(number_problem)
    }

    fn checked(
        &mut self,
        field: &'static str,
        v: &Scalar<'_>,
        unit: Unit,
        range: Range,
    ) -> Option<i64> {
        match Self::value_e6(v, unit) {
            Ok(Some(x)) => {
                let ok = match range {
                    Range::Price => (0..=fixed::SCALE).contains(&x),
                    Range::NonNegative => x >= 0,
                    Range::Any => true,
                };
                if ok {
                    Some(x)
                } else {
                    self.error(
                        field,
                        Problem::Invalid(match range {
                            Range::Price => "price outside [0, 1]",
                            _ => "negative",
                        }),
                    );
                    None
                }
            }
            Ok(None) => None,
            Err(p) => {
                self.error(field, p);
                None
            }
        }
    }

    /// A value that has an exact field (eras B/C) and a legacy field (eras A/B).
    /// The exact field wins when it is present; an absent required value is an error.
    fn dual(
        &mut self,
        exact: (&'static str, &Scalar<'_>, Unit),
        legacy: (&'static str, &Scalar<'_>, Unit),
        range: Range,
        required: bool,
    ) -> Option<i64> {
        let value = if exact.1.is_present() {
            self.checked(exact.0, exact.1, exact.2, range)
        } else if legacy.1.is_present() {
            self.checked(legacy.0, legacy.1, legacy.2, range)
        } else {
            None
        };
        if value.is_none() && required && !exact.1.is_present() && !legacy.1.is_present() {
            self.error(exact.0, Problem::Missing);
        }
        value
    }

    fn outcome(&mut self, field: &'static str, v: &Scalar<'_>) -> Outcome {
        match v {
            Scalar::Str(s) => match s.as_ref() {
                "yes" | "bid" => Outcome::Yes,
                "no" | "ask" => Outcome::No,
                _ => {
                    self.error(field, Problem::Invalid("not yes/no/bid/ask"));
                    Outcome::Unknown
                }
            },
            Scalar::Missing | Scalar::Null => Outcome::Unknown,
            other => {
                self.error(field, Problem::WrongType(other.type_name()));
                Outcome::Unknown
            }
        }
    }

    /// A timestamp field: integer (seconds, or by magnitude) or RFC 3339 text.
    fn timestamp(&mut self, field: &'static str, v: &Scalar<'_>) -> u64 {
        let ns = match v {
            Scalar::Missing | Scalar::Null => return 0,
            Scalar::Str(s) => time::rfc3339_to_ns(s),
            Scalar::I64(n) => time::int_to_ns(*n),
            Scalar::U64(n) => i64::try_from(*n).ok().and_then(time::int_to_ns),
            other => {
                self.error(field, Problem::WrongType(other.type_name()));
                return 0;
            }
        };
        ns.unwrap_or_else(|| {
            self.error(field, Problem::Invalid("not a valid time"));
            0
        })
    }

    /// The most precise exchange time present: RFC 3339 (`time`, or a string
    /// `ts`), then `ts_ms`, then integer `ts`.
    fn exchange_ts(&mut self, m: &Msg<'_>) -> u64 {
        let time_text = self.timestamp("time", &m.time);
        if time_text != 0 {
            return time_text;
        }
        let ts_is_text = matches!(m.ts, Scalar::Str(_));
        if ts_is_text {
            let t = self.timestamp("ts", &m.ts);
            if t != 0 {
                return t;
            }
        }
        let ms = match &m.ts_ms {
            Scalar::Missing | Scalar::Null => 0,
            v => match self.int("ts_ms", v) {
                Some(n) => time::ms_to_ns(n).unwrap_or_else(|| {
                    self.error("ts_ms", Problem::Invalid("not a valid time"));
                    0
                }),
                None => 0,
            },
        };
        if ms != 0 {
            return ms;
        }
        if ts_is_text {
            0
        } else {
            self.timestamp("ts", &m.ts)
        }
    }

    fn levels(
        &mut self,
        field: &'static str,
        v: &Levels<'_>,
        price_unit: Unit,
        size_unit: Unit,
    ) -> Vec<Level> {
        let entries = match v {
            Levels::List(entries) => entries,
            Levels::NotList => {
                self.error(field, Problem::WrongType("not a list"));
                return Vec::new();
            }
            Levels::Missing | Levels::Null => return Vec::new(),
        };
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            let Some((price, size)) = entry else {
                self.error(field, Problem::Invalid("level is not a [price, size] pair"));
                continue;
            };
            let price = self.checked(field, price, price_unit, Range::Price);
            let size = self.checked(field, size, size_unit, Range::NonNegative);
            match (price, size) {
                (Some(p), Some(s)) => out.push(Level {
                    price_e6: Some(p),
                    size_e6: Some(s),
                }),
                _ => self.error(field, Problem::Invalid("level dropped")),
            }
        }
        out
    }

    /// A snapshot side in whichever era's form is present (C, then B, then A).
    fn side(
        &mut self,
        fp: (&'static str, &Levels<'_>),
        dollars: (&'static str, &Levels<'_>),
        cents: (&'static str, &Levels<'_>),
    ) -> Vec<Level> {
        let present = |l: &Levels<'_>| !matches!(l, Levels::Missing | Levels::Null);
        if present(fp.1) {
            self.levels(fp.0, fp.1, Unit::Dollars, Unit::Contracts)
        } else if present(dollars.1) {
            self.levels(dollars.0, dollars.1, Unit::Dollars, Unit::IntContracts)
        } else {
            self.levels(cents.0, cents.1, Unit::Cents, Unit::IntContracts)
        }
    }

    fn trade<'a>(&mut self, m: &Msg<'a>) -> Trade<'a> {
        let taker = if m.taker_outcome_side.is_present() {
            self.outcome("taker_outcome_side", &m.taker_outcome_side)
        } else {
            self.outcome("taker_side", &m.taker_side)
        };
        Trade {
            ticker: self.text("market_ticker", &m.market_ticker, true),
            trade_id: self.text("trade_id", &m.trade_id, true),
            price_e6: self.dual(
                ("yes_price_dollars", &m.yes_price_dollars, Unit::Dollars),
                ("yes_price", &m.yes_price, Unit::Cents),
                Range::Price,
                true,
            ),
            no_price_e6: self.dual(
                ("no_price_dollars", &m.no_price_dollars, Unit::Dollars),
                ("no_price", &m.no_price, Unit::Cents),
                Range::Price,
                false,
            ),
            size_e6: self.dual(
                ("count_fp", &m.count_fp, Unit::Contracts),
                ("count", &m.count, Unit::IntContracts),
                Range::NonNegative,
                true,
            ),
            taker_outcome: taker,
            taker_book_side: self.outcome("taker_book_side", &m.taker_book_side),
            is_block_trade: self.boolean("is_block_trade", &m.is_block_trade),
        }
    }

    fn ticker<'a>(&mut self, m: &Msg<'a>) -> Ticker<'a> {
        Ticker {
            ticker: self.text("market_ticker", &m.market_ticker, true),
            market_id: self.text("market_id", &m.market_id, false),
            last_price_e6: self.dual(
                ("price_dollars", &m.price_dollars, Unit::Dollars),
                ("price", &m.price, Unit::Cents),
                Range::Price,
                false,
            ),
            yes_bid_e6: self.dual(
                ("yes_bid_dollars", &m.yes_bid_dollars, Unit::Dollars),
                ("yes_bid", &m.yes_bid, Unit::Cents),
                Range::Price,
                false,
            ),
            yes_ask_e6: self.dual(
                ("yes_ask_dollars", &m.yes_ask_dollars, Unit::Dollars),
                ("yes_ask", &m.yes_ask, Unit::Cents),
                Range::Price,
                false,
            ),
            yes_bid_size_e6: self.checked(
                "yes_bid_size_fp",
                &m.yes_bid_size_fp,
                Unit::Contracts,
                Range::NonNegative,
            ),
            yes_ask_size_e6: self.checked(
                "yes_ask_size_fp",
                &m.yes_ask_size_fp,
                Unit::Contracts,
                Range::NonNegative,
            ),
            last_trade_size_e6: self.checked(
                "last_trade_size_fp",
                &m.last_trade_size_fp,
                Unit::Contracts,
                Range::NonNegative,
            ),
            volume_e6: self.dual(
                ("volume_fp", &m.volume_fp, Unit::Contracts),
                ("volume", &m.volume, Unit::IntContracts),
                Range::NonNegative,
                false,
            ),
            open_interest_e6: self.dual(
                ("open_interest_fp", &m.open_interest_fp, Unit::Contracts),
                ("open_interest", &m.open_interest, Unit::IntContracts),
                Range::NonNegative,
                false,
            ),
            dollar_volume: self.int("dollar_volume", &m.dollar_volume),
            dollar_open_interest: self.int("dollar_open_interest", &m.dollar_open_interest),
        }
    }

    fn snapshot<'a>(&mut self, m: &Msg<'a>) -> BookSnapshot<'a> {
        BookSnapshot {
            ticker: self.text("market_ticker", &m.market_ticker, true),
            market_id: self.text("market_id", &m.market_id, false),
            yes: self.side(
                ("yes_dollars_fp", &m.yes_dollars_fp),
                ("yes_dollars", &m.yes_dollars),
                ("yes", &m.yes),
            ),
            no: self.side(
                ("no_dollars_fp", &m.no_dollars_fp),
                ("no_dollars", &m.no_dollars),
                ("no", &m.no),
            ),
            use_yes_price: false,
        }
    }

    fn delta<'a>(&mut self, m: &Msg<'a>) -> BookDelta<'a> {
        let side = self.outcome("side", &m.side);
        if side == Outcome::Unknown && !m.side.is_present() {
            self.error("side", Problem::Missing);
        }
        BookDelta {
            ticker: self.text("market_ticker", &m.market_ticker, true),
            market_id: self.text("market_id", &m.market_id, false),
            side,
            price_e6: self.dual(
                ("price_dollars", &m.price_dollars, Unit::Dollars),
                ("price", &m.price, Unit::Cents),
                Range::Price,
                true,
            ),
            delta_e6: self.dual(
                ("delta_fp", &m.delta_fp, Unit::Contracts),
                ("delta", &m.delta, Unit::IntContracts),
                Range::Any,
                true,
            ),
            client_order_id: self.text("client_order_id", &m.client_order_id, false),
        }
    }

    fn lifecycle<'a>(&mut self, m: &Msg<'a>) -> MarketLifecycle<'a> {
        let event_type_text = self.text("event_type", &m.event_type, true);
        let event_type = match event_type_text.as_deref() {
            Some("created") => LifecycleEvent::Created,
            Some("activated") => LifecycleEvent::Activated,
            Some("deactivated") => LifecycleEvent::Deactivated,
            Some("close_date_updated") => LifecycleEvent::CloseDateUpdated,
            Some("determined") => LifecycleEvent::Determined,
            Some("settled") => LifecycleEvent::Settled,
            Some("metadata_updated") => LifecycleEvent::MetadataUpdated,
            _ => LifecycleEvent::Other,
        };
        let mut meta = AdditionalMetadata::default();
        let metadata_json = m.additional_metadata.map(|raw| {
            match serde_json::from_str::<ObjectOr<AdditionalMetadata<'a>>>(raw.get()) {
                Ok(ObjectOr::Object(parsed)) => meta = parsed,
                _ => self.error("additional_metadata", Problem::WrongType("not an object")),
            }
            Cow::Borrowed(raw.get())
        });
        let result = if m.result.is_present() {
            self.text("result", &m.result, false)
        } else {
            self.text("additional_metadata.result", &meta.result, false)
        };
        let title = if meta.title.is_present() {
            &meta.title
        } else {
            &meta.name
        };
        MarketLifecycle {
            ticker: self.text("market_ticker", &m.market_ticker, true),
            event_type,
            event_type_text,
            open_ts: self.timestamp("open_ts", &m.open_ts),
            close_ts: self.timestamp("close_ts", &m.close_ts),
            determination_ts: self.timestamp("determination_ts", &m.determination_ts),
            settled_ts: self.timestamp("settled_ts", &m.settled_ts),
            result,
            // A dollar string since 2026-02; integer cents before.
            settlement_value_e6: self.dual(
                (
                    "settlement_value",
                    if matches!(m.settlement_value, Scalar::Str(_) | Scalar::F64(_)) {
                        &m.settlement_value
                    } else {
                        &Scalar::Missing
                    },
                    Unit::Dollars,
                ),
                (
                    "settlement_value",
                    if matches!(
                        m.settlement_value,
                        Scalar::I64(_) | Scalar::U64(_) | Scalar::Bool(_) | Scalar::Complex
                    ) {
                        &m.settlement_value
                    } else {
                        &Scalar::Missing
                    },
                    Unit::Cents,
                ),
                Range::Price,
                false,
            ),
            is_deactivated: self.boolean("is_deactivated", &m.is_deactivated),
            event_ticker: self.text(
                "additional_metadata.event_ticker",
                &meta.event_ticker,
                false,
            ),
            title: self.text("additional_metadata.title", title, false),
            metadata_json,
        }
    }

    fn event_lifecycle<'a>(&mut self, m: &Msg<'a>) -> EventLifecycle<'a> {
        let subtitle = if m.subtitle.is_present() {
            ("subtitle", &m.subtitle)
        } else {
            ("sub_title", &m.sub_title)
        };
        EventLifecycle {
            event_ticker: self.text("event_ticker", &m.event_ticker, true),
            title: self.text("title", &m.title, false),
            subtitle: self.text(subtitle.0, subtitle.1, false),
            collateral_return_type: self.text(
                "collateral_return_type",
                &m.collateral_return_type,
                false,
            ),
            series_ticker: self.text("series_ticker", &m.series_ticker, false),
            strike_date: self.timestamp("strike_date", &m.strike_date),
            strike_period: self.text("strike_period", &m.strike_period, false),
        }
    }
}

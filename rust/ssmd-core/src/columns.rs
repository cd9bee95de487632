//! Records as Arrow-layout columns, so that Python can build pyarrow arrays
//! (and so Polars frames) from a few buffers without a per-row Python loop.
//!
//! Layouts follow the Arrow columnar format: little-endian values, validity
//! bitmaps with bit i = row i (least significant bit first), i32 offsets for
//! UTF-8 columns, bit-packed booleans.

use crate::codec::{for_each_record_in, CodecError};
use crate::fixed;
use crate::model::{Body, ConnectorEventKind, Outcome, Record, Status};

/// Arrow type of a column, as Python maps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Int64,
    UInt64,
    UInt32,
    /// Int64 nanoseconds since the Unix epoch, UTC.
    TimestampNs,
    Bool,
    Utf8,
}

impl ColumnType {
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::Int64 => "int64",
            ColumnType::UInt64 => "uint64",
            ColumnType::UInt32 => "uint32",
            ColumnType::TimestampNs => "timestamp_ns",
            ColumnType::Bool => "bool",
            ColumnType::Utf8 => "utf8",
        }
    }
}

/// One column's buffers.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: &'static str,
    pub column_type: ColumnType,
    /// Values: fixed-width little-endian, bit-packed for Bool, UTF-8 bytes for Utf8.
    pub values: Vec<u8>,
    /// i32 offsets (Utf8 only).
    pub offsets: Vec<u8>,
    /// Validity bitmap; empty when every value is valid.
    pub validity: Vec<u8>,
    pub null_count: usize,
    len: usize,
    string_len: i32,
}

impl Column {
    fn new(name: &'static str, column_type: ColumnType) -> Column {
        let mut offsets = Vec::new();
        if column_type == ColumnType::Utf8 {
            offsets.extend_from_slice(&0i32.to_le_bytes());
        }
        Column {
            name,
            column_type,
            values: Vec::new(),
            offsets,
            validity: Vec::new(),
            null_count: 0,
            len: 0,
            string_len: 0,
        }
    }

    fn set_bit(bits: &mut Vec<u8>, index: usize, on: bool) {
        if index / 8 >= bits.len() {
            bits.push(0);
        }
        if on {
            bits[index / 8] |= 1 << (index % 8);
        }
    }

    #[inline]
    fn mark(&mut self, valid: bool) {
        if valid && self.null_count == 0 {
            self.len += 1;
            return;
        }
        if !valid && self.null_count == 0 {
            // First null: materialize the bitmap for the rows so far, all valid.
            self.validity = vec![0xFF; self.len.div_ceil(8)];
            if self.len % 8 != 0 {
                let last = self.validity.len() - 1;
                self.validity[last] = (1u8 << (self.len % 8)) - 1;
            }
        }
        if !valid {
            self.null_count += 1;
        }
        if self.null_count > 0 {
            Self::set_bit(&mut self.validity, self.len, valid);
        }
        self.len += 1;
    }

    fn i64(&mut self, v: Option<i64>) {
        self.values.extend_from_slice(&v.unwrap_or(0).to_le_bytes());
        self.mark(v.is_some());
    }

    fn u64(&mut self, v: u64) {
        self.values.extend_from_slice(&v.to_le_bytes());
        self.mark(true);
    }

    fn u32(&mut self, v: u32) {
        self.values.extend_from_slice(&v.to_le_bytes());
        self.mark(true);
    }

    /// A timestamp; 0 means "none".
    fn ts(&mut self, ns: u64) {
        let v = i64::try_from(ns).ok().filter(|v| *v != 0);
        self.i64(v);
    }

    fn flag(&mut self, v: bool) {
        Self::set_bit(&mut self.values, self.len, v);
        self.mark(true);
    }

    fn text(&mut self, v: Option<&str>) {
        if let Some(s) = v {
            self.values.extend_from_slice(s.as_bytes());
            // Offsets are i32 per Arrow's utf8 type; a column is capped far below 2 GiB by callers.
            self.string_len = self
                .string_len
                .saturating_add(i32::try_from(s.len()).unwrap_or(i32::MAX));
        }
        self.offsets
            .extend_from_slice(&self.string_len.to_le_bytes());
        self.mark(v.is_some());
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

fn outcome(o: Outcome) -> Option<&'static str> {
    match o {
        Outcome::Yes => Some("yes"),
        Outcome::No => Some("no"),
        Outcome::Unknown => None,
    }
}

/// Which records a table holds: one table per record kind (book snapshots: one row per level).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    Trade,
    Ticker,
    BookDelta,
    /// Book snapshots, one row per level.
    BookLevel,
    Lifecycle,
    EventLifecycle,
    Status,
    ConnectorEvent,
    /// A spot venue's book messages, one row per level.
    SpotLevel,
    SpotTicker,
}

impl TableKind {
    pub fn from_name(name: &str) -> Option<TableKind> {
        match name {
            "trade" => Some(TableKind::Trade),
            "ticker" => Some(TableKind::Ticker),
            "book_delta" => Some(TableKind::BookDelta),
            "book_level" => Some(TableKind::BookLevel),
            "lifecycle" => Some(TableKind::Lifecycle),
            "event_lifecycle" => Some(TableKind::EventLifecycle),
            "status" => Some(TableKind::Status),
            "connector_event" => Some(TableKind::ConnectorEvent),
            "spot_level" => Some(TableKind::SpotLevel),
            "spot_ticker" => Some(TableKind::SpotTicker),
            _ => None,
        }
    }
}

const COMMON: [(&str, ColumnType); 6] = [
    ("receive_ts", ColumnType::TimestampNs),
    ("exchange_ts", ColumnType::TimestampNs),
    ("conn_id", ColumnType::UInt64),
    ("sid", ColumnType::UInt32),
    ("seq", ColumnType::UInt64),
    ("ticker", ColumnType::Utf8),
];

fn specific(kind: TableKind) -> &'static [(&'static str, ColumnType)] {
    use ColumnType::*;
    match kind {
        TableKind::Trade => &[
            ("trade_id", Utf8),
            ("price_e6", Int64),
            ("no_price_e6", Int64),
            ("size_e6", Int64),
            ("taker_outcome", Utf8),
            ("is_block_trade", Bool),
            ("taker_side", Utf8),
        ],
        TableKind::Ticker => &[
            ("last_price_e6", Int64),
            ("yes_bid_e6", Int64),
            ("yes_ask_e6", Int64),
            ("yes_bid_size_e6", Int64),
            ("yes_ask_size_e6", Int64),
            ("volume_e6", Int64),
            ("open_interest_e6", Int64),
        ],
        TableKind::BookDelta => &[("side", Utf8), ("price_e6", Int64), ("delta_e6", Int64)],
        TableKind::BookLevel => &[
            ("side", Utf8),
            ("level", UInt32),
            ("price_e6", Int64),
            ("size_e6", Int64),
        ],
        TableKind::EventLifecycle => &[
            ("title", Utf8),
            ("subtitle", Utf8),
            ("series_ticker", Utf8),
            ("strike_date", TimestampNs),
            ("strike_period", Utf8),
        ],
        TableKind::Status => &[("status", Utf8), ("status_text", Utf8)],
        TableKind::ConnectorEvent => &[
            ("event", Utf8),
            ("shard", UInt32),
            ("reason", Utf8),
            ("duration_ns", UInt64),
            ("expected_seq", UInt64),
            ("received_seq", UInt64),
            ("tickers", Utf8),
        ],
        TableKind::Lifecycle => &[
            ("event_type", Utf8),
            ("open_ts", TimestampNs),
            ("close_ts", TimestampNs),
            ("determination_ts", TimestampNs),
            ("settled_ts", TimestampNs),
            ("result", Utf8),
            ("settlement_value_e6", Int64),
        ],
        TableKind::SpotLevel => &[
            ("snapshot", Bool),
            ("side", Utf8),
            ("level", UInt32),
            ("price_e6", Int64),
            ("size_e6", Int64),
            ("price_units", Int64),
            ("size_units", Int64),
            ("price_decimals", UInt32),
            ("size_decimals", UInt32),
            ("checksum_ok", Bool),
        ],
        TableKind::SpotTicker => &[
            ("bid", Int64),
            ("bid_qty", Int64),
            ("ask", Int64),
            ("ask_qty", Int64),
            ("last", Int64),
            ("volume", Int64),
            ("vwap", Int64),
            ("low", Int64),
            ("high", Int64),
            ("change", Int64),
            ("change_pct", Int64),
            ("price_decimals", UInt32),
            ("size_decimals", UInt32),
        ],
    }
}

fn push_common(common: &mut [Column], r: &Record<'_>) {
    common[0].ts(r.receive_ts);
    common[1].ts(r.exchange_ts);
    common[2].u64(r.conn_id);
    common[3].u32(r.sid);
    common[4].u64(r.seq);
    common[5].text(r.body.ticker());
}

/// Appends the rows of one record (several for a snapshot, one per level).
fn push(cols: &mut [Column], r: &Record<'_>) -> usize {
    let (common, rest) = cols.split_at_mut(COMMON.len());
    match &r.body {
        Body::BookSnapshot(s) => {
            let sides = [("yes", &s.yes), ("no", &s.no)];
            let mut rows = 0;
            for (side, levels) in sides {
                for (i, level) in levels.iter().enumerate() {
                    push_common(common, r);
                    rest[0].text(Some(side));
                    rest[1].u32(u32::try_from(i).unwrap_or(u32::MAX));
                    rest[2].i64(level.price_e6);
                    rest[3].i64(level.size_e6);
                    rows += 1;
                }
            }
            return rows;
        }
        Body::SpotBook(k) => {
            let sides = [("bid", &k.bids), ("ask", &k.asks)];
            let mut rows = 0;
            for (side, levels) in sides {
                for (i, level) in levels.iter().enumerate() {
                    push_common(common, r);
                    rest[0].flag(k.snapshot);
                    rest[1].text(Some(side));
                    rest[2].u32(u32::try_from(i).unwrap_or(u32::MAX));
                    rest[3].i64(fixed::rescale_e6(level.price, k.price_decimals));
                    rest[4].i64(fixed::rescale_e6(level.qty, k.qty_decimals));
                    rest[5].i64(Some(level.price));
                    rest[6].i64(Some(level.qty));
                    rest[7].u32(u32::from(k.price_decimals));
                    rest[8].u32(u32::from(k.qty_decimals));
                    rest[9].flag(k.checksum_ok);
                    rows += 1;
                }
            }
            return rows;
        }
        _ => push_common(common, r),
    }
    match &r.body {
        Body::Trade(t) => {
            rest[0].text(t.trade_id.as_deref());
            rest[1].i64(t.price_e6);
            rest[2].i64(t.no_price_e6);
            rest[3].i64(t.size_e6);
            rest[4].text(outcome(t.taker_outcome));
            rest[5].flag(t.is_block_trade);
            rest[6].text(None); // a binary contract's taker side is its outcome
        }
        Body::Ticker(t) => {
            rest[0].i64(t.last_price_e6);
            rest[1].i64(t.yes_bid_e6);
            rest[2].i64(t.yes_ask_e6);
            rest[3].i64(t.yes_bid_size_e6);
            rest[4].i64(t.yes_ask_size_e6);
            rest[5].i64(t.volume_e6);
            rest[6].i64(t.open_interest_e6);
        }
        Body::BookDelta(d) => {
            rest[0].text(outcome(d.side));
            rest[1].i64(d.price_e6);
            rest[2].i64(d.delta_e6);
        }
        Body::Lifecycle(l) => {
            rest[0].text(l.event_type_text.as_deref());
            rest[1].ts(l.open_ts);
            rest[2].ts(l.close_ts);
            rest[3].ts(l.determination_ts);
            rest[4].ts(l.settled_ts);
            rest[5].text(l.result.as_deref());
            rest[6].i64(l.settlement_value_e6);
        }
        Body::EventLifecycle(e) => {
            rest[0].text(e.title.as_deref());
            rest[1].text(e.subtitle.as_deref());
            rest[2].text(e.series_ticker.as_deref());
            rest[3].ts(e.strike_date);
            rest[4].text(e.strike_period.as_deref());
        }
        Body::Status(s) => {
            rest[0].text(Some(status_name(s.status)));
            rest[1].text(s.status_text.as_deref());
        }
        Body::ConnectorEvent(e) => {
            rest[0].text(Some(event_name(e.kind)));
            rest[1].u32(e.shard);
            rest[2].text(e.reason.as_deref());
            rest[3].u64(e.duration_ns);
            rest[4].u64(e.expected_seq);
            rest[5].u64(e.received_seq);
            // Markets affected, comma-separated (tickers never contain commas).
            let tickers: Vec<&str> = e.tickers.iter().map(|t| t.as_ref()).collect();
            rest[6].text(Some(&tickers.join(",")));
        }
        Body::SpotTrade(t) => {
            rest[0].text(t.trade_id.as_deref());
            rest[1].i64(t.price.and_then(|p| fixed::rescale_e6(p, t.price_decimals)));
            rest[2].i64(None);
            rest[3].i64(t.qty.and_then(|q| fixed::rescale_e6(q, t.qty_decimals)));
            rest[4].text(None); // a taker outcome (yes/no) exists only on binary contracts
            rest[5].flag(false);
            rest[6].text(t.taker_buys.map(|b| if b { "buy" } else { "sell" }));
        }
        Body::SpotTicker(t) => {
            let values = [
                t.bid,
                t.bid_qty,
                t.ask,
                t.ask_qty,
                t.last,
                t.volume,
                t.vwap,
                t.low,
                t.high,
                t.change,
                t.change_pct,
            ];
            for (col, v) in rest.iter_mut().zip(values) {
                col.i64(v);
            }
            rest[11].u32(u32::from(t.price_decimals));
            rest[12].u32(u32::from(t.qty_decimals));
        }
        Body::BookSnapshot(_)
        | Body::Book(_)
        | Body::SpotView(_)
        | Body::SpotBook(_)
        | Body::Instrument(_)
        | Body::VenueStatus(_) => {}
    }
    1
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Open => "open",
        Status::Closed => "closed",
        Status::Halted => "halted",
        Status::Initialized => "initialized",
        Status::Determined => "determined",
        Status::Settled => "settled",
        Status::Unknown => "unknown",
    }
}

fn event_name(k: ConnectorEventKind) -> &'static str {
    match k {
        ConnectorEventKind::Connected => "connected",
        ConnectorEventKind::Disconnected => "disconnected",
        ConnectorEventKind::Gap => "gap",
        ConnectorEventKind::Resync => "resync",
        ConnectorEventKind::Subscribed => "subscribed",
        ConnectorEventKind::Unsubscribed => "unsubscribed",
        ConnectorEventKind::BufferFull => "buffer_full",
        ConnectorEventKind::Error => "error",
        ConnectorEventKind::Heartbeat => "heartbeat",
        ConnectorEventKind::Stopped => "stopped",
    }
}

fn matches(kind: TableKind, body: &Body<'_>) -> bool {
    matches!(
        (kind, body),
        (TableKind::Trade, Body::Trade(_) | Body::SpotTrade(_))
            | (TableKind::Ticker, Body::Ticker(_))
            | (TableKind::BookDelta, Body::BookDelta(_))
            | (TableKind::BookLevel, Body::BookSnapshot(_))
            | (TableKind::Lifecycle, Body::Lifecycle(_))
            | (TableKind::EventLifecycle, Body::EventLifecycle(_))
            | (TableKind::Status, Body::Status(_))
            | (TableKind::ConnectorEvent, Body::ConnectorEvent(_))
            | (TableKind::SpotLevel, Body::SpotBook(_))
            | (TableKind::SpotTicker, Body::SpotTicker(_))
    )
}

/// Builds one table from any number of record streams (an archive's frames,
/// say), keeping its unpacking scratch between them.
pub struct TableBuilder {
    kind: TableKind,
    cols: Vec<Column>,
    rows: usize,
    words: Vec<capnp::Word>,
    /// Stream bytes given so far, and in all when known (see `expect_total`).
    consumed: usize,
    total: Option<usize>,
}

impl TableBuilder {
    pub fn new(kind: TableKind) -> TableBuilder {
        let cols = COMMON
            .iter()
            .chain(specific(kind))
            .map(|(name, t)| Column::new(name, *t))
            .collect();
        TableBuilder {
            kind,
            cols,
            rows: 0,
            words: Vec::new(),
            consumed: 0,
            total: None,
        }
    }

    /// How many stream bytes will be pushed in all. Once some rows exist,
    /// every column reserves what the rest needs at the rate seen so far, so
    /// it grows once instead of doubling: each doubling copies and touches
    /// fresh memory, which costs more than the decoding on some machines.
    pub fn expect_total(&mut self, total: usize) {
        self.total = Some(total);
    }

    /// Appends the records of the table's kind in a stream of packed Record
    /// messages; records of other kinds are skipped. On error the rows of the
    /// stream's records before the bad one stay appended.
    pub fn push_stream(&mut self, data: &[u8]) -> Result<(), CodecError> {
        let (kind, cols, rows) = (self.kind, &mut self.cols, &mut self.rows);
        for_each_record_in(data, &mut self.words, |r| {
            if matches(kind, &r.body) {
                *rows += push(cols, &r);
            }
        })?;
        self.consumed += data.len();
        if self.rows > 0 {
            if let Some(total) = self.total.take() {
                self.reserve_rest(total);
            }
        }
        Ok(())
    }

    fn reserve_rest(&mut self, total: usize) {
        let rest = total.saturating_sub(self.consumed);
        if rest == 0 || self.consumed == 0 {
            return;
        }
        // A little over the rate seen, so that a slightly denser rest still fits.
        let scale = |len: usize| {
            let more = (len as u128 * rest as u128 / self.consumed as u128) * 21 / 20;
            usize::try_from(more).unwrap_or(0)
        };
        for col in &mut self.cols {
            col.values.reserve(scale(col.values.len()));
            col.offsets.reserve(scale(col.offsets.len()));
            col.validity.reserve(scale(col.validity.len()));
        }
    }

    /// Row count and columns.
    pub fn finish(self) -> (usize, Vec<Column>) {
        (self.rows, self.cols)
    }
}

/// The records of `kind` in a stream of packed Record messages, as columns.
/// Records of other kinds are skipped.
pub fn to_columns(data: &[u8], kind: TableKind) -> Result<(usize, Vec<Column>), CodecError> {
    let mut table = TableBuilder::new(kind);
    table.push_stream(data)?;
    Ok(table.finish())
}

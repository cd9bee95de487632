//! Cap'n Proto encoding and decoding of normalized records.
//!
//! Every message is a packed `Record` (schemas/ssmd.capnp). A stream is those
//! messages back to back: what NATS carries one at a time and what an archive
//! holds (before zstd), and what `capnp decode --packed` and pycapnp's
//! `read_multiple_packed` read.

use crate::fixed;
use crate::model::{
    Body, BookDelta, BookSnapshot, BookView, ConnectorEvent, ConnectorEventKind, EventLifecycle,
    Instrument, Level, LifecycleEvent, MarketLifecycle, MarketStatus, Outcome, Record, SpotBook,
    SpotLevel, SpotTicker, SpotTrade, Status, Ticker, Trade, VenueStatus,
};
use crate::packed::{pack_into, unpack_into};
use crate::ssmd_capnp::{self as schema, record};
use capnp::message::{ReaderOptions, ScratchSpaceHeapAllocator};
use capnp::serialize_packed;
use std::borrow::Cow;
use std::fmt;

/// Bytes that are not a valid stream of packed `Record` messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError {
    /// Offset in the stream of the message that failed.
    pub offset: usize,
    pub reason: String,
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad record at byte {}: {}", self.offset, self.reason)
    }
}

impl std::error::Error for CodecError {}

const UNDEF: i64 = fixed_undef();

const fn fixed_undef() -> i64 {
    i64::MIN
}

fn e6(value: Option<i64>) -> i64 {
    value.unwrap_or(UNDEF)
}

fn opt_e6(value: i64) -> Option<i64> {
    (value != UNDEF).then_some(value)
}

/// Encodes records as packed messages, reusing one scratch segment.
///
/// Every message is written as a single segment: it is smaller than a
/// multi-segment one and every reader handles it (pycapnp's stream reader
/// aborts on multi-segment packed messages).
pub struct Encoder {
    scratch: Vec<capnp::Word>,
    large: Vec<capnp::Word>,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    /// Most records fit in 384 bytes; a smaller scratch is less to zero per record.
    const SCRATCH_WORDS: usize = 48;

    pub fn new() -> Encoder {
        Encoder {
            scratch: capnp::Word::allocate_zeroed_vec(Self::SCRATCH_WORDS),
            large: Vec::new(),
        }
    }

    /// Appends `record` as one packed single-segment message to `out`.
    pub fn encode(&mut self, record: &Record<'_>, out: &mut Vec<u8>) {
        let spilled = Self::write_if_single(&mut self.scratch, record, out);
        if let Some(words) = spilled {
            // The record outgrew the scratch: build it again in one segment big enough.
            if self.large.len() < words {
                self.large = capnp::Word::allocate_zeroed_vec(words);
            }
            let again = Self::write_if_single(&mut self.large, record, out);
            debug_assert!(
                again.is_none(),
                "a segment of the total size holds the record"
            );
        }
    }

    /// Writes the record if it fits `scratch` in one segment; otherwise returns the words it needs.
    fn write_if_single(
        scratch: &mut [capnp::Word],
        record: &Record<'_>,
        out: &mut Vec<u8>,
    ) -> Option<usize> {
        let mut allocator =
            ScratchSpaceHeapAllocator::new(capnp::Word::words_to_bytes_mut(scratch));
        let mut message = capnp::message::Builder::new(&mut allocator);
        build_record(message.init_root::<record::Builder>(), record);
        let segments = message.get_segments_for_output();
        if segments.len() > 1 {
            let bytes: usize = segments.iter().map(|s| s.len()).sum();
            return Some(bytes / 8 + 8);
        }
        // The segment table of one segment is one word: count - 1 (0), then
        // the length in words. Packed apart from the segment, as the capnp
        // crate's packer does.
        let segment = segments[0];
        let mut table = [0u8; 8];
        table[4..].copy_from_slice(&((segment.len() / 8) as u32).to_le_bytes());
        pack_into(&table, out);
        pack_into(segment, out);
        None
    }
}

/// Encodes one record as a packed message (convenience; hot paths reuse an `Encoder`).
pub fn encode_record(record: &Record<'_>, out: &mut Vec<u8>) {
    Encoder::new().encode(record, out);
}

fn set_text(value: &Option<Cow<'_, str>>, set: impl FnOnce(&str)) {
    if let Some(v) = value {
        set(v);
    }
}

fn outcome(o: Outcome) -> schema::Outcome {
    match o {
        Outcome::Unknown => schema::Outcome::Unknown,
        Outcome::Yes => schema::Outcome::Yes,
        Outcome::No => schema::Outcome::No,
    }
}

fn build_levels(mut list: capnp::struct_list::Builder<'_, schema::level::Owned>, levels: &[Level]) {
    for (i, level) in levels.iter().enumerate() {
        let mut l = list.reborrow().get(i as u32);
        let price = e6(level.price_e6);
        let size = e6(level.size_e6);
        l.set_price_e6(price);
        l.set_size_e6(size);
        if let Some(p) = level.price_e6 {
            l.set_price(fixed::e6_to_f64(p));
        }
        if let Some(s) = level.size_e6 {
            l.set_size(fixed::e6_to_u32(s));
        }
    }
}

fn build_record(mut b: record::Builder<'_>, r: &Record<'_>) {
    b.set_receive_ts(r.receive_ts);
    b.set_exchange_ts(r.exchange_ts);
    b.set_conn_id(r.conn_id);
    b.set_sid(r.sid);
    b.set_seq(r.seq);
    match &r.body {
        Body::Trade(t) => {
            let mut x = b.init_trade();
            x.set_timestamp(r.exchange_ts);
            set_text(&t.ticker, |v| x.set_ticker(v));
            set_text(&t.trade_id, |v| x.set_trade_id(v));
            if let Some(p) = t.price_e6 {
                x.set_price(fixed::e6_to_f64(p));
            }
            if let Some(s) = t.size_e6 {
                x.set_size(fixed::e6_to_u32(s));
            }
            x.set_side(if t.taker_outcome == Outcome::No {
                schema::Side::Sell
            } else {
                schema::Side::Buy
            });
            x.set_price_e6(e6(t.price_e6));
            x.set_no_price_e6(e6(t.no_price_e6));
            x.set_size_e6(e6(t.size_e6));
            x.set_taker_outcome(outcome(t.taker_outcome));
            x.set_taker_book_side(outcome(t.taker_book_side));
            x.set_is_block_trade(t.is_block_trade);
        }
        Body::BookSnapshot(s) => {
            let mut x = b.init_book_snapshot();
            set_text(&s.ticker, |v| x.set_ticker(v));
            set_text(&s.market_id, |v| x.set_market_id(v));
            x.set_use_yes_price(s.use_yes_price);
            build_levels(x.reborrow().init_yes(s.yes.len() as u32), &s.yes);
            build_levels(x.reborrow().init_no(s.no.len() as u32), &s.no);
        }
        Body::BookDelta(d) => {
            let mut x = b.init_book_delta();
            set_text(&d.ticker, |v| x.set_ticker(v));
            set_text(&d.market_id, |v| x.set_market_id(v));
            x.set_side(outcome(d.side));
            x.set_price_e6(e6(d.price_e6));
            x.set_delta_e6(e6(d.delta_e6));
            set_text(&d.client_order_id, |v| x.set_client_order_id(v));
        }
        Body::Ticker(t) => {
            let mut x = b.init_ticker();
            set_text(&t.ticker, |v| x.set_ticker(v));
            set_text(&t.market_id, |v| x.set_market_id(v));
            x.set_last_price_e6(e6(t.last_price_e6));
            x.set_yes_bid_e6(e6(t.yes_bid_e6));
            x.set_yes_ask_e6(e6(t.yes_ask_e6));
            x.set_yes_bid_size_e6(e6(t.yes_bid_size_e6));
            x.set_yes_ask_size_e6(e6(t.yes_ask_size_e6));
            x.set_last_trade_size_e6(e6(t.last_trade_size_e6));
            x.set_volume_e6(e6(t.volume_e6));
            x.set_open_interest_e6(e6(t.open_interest_e6));
            x.set_dollar_volume(t.dollar_volume.unwrap_or(-1));
            x.set_dollar_open_interest(t.dollar_open_interest.unwrap_or(-1));
        }
        Body::Lifecycle(l) => {
            let mut x = b.init_lifecycle();
            set_text(&l.ticker, |v| x.set_ticker(v));
            x.set_event_type(match l.event_type {
                LifecycleEvent::Other => schema::LifecycleEvent::Other,
                LifecycleEvent::Created => schema::LifecycleEvent::Created,
                LifecycleEvent::Activated => schema::LifecycleEvent::Activated,
                LifecycleEvent::Deactivated => schema::LifecycleEvent::Deactivated,
                LifecycleEvent::CloseDateUpdated => schema::LifecycleEvent::CloseDateUpdated,
                LifecycleEvent::Determined => schema::LifecycleEvent::Determined,
                LifecycleEvent::Settled => schema::LifecycleEvent::Settled,
                LifecycleEvent::MetadataUpdated => schema::LifecycleEvent::MetadataUpdated,
            });
            set_text(&l.event_type_text, |v| x.set_event_type_text(v));
            x.set_open_ts(l.open_ts);
            x.set_close_ts(l.close_ts);
            x.set_determination_ts(l.determination_ts);
            x.set_settled_ts(l.settled_ts);
            set_text(&l.result, |v| x.set_result(v));
            x.set_settlement_value_e6(e6(l.settlement_value_e6));
            x.set_is_deactivated(l.is_deactivated);
            set_text(&l.event_ticker, |v| x.set_event_ticker(v));
            set_text(&l.title, |v| x.set_title(v));
            set_text(&l.metadata_json, |v| x.set_metadata_json(v));
        }
        Body::EventLifecycle(e) => {
            let mut x = b.init_event_lifecycle();
            set_text(&e.event_ticker, |v| x.set_event_ticker(v));
            set_text(&e.title, |v| x.set_title(v));
            set_text(&e.subtitle, |v| x.set_subtitle(v));
            set_text(&e.collateral_return_type, |v| {
                x.set_collateral_return_type(v)
            });
            set_text(&e.series_ticker, |v| x.set_series_ticker(v));
            x.set_strike_date(e.strike_date);
            set_text(&e.strike_period, |v| x.set_strike_period(v));
        }
        Body::Status(s) => {
            let mut x = b.init_status();
            x.set_timestamp(r.exchange_ts);
            set_text(&s.ticker, |v| x.set_ticker(v));
            x.set_status(match s.status {
                Status::Open => schema::Status::Open,
                Status::Closed => schema::Status::Closed,
                Status::Halted => schema::Status::Halted,
                Status::Initialized => schema::Status::Initialized,
                Status::Determined => schema::Status::Determined,
                Status::Settled => schema::Status::Settled,
                Status::Unknown => schema::Status::Unknown,
            });
            set_text(&s.status_text, |v| x.set_status_text(v));
        }
        Body::ConnectorEvent(e) => {
            let mut x = b.init_connector_event();
            x.set_kind(match e.kind {
                ConnectorEventKind::Connected => schema::ConnectorEventKind::Connected,
                ConnectorEventKind::Disconnected => schema::ConnectorEventKind::Disconnected,
                ConnectorEventKind::Gap => schema::ConnectorEventKind::Gap,
                ConnectorEventKind::Resync => schema::ConnectorEventKind::Resync,
                ConnectorEventKind::Subscribed => schema::ConnectorEventKind::Subscribed,
                ConnectorEventKind::Unsubscribed => schema::ConnectorEventKind::Unsubscribed,
                ConnectorEventKind::BufferFull => schema::ConnectorEventKind::BufferFull,
                ConnectorEventKind::Error => schema::ConnectorEventKind::Error,
                ConnectorEventKind::Heartbeat => schema::ConnectorEventKind::Heartbeat,
                ConnectorEventKind::Stopped => schema::ConnectorEventKind::Stopped,
            });
            x.set_shard(e.shard);
            set_text(&e.reason, |v| x.set_reason(v));
            x.set_duration_ns(e.duration_ns);
            x.set_expected_seq(e.expected_seq);
            x.set_received_seq(e.received_seq);
            let mut list = x.init_tickers(e.tickers.len() as u32);
            for (i, t) in e.tickers.iter().enumerate() {
                list.set(i as u32, t.as_ref());
            }
        }
        Body::Book(v) | Body::SpotView(v) => {
            let mut x = b.init_book();
            x.set_timestamp(r.exchange_ts);
            set_text(&v.ticker, |t| x.set_ticker(t));
            x.set_valid(v.valid);
            x.set_spot(matches!(r.body, Body::SpotView(_)));
            build_levels(x.reborrow().init_bids(v.bids.len() as u32), &v.bids);
            build_levels(x.reborrow().init_asks(v.asks.len() as u32), &v.asks);
        }
        Body::SpotBook(k) => {
            let mut x = b.init_spot_book();
            set_text(&k.ticker, |t| x.set_ticker(t));
            x.set_snapshot(k.snapshot);
            x.set_price_decimals(k.price_decimals);
            x.set_qty_decimals(k.qty_decimals);
            x.set_checksum(k.checksum);
            x.set_checksum_ok(k.checksum_ok);
            x.set_depth(k.depth);
            build_spot_levels(x.reborrow().init_bids(k.bids.len() as u32), &k.bids);
            build_spot_levels(x.reborrow().init_asks(k.asks.len() as u32), &k.asks);
        }
        Body::SpotTrade(t) => {
            let mut x = b.init_trade();
            x.set_timestamp(r.exchange_ts);
            set_text(&t.ticker, |v| x.set_ticker(v));
            set_text(&t.trade_id, |v| x.set_trade_id(v));
            let price_e6 = t.price.and_then(|p| fixed::rescale_e6(p, t.price_decimals));
            let size_e6 = t.qty.and_then(|q| fixed::rescale_e6(q, t.qty_decimals));
            if let Some(p) = price_e6 {
                x.set_price(fixed::e6_to_f64(p));
            }
            if let Some(q) = size_e6 {
                x.set_size(fixed::e6_to_u32(q));
            }
            x.set_side(match t.taker_buys {
                Some(true) => schema::Side::Buy,
                Some(false) => schema::Side::Sell,
                None => schema::Side::Unknown,
            });
            x.set_price_e6(e6(price_e6));
            x.set_no_price_e6(UNDEF);
            x.set_size_e6(e6(size_e6));
            x.set_taker_outcome(schema::Outcome::Unknown);
            x.set_taker_book_side(schema::Outcome::Unknown);
            x.set_price_units(e6(t.price));
            x.set_size_units(e6(t.qty));
            x.set_price_decimals(t.price_decimals);
            x.set_size_decimals(t.qty_decimals);
            set_text(&t.ord_type, |v| x.set_ord_type(v));
            x.set_spot(true);
        }
        Body::SpotTicker(t) => {
            let mut x = b.init_spot_ticker();
            set_text(&t.ticker, |v| x.set_ticker(v));
            x.set_bid(e6(t.bid));
            x.set_bid_qty(e6(t.bid_qty));
            x.set_ask(e6(t.ask));
            x.set_ask_qty(e6(t.ask_qty));
            x.set_last(e6(t.last));
            x.set_volume(e6(t.volume));
            x.set_vwap(e6(t.vwap));
            x.set_low(e6(t.low));
            x.set_high(e6(t.high));
            x.set_change(e6(t.change));
            x.set_change_pct(e6(t.change_pct));
            x.set_price_decimals(t.price_decimals);
            x.set_qty_decimals(t.qty_decimals);
        }
        Body::Instrument(i) => {
            let mut x = b.init_instrument();
            set_text(&i.ticker, |v| x.set_ticker(v));
            set_text(&i.base, |v| x.set_base(v));
            set_text(&i.quote, |v| x.set_quote(v));
            set_text(&i.status, |v| x.set_status(v));
            x.set_price_decimals(i.price_decimals);
            x.set_qty_decimals(i.qty_decimals);
            x.set_price_increment(e6(i.price_increment));
            x.set_qty_increment(e6(i.qty_increment));
            x.set_qty_min(e6(i.qty_min));
            set_text(&i.cost_min, |v| x.set_cost_min(v));
        }
        Body::VenueStatus(v) => {
            let mut x = b.init_venue_status();
            set_text(&v.system, |t| x.set_system(t));
            set_text(&v.api_version, |t| x.set_api_version(t));
            x.set_connection_id(v.connection_id);
            set_text(&v.version, |t| x.set_version(t));
        }
    }
}

fn build_spot_levels(
    mut list: capnp::struct_list::Builder<'_, schema::spot_level::Owned>,
    levels: &[SpotLevel],
) {
    for (i, level) in levels.iter().enumerate() {
        let mut l = list.reborrow().get(i as u32);
        l.set_price(level.price);
        l.set_qty(level.qty);
    }
}

fn read_spot_levels(
    list: capnp::struct_list::Reader<'_, schema::spot_level::Owned>,
) -> Vec<SpotLevel> {
    list.iter()
        .map(|l| SpotLevel {
            price: l.get_price(),
            qty: l.get_qty(),
        })
        .collect()
}

fn reader_options() -> ReaderOptions {
    let mut options = ReaderOptions::new();
    // Generous but bounded: a hostile message cannot make the reader walk forever.
    options.traversal_limit_in_words(Some(64 * 1024 * 1024));
    options
}

/// Calls `f` with every record of a stream of packed messages, in order, and
/// returns how many there were. Stops at the first bad message (`offset` is
/// then the byte offset in the unpacked stream).
pub fn for_each_record(data: &[u8], f: impl FnMut(Record<'_>)) -> Result<usize, CodecError> {
    for_each_record_in(data, &mut Vec::new(), f)
}

/// [`for_each_record`], unpacking into `words` (scratch kept by the caller
/// across calls, so that many small streams cost no allocation each).
pub fn for_each_record_in(
    data: &[u8],
    words: &mut Vec<capnp::Word>,
    mut f: impl FnMut(Record<'_>),
) -> Result<usize, CodecError> {
    let len = unpack_into(data, words)?;
    let flat = &capnp::Word::words_to_bytes(words)[..len];
    let mut rest = flat;
    let mut count = 0;
    while !rest.is_empty() {
        let offset = flat.len() - rest.len();
        let fail = |e: capnp::Error| CodecError {
            offset,
            reason: e.to_string(),
        };
        let message =
            capnp::serialize::read_message_from_flat_slice_no_alloc(&mut rest, reader_options())
                .map_err(fail)?;
        let root = message.get_root::<record::Reader<'_>>().map_err(fail)?;
        f(read_record(root).map_err(fail)?);
        count += 1;
    }
    Ok(count)
}

/// Decodes a stream into owned records (for tests and small streams).
pub fn decode_all(data: &[u8]) -> Result<Vec<Record<'static>>, CodecError> {
    let mut out = Vec::new();
    for_each_record(data, |r| out.push(into_owned(r)))?;
    Ok(out)
}

/// The byte length of each packed message in a stream, in order.
pub fn message_spans(data: &[u8]) -> Result<Vec<(usize, usize)>, CodecError> {
    let mut rest = data;
    let mut spans = Vec::new();
    while !rest.is_empty() {
        let offset = data.len() - rest.len();
        serialize_packed::read_message(&mut rest, reader_options()).map_err(|e| CodecError {
            offset,
            reason: e.to_string(),
        })?;
        spans.push((offset, data.len() - rest.len() - offset));
    }
    Ok(spans)
}

fn text<'a>(
    has: bool,
    get: capnp::Result<capnp::text::Reader<'a>>,
) -> capnp::Result<Option<Cow<'a, str>>> {
    if !has {
        return Ok(None);
    }
    let s = get?
        .to_str()
        .map_err(|e| capnp::Error::failed(format!("text is not UTF-8: {e}")))?;
    Ok(Some(Cow::Borrowed(s)))
}

fn read_outcome(o: Result<schema::Outcome, capnp::NotInSchema>) -> Outcome {
    match o {
        Ok(schema::Outcome::Yes) => Outcome::Yes,
        Ok(schema::Outcome::No) => Outcome::No,
        _ => Outcome::Unknown,
    }
}

fn read_levels(list: capnp::struct_list::Reader<'_, schema::level::Owned>) -> Vec<Level> {
    list.iter()
        .map(|l| Level {
            price_e6: opt_e6(l.get_price_e6()),
            size_e6: opt_e6(l.get_size_e6()),
        })
        .collect()
}

fn read_record<'a>(r: record::Reader<'a>) -> capnp::Result<Record<'a>> {
    use record::Which;
    let body = match r.which()? {
        Which::Trade(x) => {
            let x = x?;
            if x.get_spot() {
                // A spot venue's trade: exact Units at the instrument's precision.
                return Ok(Record {
                    receive_ts: r.get_receive_ts(),
                    exchange_ts: r.get_exchange_ts(),
                    conn_id: r.get_conn_id(),
                    sid: r.get_sid(),
                    seq: r.get_seq(),
                    body: Body::SpotTrade(SpotTrade {
                        ticker: text(x.has_ticker(), x.get_ticker())?,
                        trade_id: text(x.has_trade_id(), x.get_trade_id())?,
                        price: opt_e6(x.get_price_units()),
                        qty: opt_e6(x.get_size_units()),
                        price_decimals: x.get_price_decimals(),
                        qty_decimals: x.get_size_decimals(),
                        taker_buys: match x.get_side() {
                            Ok(schema::Side::Buy) => Some(true),
                            Ok(schema::Side::Sell) => Some(false),
                            Ok(schema::Side::Unknown) | Err(_) => None,
                        },
                        ord_type: text(x.has_ord_type(), x.get_ord_type())?,
                    }),
                });
            }
            Body::Trade(Trade {
                ticker: text(x.has_ticker(), x.get_ticker())?,
                trade_id: text(x.has_trade_id(), x.get_trade_id())?,
                price_e6: opt_e6(x.get_price_e6()),
                no_price_e6: opt_e6(x.get_no_price_e6()),
                size_e6: opt_e6(x.get_size_e6()),
                taker_outcome: read_outcome(x.get_taker_outcome()),
                taker_book_side: read_outcome(x.get_taker_book_side()),
                is_block_trade: x.get_is_block_trade(),
            })
        }
        Which::BookSnapshot(x) => {
            let x = x?;
            Body::BookSnapshot(BookSnapshot {
                ticker: text(x.has_ticker(), x.get_ticker())?,
                market_id: text(x.has_market_id(), x.get_market_id())?,
                yes: read_levels(x.get_yes()?),
                no: read_levels(x.get_no()?),
                use_yes_price: x.get_use_yes_price(),
            })
        }
        Which::BookDelta(x) => {
            let x = x?;
            Body::BookDelta(BookDelta {
                ticker: text(x.has_ticker(), x.get_ticker())?,
                market_id: text(x.has_market_id(), x.get_market_id())?,
                side: read_outcome(x.get_side()),
                price_e6: opt_e6(x.get_price_e6()),
                delta_e6: opt_e6(x.get_delta_e6()),
                client_order_id: text(x.has_client_order_id(), x.get_client_order_id())?,
            })
        }
        Which::Ticker(x) => {
            let x = x?;
            let whole = |v: i64| (v >= 0).then_some(v);
            Body::Ticker(Ticker {
                ticker: text(x.has_ticker(), x.get_ticker())?,
                market_id: text(x.has_market_id(), x.get_market_id())?,
                last_price_e6: opt_e6(x.get_last_price_e6()),
                yes_bid_e6: opt_e6(x.get_yes_bid_e6()),
                yes_ask_e6: opt_e6(x.get_yes_ask_e6()),
                yes_bid_size_e6: opt_e6(x.get_yes_bid_size_e6()),
                yes_ask_size_e6: opt_e6(x.get_yes_ask_size_e6()),
                last_trade_size_e6: opt_e6(x.get_last_trade_size_e6()),
                volume_e6: opt_e6(x.get_volume_e6()),
                open_interest_e6: opt_e6(x.get_open_interest_e6()),
                dollar_volume: whole(x.get_dollar_volume()),
                dollar_open_interest: whole(x.get_dollar_open_interest()),
            })
        }
        Which::Lifecycle(x) => {
            let x = x?;
            Body::Lifecycle(MarketLifecycle {
                ticker: text(x.has_ticker(), x.get_ticker())?,
                event_type: match x.get_event_type() {
                    Ok(schema::LifecycleEvent::Created) => LifecycleEvent::Created,
                    Ok(schema::LifecycleEvent::Activated) => LifecycleEvent::Activated,
                    Ok(schema::LifecycleEvent::Deactivated) => LifecycleEvent::Deactivated,
                    Ok(schema::LifecycleEvent::CloseDateUpdated) => {
                        LifecycleEvent::CloseDateUpdated
                    }
                    Ok(schema::LifecycleEvent::Determined) => LifecycleEvent::Determined,
                    Ok(schema::LifecycleEvent::Settled) => LifecycleEvent::Settled,
                    Ok(schema::LifecycleEvent::MetadataUpdated) => LifecycleEvent::MetadataUpdated,
                    _ => LifecycleEvent::Other,
                },
                event_type_text: text(x.has_event_type_text(), x.get_event_type_text())?,
                open_ts: x.get_open_ts(),
                close_ts: x.get_close_ts(),
                determination_ts: x.get_determination_ts(),
                settled_ts: x.get_settled_ts(),
                result: text(x.has_result(), x.get_result())?,
                settlement_value_e6: opt_e6(x.get_settlement_value_e6()),
                is_deactivated: x.get_is_deactivated(),
                event_ticker: text(x.has_event_ticker(), x.get_event_ticker())?,
                title: text(x.has_title(), x.get_title())?,
                metadata_json: text(x.has_metadata_json(), x.get_metadata_json())?,
            })
        }
        Which::EventLifecycle(x) => {
            let x = x?;
            Body::EventLifecycle(EventLifecycle {
                event_ticker: text(x.has_event_ticker(), x.get_event_ticker())?,
                title: text(x.has_title(), x.get_title())?,
                subtitle: text(x.has_subtitle(), x.get_subtitle())?,
                collateral_return_type: text(
                    x.has_collateral_return_type(),
                    x.get_collateral_return_type(),
                )?,
                series_ticker: text(x.has_series_ticker(), x.get_series_ticker())?,
                strike_date: x.get_strike_date(),
                strike_period: text(x.has_strike_period(), x.get_strike_period())?,
            })
        }
        Which::Status(x) => {
            let x = x?;
            Body::Status(MarketStatus {
                ticker: text(x.has_ticker(), x.get_ticker())?,
                status: match x.get_status() {
                    Ok(schema::Status::Open) => Status::Open,
                    Ok(schema::Status::Closed) => Status::Closed,
                    Ok(schema::Status::Halted) => Status::Halted,
                    Ok(schema::Status::Initialized) => Status::Initialized,
                    Ok(schema::Status::Determined) => Status::Determined,
                    Ok(schema::Status::Settled) => Status::Settled,
                    _ => Status::Unknown,
                },
                status_text: text(x.has_status_text(), x.get_status_text())?,
            })
        }
        Which::ConnectorEvent(x) => {
            let x = x?;
            let mut tickers = Vec::new();
            for t in x.get_tickers()?.iter() {
                tickers.push(Cow::Borrowed(
                    t?.to_str()
                        .map_err(|e| capnp::Error::failed(e.to_string()))?,
                ));
            }
            Body::ConnectorEvent(ConnectorEvent {
                kind: match x.get_kind() {
                    Ok(schema::ConnectorEventKind::Connected) => ConnectorEventKind::Connected,
                    Ok(schema::ConnectorEventKind::Disconnected) => {
                        ConnectorEventKind::Disconnected
                    }
                    Ok(schema::ConnectorEventKind::Gap) => ConnectorEventKind::Gap,
                    Ok(schema::ConnectorEventKind::Resync) => ConnectorEventKind::Resync,
                    Ok(schema::ConnectorEventKind::Subscribed) => ConnectorEventKind::Subscribed,
                    Ok(schema::ConnectorEventKind::Unsubscribed) => {
                        ConnectorEventKind::Unsubscribed
                    }
                    Ok(schema::ConnectorEventKind::BufferFull) => ConnectorEventKind::BufferFull,
                    Ok(schema::ConnectorEventKind::Heartbeat) => ConnectorEventKind::Heartbeat,
                    Ok(schema::ConnectorEventKind::Stopped) => ConnectorEventKind::Stopped,
                    _ => ConnectorEventKind::Error,
                },
                shard: x.get_shard(),
                reason: text(x.has_reason(), x.get_reason())?,
                duration_ns: x.get_duration_ns(),
                expected_seq: x.get_expected_seq(),
                received_seq: x.get_received_seq(),
                tickers,
            })
        }
        Which::Book(x) => {
            let x = x?;
            let view = BookView {
                ticker: text(x.has_ticker(), x.get_ticker())?,
                bids: read_levels(x.get_bids()?),
                asks: read_levels(x.get_asks()?),
                valid: x.get_valid(),
            };
            if x.get_spot() {
                Body::SpotView(view)
            } else {
                Body::Book(view)
            }
        }
        Which::SpotBook(x) => {
            let x = x?;
            Body::SpotBook(SpotBook {
                ticker: text(x.has_ticker(), x.get_ticker())?,
                snapshot: x.get_snapshot(),
                bids: read_spot_levels(x.get_bids()?),
                asks: read_spot_levels(x.get_asks()?),
                price_decimals: x.get_price_decimals(),
                qty_decimals: x.get_qty_decimals(),
                checksum: x.get_checksum(),
                checksum_ok: x.get_checksum_ok(),
                depth: x.get_depth(),
            })
        }
        Which::SpotTicker(x) => {
            let x = x?;
            Body::SpotTicker(SpotTicker {
                ticker: text(x.has_ticker(), x.get_ticker())?,
                bid: opt_e6(x.get_bid()),
                bid_qty: opt_e6(x.get_bid_qty()),
                ask: opt_e6(x.get_ask()),
                ask_qty: opt_e6(x.get_ask_qty()),
                last: opt_e6(x.get_last()),
                volume: opt_e6(x.get_volume()),
                vwap: opt_e6(x.get_vwap()),
                low: opt_e6(x.get_low()),
                high: opt_e6(x.get_high()),
                change: opt_e6(x.get_change()),
                change_pct: opt_e6(x.get_change_pct()),
                price_decimals: x.get_price_decimals(),
                qty_decimals: x.get_qty_decimals(),
            })
        }
        Which::Instrument(x) => {
            let x = x?;
            Body::Instrument(Instrument {
                ticker: text(x.has_ticker(), x.get_ticker())?,
                base: text(x.has_base(), x.get_base())?,
                quote: text(x.has_quote(), x.get_quote())?,
                status: text(x.has_status(), x.get_status())?,
                price_decimals: x.get_price_decimals(),
                qty_decimals: x.get_qty_decimals(),
                price_increment: opt_e6(x.get_price_increment()),
                qty_increment: opt_e6(x.get_qty_increment()),
                qty_min: opt_e6(x.get_qty_min()),
                cost_min: text(x.has_cost_min(), x.get_cost_min())?,
            })
        }
        Which::VenueStatus(x) => {
            let x = x?;
            Body::VenueStatus(VenueStatus {
                system: text(x.has_system(), x.get_system())?,
                api_version: text(x.has_api_version(), x.get_api_version())?,
                connection_id: x.get_connection_id(),
                version: text(x.has_version(), x.get_version())?,
            })
        }
    };
    Ok(Record {
        receive_ts: r.get_receive_ts(),
        exchange_ts: r.get_exchange_ts(),
        conn_id: r.get_conn_id(),
        sid: r.get_sid(),
        seq: r.get_seq(),
        body,
    })
}

fn own(s: Option<Cow<'_, str>>) -> Option<Cow<'static, str>> {
    s.map(|v| Cow::Owned(v.into_owned()))
}

/// A record that no longer borrows from its source.
pub fn into_owned(r: Record<'_>) -> Record<'static> {
    let body = match r.body {
        Body::Trade(t) => Body::Trade(Trade {
            ticker: own(t.ticker),
            trade_id: own(t.trade_id),
            price_e6: t.price_e6,
            no_price_e6: t.no_price_e6,
            size_e6: t.size_e6,
            taker_outcome: t.taker_outcome,
            taker_book_side: t.taker_book_side,
            is_block_trade: t.is_block_trade,
        }),
        Body::BookSnapshot(s) => Body::BookSnapshot(BookSnapshot {
            ticker: own(s.ticker),
            market_id: own(s.market_id),
            yes: s.yes,
            no: s.no,
            use_yes_price: s.use_yes_price,
        }),
        Body::BookDelta(d) => Body::BookDelta(BookDelta {
            ticker: own(d.ticker),
            market_id: own(d.market_id),
            side: d.side,
            price_e6: d.price_e6,
            delta_e6: d.delta_e6,
            client_order_id: own(d.client_order_id),
        }),
        Body::Ticker(t) => Body::Ticker(Ticker {
            ticker: own(t.ticker),
            market_id: own(t.market_id),
            last_price_e6: t.last_price_e6,
            yes_bid_e6: t.yes_bid_e6,
            yes_ask_e6: t.yes_ask_e6,
            yes_bid_size_e6: t.yes_bid_size_e6,
            yes_ask_size_e6: t.yes_ask_size_e6,
            last_trade_size_e6: t.last_trade_size_e6,
            volume_e6: t.volume_e6,
            open_interest_e6: t.open_interest_e6,
            dollar_volume: t.dollar_volume,
            dollar_open_interest: t.dollar_open_interest,
        }),
        Body::Lifecycle(l) => Body::Lifecycle(MarketLifecycle {
            ticker: own(l.ticker),
            event_type: l.event_type,
            event_type_text: own(l.event_type_text),
            open_ts: l.open_ts,
            close_ts: l.close_ts,
            determination_ts: l.determination_ts,
            settled_ts: l.settled_ts,
            result: own(l.result),
            settlement_value_e6: l.settlement_value_e6,
            is_deactivated: l.is_deactivated,
            event_ticker: own(l.event_ticker),
            title: own(l.title),
            metadata_json: own(l.metadata_json),
        }),
        Body::EventLifecycle(e) => Body::EventLifecycle(EventLifecycle {
            event_ticker: own(e.event_ticker),
            title: own(e.title),
            subtitle: own(e.subtitle),
            collateral_return_type: own(e.collateral_return_type),
            series_ticker: own(e.series_ticker),
            strike_date: e.strike_date,
            strike_period: own(e.strike_period),
        }),
        Body::Status(s) => Body::Status(MarketStatus {
            ticker: own(s.ticker),
            status: s.status,
            status_text: own(s.status_text),
        }),
        Body::ConnectorEvent(e) => Body::ConnectorEvent(ConnectorEvent {
            kind: e.kind,
            shard: e.shard,
            reason: own(e.reason),
            duration_ns: e.duration_ns,
            expected_seq: e.expected_seq,
            received_seq: e.received_seq,
            tickers: e
                .tickers
                .into_iter()
                .map(|t| Cow::Owned(t.into_owned()))
                .collect(),
        }),
        Body::Book(v) => Body::Book(BookView {
            ticker: own(v.ticker),
            bids: v.bids,
            asks: v.asks,
            valid: v.valid,
        }),
        Body::SpotView(v) => Body::SpotView(BookView {
            ticker: own(v.ticker),
            bids: v.bids,
            asks: v.asks,
            valid: v.valid,
        }),
        Body::SpotBook(k) => Body::SpotBook(SpotBook {
            ticker: own(k.ticker),
            ..k
        }),
        Body::SpotTrade(t) => Body::SpotTrade(SpotTrade {
            ticker: own(t.ticker),
            trade_id: own(t.trade_id),
            ord_type: own(t.ord_type),
            ..t
        }),
        Body::SpotTicker(t) => Body::SpotTicker(SpotTicker {
            ticker: own(t.ticker),
            ..t
        }),
        Body::Instrument(i) => Body::Instrument(Instrument {
            ticker: own(i.ticker),
            base: own(i.base),
            quote: own(i.quote),
            status: own(i.status),
            cost_min: own(i.cost_min),
            ..i
        }),
        Body::VenueStatus(v) => Body::VenueStatus(VenueStatus {
            system: own(v.system),
            api_version: own(v.api_version),
            version: own(v.version),
            ..v
        }),
    };
    Record {
        receive_ts: r.receive_ts,
        exchange_ts: r.exchange_ts,
        conn_id: r.conn_id,
        sid: r.sid,
        seq: r.seq,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Level;
    use crate::venues::kalshi::parse::parse_frame;

    /// What the capnp crate itself writes for `record` (in one segment, as ours).
    fn reference(record: &Record<'_>) -> Vec<u8> {
        let one_segment = capnp::message::HeapAllocator::new().first_segment_words(1 << 16);
        let mut message = capnp::message::Builder::new(one_segment);
        build_record(message.init_root::<record::Builder>(), record);
        let mut out = Vec::new();
        serialize_packed::write_message(&mut out, &message).expect("write to a Vec");
        out
    }

    #[test]
    fn encoder_writes_the_bytes_the_capnp_crate_writes() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/kalshi");
        let mut records = 0;
        let mut encoder = Encoder::new();
        for entry in std::fs::read_dir(dir).expect("fixture tree") {
            let frame = std::fs::read(entry.expect("entry").path()).expect("fixture");
            let Some(mut record) = parse_frame(&frame, 1_800_000_000_000_000_123, 7).record else {
                continue;
            };
            record.seq = u64::MAX;
            let mut ours = vec![0xAB];
            encoder.encode(&record, &mut ours);
            assert!(ours[1..] == reference(&record)[..], "the bytes differ");
            records += 1;
        }
        assert!(records > 30, "{records} fixture records");
    }

    #[test]
    fn large_records_encode_as_the_capnp_crate_does() {
        let level = |i: i64| Level {
            price_e6: Some(i * 10_000),
            size_e6: if i % 3 == 0 { None } else { Some(i) },
        };
        let record = Record {
            receive_ts: 1_800_000_000_000_000_000,
            exchange_ts: 0,
            conn_id: 3,
            sid: 0,
            seq: 255,
            body: Body::BookSnapshot(BookSnapshot {
                ticker: Some(Cow::Borrowed("KXHIGHNY-26JUL20-B85.5")),
                market_id: None,
                yes: (0..400).map(level).collect(),
                no: (0..3).map(level).collect(),
                use_yes_price: true,
            }),
        };
        let mut ours = Vec::new();
        Encoder::new().encode(&record, &mut ours);
        assert!(ours == reference(&record), "the bytes differ");
    }
}

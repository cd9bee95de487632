//! Normalized records in Rust: one struct per schema struct (schemas/ssmd.capnp).
//!
//! `None` in an E6 field is the schema's `undefE6`; 0 in a timestamp is "none".
//! Strings are `Cow` so that parsing borrows from the frame and decoding can
//! borrow from the message.

use std::borrow::Cow;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Outcome {
    #[default]
    Unknown,
    Yes,
    No,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Status {
    #[default]
    Open,
    Closed,
    Halted,
    Initialized,
    Determined,
    Settled,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LifecycleEvent {
    #[default]
    Other,
    Created,
    Activated,
    Deactivated,
    CloseDateUpdated,
    Determined,
    Settled,
    MetadataUpdated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConnectorEventKind {
    #[default]
    Connected,
    Disconnected,
    Gap,
    Resync,
    Subscribed,
    Unsubscribed,
    BufferFull,
    Error,
    /// The connector process is capturing; `Record::conn_id` is its run id and
    /// `duration_ns` the interval to the next heartbeat.
    Heartbeat,
    /// The connector process stopped on request; `Record::conn_id` is its run id.
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Level {
    pub price_e6: Option<i64>,
    pub size_e6: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Trade<'a> {
    pub ticker: Option<Cow<'a, str>>,
    pub trade_id: Option<Cow<'a, str>>,
    pub price_e6: Option<i64>,
    pub no_price_e6: Option<i64>,
    pub size_e6: Option<i64>,
    pub taker_outcome: Outcome,
    pub taker_book_side: Outcome,
    pub is_block_trade: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct BookSnapshot<'a> {
    pub ticker: Option<Cow<'a, str>>,
    pub market_id: Option<Cow<'a, str>>,
    pub yes: Vec<Level>,
    pub no: Vec<Level>,
    pub use_yes_price: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct BookDelta<'a> {
    pub ticker: Option<Cow<'a, str>>,
    pub market_id: Option<Cow<'a, str>>,
    pub side: Outcome,
    pub price_e6: Option<i64>,
    pub delta_e6: Option<i64>,
    pub client_order_id: Option<Cow<'a, str>>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Ticker<'a> {
    pub ticker: Option<Cow<'a, str>>,
    pub market_id: Option<Cow<'a, str>>,
    pub last_price_e6: Option<i64>,
    pub yes_bid_e6: Option<i64>,
    pub yes_ask_e6: Option<i64>,
    pub yes_bid_size_e6: Option<i64>,
    pub yes_ask_size_e6: Option<i64>,
    pub last_trade_size_e6: Option<i64>,
    pub volume_e6: Option<i64>,
    pub open_interest_e6: Option<i64>,
    pub dollar_volume: Option<i64>,
    pub dollar_open_interest: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct MarketLifecycle<'a> {
    pub ticker: Option<Cow<'a, str>>,
    pub event_type: LifecycleEvent,
    pub event_type_text: Option<Cow<'a, str>>,
    pub open_ts: u64,
    pub close_ts: u64,
    pub determination_ts: u64,
    pub settled_ts: u64,
    pub result: Option<Cow<'a, str>>,
    pub settlement_value_e6: Option<i64>,
    pub is_deactivated: bool,
    pub event_ticker: Option<Cow<'a, str>>,
    pub title: Option<Cow<'a, str>>,
    pub metadata_json: Option<Cow<'a, str>>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct EventLifecycle<'a> {
    pub event_ticker: Option<Cow<'a, str>>,
    pub title: Option<Cow<'a, str>>,
    pub subtitle: Option<Cow<'a, str>>,
    pub collateral_return_type: Option<Cow<'a, str>>,
    pub series_ticker: Option<Cow<'a, str>>,
    pub strike_date: u64,
    pub strike_period: Option<Cow<'a, str>>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct MarketStatus<'a> {
    pub ticker: Option<Cow<'a, str>>,
    pub status: Status,
    pub status_text: Option<Cow<'a, str>>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ConnectorEvent<'a> {
    pub kind: ConnectorEventKind,
    pub shard: u32,
    pub reason: Option<Cow<'a, str>>,
    pub duration_ns: u64,
    pub expected_seq: u64,
    pub received_seq: u64,
    pub tickers: Vec<Cow<'a, str>>,
}

/// A full YES-centric book view (schema OrderBookUpdate).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BookView<'a> {
    pub ticker: Option<Cow<'a, str>>,
    pub bids: Vec<Level>,
    pub asks: Vec<Level>,
    pub valid: bool,
}

/// One level of a spot book, exact at the instrument's precision (schema SpotLevel).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpotLevel {
    /// Units of 10^-price_decimals.
    pub price: i64,
    /// Units of 10^-qty_decimals; 0 removes the level.
    pub qty: i64,
}

/// A spot venue's book message, snapshot or update (schema SpotBook).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SpotBook<'a> {
    pub ticker: Option<Cow<'a, str>>,
    pub snapshot: bool,
    pub bids: Vec<SpotLevel>,
    pub asks: Vec<SpotLevel>,
    pub price_decimals: u8,
    pub qty_decimals: u8,
    pub checksum: u32,
    pub checksum_ok: bool,
    pub depth: u16,
}

/// A spot venue's trade (schema Trade with its exact Units fields).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SpotTrade<'a> {
    pub ticker: Option<Cow<'a, str>>,
    pub trade_id: Option<Cow<'a, str>>,
    /// Units of 10^-price_decimals.
    pub price: Option<i64>,
    /// Units of 10^-qty_decimals.
    pub qty: Option<i64>,
    pub price_decimals: u8,
    pub qty_decimals: u8,
    /// The taker's side: Some(true) buy, Some(false) sell.
    pub taker_buys: Option<bool>,
    pub ord_type: Option<Cow<'a, str>>,
}

/// A spot venue's level-1 ticker (schema SpotTicker). Prices in units of
/// 10^-price_decimals, quantities in 10^-qty_decimals, change_pct in 1e-2 %.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SpotTicker<'a> {
    pub ticker: Option<Cow<'a, str>>,
    pub bid: Option<i64>,
    pub bid_qty: Option<i64>,
    pub ask: Option<i64>,
    pub ask_qty: Option<i64>,
    pub last: Option<i64>,
    pub volume: Option<i64>,
    pub vwap: Option<i64>,
    pub low: Option<i64>,
    pub high: Option<i64>,
    pub change: Option<i64>,
    pub change_pct: Option<i64>,
    pub price_decimals: u8,
    pub qty_decimals: u8,
}

/// Reference data of one instrument (schema Instrument).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Instrument<'a> {
    pub ticker: Option<Cow<'a, str>>,
    pub base: Option<Cow<'a, str>>,
    pub quote: Option<Cow<'a, str>>,
    pub status: Option<Cow<'a, str>>,
    pub price_decimals: u8,
    pub qty_decimals: u8,
    pub price_increment: Option<i64>,
    pub qty_increment: Option<i64>,
    pub qty_min: Option<i64>,
    pub cost_min: Option<Cow<'a, str>>,
}

/// The venue's engine status (schema VenueStatus).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct VenueStatus<'a> {
    pub system: Option<Cow<'a, str>>,
    pub api_version: Option<Cow<'a, str>>,
    pub connection_id: u64,
    pub version: Option<Cow<'a, str>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Body<'a> {
    Trade(Trade<'a>),
    BookSnapshot(BookSnapshot<'a>),
    BookDelta(BookDelta<'a>),
    Ticker(Ticker<'a>),
    Lifecycle(MarketLifecycle<'a>),
    EventLifecycle(EventLifecycle<'a>),
    Status(MarketStatus<'a>),
    ConnectorEvent(ConnectorEvent<'a>),
    Book(BookView<'a>),
    /// A spot book's full view: bids and asks at face value, any price
    /// (schema OrderBookUpdate with `spot` set).
    SpotView(BookView<'a>),
    SpotBook(SpotBook<'a>),
    SpotTrade(SpotTrade<'a>),
    SpotTicker(SpotTicker<'a>),
    Instrument(Instrument<'a>),
    VenueStatus(VenueStatus<'a>),
}

/// What a record is about, as used in subjects and archive paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordType {
    Trade,
    Orderbook,
    Ticker,
    Lifecycle,
    Status,
    Event,
}

impl RecordType {
    pub const ALL: [RecordType; 6] = [
        RecordType::Trade,
        RecordType::Orderbook,
        RecordType::Ticker,
        RecordType::Lifecycle,
        RecordType::Status,
        RecordType::Event,
    ];

    /// The name in NATS subjects, archive paths and the schema registry.
    pub fn name(self) -> &'static str {
        match self {
            RecordType::Trade => "trade",
            RecordType::Orderbook => "orderbook",
            RecordType::Ticker => "ticker",
            RecordType::Lifecycle => "lifecycle",
            RecordType::Status => "status",
            RecordType::Event => "event",
        }
    }

    pub fn from_name(name: &str) -> Option<RecordType> {
        RecordType::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl Body<'_> {
    /// The record's kind: its name in the schema's Record union, in snake_case.
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Trade(_) => "trade",
            Body::BookSnapshot(_) => "book_snapshot",
            Body::BookDelta(_) => "book_delta",
            Body::Ticker(_) => "ticker",
            Body::Lifecycle(_) => "lifecycle",
            Body::EventLifecycle(_) => "event_lifecycle",
            Body::Status(_) => "status",
            Body::ConnectorEvent(_) => "connector_event",
            Body::Book(_) | Body::SpotView(_) => "book",
            Body::SpotBook(_) => "spot_book",
            Body::SpotTrade(_) => "trade",
            Body::SpotTicker(_) => "spot_ticker",
            Body::Instrument(_) => "instrument",
            Body::VenueStatus(_) => "venue_status",
        }
    }

    pub fn record_type(&self) -> RecordType {
        match self {
            Body::Trade(_) | Body::SpotTrade(_) => RecordType::Trade,
            Body::BookSnapshot(_)
            | Body::BookDelta(_)
            | Body::Book(_)
            | Body::SpotView(_)
            | Body::SpotBook(_) => RecordType::Orderbook,
            Body::Ticker(_) | Body::SpotTicker(_) => RecordType::Ticker,
            Body::Lifecycle(_) | Body::EventLifecycle(_) => RecordType::Lifecycle,
            Body::Status(_) | Body::Instrument(_) | Body::VenueStatus(_) => RecordType::Status,
            Body::ConnectorEvent(_) => RecordType::Event,
        }
    }

    /// The market (or, for event lifecycle, the event) the record is about.
    pub fn ticker(&self) -> Option<&str> {
        match self {
            Body::Trade(r) => r.ticker.as_deref(),
            Body::BookSnapshot(r) => r.ticker.as_deref(),
            Body::BookDelta(r) => r.ticker.as_deref(),
            Body::Ticker(r) => r.ticker.as_deref(),
            Body::Lifecycle(r) => r.ticker.as_deref(),
            Body::EventLifecycle(r) => r.event_ticker.as_deref(),
            Body::Status(r) => r.ticker.as_deref(),
            Body::ConnectorEvent(_) => None,
            Body::Book(r) | Body::SpotView(r) => r.ticker.as_deref(),
            Body::SpotBook(r) => r.ticker.as_deref(),
            Body::SpotTrade(r) => r.ticker.as_deref(),
            Body::SpotTicker(r) => r.ticker.as_deref(),
            Body::Instrument(r) => r.ticker.as_deref(),
            Body::VenueStatus(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Record<'a> {
    pub receive_ts: u64,
    pub exchange_ts: u64,
    pub conn_id: u64,
    pub sid: u32,
    pub seq: u64,
    pub body: Body<'a>,
}

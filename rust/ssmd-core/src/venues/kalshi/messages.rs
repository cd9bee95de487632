//! Kalshi wire structs. Every field is lenient (see `crate::scalar`): serde
//! fails only on malformed JSON, never on a missing or wrongly typed field.
//!
//! `Msg` is the union of the `msg` fields of every message type, so that one
//! pass over the frame reads it whatever the order of its keys.

use crate::scalar::{Levels, ObjectOr, Scalar};
use serde::Deserialize;
use serde_json::value::RawValue;

/// `{"type": ..., "sid": ..., "seq": ..., "id": ..., "msg": {...}}`
#[derive(Debug, Default, Deserialize)]
pub struct Envelope<'a> {
    #[serde(rename = "type", default, borrow)]
    pub kind: Scalar<'a>,
    #[serde(default, borrow)]
    pub sid: Scalar<'a>,
    #[serde(default, borrow)]
    pub seq: Scalar<'a>,
    #[serde(default, borrow)]
    pub id: Scalar<'a>,
    #[serde(default, borrow)]
    pub msg: ObjectOr<Msg<'a>>,
}

/// Every field any message type carries in `msg`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Msg<'a> {
    // Identity.
    #[serde(borrow)]
    pub market_ticker: Scalar<'a>,
    #[serde(borrow)]
    pub market_id: Scalar<'a>,
    #[serde(borrow)]
    pub event_ticker: Scalar<'a>,
    #[serde(borrow)]
    pub trade_id: Scalar<'a>,

    // Time: `ts` is integer seconds (ticker, trade) or RFC3339 (orderbook_delta).
    #[serde(borrow)]
    pub ts: Scalar<'a>,
    #[serde(borrow)]
    pub ts_ms: Scalar<'a>,
    #[serde(borrow)]
    pub time: Scalar<'a>,

    // orderbook_snapshot: C, B, A forms of each side.
    #[serde(borrow)]
    pub yes_dollars_fp: Levels<'a>,
    #[serde(borrow)]
    pub no_dollars_fp: Levels<'a>,
    #[serde(borrow)]
    pub yes_dollars: Levels<'a>,
    #[serde(borrow)]
    pub no_dollars: Levels<'a>,
    #[serde(borrow)]
    pub yes: Levels<'a>,
    #[serde(borrow)]
    pub no: Levels<'a>,

    // orderbook_delta (and ticker's last price).
    #[serde(borrow)]
    pub price_dollars: Scalar<'a>,
    #[serde(borrow)]
    pub price: Scalar<'a>,
    #[serde(borrow)]
    pub delta_fp: Scalar<'a>,
    #[serde(borrow)]
    pub delta: Scalar<'a>,
    #[serde(borrow)]
    pub side: Scalar<'a>,
    #[serde(borrow)]
    pub client_order_id: Scalar<'a>,

    // trade.
    #[serde(borrow)]
    pub yes_price_dollars: Scalar<'a>,
    #[serde(borrow)]
    pub no_price_dollars: Scalar<'a>,
    #[serde(borrow)]
    pub yes_price: Scalar<'a>,
    #[serde(borrow)]
    pub no_price: Scalar<'a>,
    #[serde(borrow)]
    pub count_fp: Scalar<'a>,
    #[serde(borrow)]
    pub count: Scalar<'a>,
    #[serde(borrow)]
    pub taker_side: Scalar<'a>,
    #[serde(borrow)]
    pub taker_outcome_side: Scalar<'a>,
    #[serde(borrow)]
    pub taker_book_side: Scalar<'a>,
    #[serde(borrow)]
    pub is_block_trade: Scalar<'a>,

    // ticker.
    #[serde(borrow)]
    pub yes_bid_dollars: Scalar<'a>,
    #[serde(borrow)]
    pub yes_ask_dollars: Scalar<'a>,
    #[serde(borrow)]
    pub yes_bid: Scalar<'a>,
    #[serde(borrow)]
    pub yes_ask: Scalar<'a>,
    #[serde(borrow)]
    pub yes_bid_size_fp: Scalar<'a>,
    #[serde(borrow)]
    pub yes_ask_size_fp: Scalar<'a>,
    #[serde(borrow)]
    pub last_trade_size_fp: Scalar<'a>,
    #[serde(borrow)]
    pub volume_fp: Scalar<'a>,
    #[serde(borrow)]
    pub volume: Scalar<'a>,
    #[serde(borrow)]
    pub open_interest_fp: Scalar<'a>,
    #[serde(borrow)]
    pub open_interest: Scalar<'a>,
    #[serde(borrow)]
    pub dollar_volume: Scalar<'a>,
    #[serde(borrow)]
    pub dollar_open_interest: Scalar<'a>,

    // market_lifecycle_v2.
    #[serde(borrow)]
    pub event_type: Scalar<'a>,
    #[serde(borrow)]
    pub open_ts: Scalar<'a>,
    #[serde(borrow)]
    pub close_ts: Scalar<'a>,
    #[serde(borrow)]
    pub determination_ts: Scalar<'a>,
    #[serde(borrow)]
    pub settled_ts: Scalar<'a>,
    #[serde(borrow)]
    pub result: Scalar<'a>,
    #[serde(borrow)]
    pub settlement_value: Scalar<'a>,
    #[serde(borrow)]
    pub is_deactivated: Scalar<'a>,
    #[serde(borrow)]
    pub additional_metadata: Option<&'a RawValue>,

    // event_lifecycle.
    #[serde(borrow)]
    pub title: Scalar<'a>,
    #[serde(borrow)]
    pub subtitle: Scalar<'a>,
    #[serde(borrow)]
    pub sub_title: Scalar<'a>,
    #[serde(borrow)]
    pub collateral_return_type: Scalar<'a>,
    #[serde(borrow)]
    pub series_ticker: Scalar<'a>,
    #[serde(borrow)]
    pub strike_date: Scalar<'a>,
    #[serde(borrow)]
    pub strike_period: Scalar<'a>,

    // Control frames: error {code, msg}, subscribed {channel, sid}.
    #[serde(borrow)]
    pub code: Scalar<'a>,
    #[serde(rename = "msg", borrow)]
    pub error_text: Scalar<'a>,
    #[serde(borrow)]
    pub channel: Scalar<'a>,
}

/// The fields of `additional_metadata` that the normalized record keeps apart.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AdditionalMetadata<'a> {
    #[serde(borrow)]
    pub event_ticker: Scalar<'a>,
    #[serde(borrow)]
    pub title: Scalar<'a>,
    #[serde(borrow)]
    pub name: Scalar<'a>,
    #[serde(borrow)]
    pub result: Scalar<'a>,
}

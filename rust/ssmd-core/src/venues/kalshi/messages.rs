//! Kalshi wire structs. Every field is lenient (see `crate::scalar`): serde
//! fails only on malformed JSON, never on a missing or wrongly typed field.
//!
//! `Msg` is the union of the `msg` fields of every message type, so that one
//! pass over the frame reads it whatever the order of its keys.

use crate::scalar::{Key, Levels, Scalar};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

/// Every field any message type carries in `msg`.
#[derive(Debug, Default)]
pub struct Msg<'a> {
    // Identity.
    pub market_ticker: Scalar<'a>,
    pub market_id: Scalar<'a>,
    pub event_ticker: Scalar<'a>,
    pub trade_id: Scalar<'a>,

    // Time: `ts` is integer seconds (ticker, trade) or RFC3339 (orderbook_delta).
    pub ts: Scalar<'a>,
    pub ts_ms: Scalar<'a>,
    pub time: Scalar<'a>,

    // orderbook_snapshot: C, B, A forms of each side.
    pub yes_dollars_fp: Levels<'a>,
    pub no_dollars_fp: Levels<'a>,
    pub yes_dollars: Levels<'a>,
    pub no_dollars: Levels<'a>,
    pub yes: Levels<'a>,
    pub no: Levels<'a>,

    // orderbook_delta (and ticker's last price).
    pub price_dollars: Scalar<'a>,
    pub price: Scalar<'a>,
    pub delta_fp: Scalar<'a>,
    pub delta: Scalar<'a>,
    pub side: Scalar<'a>,
    pub client_order_id: Scalar<'a>,

    // trade.
    pub yes_price_dollars: Scalar<'a>,
    pub no_price_dollars: Scalar<'a>,
    pub yes_price: Scalar<'a>,
    pub no_price: Scalar<'a>,
    pub count_fp: Scalar<'a>,
    pub count: Scalar<'a>,
    pub taker_side: Scalar<'a>,
    pub taker_outcome_side: Scalar<'a>,
    pub taker_book_side: Scalar<'a>,
    pub is_block_trade: Scalar<'a>,

    // ticker.
    pub yes_bid_dollars: Scalar<'a>,
    pub yes_ask_dollars: Scalar<'a>,
    pub yes_bid: Scalar<'a>,
    pub yes_ask: Scalar<'a>,
    pub yes_bid_size_fp: Scalar<'a>,
    pub yes_ask_size_fp: Scalar<'a>,
    pub last_trade_size_fp: Scalar<'a>,
    pub volume_fp: Scalar<'a>,
    pub volume: Scalar<'a>,
    pub open_interest_fp: Scalar<'a>,
    pub open_interest: Scalar<'a>,
    pub dollar_volume: Scalar<'a>,
    pub dollar_open_interest: Scalar<'a>,

    // market_lifecycle_v2.
    pub event_type: Scalar<'a>,
    pub open_ts: Scalar<'a>,
    pub close_ts: Scalar<'a>,
    pub determination_ts: Scalar<'a>,
    pub settled_ts: Scalar<'a>,
    pub result: Scalar<'a>,
    pub settlement_value: Scalar<'a>,
    pub is_deactivated: Scalar<'a>,
    pub additional_metadata: Option<&'a RawValue>,

    // event_lifecycle.
    pub title: Scalar<'a>,
    pub subtitle: Scalar<'a>,
    pub sub_title: Scalar<'a>,
    pub collateral_return_type: Scalar<'a>,
    pub series_ticker: Scalar<'a>,
    pub strike_date: Scalar<'a>,
    pub strike_period: Scalar<'a>,

    // Control frames: error {code, msg}, subscribed {channel, sid}.
    pub code: Scalar<'a>,
    pub error_text: Scalar<'a>,
    pub channel: Scalar<'a>,
}

impl<'a> Msg<'a> {
    /// Reads one `key: value` pair into its field. Dispatching on the key's
    /// length first keeps this a jump plus one or two comparisons, where a
    /// derived 60-arm string match compares against every name in turn.
    fn read_entry<'de: 'a, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        match key.len() {
            2 => match key {
                "ts" => self.ts = map.next_value()?,
                "no" => self.no = map.next_value()?,
                _ => map.next_value::<IgnoredAny>().map(|_| ())?,
            },
            3 => match key {
                "msg" => self.error_text = map.next_value()?,
                "yes" => self.yes = map.next_value()?,
                _ => map.next_value::<IgnoredAny>().map(|_| ())?,
            },
            4 => match key {
                "time" => self.time = map.next_value()?,
                "side" => self.side = map.next_value()?,
                "code" => self.code = map.next_value()?,
                _ => map.next_value::<IgnoredAny>().map(|_| ())?,
            },
            5 => match key {
                "ts_ms" => self.ts_ms = map.next_value()?,
                "price" => self.price = map.next_value()?,
                "delta" => self.delta = map.next_value()?,
                "count" => self.count = map.next_value()?,
                "title" => self.title = map.next_value()?,
                _ => map.next_value::<IgnoredAny>().map(|_| ())?,
            },
            6 => match key {
                "volume" => self.volume = map.next_value()?,
                "result" => self.result = map.next_value()?,
                _ => map.next_value::<IgnoredAny>().map(|_| ())?,
            },
            7 => match key {
                "yes_bid" => self.yes_bid = map.next_value()?,
                "yes_ask" => self.yes_ask = map.next_value()?,
                "open_ts" => self.open_ts = map.next_value()?,
                "channel" => self.channel = map.next_value()?,
                _ => map.next_value::<IgnoredAny>().map(|_| ())?,
            },
            8 => match key {
                "trade_id" => self.trade_id = map.next_value()?,
                "delta_fp" => self.delta_fp = map.next_value()?,
                "no_price" => self.no_price = map.next_value()?,
                "count_fp" => self.count_fp = map.next_value()?,
                "close_ts" => self.close_ts = map.next_value()?,
                "subtitle" => self.subtitle = map.next_value()?,
                _ => map.next_value::<IgnoredAny>().map(|_| ())?,
            },
            9 => match key {
                "market_id" => self.market_id = map.next_value()?,
                "yes_price" => self.yes_price = map.next_value()?,
                "volume_fp" => self.volume_fp = map.next_value()?,
                "sub_title" => self.sub_title = map.next_value()?,
                _ => map.next_value::<IgnoredAny>().map(|_| ())?,
            },
            10 => match key {
                "taker_side" => self.taker_side = map.next_value()?,
                "event_type" => self.event_type = map.next_value()?,
                "settled_ts" => self.settled_ts = map.next_value()?,
                "no_dollars" => self.no_dollars = map.next_value()?,
                _ => map.next_value::<IgnoredAny>().map(|_| ())?,
            },
            11 => match key {
                "strike_date" => self.strike_date = map.next_value()?,
                "yes_dollars" => self.yes_dollars = map.next_value()?,
                _ => map.next_value::<IgnoredAny>().map(|_| ())?,
            },
            12 => match key {
                "event_ticker" => self.event_ticker = map.next_value()?,
                _ => map.next_value::<IgnoredAny>().map(|_| ())?,
            },
            13 => match key {
                "market_ticker" => self.market_ticker = map.next_value()?,
                "price_dollars" => self.price_dollars = map.next_value()?,
                "open_interest" => self.open_interest = map.next_value()?,
                "dollar_volume" => self.dollar_volume = map.next_value()?,
                "series_ticker" => self.series_ticker = map.next_value()?,
                "strike_period" => self.strike_period = map.next_value()?,
                "no_dollars_fp" => self.no_dollars_fp = map.next_value()?,
                _ => map.next_value::<IgnoredAny>().map(|_| ())?,
            },
            14 => match key {
                "is_block_trade" => self.is_block_trade = map.next_value()?,
                "is_deactivated" => self.is_deactivated = map.next_value()?,
                "yes_dollars_fp" => self.yes_dollars_fp = map.next_value()?,
                _ => map.next_value::<IgnoredAny>().map(|_| ())?,
            },
            15 => match key {
                "client_order_id" => self.client_order_id = map.next_value()?,
                "taker_book_side" => self.taker_book_side = map.next_value()?,
                "yes_bid_dollars" => self.yes_bid_dollars = map.next_value()?,
                "yes_ask_dollars" => self.yes_ask_dollars = map.next_value()?,
                "yes_bid_size_fp" => self.yes_bid_size_fp = map.next_value()?,
                "yes_ask_size_fp" => self.yes_ask_size_fp = map.next_value()?,
                _ => map.next_value::<IgnoredAny>().map(|_| ())?,
            },
            16 => match key {
                "no_price_dollars" => self.no_price_dollars = map.next_value()?,
                "open_interest_fp" => self.open_interest_fp = map.next_value()?,
                "determination_ts" => self.determination_ts = map.next_value()?,
                "settlement_value" => self.settlement_value = map.next_value()?,
                _ => map.next_value::<IgnoredAny>().map(|_| ())?,
            },
            17 => match key {
                "yes_price_dollars" => self.yes_price_dollars = map.next_value()?,
                _ => map.next_value::<IgnoredAny>().map(|_| ())?,
            },
            18 => match key {
                "taker_outcome_side" => self.taker_outcome_side = map.next_value()?,
                "last_trade_size_fp" => self.last_trade_size_fp = map.next_value()?,
                _ => map.next_value::<IgnoredAny>().map(|_| ())?,
            },
            19 => match key {
                "additional_metadata" => self.additional_metadata = map.next_value()?,
                _ => map.next_value::<IgnoredAny>().map(|_| ())?,
            },
            20 => match key {
                "dollar_open_interest" => self.dollar_open_interest = map.next_value()?,
                _ => map.next_value::<IgnoredAny>().map(|_| ())?,
            },
            22 => match key {
                "collateral_return_type" => self.collateral_return_type = map.next_value()?,
                _ => map.next_value::<IgnoredAny>().map(|_| ())?,
            },
            _ => map.next_value::<IgnoredAny>().map(|_| ())?,
        }
        Ok(())
    }
}

/// The envelope of a frame; its `msg` is read in place into a caller's `Msg`.
#[derive(Debug, Default)]
pub struct Envelope<'a> {
    pub kind: Scalar<'a>,
    pub sid: Scalar<'a>,
    pub seq: Scalar<'a>,
    pub id: Scalar<'a>,
    pub msg: MsgShape,
}

/// What the frame's `msg` was.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum MsgShape {
    #[default]
    Missing,
    Object,
    NotObject,
}

/// Reads a frame into `envelope` and `msg`. `Ok(false)` when the JSON is valid
/// but not an object.
///
/// Both are filled in place: `msg` is large (one slot per field of every
/// message type) and moving it through serde's return values cost a quarter
/// of the parse time. On an error `envelope` keeps the fields that were read
/// whole before it (a value counts once the next key or the end of the
/// object follows it, so a number cut off by the end of the text is never
/// taken): a frame broken in its `msg` still says its type, sid and seq.
pub fn read_frame<'a>(
    text: &'a str,
    envelope: &mut Envelope<'a>,
    msg: &mut Msg<'a>,
) -> Result<bool, serde_json::Error> {
    // From text already known to be UTF-8, serde_json skips checking each string.
    let mut de = serde_json::Deserializer::from_str(text);
    let is_object = FrameSeed { envelope, msg }.deserialize(&mut de)?;
    de.end()?;
    Ok(is_object)
}

/// An envelope field, to take back a value whose end was not seen.
#[derive(Clone, Copy)]
enum EnvelopeField {
    Kind,
    Sid,
    Seq,
    Id,
}

impl Envelope<'_> {
    fn forget(&mut self, field: EnvelopeField) {
        match field {
            EnvelopeField::Kind => self.kind = Scalar::Missing,
            EnvelopeField::Sid => self.sid = Scalar::Missing,
            EnvelopeField::Seq => self.seq = Scalar::Missing,
            EnvelopeField::Id => self.id = Scalar::Missing,
        }
    }
}

struct FrameSeed<'m, 'a> {
    envelope: &'m mut Envelope<'a>,
    msg: &'m mut Msg<'a>,
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for FrameSeed<'_, 'a> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for FrameSeed<'_, 'a> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a frame object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let envelope = self.envelope;
        // The envelope field read last: whole only once the next key (or the end of
        // the object) is read after it.
        let mut unconfirmed = None;
        loop {
            let key = match map.next_key::<Key<'de>>() {
                Ok(key) => key,
                Err(e) => {
                    if let Some(field) = unconfirmed {
                        envelope.forget(field);
                    }
                    return Err(e);
                }
            };
            let Some(key) = key else { break };
            unconfirmed = None;
            match key.0.as_ref() {
                "type" => {
                    envelope.kind = map.next_value()?;
                    unconfirmed = Some(EnvelopeField::Kind);
                }
                "sid" => {
                    envelope.sid = map.next_value()?;
                    unconfirmed = Some(EnvelopeField::Sid);
                }
                "seq" => {
                    envelope.seq = map.next_value()?;
                    unconfirmed = Some(EnvelopeField::Seq);
                }
                "id" => {
                    envelope.id = map.next_value()?;
                    unconfirmed = Some(EnvelopeField::Id);
                }
                "msg" => {
                    envelope.msg = map.next_value_seed(MsgSeed {
                        msg: &mut *self.msg,
                    })?
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(true)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(false)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(false)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(false)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(false)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(false)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(false)
    }
}

struct MsgSeed<'m, 'a> {
    msg: &'m mut Msg<'a>,
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for MsgSeed<'_, 'a> {
    type Value = MsgShape;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for MsgSeed<'_, 'a> {
    type Value = MsgShape;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a message object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while let Some(key) = map.next_key::<Key<'de>>()? {
            self.msg.read_entry(&key.0, &mut map)?;
        }
        Ok(MsgShape::Object)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(MsgShape::NotObject)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(MsgShape::NotObject)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(MsgShape::NotObject)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(MsgShape::NotObject)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(MsgShape::NotObject)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(MsgShape::NotObject)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(MsgShape::Missing)
    }
}

/// The fields of `additional_metadata` that the normalized record keeps apart.
#[derive(Debug, Default, serde::Deserialize)]
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

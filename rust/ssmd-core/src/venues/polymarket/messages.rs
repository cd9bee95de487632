//! Polymarket market-channel wire structs. Every field is lenient
//! (`crate::scalar`): serde fails only on malformed JSON, never on a missing or
//! wrongly typed field.
//!
//! `Event` is the union of the fields of every event type, so one pass reads
//! an object whatever its `event_type` and key order.

use crate::scalar::Scalar;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize as DeriveDeserialize;
use std::fmt;
use std::marker::PhantomData;

/// One `{price, size}` level; `None` when the entry is not an object.
#[derive(Debug, Default, DeriveDeserialize)]
#[serde(default)]
pub struct WireLevel<'a> {
    #[serde(borrow)]
    pub price: Scalar<'a>,
    #[serde(borrow)]
    pub size: Scalar<'a>,
}

/// One item of a `price_change` (current schema: `price_changes[]`; legacy
/// `changes[]` items have no asset id and no best bid/ask).
#[derive(Debug, Default, DeriveDeserialize)]
#[serde(default)]
pub struct WireChange<'a> {
    #[serde(borrow)]
    pub asset_id: Scalar<'a>,
    #[serde(borrow)]
    pub price: Scalar<'a>,
    #[serde(borrow)]
    pub size: Scalar<'a>,
    #[serde(borrow)]
    pub side: Scalar<'a>,
    #[serde(borrow)]
    pub hash: Scalar<'a>,
    #[serde(borrow)]
    pub best_bid: Scalar<'a>,
    #[serde(borrow)]
    pub best_ask: Scalar<'a>,
}

/// A JSON array of objects `T`, read leniently.
#[derive(Debug, Default)]
pub enum List<T> {
    #[default]
    Missing,
    Null,
    /// Not an array.
    NotList,
    /// The entries; one that is not an object is `None`.
    Items(Vec<Option<T>>),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ListVisitor(PhantomData))
    }
}

struct ListVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ListVisitor<T> {
    type Value = List<T>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of objects")
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(List::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(List::Null)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(List::NotList)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(List::NotList)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(List::NotList)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(List::NotList)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(List::NotList)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(List::NotList)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(4).min(1024));
        while let Some(entry) = seq.next_element::<crate::scalar::ObjectOr<T>>()? {
            out.push(match entry {
                crate::scalar::ObjectOr::Object(t) => Some(t),
                _ => None,
            });
        }
        Ok(List::Items(out))
    }
}

/// Every field any market-channel event carries.
#[derive(Debug, Default, DeriveDeserialize)]
#[serde(default)]
pub struct Event<'a> {
    #[serde(borrow)]
    pub event_type: Scalar<'a>,
    #[serde(borrow)]
    pub asset_id: Scalar<'a>,
    #[serde(borrow)]
    pub market: Scalar<'a>,
    #[serde(borrow)]
    pub timestamp: Scalar<'a>,
    #[serde(borrow)]
    pub hash: Scalar<'a>,

    // book (older docs name the sides buys/sells).
    #[serde(borrow)]
    pub bids: List<WireLevel<'a>>,
    #[serde(borrow)]
    pub asks: List<WireLevel<'a>>,
    #[serde(borrow)]
    pub buys: List<WireLevel<'a>>,
    #[serde(borrow)]
    pub sells: List<WireLevel<'a>>,
    #[serde(borrow)]
    pub tick_size: Scalar<'a>,
    #[serde(borrow)]
    pub last_trade_price: Scalar<'a>,

    // price_change: current and legacy schema.
    #[serde(borrow)]
    pub price_changes: List<WireChange<'a>>,
    #[serde(borrow)]
    pub changes: List<WireChange<'a>>,

    // last_trade_price.
    #[serde(borrow)]
    pub price: Scalar<'a>,
    #[serde(borrow)]
    pub size: Scalar<'a>,
    #[serde(borrow)]
    pub side: Scalar<'a>,
    #[serde(borrow)]
    pub fee_rate_bps: Scalar<'a>,
    #[serde(borrow)]
    pub transaction_hash: Scalar<'a>,

    // tick_size_change.
    #[serde(borrow)]
    pub old_tick_size: Scalar<'a>,
    #[serde(borrow)]
    pub new_tick_size: Scalar<'a>,

    // best_bid_ask.
    #[serde(borrow)]
    pub best_bid: Scalar<'a>,
    #[serde(borrow)]
    pub best_ask: Scalar<'a>,

    // new_market, market_resolved.
    #[serde(borrow)]
    pub question: Scalar<'a>,
    #[serde(borrow)]
    pub winning_outcome: Scalar<'a>,
    #[serde(borrow)]
    pub winning_asset_id: Scalar<'a>,
}

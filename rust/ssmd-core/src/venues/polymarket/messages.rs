//! Polymarket market-channel wire structs. Every field is lenient
//! (`crate::scalar`): reading fails only on malformed JSON, never on a missing
//! or wrongly typed field.
//!
//! `Event` is the union of the fields of every event type, so one pass reads
//! an object whatever its `event_type` and key order. Each struct is read key
//! by key in place (`ReadFields`), dispatching on the key's length first.

use crate::scalar::{InPlace, ReadFields, Scalar};
use serde::de::{
    Deserialize, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor,
};
use std::fmt;
use std::marker::PhantomData;

fn skip<'de, A: MapAccess<'de>>(map: &mut A) -> Result<(), A::Error> {
    map.next_value::<IgnoredAny>().map(|_| ())
}

/// One `{price, size}` level; `None` in a `List` when the entry is not an object.
#[derive(Debug, Default)]
pub struct WireLevel<'a> {
    pub price: Scalar<'a>,
    pub size: Scalar<'a>,
}

impl<'de: 'a, 'a> ReadFields<'de> for WireLevel<'a> {
    fn read_entry<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "price" => self.price = map.next_value()?,
            "size" => self.size = map.next_value()?,
            _ => skip(map)?,
        }
        Ok(())
    }
}

/// One item of a `price_change` (current schema: `price_changes[]`; legacy
/// `changes[]` items have no asset id and no best bid/ask).
#[derive(Debug, Default)]
pub struct WireChange<'a> {
    pub asset_id: Scalar<'a>,
    pub price: Scalar<'a>,
    pub size: Scalar<'a>,
    pub side: Scalar<'a>,
    pub best_bid: Scalar<'a>,
    pub best_ask: Scalar<'a>,
}

impl<'de: 'a, 'a> ReadFields<'de> for WireChange<'a> {
    fn read_entry<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key.len() {
            4 if key == "size" => self.size = map.next_value()?,
            4 if key == "side" => self.side = map.next_value()?,
            5 if key == "price" => self.price = map.next_value()?,
            8 if key == "asset_id" => self.asset_id = map.next_value()?,
            8 if key == "best_bid" => self.best_bid = map.next_value()?,
            8 if key == "best_ask" => self.best_ask = map.next_value()?,
            _ => skip(map)?,
        }
        Ok(())
    }
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

impl<'de, T: ReadFields<'de> + Default> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ListVisitor(PhantomData))
    }
}

struct ListVisitor<T>(PhantomData<T>);

impl<'de, T: ReadFields<'de> + Default> Visitor<'de> for ListVisitor<T> {
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
        loop {
            let mut item = T::default();
            match seq.next_element_seed(InPlace(&mut item))? {
                None => break,
                Some(true) => out.push(Some(item)),
                Some(false) => out.push(None),
            }
        }
        Ok(List::Items(out))
    }
}

/// Every field of any market-channel event that the normalizer reads.
#[derive(Debug, Default)]
pub struct Event<'a> {
    pub event_type: Scalar<'a>,
    pub asset_id: Scalar<'a>,
    pub market: Scalar<'a>,
    pub timestamp: Scalar<'a>,
    pub hash: Scalar<'a>,

    // book (older docs name the sides buys/sells).
    pub bids: List<WireLevel<'a>>,
    pub asks: List<WireLevel<'a>>,
    pub buys: List<WireLevel<'a>>,
    pub sells: List<WireLevel<'a>>,
    pub tick_size: Scalar<'a>,
    pub last_trade_price: Scalar<'a>,

    // price_change: current and legacy schema.
    pub price_changes: List<WireChange<'a>>,
    pub changes: List<WireChange<'a>>,

    // last_trade_price.
    pub price: Scalar<'a>,
    pub size: Scalar<'a>,
    pub side: Scalar<'a>,

    // tick_size_change.
    pub old_tick_size: Scalar<'a>,
    pub new_tick_size: Scalar<'a>,

    // best_bid_ask.
    pub best_bid: Scalar<'a>,
    pub best_ask: Scalar<'a>,

    // new_market, market_resolved.
    pub question: Scalar<'a>,
    pub winning_outcome: Scalar<'a>,
}

impl<'de: 'a, 'a> ReadFields<'de> for Event<'a> {
    fn read_entry<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key.len() {
            4 => match key {
                "hash" => self.hash = map.next_value()?,
                "bids" => self.bids = map.next_value()?,
                "asks" => self.asks = map.next_value()?,
                "buys" => self.buys = map.next_value()?,
                "size" => self.size = map.next_value()?,
                "side" => self.side = map.next_value()?,
                _ => skip(map)?,
            },
            5 => match key {
                "sells" => self.sells = map.next_value()?,
                "price" => self.price = map.next_value()?,
                _ => skip(map)?,
            },
            6 if key == "market" => self.market = map.next_value()?,
            7 if key == "changes" => self.changes = map.next_value()?,
            8 => match key {
                "asset_id" => self.asset_id = map.next_value()?,
                "best_bid" => self.best_bid = map.next_value()?,
                "best_ask" => self.best_ask = map.next_value()?,
                "question" => self.question = map.next_value()?,
                _ => skip(map)?,
            },
            9 if key == "timestamp" => self.timestamp = map.next_value()?,
            9 if key == "tick_size" => self.tick_size = map.next_value()?,
            10 if key == "event_type" => self.event_type = map.next_value()?,
            13 => match key {
                "price_changes" => self.price_changes = map.next_value()?,
                "old_tick_size" => self.old_tick_size = map.next_value()?,
                "new_tick_size" => self.new_tick_size = map.next_value()?,
                _ => skip(map)?,
            },
            15 if key == "winning_outcome" => self.winning_outcome = map.next_value()?,
            16 if key == "last_trade_price" => self.last_trade_price = map.next_value()?,
            _ => skip(map)?,
        }
        Ok(())
    }
}

/// Reads one JSON object (`text` starts with `{`) into `event`, which the caller
/// gives fresh (`Event::default()`).
pub fn read_event<'a>(text: &'a str, event: &mut Event<'a>) -> serde_json::Result<()> {
    let mut de = serde_json::Deserializer::from_str(text);
    InPlace(event).deserialize(&mut de)?;
    de.end()
}

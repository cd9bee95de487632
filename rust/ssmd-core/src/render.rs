//! The gateway's trade message (docs/gateway.md), rendered once per trade where
//! the stream is read, so that no Python object is made for a trade's fields:
//! `{"type":"trade","ticker":..,"price":..,"size":..,"side":..,"ts":..}`.
//!
//! Prices are dollars and sizes contracts, written exactly from the records'
//! 1e-6 fixed point (a price always with a decimal point; a size as an integer
//! when whole). The side is the taker's: a spot trade's own, a binary
//! contract's from its outcome (YES bought is "buy"); null when the venue sent
//! none. The time is the exchange's in Unix ms, else the receive time.

use std::fmt::Write;

use crate::fixed::rescale_e6;
use crate::model::{Body, Outcome, Record};
use crate::venues::polymarket::hash::json_str;

const SCALE: u64 = 1_000_000;

/// The record's time in Unix ms: exchange time, else receive time.
pub fn record_ms(r: &Record<'_>) -> u64 {
    let ns = if r.exchange_ts != 0 {
        r.exchange_ts
    } else {
        r.receive_ts
    };
    ns / 1_000_000
}

/// What the trade message says, read from a trade record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradeFields<'a> {
    pub ticker: &'a str,
    pub price_e6: Option<i64>,
    pub size_e6: Option<i64>,
    pub side: Option<&'static str>,
    pub ms: u64,
}

/// The fields of a trade (binary contract or spot) with a ticker; None otherwise.
pub fn trade_fields<'a>(r: &'a Record<'_>) -> Option<TradeFields<'a>> {
    let ticker = r.body.ticker()?;
    let (price_e6, size_e6, side) = match &r.body {
        Body::Trade(t) => {
            let side = match t.taker_outcome {
                Outcome::Yes => Some("buy"),
                Outcome::No => Some("sell"),
                Outcome::Unknown => None,
            };
            (t.price_e6, t.size_e6, side)
        }
        Body::SpotTrade(t) => (
            t.price.and_then(|p| rescale_e6(p, t.price_decimals)),
            t.qty.and_then(|q| rescale_e6(q, t.qty_decimals)),
            t.taker_buys.map(|b| if b { "buy" } else { "sell" }),
        ),
        _ => return None,
    };
    Some(TradeFields {
        ticker,
        price_e6,
        size_e6,
        side,
        ms: record_ms(r),
    })
}

/// The trade message's JSON text.
pub fn trade_json(t: &TradeFields<'_>) -> String {
    let mut out = String::with_capacity(96 + t.ticker.len());
    out.push_str(r#"{"type":"trade","ticker":"#);
    json_str(t.ticker, &mut out);
    out.push_str(r#","price":"#);
    decimal(&mut out, t.price_e6, true);
    out.push_str(r#","size":"#);
    decimal(&mut out, t.size_e6, false);
    out.push_str(r#","side":"#);
    match t.side {
        Some(s) => {
            out.push('"');
            out.push_str(s);
            out.push('"');
        }
        None => out.push_str("null"),
    }
    let _ = write!(out, r#","ts":{}}}"#, t.ms);
    out
}

/// An e6 fixed-point value as an exact JSON number; `float`: always with a
/// decimal point (a price is a float to clients even when whole).
fn decimal(out: &mut String, e6: Option<i64>, float: bool) {
    let Some(v) = e6 else {
        out.push_str("null");
        return;
    };
    if v < 0 {
        out.push('-');
    }
    let a = v.unsigned_abs();
    let (whole, frac) = (a / SCALE, a % SCALE);
    let _ = write!(out, "{whole}");
    if frac != 0 {
        let digits = format!("{frac:06}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    } else if float {
        out.push_str(".0");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SpotTrade, Trade};
    use std::borrow::Cow;

    fn record(body: Body<'static>, exchange_ts: u64) -> Record<'static> {
        Record {
            receive_ts: 2_000_000_000,
            exchange_ts,
            conn_id: 1,
            sid: 1,
            seq: 1,
            body,
        }
    }

    #[test]
    fn binary_trade() {
        let r = record(
            Body::Trade(Trade {
                ticker: Some(Cow::Borrowed("KX-\"A\"\n")),
                price_e6: Some(550_000),
                size_e6: Some(12_000_000),
                taker_outcome: Outcome::No,
                ..Trade::default()
            }),
            0,
        );
        let t = trade_fields(&r).unwrap();
        assert_eq!(
            trade_json(&t),
            r#"{"type":"trade","ticker":"KX-\"A\"\n","price":0.55,"size":12,"side":"sell","ts":2000}"#
        );
    }

    #[test]
    fn spot_trade_and_edges() {
        let r = record(
            Body::SpotTrade(SpotTrade {
                ticker: Some(Cow::Borrowed("BTC/USD")),
                price: Some(6_543_210),
                qty: Some(1_500),
                price_decimals: 1,
                qty_decimals: 4,
                taker_buys: Some(true),
                ..SpotTrade::default()
            }),
            5_000_000,
        );
        let t = trade_fields(&r).unwrap();
        assert_eq!(
            trade_json(&t),
            r#"{"type":"trade","ticker":"BTC/USD","price":654321.0,"size":0.15,"side":"buy","ts":5}"#
        );
        let r = record(
            Body::Trade(Trade {
                ticker: Some(Cow::Borrowed("X")),
                price_e6: Some(-1),
                size_e6: None,
                ..Trade::default()
            }),
            0,
        );
        let t = trade_fields(&r).unwrap();
        assert_eq!(
            trade_json(&t),
            r#"{"type":"trade","ticker":"X","price":-0.000001,"size":null,"side":null,"ts":2000}"#
        );
        let none = record(Body::Trade(Trade::default()), 0);
        assert!(trade_fields(&none).is_none());
    }
}

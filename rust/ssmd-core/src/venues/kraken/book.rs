//! One Kraken spot book, exact at the instrument's precision, and its CRC32.
//!
//! Prices and quantities are integers in units of 10^-decimals, so the
//! checksum's token of a number (its text at the instrument's precision with
//! the `.` removed and leading zeros stripped) is the integer's decimal digits.
//! Kraken's rules: a snapshot replaces both sides; an update applies every
//! level in order (qty 0 deletes; a price may repeat within one message); then
//! each side is cut to the subscribed depth, because levels pushed out of the
//! window by better ones are never deleted by the venue; then the CRC32 of the
//! top 10 asks (ascending) followed by the top 10 bids (descending), each as
//! price token then qty token, must equal the message's checksum.

use std::collections::BTreeMap;

use super::crc::Crc32;
use crate::model::SpotLevel;

/// Levels per side that the checksum covers, whatever the depth.
pub const CHECKSUM_LEVELS: usize = 10;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExactBook {
    bids: BTreeMap<i64, i64>,
    asks: BTreeMap<i64, i64>,
    depth: usize,
}

impl ExactBook {
    pub fn new(depth: usize) -> ExactBook {
        ExactBook {
            depth: depth.max(1),
            ..ExactBook::default()
        }
    }

    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Replaces both sides with the snapshot's levels (then cut to depth).
    pub fn snapshot(&mut self, bids: &[SpotLevel], asks: &[SpotLevel]) {
        self.bids.clear();
        self.asks.clear();
        self.update(bids, asks);
    }

    /// Applies changed levels in order, then cuts each side to the depth.
    pub fn update(&mut self, bids: &[SpotLevel], asks: &[SpotLevel]) {
        for (side, levels) in [(&mut self.bids, bids), (&mut self.asks, asks)] {
            for l in levels {
                if l.qty == 0 {
                    side.remove(&l.price);
                } else {
                    side.insert(l.price, l.qty);
                }
            }
        }
        while self.bids.len() > self.depth {
            self.bids.pop_first();
        }
        while self.asks.len() > self.depth {
            self.asks.pop_last();
        }
    }

    /// Bids, best (highest) first.
    pub fn bids(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.bids.iter().rev().map(|(p, q)| (*p, *q))
    }

    /// Asks, best (lowest) first.
    pub fn asks(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.asks.iter().map(|(p, q)| (*p, *q))
    }

    /// Kraken's CRC32 of the top 10 levels per side.
    pub fn checksum(&self) -> u32 {
        let mut crc = Crc32::default();
        let mut buf = itoa::Buffer::new();
        let mut token = |crc: &mut Crc32, v: i64| crc.update(buf.format(v).as_bytes());
        for (p, q) in self.asks().take(CHECKSUM_LEVELS) {
            token(&mut crc, p);
            token(&mut crc, q);
        }
        for (p, q) in self.bids().take(CHECKSUM_LEVELS) {
            token(&mut crc, p);
            token(&mut crc, q);
        }
        crc.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lv(price: i64, qty: i64) -> SpotLevel {
        SpotLevel { price, qty }
    }

    #[test]
    fn the_worked_example_checksums() {
        // XYZ/USD, price precision 4, qty precision 8.
        let mut book = ExactBook::new(10);
        book.snapshot(
            &[
                lv(1235, 300_000_000_000),
                lv(1233, 7_512_345_678),
                lv(1229, 1_000_000_000),
            ],
            &[
                lv(1236, 120_050_000_000),
                lv(1238, 25_000_000_000),
                lv(1240, 10_000),
            ],
        );
        assert_eq!(book.checksum(), 1_377_533_586);
        // Delete bid 0.1235, insert ask 0.1237 x 40.
        book.update(&[lv(1235, 0)], &[lv(1237, 4_000_000_000)]);
        assert_eq!(book.checksum(), 3_470_963_259); // above i32::MAX: kept as u32
    }

    #[test]
    fn levels_pushed_out_of_the_window_are_dropped() {
        let mut book = ExactBook::new(2);
        book.snapshot(&[lv(100, 1), lv(90, 1)], &[lv(110, 1), lv(120, 1)]);
        // A better bid and a better ask push the worst out; no delete is sent.
        book.update(&[lv(105, 1)], &[lv(108, 1)]);
        assert_eq!(book.bids().collect::<Vec<_>>(), vec![(105, 1), (100, 1)]);
        assert_eq!(book.asks().collect::<Vec<_>>(), vec![(108, 1), (110, 1)]);
        // Deleting inside the window does not bring the dropped level back.
        book.update(&[lv(105, 0)], &[]);
        assert_eq!(book.bids().collect::<Vec<_>>(), vec![(100, 1)]);
        // A repeated price within one message: applied in order, the last counts.
        book.update(&[lv(100, 5), lv(100, 7)], &[]);
        assert_eq!(book.bids().collect::<Vec<_>>(), vec![(100, 7)]);
    }
}

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

use crate::model::SpotLevel;

/// Levels per side that the checksum covers, whatever the depth.
pub const CHECKSUM_LEVELS: usize = 10;

/// A level's checksum token: its price's digits then its quantity's, kept beside the
/// level so that a checksum, which every update asks for, formats nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Token {
    text: [u8; TOKEN],
    len: u8,
}

/// Room for two numbers of at most 20 characters each.
const TOKEN: usize = 40;

impl Token {
    fn new(price: i64, qty: i64) -> Token {
        let mut text = [0u8; TOKEN];
        let end = put_decimal(&mut text, 0, price);
        let end = put_decimal(&mut text, end, qty);
        Token {
            text,
            len: end as u8,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Entry {
    qty: i64,
    token: Token,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExactBook {
    bids: BTreeMap<i64, Entry>,
    asks: BTreeMap<i64, Entry>,
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
                    let token = Token::new(l.price, l.qty);
                    side.insert(l.price, Entry { qty: l.qty, token });
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
        self.bids.iter().rev().map(|(p, e)| (*p, e.qty))
    }

    /// Asks, best (lowest) first.
    pub fn asks(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.asks.iter().map(|(p, e)| (*p, e.qty))
    }

    /// Kraken's CRC32 of the top 10 levels per side.
    pub fn checksum(&self) -> u32 {
        // The levels' tokens into one buffer, then one CRC over it: the CRC runs fastest
        // on long input. Each copy is a whole token's room (a fixed-size copy, inlined);
        // the next one starts where the text ended.
        let mut text = [0u8; 2 * CHECKSUM_LEVELS * TOKEN + TOKEN];
        let mut len = 0;
        let asks = self.asks.values().take(CHECKSUM_LEVELS);
        for e in asks.chain(self.bids.values().rev().take(CHECKSUM_LEVELS)) {
            text[len..len + TOKEN].copy_from_slice(&e.token.text);
            len += usize::from(e.token.len);
        }
        crc32fast::hash(&text[..len])
    }
}

/// "00" to "99": two digits per division.
const PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Writes `v` in decimal at `out[at..]` and returns where it ends.
fn put_decimal(out: &mut [u8], at: usize, v: i64) -> usize {
    let mut at = at;
    if v < 0 {
        out[at] = b'-';
        at += 1;
    }
    let mut n = v.unsigned_abs();
    let end = at + n.checked_ilog10().map_or(1, |d| d as usize + 1);
    let mut i = end;
    while n >= 100 {
        let pair = (n % 100) as usize * 2;
        n /= 100;
        out[i - 2..i].copy_from_slice(&PAIRS[pair..pair + 2]);
        i -= 2;
    }
    if n >= 10 {
        let pair = n as usize * 2;
        out[i - 2..i].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        out[i - 1] = b'0' + n as u8;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lv(price: i64, qty: i64) -> SpotLevel {
        SpotLevel { price, qty }
    }

    #[test]
    fn decimals_are_written_in_place() {
        let mut out = [0u8; 64];
        let mut end = 0;
        for v in [0, 7, 10, 1_234_567_890, -42, i64::MAX, i64::MIN] {
            end = put_decimal(&mut out, end, v);
        }
        let expected = format!(
            "{}{}{}{}{}{}{}",
            0,
            7,
            10,
            1_234_567_890,
            -42,
            i64::MAX,
            i64::MIN
        );
        assert_eq!(&out[..end], expected.as_bytes());
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

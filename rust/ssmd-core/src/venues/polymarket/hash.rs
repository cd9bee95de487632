//! Polymarket's order-book summary hash.
//!
//! The venue's SDK hashes a REST `/book` summary as follows, and the market
//! channel's `book.hash` appears to use the same algorithm
//! (docs/venues/polymarket.md): a JSON object with exactly the keys `market`,
//! `asset_id`, `timestamp`, `hash` (empty), `bids`, `asks`, `min_order_size`,
//! `tick_size`, `neg_risk`, `last_trade_price`, in that order; levels as
//! `{"price":…,"size":…}` objects in the order received with the original
//! strings; `neg_risk` a JSON boolean and everything else the string as sent;
//! serialised compactly (no spaces, non-ASCII unescaped); SHA-1 of the UTF-8
//! bytes as 40 lower-case hex digits.
//!
//! The WebSocket `book` lacks `min_order_size` and `neg_risk` (they come from
//! the market listing) and carries `last_trade_price` only in the initial dump,
//! so a live hash cannot always be reproduced: the caller decides how strictly
//! a mismatch is treated.

/// The fields of one book summary, as the strings the venue sent.
#[derive(Debug, Clone, Copy)]
pub struct Summary<'s> {
    pub market: &'s str,
    pub asset_id: &'s str,
    pub timestamp: &'s str,
    pub bids: &'s [(&'s str, &'s str)],
    pub asks: &'s [(&'s str, &'s str)],
    pub min_order_size: &'s str,
    pub tick_size: &'s str,
    pub neg_risk: bool,
    pub last_trade_price: &'s str,
}

/// The summary's hash: 40 lower-case hex digits.
pub fn summary_hash(summary: &Summary<'_>) -> String {
    let mut text = String::with_capacity(
        256 + 40 * (summary.bids.len() + summary.asks.len()) + summary.asset_id.len(),
    );
    write_summary(summary, &mut text);
    hex(&sha1(text.as_bytes()))
}

/// The exact text that is hashed.
pub fn write_summary(s: &Summary<'_>, out: &mut String) {
    out.push_str("{\"market\":");
    json_str(s.market, out);
    out.push_str(",\"asset_id\":");
    json_str(s.asset_id, out);
    out.push_str(",\"timestamp\":");
    json_str(s.timestamp, out);
    out.push_str(",\"hash\":\"\",\"bids\":");
    levels(s.bids, out);
    out.push_str(",\"asks\":");
    levels(s.asks, out);
    out.push_str(",\"min_order_size\":");
    json_str(s.min_order_size, out);
    out.push_str(",\"tick_size\":");
    json_str(s.tick_size, out);
    out.push_str(",\"neg_risk\":");
    out.push_str(if s.neg_risk { "true" } else { "false" });
    out.push_str(",\"last_trade_price\":");
    json_str(s.last_trade_price, out);
    out.push('}');
}

fn levels(levels: &[(&str, &str)], out: &mut String) {
    out.push('[');
    for (i, (price, size)) in levels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"price\":");
        json_str(price, out);
        out.push_str(",\"size\":");
        json_str(size, out);
        out.push('}');
    }
    out.push(']');
}

/// A JSON string as Python's `json.dumps(..., ensure_ascii=False)` writes it.
pub(crate) fn json_str(text: &str, out: &mut String) {
    out.push('"');
    if !text.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(text);
        out.push('"');
        return;
    }
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// SHA-1 (FIPS 180-4) of `data`.
pub fn sha1(data: &[u8]) -> [u8; 20] {
    use sha1::Digest;
    sha1::Sha1::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_matches_the_standard_vectors() {
        assert_eq!(hex(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(&sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex(&sha1(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        let million = vec![b'a'; 1_000_000];
        assert_eq!(
            hex(&sha1(&million)),
            "34aa973cd4c4daa4f61eeb2bdbad27316534016f"
        );
    }

    #[test]
    fn summary_hash_follows_the_documented_layout() {
        let bids = [("0.45", "120"), ("0.47", "30.5")];
        let asks = [("0.52", "80"), ("0.50", "10")];
        let summary = Summary {
            market: "0x01",
            asset_id: "42",
            timestamp: "1767225600000",
            bids: &bids,
            asks: &asks,
            min_order_size: "5",
            tick_size: "0.01",
            neg_risk: false,
            last_trade_price: "0.48",
        };
        let mut text = String::new();
        write_summary(&summary, &mut text);
        assert_eq!(
            text,
            r#"{"market":"0x01","asset_id":"42","timestamp":"1767225600000","hash":"","bids":[{"price":"0.45","size":"120"},{"price":"0.47","size":"30.5"}],"asks":[{"price":"0.52","size":"80"},{"price":"0.50","size":"10"}],"min_order_size":"5","tick_size":"0.01","neg_risk":false,"last_trade_price":"0.48"}"#
        );
        assert_eq!(
            summary_hash(&summary),
            "3f4513be0917b66e9654674b96d048586680f38f"
        );
    }
}

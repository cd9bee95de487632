//! The archiver's per-message work: a batch of stream messages becomes one
//! chunk of items per archive file, in stream order.
//!
//! A raw frame becomes one JSONL line (the frame spliced in byte for byte when
//! it is one line of valid JSON, else kept losslessly as text or base64); a
//! normalized record goes as it is to the file of its type, ticker and day. A
//! message whose sequence was written before is a redelivery and is dropped
//! (crate::coverage). Python turns each destination into an object key and
//! hands the chunks to its spool.

use crate::codec;
use crate::coverage::Coverage;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::collections::HashMap;
use std::fmt;

/// The headers the connector puts on each raw frame's message.
pub const RECEIVE_HEADER: &str = "Ssmd-Receive-Ns";
pub const CONN_HEADER: &str = "Ssmd-Conn-Id";

pub const HOUR_NS: u64 = 3_600_000_000_000;
pub const DAY_NS: u64 = 24 * HOUR_NS;

/// One message as JetStream delivered it.
pub struct Message<'a> {
    pub seq: u64,
    pub subject: &'a str,
    pub payload: &'a [u8],
    /// The RECEIVE_HEADER header, when present.
    pub receive_ns: Option<&'a str>,
    /// The CONN_HEADER header, when present.
    pub conn: Option<&'a str>,
    /// When JetStream stored the message: the receive time when the message has none.
    pub stored_ns: u64,
}

/// The archive file an item belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Dest {
    /// The raw JSONL file of a message type and hour (hours since the epoch, UTC).
    Raw { msgtype: String, hour: u64 },
    /// The normalized file of a record type and ticker for a day (days since the epoch).
    Record {
        rtype: &'static str,
        ticker: String,
        day: u64,
    },
    /// The day's connector events.
    Events { day: u64 },
    /// No file: messages deliberately not archived (book checkpoints). Their
    /// sequences are done all the same, so the spool journals them (empty
    /// items) and a restart does not take them for holes.
    Derived,
}

/// Items bound for one file, in stream order, laid out as the spool stores them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chunk {
    /// The items, back to back (lines, or packed Cap'n Proto messages).
    pub items: Vec<u8>,
    /// Each item's length, u32 little endian.
    pub lengths: Vec<u8>,
    /// Each item's (stream seq, receive ns), u64 little endian: the spool index's layout.
    pub meta: Vec<u8>,
    pub count: usize,
    pub seq_first: u64,
    pub seq_last: u64,
    pub ts_first: u64,
    pub ts_last: u64,
}

impl Chunk {
    pub fn push(&mut self, item: &[u8], seq: u64, ts: u64) {
        self.items.extend_from_slice(item);
        self.close_item(item.len(), seq, ts);
    }

    /// Records the item just appended to `items` (its last `len` bytes).
    fn close_item(&mut self, len: usize, seq: u64, ts: u64) {
        // Items are lines or records of one message: far below 4 GiB.
        self.lengths.extend_from_slice(&(len as u32).to_le_bytes());
        self.meta.extend_from_slice(&seq.to_le_bytes());
        self.meta.extend_from_slice(&ts.to_le_bytes());
        self.count += 1;
        // 0 means "none" (an archiver-made event has no stream sequence)
        if seq != 0 {
            if self.seq_first == 0 || seq < self.seq_first {
                self.seq_first = seq;
            }
            self.seq_last = self.seq_last.max(seq);
        }
        if ts != 0 {
            if self.ts_first == 0 || ts < self.ts_first {
                self.ts_first = ts;
            }
            self.ts_last = self.ts_last.max(ts);
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub received: u64,
    pub duplicates: u64,
    /// Raw frames that are not one line of valid JSON (kept as text or base64).
    pub malformed: u64,
    /// Normalized messages that are not exactly one record (kept in the raw archive).
    pub undecodable: u64,
    /// Book checkpoints: derived from the archive, so not stored.
    pub derived: u64,
}

#[derive(Debug, Default)]
pub struct Routed {
    /// One chunk per destination, in the order destinations were first seen.
    pub chunks: Vec<(Dest, Chunk)>,
    /// Receive time of the lowest sequence written (0 = none written).
    pub first_ts: u64,
    /// The latest receive time written (0 = none).
    pub last_ts: u64,
    pub counts: Counts,
}

/// Routes a batch. `prefix` is the subjects' "{env}.{feed}" prefix; `written`
/// says which sequences were written before, and learns this batch's.
pub fn route(msgs: &mut [Message<'_>], prefix: &str, written: &mut Coverage) -> Routed {
    msgs.sort_by_key(|m| m.seq);
    let mut out = Routed::default();
    let mut index: HashMap<Dest, usize> = HashMap::new();
    // Unpacking scratch for every record of the batch.
    let mut words = Vec::new();
    for m in msgs.iter() {
        out.counts.received += 1;
        if written.contains(m.seq) {
            out.counts.duplicates += 1;
            continue;
        }
        let rest = m
            .subject
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('.'))
            .unwrap_or("");
        let (kind, tail) = rest.split_once('.').unwrap_or((rest, ""));
        let ts = match kind {
            "book" => {
                out.counts.derived += 1;
                chunk_for(&mut out.chunks, &mut index, Dest::Derived).push(&[], m.seq, m.stored_ns);
                written.insert(m.seq, m.stored_ns);
                continue;
            }
            "raw" => {
                let ts = m
                    .receive_ns
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .filter(|&t| t != 0)
                    .unwrap_or(m.stored_ns);
                // The message type as the subject names it: the archiver keys
                // files by it, and quarantines a type that cannot name a file.
                let dest = Dest::Raw {
                    msgtype: tail.to_string(),
                    hour: ts / HOUR_NS,
                };
                let chunk = chunk_for(&mut out.chunks, &mut index, dest);
                let start = chunk.items.len();
                if !raw_line(&mut chunk.items, m.payload, tail, ts, m.conn, m.seq, None) {
                    out.counts.malformed += 1;
                }
                let len = chunk.items.len() - start;
                chunk.close_item(len, m.seq, ts);
                ts
            }
            _ => route_record(&mut out, &mut index, &mut words, m),
        };
        written.insert(m.seq, ts);
        if out.first_ts == 0 {
            out.first_ts = ts;
        }
        out.last_ts = out.last_ts.max(ts);
    }
    out
}

/// A normalized record (or connector event) to its file; anything that is not
/// exactly one record goes to the raw archive as "undecodable", with its subject.
fn route_record(
    out: &mut Routed,
    index: &mut HashMap<Dest, usize>,
    words: &mut Vec<capnp::Word>,
    m: &Message<'_>,
) -> u64 {
    let mut head = None;
    let decoded = codec::for_each_record_in(m.payload, words, |r| {
        head = Some((r.receive_ts, r.body.kind(), r.body.record_type().name(), {
            r.body.ticker().unwrap_or_default().to_string()
        }));
    });
    match (decoded, head) {
        (Ok(1), Some((receive_ts, kind, rtype, ticker))) => {
            let ts = if receive_ts != 0 {
                receive_ts
            } else {
                m.stored_ns
            };
            let day = ts / DAY_NS;
            let dest = if kind == "connector_event" {
                Dest::Events { day }
            } else {
                Dest::Record { rtype, ticker, day }
            };
            chunk_for(&mut out.chunks, index, dest).push(m.payload, m.seq, ts);
            ts
        }
        _ => {
            out.counts.undecodable += 1;
            let ts = m.stored_ns;
            let dest = Dest::Raw {
                msgtype: "undecodable".to_string(),
                hour: ts / HOUR_NS,
            };
            let chunk = chunk_for(&mut out.chunks, index, dest);
            let start = chunk.items.len();
            raw_line(
                &mut chunk.items,
                m.payload,
                "undecodable",
                ts,
                None,
                m.seq,
                Some(m.subject),
            );
            let len = chunk.items.len() - start;
            chunk.close_item(len, m.seq, ts);
            ts
        }
    }
}

fn chunk_for<'c>(
    chunks: &'c mut Vec<(Dest, Chunk)>,
    index: &mut HashMap<Dest, usize>,
    dest: Dest,
) -> &'c mut Chunk {
    let at = match index.get(&dest) {
        Some(&i) => i,
        None => {
            index.insert(dest.clone(), chunks.len());
            chunks.push((dest, Chunk::default()));
            chunks.len() - 1
        }
    };
    &mut chunks[at].1
}

/// Appends one raw archive line to `out` and says whether the frame went in as
/// it is (one line of valid JSON).
///
/// ```text
/// {"ts":MS,"rns":NS,"type":T,"data":FRAME,"conn":C,"seq":N}
/// ```
///
/// A frame that is not one line of valid JSON is kept as `data_text` (valid
/// UTF-8) or `data_b64`. A message from a subject (`subject` given) is not a
/// frame: it is always kept as `data_b64`, and its subject is recorded.
pub fn raw_line(
    out: &mut Vec<u8>,
    frame: &[u8],
    msgtype: &str,
    receive_ns: u64,
    conn: Option<&str>,
    seq: u64,
    subject: Option<&str>,
) -> bool {
    let mut num = itoa::Buffer::new();
    out.extend_from_slice(b"{\"ts\":");
    out.extend_from_slice(num.format(receive_ns / 1_000_000).as_bytes());
    out.extend_from_slice(b",\"rns\":");
    out.extend_from_slice(num.format(receive_ns).as_bytes());
    out.extend_from_slice(b",\"type\":");
    json_string(out, msgtype);
    let spliced = subject.is_none() && is_one_json_line(frame);
    if spliced {
        out.extend_from_slice(b",\"data\":");
        out.extend_from_slice(frame);
    } else {
        match std::str::from_utf8(frame) {
            Ok(text) if subject.is_none() => {
                out.extend_from_slice(b",\"data_text\":");
                json_string(out, text);
            }
            _ => {
                out.extend_from_slice(b",\"data_b64\":\"");
                base64(out, frame);
                out.push(b'"');
            }
        }
    }
    out.extend_from_slice(b",\"conn\":");
    match conn {
        None => out.extend_from_slice(b"null"),
        Some(c) if is_json_integer(c) => out.extend_from_slice(c.as_bytes()),
        Some(c) => json_string(out, c),
    }
    out.extend_from_slice(b",\"seq\":");
    out.extend_from_slice(num.format(seq).as_bytes());
    if let Some(subject) = subject {
        out.extend_from_slice(b",\"subject\":");
        json_string(out, subject);
    }
    out.extend_from_slice(b"}\n");
    spliced
}

fn is_json_integer(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty() && b.iter().all(u8::is_ascii_digit) && (b.len() == 1 || b[0] != b'0')
}

fn json_string(out: &mut Vec<u8>, s: &str) {
    // Writing to a Vec cannot fail.
    serde_json::to_writer(&mut *out, s).expect("write to Vec");
}

/// One line of JSON that strict readers accept: valid UTF-8, no line breaks,
/// string escapes that are real characters (no lone surrogates), finite numbers.
pub fn is_one_json_line(frame: &[u8]) -> bool {
    if frame.contains(&b'\n') || frame.contains(&b'\r') {
        return false;
    }
    let Ok(text) = std::str::from_utf8(frame) else {
        return false;
    };
    serde_json::from_str::<Checked>(text).is_ok()
}

/// Deserializes any JSON value and keeps nothing: serde_json checks escapes
/// and number ranges only for values it is asked to read, so this reads them all.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Checked, E> {
        if v.is_finite() {
            Ok(Checked)
        } else {
            Err(E::custom("number out of range"))
        }
    }
    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_entry::<Checked, Checked>()?.is_some() {}
        Ok(Checked)
    }
}

/// Standard base64 with padding (RFC 4648 section 4).
fn base64(out: &mut Vec<u8>, data: &[u8]) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for group in data.chunks(3) {
        let b = [
            group[0],
            group.get(1).copied().unwrap_or(0),
            group.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let sextet = |i: u32| ALPHABET[((n >> (18 - 6 * i)) & 63) as usize];
        out.push(sextet(0));
        out.push(sextet(1));
        out.push(if group.len() > 1 { sextet(2) } else { b'=' });
        out.push(if group.len() > 2 { sextet(3) } else { b'=' });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(frame: &[u8], conn: Option<&str>, subject: Option<&str>) -> (String, bool) {
        let mut out = Vec::new();
        let ok = raw_line(
            &mut out,
            frame,
            "trade",
            1_700_000_000_123_456_789,
            conn,
            7,
            subject,
        );
        (String::from_utf8(out).unwrap(), ok)
    }

    fn json(s: &str) -> serde_json::Value {
        serde_json::from_str(s.trim_end()).unwrap()
    }

    #[test]
    fn a_json_frame_is_spliced_in_byte_for_byte() {
        let frame = br#"{"type":"trade","msg":{"yes_price_dollars":"0.4200"}}"#;
        let (l, ok) = line(frame, Some("3"), None);
        assert!(ok);
        assert!(l.ends_with('\n') && l.matches('\n').count() == 1);
        assert!(l.contains(std::str::from_utf8(frame).unwrap()));
        let v = json(&l);
        assert_eq!(v["ts"], 1_700_000_000_123u64);
        assert_eq!(v["rns"], 1_700_000_000_123_456_789u64);
        assert_eq!(v["conn"], 3);
        assert_eq!(v["seq"], 7);
    }

    #[test]
    fn frames_that_are_not_one_json_line_are_kept_losslessly() {
        for frame in [
            &b"{\"a\":\n1}"[..],
            b"{\"a\":1",
            b"\"\\ud800\"",
            b"1e400",
            b"[1,]",
        ] {
            let (l, ok) = line(frame, None, None);
            assert!(!ok, "{frame:?}");
            let v = json(&l);
            assert_eq!(v["data_text"].as_str().unwrap().as_bytes(), frame);
            assert!(v["conn"].is_null());
        }
        let (l, ok) = line(b"\xff\xfe{", None, None);
        assert!(!ok);
        assert_eq!(json(&l)["data_b64"], "//57");
    }

    #[test]
    fn a_connection_id_that_is_not_a_json_integer_is_a_string() {
        assert_eq!(json(&line(b"1", Some("007"), None).0)["conn"], "007");
        assert_eq!(json(&line(b"1", Some("a\"b"), None).0)["conn"], "a\"b");
        assert_eq!(json(&line(b"1", Some("0"), None).0)["conn"], 0);
    }

    #[test]
    fn a_message_from_a_subject_is_kept_in_base64_with_its_subject() {
        let (l, ok) = line(b"{}", None, Some("env.feed.trade.X"));
        assert!(!ok);
        let v = json(&l);
        assert_eq!(v["data_b64"], "e30=");
        assert_eq!(v["subject"], "env.feed.trade.X");
    }

    #[test]
    fn base64_matches_the_standard() {
        for (data, want) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"fooba", "Zm9vYmE="),
            (b"foobar", "Zm9vYmFy"),
        ] {
            let mut out = Vec::new();
            base64(&mut out, data);
            assert_eq!(out, want.as_bytes());
        }
    }

    fn raw(seq: u64, rns: u64) -> (u64, String, Vec<u8>, String) {
        let frame = format!("{{\"type\":\"trade\",\"seq\":{seq}}}");
        (
            seq,
            "e.f.raw.trade".to_string(),
            frame.into_bytes(),
            rns.to_string(),
        )
    }

    fn route_raw(batch: &[(u64, String, Vec<u8>, String)], written: &mut Coverage) -> Routed {
        let mut msgs: Vec<Message<'_>> = batch
            .iter()
            .map(|(seq, subject, payload, rns)| Message {
                seq: *seq,
                subject,
                payload,
                receive_ns: Some(rns),
                conn: Some("1"),
                stored_ns: 5,
            })
            .collect();
        route(&mut msgs, "e.f", written)
    }

    fn seqs(chunk: &Chunk) -> Vec<u64> {
        chunk
            .meta
            .chunks(16)
            .map(|b| u64::from_le_bytes(b[..8].try_into().unwrap()))
            .collect()
    }

    #[test]
    fn items_go_to_their_hour_in_stream_order() {
        let batch = [raw(3, HOUR_NS + 2), raw(1, 10), raw(2, HOUR_NS + 1)];
        let mut written = Coverage::new(0, 0);
        let r = route_raw(&batch, &mut written);
        assert_eq!(r.counts.received, 3);
        let dests: Vec<_> = r.chunks.iter().map(|(d, c)| (d.clone(), c.count)).collect();
        let hour = |hour| Dest::Raw {
            msgtype: "trade".into(),
            hour,
        };
        assert_eq!(dests, vec![(hour(0), 1), (hour(1), 2)]);
        let second = &r.chunks[1].1;
        assert_eq!((second.seq_first, second.seq_last), (2, 3));
        assert_eq!(
            (second.ts_first, second.ts_last),
            (HOUR_NS + 1, HOUR_NS + 2)
        );
        let lines: Vec<serde_json::Value> = std::str::from_utf8(&second.items)
            .unwrap()
            .lines()
            .map(json)
            .collect();
        assert_eq!(lines[0]["seq"], 2);
        assert_eq!(lines[1]["seq"], 3);
        let lengths: Vec<u32> = second
            .lengths
            .chunks(4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(lengths.iter().sum::<u32>() as usize, second.items.len());
        assert_eq!(seqs(second), vec![2, 3]);
        assert_eq!((r.first_ts, r.last_ts), (10, HOUR_NS + 2));
        assert_eq!(written.floor(), (3, HOUR_NS + 2));
    }

    #[test]
    fn only_what_was_written_is_a_duplicate() {
        let mut written = Coverage::new(4, 40);
        written.insert(9, 90);
        // 3 and 9 were written, 5 comes twice; 6 arrives late, after 9
        let batch = [raw(3, 30), raw(5, 50), raw(5, 50), raw(9, 90), raw(6, 60)];
        let r = route_raw(&batch, &mut written);
        assert_eq!(r.counts.duplicates, 3);
        assert_eq!(seqs(&r.chunks[0].1), vec![5, 6]);
        assert_eq!(written.floor(), (6, 60));
        assert!(written.contains(9) && !written.contains(7));
    }

    #[test]
    fn book_checkpoints_are_not_archived_but_their_sequences_are_reported() {
        let mut batch = vec![raw(1, 10), raw(2, 20), raw(3, 30)];
        batch[1].1 = "e.f.book.KXA".into();
        let mut written = Coverage::new(0, 0);
        let r = route_raw(&batch, &mut written);
        assert_eq!(r.counts.derived, 1);
        let (dest, derived) = &r.chunks[1];
        assert_eq!(*dest, Dest::Derived);
        assert_eq!((derived.count, derived.items.len()), (1, 0));
        assert_eq!(seqs(derived), vec![2]);
        assert_eq!(seqs(&r.chunks[0].1), vec![1, 3]);
        assert_eq!(written.floor(), (3, 30));
    }

    #[test]
    fn a_receive_time_header_that_is_not_a_number_falls_back_to_the_stored_time() {
        let mut batch = vec![raw(1, 0)];
        batch[0].3 = "soon".into();
        let r = route_raw(&batch, &mut Coverage::new(0, 0));
        assert_eq!(r.chunks[0].1.ts_first, 5);
        assert_eq!(
            r.chunks[0].0,
            Dest::Raw {
                msgtype: "trade".into(),
                hour: 0
            }
        );
    }
}

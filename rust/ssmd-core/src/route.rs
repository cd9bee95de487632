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
use crate::raw_line::raw_line;
use std::collections::HashMap;

/// The headers the connector puts on each raw frame's message.
pub const RECEIVE_HEADER: &str = "Ssmd-Receive-Ns";
pub const CONN_HEADER: &str = "Ssmd-Conn-Id";
/// The exchange time of a record (on a raw frame: of its first), on a replay's messages.
pub const EXCHANGE_HEADER: &str = "Ssmd-Exchange-Ns";

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

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &str) -> serde_json::Value {
        serde_json::from_str(s.trim_end()).unwrap()
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

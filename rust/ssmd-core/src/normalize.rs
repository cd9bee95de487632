//! Batch in, buffer out: frames become one stream of packed records plus
//! what the caller needs to route each frame.

use crate::codec::{self, CodecError, Encoder};
use crate::model::{Record, RecordType};
use crate::venues::kalshi::parse::{parse_frame, FieldError, FrameKind, SeqPosition};
use rustc_hash::FxHashMap;

/// What became of one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameOutcome {
    pub kind: FrameKind,
    /// The frame's `type` when it is a string this version does not know.
    pub unknown_type: Option<String>,
    /// Fields that were nulled (the record, if any, is still written).
    pub field_errors: Vec<FieldError>,
    /// Why the frame is not JSON (kind Malformed).
    pub malformed: Option<String>,
    /// Index into `Batch::records` of the record this frame produced.
    pub record: Option<usize>,
    /// The (sid, seq) a data frame took, with or without a record.
    pub position: Option<SeqPosition>,
}

/// One normalized record in a batch's `data`.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordSpan {
    pub frame: usize,
    pub record_type: RecordType,
    /// Index into `Spans::tickers`.
    pub ticker: u32,
    pub start: usize,
    pub end: usize,
}

/// The records of a batch, in order, with their tickers kept once per batch: a
/// thousand frames name a few dozen markets, and a string per record would be an
/// allocation per record.
#[derive(Debug, Default)]
pub struct Spans {
    spans: Vec<RecordSpan>,
    tickers: Vec<String>,
    ids: FxHashMap<String, u32>,
}

impl Spans {
    pub fn with_capacity(records: usize) -> Spans {
        Spans {
            spans: Vec::with_capacity(records),
            ..Spans::default()
        }
    }

    /// Adds the record `data[start..end]` of frame `frame`.
    pub fn push(
        &mut self,
        frame: usize,
        record_type: RecordType,
        ticker: &str,
        start: usize,
        end: usize,
    ) {
        let ticker = match self.ids.get(ticker) {
            Some(id) => *id,
            None => {
                let id = self.tickers.len() as u32;
                self.tickers.push(ticker.to_owned());
                self.ids.insert(ticker.to_owned(), id);
                id
            }
        };
        self.spans.push(RecordSpan {
            frame,
            record_type,
            ticker,
            start,
            end,
        });
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, RecordSpan> {
        self.spans.iter()
    }

    /// The distinct tickers, in the order of their first record ("" for records
    /// without one).
    pub fn tickers(&self) -> &[String] {
        &self.tickers
    }

    /// The ticker of `span` (a span of this batch).
    pub fn ticker(&self, span: &RecordSpan) -> &str {
        &self.tickers[span.ticker as usize]
    }
}

#[derive(Debug, Default)]
pub struct Batch {
    /// The connection the frames came from.
    pub conn_id: u64,
    /// Every record, as packed Cap'n Proto messages back to back.
    pub data: Vec<u8>,
    pub records: Spans,
    pub frames: Vec<FrameOutcome>,
}

/// One frame's part in sequence tracking (see [`Batch::for_each_step`]).
#[derive(Debug)]
pub enum SeqStep<'r, 'a> {
    /// The frame's record.
    Record(&'r Record<'a>),
    /// A data frame that yielded no record (its market or body could not be
    /// read), and the place it took in its sid's sequence.
    Recordless(SeqPosition),
}

impl Batch {
    /// Walks the frames in order for sequence tracking: each record (decoded
    /// from `data`) and each data frame that took a seq without yielding a
    /// record. Every frame of a subscription counts for its sequence: a
    /// tracker fed only the records would see the next frame after a
    /// recordless one as a gap.
    pub fn for_each_step(&self, mut f: impl FnMut(SeqStep<'_, '_>)) -> Result<(), CodecError> {
        let mut recordless = self
            .frames
            .iter()
            .enumerate()
            .filter_map(|(index, frame)| match (frame.record, frame.position) {
                (None, Some(position)) => Some((index, position)),
                _ => None,
            })
            .peekable();
        let mut spans = self.records.iter();
        codec::for_each_record(&self.data, |record| {
            let frame = spans.next().map_or(usize::MAX, |span| span.frame);
            while let Some((_, position)) = recordless.next_if(|(index, _)| *index < frame) {
                f(SeqStep::Recordless(position));
            }
            f(SeqStep::Record(&record));
        })?;
        for (_, position) in recordless {
            f(SeqStep::Recordless(position));
        }
        Ok(())
    }
}

/// Normalizes Kalshi frames received on connection `conn_id`; each frame comes
/// with its receive time in Unix nanoseconds.
pub fn normalize_kalshi<'f>(
    frames: impl IntoIterator<Item = (u64, &'f [u8])>,
    conn_id: u64,
) -> Batch {
    let frames = frames.into_iter();
    let mut batch = Batch {
        conn_id,
        data: Vec::with_capacity(frames.size_hint().0 * 96),
        records: Spans::with_capacity(frames.size_hint().0),
        frames: Vec::with_capacity(frames.size_hint().0),
    };
    let mut encoder = Encoder::new();
    for (index, (receive_ts, bytes)) in frames.enumerate() {
        let parsed = parse_frame(bytes, receive_ts, conn_id);
        let mut record_index = None;
        if let Some(record) = &parsed.record {
            let start = batch.data.len();
            encoder.encode(record, &mut batch.data);
            record_index = Some(batch.records.len());
            batch.records.push(
                index,
                record.body.record_type(),
                record.body.ticker().unwrap_or_default(),
                start,
                batch.data.len(),
            );
        }
        let unknown_type = match parsed.kind {
            FrameKind::Unknown => parsed.type_text.map(|t| t.into_owned()),
            _ => None,
        };
        batch.frames.push(FrameOutcome {
            kind: parsed.kind,
            unknown_type,
            field_errors: parsed.field_errors,
            malformed: parsed.malformed,
            record: record_index,
            position: parsed.position,
        });
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_keep_each_ticker_once_in_first_seen_order() {
        let mut spans = Spans::with_capacity(4);
        spans.push(0, RecordType::Trade, "B", 0, 10);
        spans.push(1, RecordType::Trade, "A", 10, 20);
        spans.push(1, RecordType::Ticker, "B", 20, 25);
        spans.push(2, RecordType::Lifecycle, "", 25, 30);
        assert_eq!(spans.len(), 4);
        assert_eq!(spans.tickers(), ["B", "A", ""]);
        let named: Vec<(usize, &str, usize)> = spans
            .iter()
            .map(|s| (s.frame, spans.ticker(s), s.end))
            .collect();
        assert_eq!(
            named,
            [(0, "B", 10), (1, "A", 20), (1, "B", 25), (2, "", 30)]
        );
    }

    fn walk(frames: &[&str]) -> Vec<(Option<String>, u32, u64)> {
        let batch = normalize_kalshi(frames.iter().map(|f| (1, f.as_bytes())), 7);
        let mut steps = Vec::new();
        batch
            .for_each_step(|step| {
                steps.push(match step {
                    SeqStep::Record(r) => (r.body.ticker().map(str::to_owned), r.sid, r.seq),
                    SeqStep::Recordless(p) => (None, p.sid, p.seq),
                })
            })
            .unwrap();
        steps
    }

    #[test]
    fn every_frame_of_a_sid_takes_its_place_in_order() {
        let snapshot = r#"{"type":"orderbook_snapshot","sid":1,"seq":1,"msg":{"market_ticker":"A","yes_dollars_fp":[["0.3100","1.00"]],"no_dollars_fp":[]}}"#;
        let delta = |seq: u64, ticker: &str| {
            format!(
                r#"{{"type":"orderbook_delta","sid":1,"seq":{seq},"msg":{{"market_ticker":"{ticker}","price_dollars":"0.3100","delta_fp":"1.00","side":"yes"}}}}"#
            )
        };
        let empty_ticker = delta(2, "");
        let next = delta(3, "A");
        let trade = r#"{"type":"trade","sid":2,"seq":8,"msg":{"market_ticker":"","yes_price_dollars":"0.3400","count_fp":"1.00","taker_side":"no","ts":1}}"#;
        let cut = r#"{"type":"orderbook_delta","sid":1,"seq":4,"msg":{"market_ticker":"A","pri"#;
        let ok = r#"{"id":7,"sid":1,"seq":4,"type":"ok","msg":{}}"#;
        let last = delta(5, "A");
        let steps = walk(&[snapshot, &empty_ticker, &next, trade, cut, ok, &last]);
        assert_eq!(
            steps,
            vec![
                (Some("A".into()), 1, 1),
                (None, 1, 2),
                (Some("A".into()), 1, 3),
                (None, 2, 8),
                (None, 1, 4),
                (Some("A".into()), 1, 5),
            ]
        );
        // Recordless frames after the last record come last.
        assert_eq!(
            walk(&[&next, &empty_ticker]),
            vec![(Some("A".into()), 1, 3), (None, 1, 2)]
        );
        assert!(walk(&[ok]).is_empty());
    }
}

//! Batch in, buffer out: frames become one stream of packed records plus
//! what the caller needs to route each frame.

use crate::codec::Encoder;
use crate::model::RecordType;
use crate::venues::kalshi::parse::{parse_frame, FieldError, FrameKind};

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
}

/// One normalized record in `Batch::data`.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordSpan {
    pub frame: usize,
    pub record_type: RecordType,
    pub ticker: String,
    pub start: usize,
    pub end: usize,
}

#[derive(Debug, Default)]
pub struct Batch {
    /// Every record, as packed Cap'n Proto messages back to back.
    pub data: Vec<u8>,
    pub records: Vec<RecordSpan>,
    pub frames: Vec<FrameOutcome>,
}

/// Normalizes Kalshi frames received on connection `conn_id`; each frame comes
/// with its receive time in Unix nanoseconds.
pub fn normalize_kalshi<'f>(
    frames: impl IntoIterator<Item = (u64, &'f [u8])>,
    conn_id: u64,
) -> Batch {
    let frames = frames.into_iter();
    let mut batch = Batch {
        data: Vec::with_capacity(frames.size_hint().0 * 96),
        records: Vec::with_capacity(frames.size_hint().0),
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
            batch.records.push(RecordSpan {
                frame: index,
                record_type: record.body.record_type(),
                ticker: record.body.ticker().unwrap_or_default().to_owned(),
                start,
                end: batch.data.len(),
            });
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
        });
    }
    batch
}

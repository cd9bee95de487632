//! SeqTracker: Kalshi sequence checks for the channels that are not books.
//!
//! Kalshi numbers trade and lifecycle frames per subscription (sid) as it does
//! order-book frames. BookSet checks order-book records, because a gap there
//! must invalidate books; this tracker checks every other sequenced record, so
//! a lost trade is reported too.

use crate::errors::ssmd_error;
use pyo3::prelude::*;
use ssmd_core::codec;
use ssmd_core::model::Body;
use ssmd_core::seq::{SeqOutcome, SeqTracker};

/// Sequence checks per (conn_id, sid) over streams of normalized records.
///
/// `observe` returns one tuple per problem:
/// ("gap", conn_id, sid, expected, received, ticker) or ("duplicate", conn_id, sid, seq, ticker).
/// Order-book records and records without a seq (tickers) are skipped.
#[pyclass(module = "ssmd._core", name = "SeqTracker")]
pub struct PySeqTracker {
    inner: SeqTracker,
}

type Problem = (&'static str, u64, u32, u64, u64, String);

#[pymethods]
impl PySeqTracker {
    #[new]
    fn new() -> Self {
        PySeqTracker {
            inner: SeqTracker::new(),
        }
    }

    /// Checks every sequenced non-book record in `data` (packed Record messages).
    /// A duplicate is reported with its seq in both number slots.
    fn observe(&mut self, py: Python<'_>, data: &[u8]) -> PyResult<Vec<Problem>> {
        let tracker = &mut self.inner;
        let result = py.detach(|| {
            let mut problems = Vec::new();
            codec::for_each_record(data, |r| {
                let sequenced = matches!(
                    r.body,
                    Body::Trade(_) | Body::Lifecycle(_) | Body::EventLifecycle(_)
                );
                if !sequenced || r.seq == 0 {
                    return;
                }
                let ticker = r.body.ticker().unwrap_or_default().to_owned();
                match tracker.observe(r.conn_id, r.sid, r.seq) {
                    SeqOutcome::Gap { expected, received } => {
                        problems.push(("gap", r.conn_id, r.sid, expected, received, ticker));
                    }
                    SeqOutcome::Duplicate => {
                        problems.push(("duplicate", r.conn_id, r.sid, r.seq, r.seq, ticker))
                    }
                    SeqOutcome::First | SeqOutcome::InOrder | SeqOutcome::Unsequenced => {}
                }
            })
            .map(|_| problems)
        });
        result.map_err(|e| ssmd_error(py, "DecodeError", e.to_string()))
    }

    /// Forget a sid's position (after a resubscribe its seq restarts).
    fn reset(&mut self, conn_id: u64, sid: u32) {
        self.inner.reset(conn_id, sid);
    }

    /// Forget a closed connection.
    fn forget_connection(&mut self, conn_id: u64) {
        self.inner.forget_connection(conn_id);
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PySeqTracker>()
}

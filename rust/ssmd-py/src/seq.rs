//! SeqTracker: Kalshi sequence checks for the channels that are not books.
//!
//! Kalshi numbers trade and lifecycle frames per subscription (sid) as it does
//! order-book frames. BookSet checks order-book records, because a gap there
//! must invalidate books; this tracker checks every other sequenced record, so
//! a lost trade is reported too.

use crate::errors::py_err;
use crate::events::{DuplicateEvent, GapEvent};
use crate::normalize::NormalizedBatch;
use pyo3::prelude::*;
use ssmd_core::codec;
use ssmd_core::model::{Body, Record};
use ssmd_core::normalize::SeqStep;
use ssmd_core::seq::{SeqOutcome, SeqTracker};
use ssmd_core::venues::kalshi::parse::FrameKind;

/// Sequence checks per (conn_id, sid) over streams of normalized records.
///
/// `observe` returns one event per problem: GapEvent (with the ticker of the
/// record after the gap) or DuplicateEvent. Order-book records and records
/// without a seq (tickers) are skipped.
#[pyclass(module = "ssmd._core", name = "SeqTracker")]
pub struct PySeqTracker {
    inner: SeqTracker,
}

enum Problem {
    Gap(GapEvent),
    Duplicate(DuplicateEvent),
}

fn to_py(py: Python<'_>, problems: Vec<Problem>) -> PyResult<Vec<Py<PyAny>>> {
    problems
        .into_iter()
        .map(|p| match p {
            Problem::Gap(e) => Ok(Py::new(py, e)?.into_any()),
            Problem::Duplicate(e) => Ok(Py::new(py, e)?.into_any()),
        })
        .collect()
}

/// Checks one seq of a trade or lifecycle stream; `ticker` is the record's ("" for a
/// frame that yielded none).
fn check(
    tracker: &mut SeqTracker,
    problems: &mut Vec<Problem>,
    (conn_id, sid, seq): (u64, u32, u64),
    ticker: &str,
) {
    match tracker.observe(conn_id, sid, seq) {
        SeqOutcome::Gap { expected, received } => problems.push(Problem::Gap(GapEvent {
            conn_id,
            stream: sid.into(),
            expected,
            received,
            tickers: vec![ticker.to_owned()],
        })),
        SeqOutcome::Duplicate => problems.push(Problem::Duplicate(DuplicateEvent {
            conn_id,
            stream: sid.into(),
            seq,
            ticker: ticker.to_owned(),
        })),
        SeqOutcome::First | SeqOutcome::InOrder | SeqOutcome::Unsequenced => {}
    }
}

/// A sequenced trade or lifecycle record.
fn sequenced(r: &Record<'_>) -> bool {
    matches!(
        r.body,
        Body::Trade(_) | Body::Lifecycle(_) | Body::EventLifecycle(_)
    ) && r.seq != 0
}

#[pymethods]
impl PySeqTracker {
    #[new]
    fn new() -> Self {
        PySeqTracker {
            inner: SeqTracker::new(),
        }
    }

    /// Checks every sequenced non-book record in `data` (packed Record messages).
    fn observe(&mut self, py: Python<'_>, data: &[u8]) -> PyResult<Vec<Py<PyAny>>> {
        let tracker = &mut self.inner;
        let result = py.detach(|| {
            let mut problems = Vec::new();
            codec::for_each_record(data, |r| {
                if sequenced(&r) {
                    let ticker = r.body.ticker().unwrap_or_default();
                    check(tracker, &mut problems, (r.conn_id, r.sid, r.seq), ticker);
                }
            })
            .map(|_| problems)
        });
        to_py(py, result.map_err(py_err)?)
    }

    /// `observe` over a normalized batch in frame order, where a trade or lifecycle
    /// frame that yielded no record still takes its seq (its problems carry ticker "").
    fn observe_batch(
        &mut self,
        py: Python<'_>,
        batch: PyRef<'_, NormalizedBatch>,
    ) -> PyResult<Vec<Py<PyAny>>> {
        let tracker = &mut self.inner;
        let batch = &batch.batch;
        let result = py.detach(|| {
            let mut problems = Vec::new();
            batch
                .for_each_step(|step| match step {
                    SeqStep::Record(r) if sequenced(r) => {
                        let ticker = r.body.ticker().unwrap_or_default();
                        check(tracker, &mut problems, (r.conn_id, r.sid, r.seq), ticker);
                    }
                    SeqStep::Recordless(p)
                        if matches!(
                            p.kind,
                            FrameKind::Trade
                                | FrameKind::MarketLifecycle
                                | FrameKind::EventLifecycle
                        ) =>
                    {
                        check(tracker, &mut problems, (batch.conn_id, p.sid, p.seq), "");
                    }
                    _ => {}
                })
                .map(|_| problems)
        });
        to_py(py, result.map_err(py_err)?)
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

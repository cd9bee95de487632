//! BookSet: order books rebuilt from normalized record bytes.
//!
//! Python never sees Rust records, so `apply` takes a stream of packed
//! Record messages (what the normalizer emits and NATS carries), decodes and
//! applies it with the GIL released, and returns the events (crate::events).

use crate::errors::py_err;
use crate::events::{
    DeltaWithoutSnapshotEvent, DuplicateEvent, GapEvent, InvalidatedEvent, ResyncedEvent,
    UnreadableEvent,
};
use crate::feed::{self, FeedBatch};
use crate::nats::PyDeliveries;
use crate::normalize::NormalizedBatch;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use ssmd_core::book::{BookEvent, BookSet};
use ssmd_core::codec;
use ssmd_core::model::Level;
use ssmd_core::normalize::SeqStep;
use ssmd_core::venues::kalshi::parse::FrameKind;

/// One market's book as `BookSet.view` read it: levels best first, as
/// (price_e6, size_e6); bids highest first, asks (derived from NO bids)
/// lowest first. (conn_id, stream) is the sequence the book follows.
#[pyclass(module = "ssmd._core", frozen, eq, get_all)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BookView {
    pub ticker: String,
    pub bids: Vec<(i64, i64)>,
    pub asks: Vec<(i64, i64)>,
    pub valid: bool,
    pub conn_id: u64,
    pub stream: u64,
}

#[pymethods]
impl BookView {
    #[new]
    fn new(
        ticker: String,
        bids: Vec<(i64, i64)>,
        asks: Vec<(i64, i64)>,
        valid: bool,
        conn_id: u64,
        stream: u64,
    ) -> Self {
        BookView {
            ticker,
            bids,
            asks,
            valid,
            conn_id,
            stream,
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "BookView(ticker={:?}, bids={:?}, asks={:?}, valid={}, conn_id={}, stream={})",
            self.ticker,
            self.bids,
            self.asks,
            if self.valid { "True" } else { "False" },
            self.conn_id,
            self.stream
        )
    }
}

/// Books keyed by ticker, with sequence checks per (conn_id, sid).
///
/// `apply` returns the events of crate::events: GapEvent, DuplicateEvent,
/// ResyncedEvent, DeltaWithoutSnapshotEvent, InvalidatedEvent, and
/// UnreadableEvent (`apply_batch` only).
#[pyclass(module = "ssmd._core", name = "BookSet")]
pub struct PyBookSet {
    inner: BookSet,
}

fn event_to_py(py: Python<'_>, event: BookEvent) -> PyResult<Py<PyAny>> {
    Ok(match event {
        BookEvent::Gap {
            conn_id,
            sid,
            expected,
            received,
            tickers,
        } => Py::new(
            py,
            GapEvent {
                conn_id,
                stream: sid.into(),
                expected,
                received,
                tickers,
            },
        )?
        .into_any(),
        BookEvent::Duplicate { conn_id, sid, seq } => Py::new(
            py,
            DuplicateEvent {
                conn_id,
                stream: sid.into(),
                seq,
                ticker: String::new(),
            },
        )?
        .into_any(),
        BookEvent::Resynced { ticker } => Py::new(py, ResyncedEvent { ticker })?.into_any(),
        BookEvent::DeltaWithoutSnapshot { ticker } => {
            Py::new(py, DeltaWithoutSnapshotEvent { ticker })?.into_any()
        }
        BookEvent::Invalidated { ticker, reason } => Py::new(
            py,
            InvalidatedEvent {
                ticker,
                reason: reason.as_str().to_owned(),
            },
        )?
        .into_any(),
        BookEvent::Unreadable {
            conn_id,
            sid,
            seq,
            tickers,
        } => Py::new(
            py,
            UnreadableEvent {
                conn_id,
                stream: sid.into(),
                seq,
                tickers,
            },
        )?
        .into_any(),
    })
}

/// Book views always fill both fields; a level without them is not shown.
fn pairs(levels: &[Level]) -> Vec<(i64, i64)> {
    levels
        .iter()
        .filter_map(|l| Some((l.price_e6?, l.size_e6?)))
        .collect()
}

#[pymethods]
impl PyBookSet {
    /// `ignore_seqs`: take each record's seq as it comes (a reader of one
    /// market's records, whose sid's seq the other markets share).
    #[new]
    #[pyo3(signature = (ignore_seqs = false))]
    fn new(ignore_seqs: bool) -> Self {
        PyBookSet {
            inner: if ignore_seqs {
                BookSet::ignoring_seqs()
            } else {
                BookSet::new()
            },
        }
    }

    /// Applies a stream of packed Record messages in order; records other
    /// than book snapshots, deltas and checkpoints (`book` views) are skipped. All or nothing: when any
    /// record fails to decode, DecodeError is raised and no book changes.
    fn apply<'py>(&mut self, py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyList>> {
        let books = &mut self.inner;
        let events = py
            .detach(|| {
                // Validate first so that a bad record cannot leave the books
                // half-updated with the events of the first half lost.
                codec::for_each_record(data, |_| {})?;
                let mut events = Vec::new();
                codec::for_each_record(data, |record| events.extend(books.apply(&record)))?;
                Ok::<_, codec::CodecError>(events)
            })
            .map_err(py_err)?;
        let out = PyList::empty(py);
        for event in events {
            out.append(event_to_py(py, event)?)?;
        }
        Ok(out)
    }

    /// Applies a normalized batch of frames in frame order: its records, and
    /// each order-book frame that yielded no record but took its seq (see
    /// `ssmd_core::book::BookSet::recordless`), so that such a frame is never
    /// taken for a gap. The connector's path; `apply` serves stream readers.
    fn apply_batch<'py>(
        &mut self,
        py: Python<'py>,
        batch: PyRef<'_, NormalizedBatch>,
    ) -> PyResult<Bound<'py, PyList>> {
        let books = &mut self.inner;
        let batch = &batch.batch;
        let events = py
            .detach(|| {
                let mut events = Vec::new();
                batch.for_each_step(|step| match step {
                    SeqStep::Record(record) => events.extend(books.apply(record)),
                    SeqStep::Recordless(p) => match p.kind {
                        FrameKind::OrderbookSnapshot | FrameKind::OrderbookDelta => {
                            let delta = p.kind == FrameKind::OrderbookDelta;
                            events.extend(books.recordless(batch.conn_id, p.sid, p.seq, delta));
                        }
                        _ => {}
                    },
                })?;
                Ok::<_, codec::CodecError>(events)
            })
            .map_err(py_err)?;
        let out = PyList::empty(py);
        for event in events {
            out.append(event_to_py(py, event)?)?;
        }
        Ok(out)
    }

    /// Applies a batch a stream consumer delivered, in order (the gateway's
    /// fan-in; crate::feed): deliveries at or below `after_seq` are skipped as
    /// already applied, so are those whose subject's type (the token after
    /// `prefix`) is not in `types`, a message that does not decode is skipped whole, and
    /// the call stops at a missing delivery (a consumer sequence other than
    /// `after_consumer_seq` + 1; 0 checks nothing). A trade's message names its
    /// market `symbol_prefix` + ticker. Returns a FeedBatch.
    #[pyo3(signature = (deliveries, after_seq, after_consumer_seq, prefix, types, symbol_prefix = ""))]
    #[allow(clippy::too_many_arguments)]
    fn apply_deliveries(
        &mut self,
        py: Python<'_>,
        deliveries: PyRef<'_, PyDeliveries>,
        after_seq: u64,
        after_consumer_seq: u64,
        prefix: &str,
        types: Vec<String>,
        symbol_prefix: &str,
    ) -> PyResult<FeedBatch> {
        feed::apply_deliveries(
            py,
            &mut self.inner,
            &deliveries,
            after_seq,
            after_consumer_seq,
            prefix,
            &types,
            symbol_prefix,
        )
    }

    /// The book of `ticker` with `depth` levels per side (0: all), or None.
    #[pyo3(signature = (ticker, depth = 0))]
    fn view(&self, ticker: &str, depth: usize) -> Option<BookView> {
        let view = self.inner.view(ticker, depth)?;
        let (conn_id, sid) = self.inner.stream(ticker)?;
        Some(BookView {
            ticker: ticker.to_owned(),
            bids: pairs(&view.bids),
            asks: pairs(&view.asks),
            valid: view.valid,
            conn_id,
            stream: sid.into(),
        })
    }

    /// Checkpoint records of the books changed since the last call, or of
    /// every book when `everything`, as (ticker, packed Record message with a
    /// `book` body), sorted by ticker. Each carries its (conn_id, sid) and
    /// that stream's last seq, so `apply` on another BookSet restores the
    /// book exactly.
    #[pyo3(signature = (receive_ns, everything = false))]
    fn checkpoint<'py>(
        &mut self,
        py: Python<'py>,
        receive_ns: u64,
        everything: bool,
    ) -> Vec<(String, Bound<'py, PyBytes>)> {
        let books = &mut self.inner;
        let encoded = py.detach(|| {
            let mut encoder = codec::Encoder::new();
            books
                .checkpoint(receive_ns, everything)
                .into_iter()
                .map(|record| {
                    let mut out = Vec::new();
                    encoder.encode(&record, &mut out);
                    (record.body.ticker().unwrap_or_default().to_string(), out)
                })
                .collect::<Vec<_>>()
        });
        encoded
            .into_iter()
            .map(|(ticker, data)| (ticker, PyBytes::new(py, &data)))
            .collect()
    }

    /// Every ticker held, sorted.
    fn tickers(&self) -> Vec<String> {
        self.inner
            .tickers()
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    /// Drops a market's book; returns whether it was held.
    fn remove(&mut self, ticker: &str) -> bool {
        self.inner.remove(ticker)
    }

    /// A connection closed: its books become invalid and its seq state is
    /// dropped. Returns the tickers invalidated, sorted.
    fn close_connection(&mut self, conn_id: u64) -> Vec<String> {
        self.inner.close_connection(conn_id)
    }

    /// A resubscribe restarts the seq of (conn_id, sid).
    fn reset_stream(&mut self, conn_id: u64, sid: u32) {
        self.inner.reset_stream(conn_id, sid);
    }

    /// Deltas skipped because their book was invalid.
    #[getter]
    fn ignored_deltas(&self) -> u64 {
        self.inner.ignored_deltas()
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyBookSet>()?;
    m.add_class::<BookView>()?;
    Ok(())
}

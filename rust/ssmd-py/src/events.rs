//! The events the core reports to Python, as small frozen classes: what the
//! books and sequence checks of every venue found in a batch (BookSet,
//! SeqTracker, the Kraken and Polymarket codecs). One set for all, so that a
//! caller matches on the class, never on a tuple's first item.

use pyo3::prelude::*;

/// Sequence numbers went missing on (conn_id, stream): books of `tickers` are
/// invalid until snapshots (book streams), or records are lost for good
/// (trade and lifecycle streams, one ticker; "" when that frame had none).
/// Venues that suspect a loss without sequence numbers report 0 and 0.
#[pyclass(module = "ssmd._core", frozen, eq, get_all)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GapEvent {
    pub conn_id: u64,
    pub stream: u64,
    pub expected: u64,
    pub received: u64,
    pub tickers: Vec<String>,
}

/// No seq is missing, but the delta at `seq` named no readable market: the
/// books of `tickers` are invalid until snapshots.
#[pyclass(module = "ssmd._core", frozen, eq, get_all)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnreadableEvent {
    pub conn_id: u64,
    pub stream: u64,
    pub seq: u64,
    pub tickers: Vec<String>,
}

/// A seq seen before on (conn_id, stream): a redelivery, ignored.
#[pyclass(module = "ssmd._core", frozen, eq, get_all)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DuplicateEvent {
    pub conn_id: u64,
    pub stream: u64,
    pub seq: u64,
    /// The record's ticker (sequence checks); "" for books.
    pub ticker: String,
}

/// The book of `ticker` is exact again (a snapshot after a gap).
#[pyclass(module = "ssmd._core", frozen, eq, get_all)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResyncedEvent {
    pub ticker: String,
}

/// A delta for `ticker` came before any snapshot of it.
#[pyclass(module = "ssmd._core", frozen, eq, get_all)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeltaWithoutSnapshotEvent {
    pub ticker: String,
}

/// The book of `ticker` became invalid, for `reason`.
#[pyclass(module = "ssmd._core", frozen, eq, get_all)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidatedEvent {
    pub ticker: String,
    pub reason: String,
}

#[pymethods]
impl GapEvent {
    #[new]
    fn new(conn_id: u64, stream: u64, expected: u64, received: u64, tickers: Vec<String>) -> Self {
        GapEvent {
            conn_id,
            stream,
            expected,
            received,
            tickers,
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "GapEvent(conn_id={}, stream={}, expected={}, received={}, tickers={:?})",
            self.conn_id, self.stream, self.expected, self.received, self.tickers
        )
    }
}

#[pymethods]
impl UnreadableEvent {
    #[new]
    fn new(conn_id: u64, stream: u64, seq: u64, tickers: Vec<String>) -> Self {
        UnreadableEvent {
            conn_id,
            stream,
            seq,
            tickers,
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "UnreadableEvent(conn_id={}, stream={}, seq={}, tickers={:?})",
            self.conn_id, self.stream, self.seq, self.tickers
        )
    }
}

#[pymethods]
impl DuplicateEvent {
    #[new]
    #[pyo3(
        signature = (conn_id, stream, seq, ticker = String::new()),
        text_signature = "(conn_id, stream, seq, ticker='')"
    )]
    fn new(conn_id: u64, stream: u64, seq: u64, ticker: String) -> Self {
        DuplicateEvent {
            conn_id,
            stream,
            seq,
            ticker,
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "DuplicateEvent(conn_id={}, stream={}, seq={}, ticker={:?})",
            self.conn_id, self.stream, self.seq, self.ticker
        )
    }
}

#[pymethods]
impl ResyncedEvent {
    #[new]
    fn new(ticker: String) -> Self {
        ResyncedEvent { ticker }
    }

    fn __repr__(&self) -> String {
        format!("ResyncedEvent(ticker={:?})", self.ticker)
    }
}

#[pymethods]
impl DeltaWithoutSnapshotEvent {
    #[new]
    fn new(ticker: String) -> Self {
        DeltaWithoutSnapshotEvent { ticker }
    }

    fn __repr__(&self) -> String {
        format!("DeltaWithoutSnapshotEvent(ticker={:?})", self.ticker)
    }
}

#[pymethods]
impl InvalidatedEvent {
    #[new]
    fn new(ticker: String, reason: String) -> Self {
        InvalidatedEvent { ticker, reason }
    }

    fn __repr__(&self) -> String {
        format!(
            "InvalidatedEvent(ticker={:?}, reason={:?})",
            self.ticker, self.reason
        )
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<GapEvent>()?;
    m.add_class::<UnreadableEvent>()?;
    m.add_class::<DuplicateEvent>()?;
    m.add_class::<ResyncedEvent>()?;
    m.add_class::<DeltaWithoutSnapshotEvent>()?;
    m.add_class::<InvalidatedEvent>()?;
    Ok(())
}

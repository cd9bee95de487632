//! KrakenCodec and KrakenBatch: Kraken's spot WebSocket v2 across the boundary.

use crate::events::{GapEvent, ResyncedEvent};
use crate::normalize::record_tuples;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use ssmd_core::codec;
use ssmd_core::venues::kraken::normalize::{FrameKind, STREAM_BOOK};
use ssmd_core::venues::kraken::{Batch, Event, Kraken};

/// The result of normalizing one batch of one connection's frames.
#[pyclass(module = "ssmd._core")]
pub struct KrakenBatch {
    pub(crate) batch: Batch,
    pub(crate) data: Py<PyBytes>,
}

#[pymethods]
impl KrakenBatch {
    fn __len__(&self) -> usize {
        self.batch.frames.len()
    }

    /// Every record as packed Cap'n Proto messages back to back.
    #[getter]
    fn data(&self, py: Python<'_>) -> Py<PyBytes> {
        self.data.clone_ref(py)
    }

    /// One (frame index, record type, ticker, start, end) per record.
    #[getter]
    fn records<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        record_tuples(py, &self.batch.records)
    }

    /// One (frame index, problem, detail) per problem: "malformed", "unknown_type",
    /// "field" (a value was nulled), "no_record" (data that yielded no record),
    /// "venue_error" (a request the venue refused), "checksum" (a book's CRC32 differed).
    #[getter]
    fn problems<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for (index, frame) in self.batch.frames.iter().enumerate() {
            for (what, detail) in &frame.problems {
                out.append((index, *what, detail.as_str()))?;
            }
        }
        Ok(out)
    }

    /// Frame kind code per frame (an index into KrakenCodec.frame_kinds).
    #[getter]
    fn kinds<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let codes: Vec<u8> = self.batch.frames.iter().map(|f| f.kind.code()).collect();
        PyBytes::new(py, &codes)
    }
}

/// The Kraken normalizer of one connector process: each symbol's exact book, its
/// CRC32 checked on every message, the instruments' precisions, book checkpoints.
#[pyclass(module = "ssmd._core")]
pub struct KrakenCodec {
    inner: Kraken,
}

#[pymethods]
impl KrakenCodec {
    #[new]
    fn new() -> Self {
        KrakenCodec {
            inner: Kraken::new(),
        }
    }

    /// Names of the frame kind codes (the raw subjects' types).
    #[classattr]
    fn frame_kinds() -> Vec<&'static str> {
        FrameKind::ALL.iter().map(|k| k.name()).collect()
    }

    /// The stream number of the book channel (gap events name it).
    #[classattr]
    fn book_stream() -> u32 {
        STREAM_BOOK
    }

    /// A symbol's precisions (REST pair_decimals and lot_decimals): books, trades and
    /// tickers are read at them, exactly.
    fn set_precision(&mut self, symbol: &str, price_decimals: u8, qty_decimals: u8) {
        self.inner
            .set_precision(symbol, price_decimals, qty_decimals);
    }

    /// (price decimals, qty decimals) of a symbol, if known.
    fn precision(&self, symbol: &str) -> Option<(u8, u8)> {
        self.inner.precision(symbol)
    }

    /// The depth a symbol's book is cut to (its subscription's; the ack also says it).
    fn set_depth(&mut self, symbol: &str, depth: usize) {
        self.inner.set_depth(symbol, depth);
    }

    /// Book messages whose checksum did not match, since creation.
    #[getter]
    fn checksum_mismatches(&self) -> u64 {
        self.inner.checksum_mismatches
    }

    /// Normalizes frames received on connection `conn_id` (receive times in Unix ns).
    fn normalize(
        &mut self,
        py: Python<'_>,
        frames: Vec<Bound<'_, PyBytes>>,
        receive_ns: Vec<u64>,
        conn_id: u64,
    ) -> PyResult<KrakenBatch> {
        crate::errors::same_length(frames.len(), receive_ns.len())?;
        let inputs: Vec<(u64, &[u8])> = receive_ns
            .iter()
            .copied()
            .zip(frames.iter().map(|f| f.as_bytes()))
            .collect();
        let batch = self.inner.normalize(inputs, conn_id);
        Ok(KrakenBatch {
            data: PyBytes::new(py, &batch.data).unbind(),
            batch,
        })
    }

    /// Book events of the batch in frame order: GapEvent (expected and received 0)
    /// for books that became invalid (a checksum mismatch, an unreadable level, an update
    /// before its snapshot), ResyncedEvent when a snapshot made one exact again.
    fn integrity<'py>(&self, py: Python<'py>, batch: &KrakenBatch) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for e in &batch.batch.events {
            match e {
                Event::Gap {
                    conn_id,
                    stream,
                    tickers,
                    ..
                } => out.append(GapEvent {
                    conn_id: *conn_id,
                    stream: u64::from(*stream),
                    expected: 0,
                    received: 0,
                    tickers: tickers.clone(),
                })?,
                Event::Resynced { ticker } => out.append(ResyncedEvent {
                    ticker: ticker.clone(),
                })?,
            }
        }
        Ok(out)
    }

    /// Why each book of the batch became invalid: (symbol, reason), in frame order.
    fn gap_reasons(&self, batch: &KrakenBatch) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for e in &batch.batch.events {
            if let Event::Gap {
                tickers, reason, ..
            } = e
            {
                out.extend(tickers.iter().map(|t| (t.clone(), reason.clone())));
            }
        }
        out
    }

    /// Sequence events: none (trades cannot be fetched again and their ids promise no
    /// contiguity).
    fn sequence<'py>(&self, py: Python<'py>, batch: &KrakenBatch) -> Bound<'py, PyList> {
        let _ = batch;
        PyList::empty(py)
    }

    /// (symbol, `book` record) per book changed since the last call (every book when
    /// `everything`); books of ended connections are marked invalid.
    fn checkpoint<'py>(
        &mut self,
        py: Python<'py>,
        now_ns: u64,
        everything: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for r in self.inner.checkpoint(now_ns, everything) {
            let mut bytes = Vec::new();
            codec::encode_record(&r, &mut bytes);
            let ticker = r.body.ticker().unwrap_or_default().to_owned();
            out.append((ticker, PyBytes::new(py, &bytes)))?;
        }
        Ok(out)
    }

    /// A connection ended: its books are invalid until snapshots on a new one.
    fn forget(&mut self, conn_id: u64) -> Vec<String> {
        self.inner.forget(conn_id)
    }

    /// A symbol's exact book: (valid, price decimals, qty decimals, bids, asks), best
    /// first, each level (price, qty) in units of 10^-decimals; None when there is none.
    #[allow(clippy::type_complexity)]
    fn book(&self, symbol: &str) -> Option<(bool, u8, u8, Vec<(i64, i64)>, Vec<(i64, i64)>)> {
        let (book, valid, (pd, qd)) = self.inner.book(symbol)?;
        Some((valid, pd, qd, book.bids().collect(), book.asks().collect()))
    }

    /// The CRC32 Kraken would send for a symbol's book as held now.
    fn checksum(&self, symbol: &str) -> Option<u32> {
        self.inner.book(symbol).map(|(book, _, _)| book.checksum())
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<KrakenCodec>()?;
    m.add_class::<KrakenBatch>()?;
    Ok(())
}

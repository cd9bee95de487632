//! route_batch and Chunk: the archiver's per-message work (ssmd_core::route).
//!
//! Python hands over the batch's deliveries, still held in Rust as the
//! connection read them (nats.rs), and gets back one Chunk per destination
//! file; the routing runs with the GIL released.

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use ssmd_core::coverage::{Coverage, Run};
use ssmd_core::nats::header_value;
use ssmd_core::route::{route, Chunk, Dest, Message, CONN_HEADER, EXCHANGE_HEADER, RECEIVE_HEADER};

use crate::nats::PyDeliveries;

/// Items bound for one archive file, laid out as the spool stores them.
///
/// `items` back to back, `lengths` (u32 LE each), `meta` ((u64 stream seq,
/// u64 receive ns) LE each); seq and ts ranges ignore zeros.
#[pyclass(module = "ssmd._core", name = "Chunk", frozen)]
pub struct PyChunk {
    #[pyo3(get)]
    items: Py<PyBytes>,
    #[pyo3(get)]
    lengths: Py<PyBytes>,
    #[pyo3(get)]
    meta: Py<PyBytes>,
    #[pyo3(get)]
    count: usize,
    #[pyo3(get)]
    seq_first: u64,
    #[pyo3(get)]
    seq_last: u64,
    #[pyo3(get)]
    ts_first: u64,
    #[pyo3(get)]
    ts_last: u64,
}

impl PyChunk {
    fn from_chunk(py: Python<'_>, c: &Chunk) -> PyChunk {
        PyChunk {
            items: PyBytes::new(py, &c.items).unbind(),
            lengths: PyBytes::new(py, &c.lengths).unbind(),
            meta: PyBytes::new(py, &c.meta).unbind(),
            count: c.count,
            seq_first: c.seq_first,
            seq_last: c.seq_last,
            ts_first: c.ts_first,
            ts_last: c.ts_last,
        }
    }
}

#[pymethods]
impl PyChunk {
    /// A chunk of `items`, the i-th with `meta[i]` = (stream seq, receive ns).
    #[new]
    fn new(py: Python<'_>, items: Vec<Vec<u8>>, meta: Vec<(u64, u64)>) -> PyResult<Self> {
        if items.len() != meta.len() {
            return Err(crate::errors::py_err(ssmd_core::error::CoreError::invalid(
                format!(
                    "{} items but {} (seq, receive ns) pairs",
                    items.len(),
                    meta.len()
                ),
            )));
        }
        let mut chunk = Chunk::default();
        for (item, (seq, ts)) in items.iter().zip(meta) {
            chunk.push(item, seq, ts);
        }
        Ok(PyChunk::from_chunk(py, &chunk))
    }
}

/// (start, end inclusive, first receive ns, last receive ns) of a run of written sequences.
type RunTuple = (u64, u64, u64, u64);

/// The stream sequences written so far (ssmd_core::coverage): everything at
/// or below the floor, and runs above it. A delivery is a duplicate only if
/// its sequence was written; a sequence never written is a hole only once the
/// consumer's ack floor passes it (`advance`).
#[pyclass(module = "ssmd._core", name = "Coverage")]
pub struct PyCoverage {
    inner: Coverage,
}

#[pymethods]
impl PyCoverage {
    /// From a saved state: the floor, its receive ns, and runs
    /// [(start, end inclusive, first receive ns, last receive ns)].
    #[new]
    #[pyo3(signature = (floor = 0, floor_ts = 0, runs = Vec::new()))]
    fn new(floor: u64, floor_ts: u64, runs: Vec<RunTuple>) -> Self {
        let mut inner = Coverage::new(floor, floor_ts);
        // Runs lie between the floor and the newest sequence: short, and rare.
        for (start, end, ts_first, ts_last) in runs {
            for seq in start..=end {
                let ts = if seq == end { ts_last } else { ts_first };
                inner.insert(seq, ts);
            }
        }
        PyCoverage { inner }
    }

    /// (floor, floor receive ns, runs) for `Coverage(*state)`.
    fn state(&self) -> (u64, u64, Vec<RunTuple>) {
        let (floor, floor_ts) = self.inner.floor();
        let runs = self
            .inner
            .runs()
            .map(|r: &Run| (r.start, r.end, r.ts_first, r.ts_last))
            .collect();
        (floor, floor_ts, runs)
    }

    fn insert(&mut self, seq: u64, ts: u64) -> bool {
        self.inner.insert(seq, ts)
    }

    fn __contains__(&self, seq: u64) -> bool {
        self.inner.contains(seq)
    }

    /// Moves the floor to the consumer's ack floor; returns the sequences
    /// passed that were never written: [(start, end exclusive, receive ns
    /// before, receive ns after)], 0 = unknown.
    fn advance(&mut self, ack_floor: u64) -> Vec<(u64, u64, u64, u64)> {
        self.inner
            .advance(ack_floor)
            .into_iter()
            .map(|h| (h.start, h.end, h.ts_before, h.ts_after))
            .collect()
    }

    #[getter]
    fn floor(&self) -> u64 {
        self.inner.floor().0
    }

    /// The highest sequence written (or the floor).
    #[getter]
    fn last_seq(&self) -> u64 {
        self.inner.last_seq()
    }

    /// Runs above the floor: more than a few means deliveries out of order.
    #[getter]
    fn runs(&self) -> usize {
        self.inner.runs().count()
    }
}

/// Where a chunk of a routed batch goes: `kind` "raw" (`data_type` = message
/// type, `bucket` = hours since the epoch), "record" (record type and
/// ticker, `bucket` = days), "events" (the connector events; `bucket` = days)
/// or "derived" (messages not archived, book checkpoints: empty items, their
/// sequences to journal).
#[pyclass(module = "ssmd._core", name = "RoutedChunk", frozen, get_all)]
pub struct PyRoutedChunk {
    kind: &'static str,
    data_type: String,
    ticker: String,
    bucket: u64,
    chunk: Py<PyChunk>,
}

/// The routing of one batch (see route_batch).
#[pyclass(module = "ssmd._core", name = "RoutedBatch", frozen)]
pub struct PyRouted {
    /// The batch's chunks, each with where it goes.
    #[pyo3(get)]
    chunks: Py<PyList>,
    /// Receive time of the lowest sequence written (0 = none written).
    #[pyo3(get)]
    first_ts: u64,
    /// The latest receive time written (0 = none).
    #[pyo3(get)]
    last_ts: u64,
    #[pyo3(get)]
    received: u64,
    #[pyo3(get)]
    duplicates: u64,
    #[pyo3(get)]
    malformed: u64,
    #[pyo3(get)]
    undecodable: u64,
    #[pyo3(get)]
    derived: u64,
}

fn utf8(v: &[u8]) -> Option<&str> {
    std::str::from_utf8(v).ok()
}

/// Routes a batch of a pull consumer's deliveries for the subjects "{prefix}.>";
/// `written` learns the batch's sequences. A stored time of 0 reads as `now_ns`.
#[pyfunction]
fn route_batch(
    py: Python<'_>,
    deliveries: &PyDeliveries,
    prefix: &str,
    mut written: PyRefMut<'_, PyCoverage>,
    now_ns: u64,
) -> PyResult<PyRouted> {
    let mut msgs: Vec<Message<'_>> = deliveries
        .msgs
        .iter()
        .map(|d| Message {
            seq: d.seq,
            subject: &d.subject,
            payload: &d.payload,
            receive_ns: header_value(&d.headers, RECEIVE_HEADER.as_bytes()).and_then(utf8),
            conn: header_value(&d.headers, CONN_HEADER.as_bytes()).and_then(utf8),
            stored_ns: if d.stored_ns == 0 {
                now_ns
            } else {
                d.stored_ns
            },
        })
        .collect();
    let coverage = &mut written.inner;
    let routed = py.detach(|| route(&mut msgs, prefix, coverage));
    let chunks = PyList::empty(py);
    for (dest, chunk) in &routed.chunks {
        let chunk = Py::new(py, PyChunk::from_chunk(py, chunk))?;
        let (kind, data_type, ticker, bucket) = match dest {
            Dest::Raw { msgtype, hour } => ("raw", msgtype.to_string(), "", *hour),
            Dest::Record { rtype, ticker, day } => ("record", rtype.to_string(), &ticker[..], *day),
            Dest::Events { day } => ("events", String::new(), "", *day),
            Dest::Derived => ("derived", String::new(), "", 0),
        };
        let routed = PyRoutedChunk {
            kind,
            data_type,
            ticker: ticker.to_owned(),
            bucket,
            chunk,
        };
        chunks.append(Py::new(py, routed)?)?;
    }
    let c = &routed.counts;
    Ok(PyRouted {
        chunks: chunks.unbind(),
        first_ts: routed.first_ts,
        last_ts: routed.last_ts,
        received: c.received,
        duplicates: c.duplicates,
        malformed: c.malformed,
        undecodable: c.undecodable,
        derived: c.derived,
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("RECEIVE_HEADER", RECEIVE_HEADER)?;
    m.add("CONN_HEADER", CONN_HEADER)?;
    m.add("EXCHANGE_HEADER", EXCHANGE_HEADER)?;
    m.add("HOUR_NS", ssmd_core::route::HOUR_NS)?;
    m.add("DAY_NS", ssmd_core::route::DAY_NS)?;
    m.add_class::<PyChunk>()?;
    m.add_class::<PyCoverage>()?;
    m.add_class::<PyRouted>()?;
    m.add_class::<PyRoutedChunk>()?;
    m.add_function(wrap_pyfunction!(route_batch, m)?)?;
    Ok(())
}

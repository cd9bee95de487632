//! PolymarketCodec and PolymarketBatch: Polymarket's market channel across the boundary.

use crate::events::{GapEvent, ResyncedEvent};
use crate::normalize::record_tuples;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use ssmd_core::codec;
use ssmd_core::venues::polymarket::normalize::AUTO_MISMATCH_BUDGET;
use ssmd_core::venues::polymarket::{EventKind, HashMode, Normalizer, PolyBatch, TokenMeta};
use std::collections::HashMap;

/// The result of normalizing one batch of one connection's frames.
#[pyclass(module = "ssmd._core")]
pub struct PolymarketBatch {
    pub(crate) batch: PolyBatch,
    pub(crate) data: Py<PyBytes>,
}

fn kind_code(kind: EventKind) -> u8 {
    EventKind::ALL.iter().position(|k| *k == kind).unwrap_or(0) as u8
}

#[pymethods]
impl PolymarketBatch {
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
    /// "field" (a field was nulled), "no_record" (a data event yielded no record).
    #[getter]
    fn problems<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for (index, frame) in self.batch.frames.iter().enumerate() {
            if let Some(why) = &frame.malformed {
                out.append((index, "malformed", why.as_str()))?;
            }
            if frame.kind == EventKind::Unknown {
                out.append((
                    index,
                    "unknown_type",
                    frame.type_text.as_deref().unwrap_or(""),
                ))?;
            }
            for e in &frame.field_errors {
                out.append((index, "field", e.to_string()))?;
            }
            for why in &frame.dropped {
                out.append((index, "no_record", *why))?;
            }
        }
        Ok(out)
    }

    /// Frame kind code per frame (an index into PolymarketCodec.frame_kinds).
    #[getter]
    fn kinds<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let codes: Vec<u8> = self
            .batch
            .frames
            .iter()
            .map(|f| kind_code(f.kind))
            .collect();
        PyBytes::new(py, &codes)
    }

    /// The control word of each control frame: (frame index, text), e.g. "PONG",
    /// "INVALID OPERATION".
    #[getter]
    fn control<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for (index, frame) in self.batch.frames.iter().enumerate() {
            if matches!(frame.kind, EventKind::Pong | EventKind::Control) {
                out.append((index, frame.type_text.as_deref().unwrap_or("")))?;
            }
        }
        Ok(out)
    }

    /// (frame index, asset id, reason) per token whose book must be fetched again.
    #[getter]
    fn resyncs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for r in &self.batch.resyncs {
            out.append((r.frame, r.asset_id.as_str(), r.reason.as_str()))?;
        }
        Ok(out)
    }

    /// (frame index, asset id) per suspected token whose book is exact again.
    #[getter]
    fn resynced(&self) -> Vec<(usize, String)> {
        self.batch.resynced.clone()
    }

    /// Book hashes of the batch: (matched, mismatched, unverified).
    #[getter]
    fn hashes(&self) -> (u64, u64, u64) {
        let h = self.batch.hashes;
        (h.matched, h.mismatched, h.unverified)
    }
}

/// The Polymarket normalizer of one connector process: one set of token books
/// per connection, the listing fields the book hash needs, book checkpoints.
#[pyclass(module = "ssmd._core")]
pub struct PolymarketCodec {
    mode: HashMode,
    meta: HashMap<String, TokenMeta>,
    conns: HashMap<u64, Normalizer>,
    retired: Vec<Normalizer>,
}

impl PolymarketCodec {
    fn normalizer(&mut self, conn_id: u64) -> &mut Normalizer {
        let (mode, meta) = (self.mode, &self.meta);
        self.conns.entry(conn_id).or_insert_with(|| {
            let mut n = Normalizer::new(mode);
            for (asset, m) in meta {
                n.set_token(asset, m.clone());
            }
            n
        })
    }
}

#[pymethods]
impl PolymarketCodec {
    #[new]
    #[pyo3(signature = (hash_mode = "auto"))]
    fn new(hash_mode: &str) -> PyResult<Self> {
        let mode = HashMode::from_name(hash_mode).ok_or_else(|| {
            crate::errors::py_err(ssmd_core::error::CoreError::invalid(format!(
                "hash_mode {hash_mode:?}: use one of off, count, strict, auto"
            )))
        })?;
        Ok(PolymarketCodec {
            mode,
            meta: HashMap::new(),
            conns: HashMap::new(),
            retired: Vec::new(),
        })
    }

    /// Names of the frame kind codes (the raw subjects' types).
    #[classattr]
    fn frame_kinds() -> Vec<&'static str> {
        EventKind::ALL.iter().map(|k| k.name()).collect()
    }

    /// Hash-triggered resyncs a token gets in mode "auto" before its hash is only counted.
    #[classattr]
    fn auto_mismatch_budget() -> u32 {
        AUTO_MISMATCH_BUDGET
    }

    /// Records a token's listing fields (min order size as sent, neg risk) for its book hash.
    fn set_token(&mut self, asset_id: &str, min_order_size: &str, neg_risk: bool) {
        let meta = TokenMeta {
            min_order_size: min_order_size.to_owned(),
            neg_risk,
        };
        for n in self.conns.values_mut() {
            n.set_token(asset_id, meta.clone());
        }
        self.meta.insert(asset_id.to_owned(), meta);
    }

    /// Normalizes frames received on connection `conn_id` (receive times in Unix ns).
    fn normalize(
        &mut self,
        py: Python<'_>,
        frames: Vec<Bound<'_, PyBytes>>,
        receive_ns: Vec<u64>,
        conn_id: u64,
    ) -> PyResult<PolymarketBatch> {
        crate::errors::same_length(frames.len(), receive_ns.len())?;
        let inputs: Vec<(u64, &[u8])> = receive_ns
            .iter()
            .copied()
            .zip(frames.iter().map(|f| f.as_bytes()))
            .collect();
        let normalizer = self.normalizer(conn_id);
        let batch = normalizer.normalize(inputs, conn_id);
        Ok(PolymarketBatch {
            data: PyBytes::new(py, &batch.data).unbind(),
            batch,
        })
    }

    /// Book events of the batch in frame order: GapEvent (stream 1, expected and
    /// received 0) for a token whose loss is suspected, ResyncedEvent when its book is
    /// exact again.
    fn integrity<'py>(
        &self,
        py: Python<'py>,
        batch: &PolymarketBatch,
    ) -> PyResult<Bound<'py, PyList>> {
        let b = &batch.batch;
        let mut events: Vec<(usize, bool, &str)> = b
            .resyncs
            .iter()
            .map(|r| (r.frame, true, r.asset_id.as_str()))
            .chain(b.resynced.iter().map(|(f, a)| (*f, false, a.as_str())))
            .collect();
        events.sort_by_key(|(f, _, _)| *f);
        let out = PyList::empty(py);
        for (_, gap, asset) in events {
            if gap {
                out.append(GapEvent {
                    conn_id: b.conn_id,
                    stream: 1,
                    expected: 0,
                    received: 0,
                    tickers: vec![asset.to_owned()],
                })?;
            } else {
                out.append(ResyncedEvent {
                    ticker: asset.to_owned(),
                })?;
            }
        }
        Ok(out)
    }

    /// Sequence events: none (the venue has no sequence numbers).
    fn sequence<'py>(&self, py: Python<'py>, batch: &PolymarketBatch) -> Bound<'py, PyList> {
        let _ = batch;
        PyList::empty(py)
    }

    /// (asset id, `book` record) per token changed since the last call (every token when
    /// `everything`), books of ended connections marked invalid once.
    fn checkpoint<'py>(
        &mut self,
        py: Python<'py>,
        now_ns: u64,
        everything: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        let mut records = Vec::new();
        for n in self.retired.iter_mut() {
            records.extend(n.checkpoint(now_ns, everything));
        }
        self.retired.clear();
        for n in self.conns.values_mut() {
            records.extend(n.checkpoint(now_ns, everything));
        }
        for r in records {
            let mut bytes = Vec::new();
            codec::encode_record(&r, &mut bytes);
            let ticker = r.body.ticker().unwrap_or_default().to_owned();
            out.append((ticker, PyBytes::new(py, &bytes)))?;
        }
        Ok(out)
    }

    /// A connection ended: its books are invalid (the next checkpoint says so) and go.
    fn forget(&mut self, conn_id: u64) {
        if let Some(mut n) = self.conns.remove(&conn_id) {
            n.invalidate_all();
            self.retired.push(n);
        }
    }

    /// A token's book on a connection: (valid, bids, asks), best first, each level
    /// (price_e6, size_e6); None when the connection has no book for it.
    #[pyo3(signature = (conn_id, asset_id, depth = 0))]
    #[allow(clippy::type_complexity)]
    fn book(
        &self,
        conn_id: u64,
        asset_id: &str,
        depth: usize,
    ) -> Option<(bool, Vec<(i64, i64)>, Vec<(i64, i64)>)> {
        let view = self.conns.get(&conn_id)?.view(asset_id, depth)?;
        let pairs = |ls: &[ssmd_core::model::Level]| {
            ls.iter()
                .map(|l| (l.price_e6.unwrap_or(0), l.size_e6.unwrap_or(0)))
                .collect()
        };
        Some((view.valid, pairs(&view.bids), pairs(&view.asks)))
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PolymarketCodec>()?;
    m.add_class::<PolymarketBatch>()?;
    Ok(())
}

//! normalize_kalshi, decode_records, encode_records: frames and records across the boundary.

use crate::errors::py_err;
use crate::records::{dict_to_record, record_to_dict};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use ssmd_core::codec::{self, Encoder};
use ssmd_core::error::CoreError;
use ssmd_core::model::RecordType;
use ssmd_core::normalize::{normalize_kalshi as normalize_frames, Batch, Spans};
use ssmd_core::venues::kalshi::parse::FrameKind;

/// The result of normalizing one batch of frames.
///
/// `data` holds every record; the per-record and per-frame lists are built on
/// first access, so a caller pays only for what it reads.
#[pyclass(module = "ssmd._core")]
pub struct NormalizedBatch {
    pub(crate) batch: Batch,
    pub(crate) data: Py<PyBytes>,
    records: Option<Py<PyList>>,
    problems: Option<Py<PyList>>,
    control: Option<Py<PyList>>,
}

/// One (frame index, record type, ticker, start, end) per record of a venue's batch;
/// data[start:end] is the record. Type names are interned, and each of the batch's
/// tickers is one Python string.
pub(crate) fn record_tuples<'py>(py: Python<'py>, spans: &Spans) -> PyResult<Bound<'py, PyList>> {
    let type_names: Vec<Bound<'_, PyString>> = RecordType::ALL
        .iter()
        .map(|t| PyString::intern(py, t.name()))
        .collect();
    let tickers: Vec<Bound<'_, PyString>> = spans
        .tickers()
        .iter()
        .map(|t| PyString::new(py, t))
        .collect();
    let out = PyList::empty(py);
    for span in spans.iter() {
        let type_index = RecordType::ALL
            .iter()
            .position(|t| *t == span.record_type)
            .unwrap_or(0);
        out.append((
            span.frame,
            type_names[type_index].clone(),
            tickers[span.ticker as usize].clone(),
            span.start,
            span.end,
        ))?;
    }
    Ok(out)
}

fn kind_code(kind: FrameKind) -> u8 {
    FrameKind::ALL.iter().position(|k| *k == kind).unwrap_or(0) as u8
}

#[pymethods]
impl NormalizedBatch {
    fn __len__(&self) -> usize {
        self.batch.frames.len()
    }

    /// Every record as packed Cap'n Proto messages back to back.
    #[getter]
    fn data(&self, py: Python<'_>) -> Py<PyBytes> {
        self.data.clone_ref(py)
    }

    /// One (frame index, record type, ticker, start, end) per record; data[start:end] is the record.
    #[getter]
    fn records(&mut self, py: Python<'_>) -> PyResult<Py<PyList>> {
        if let Some(cached) = &self.records {
            return Ok(cached.clone_ref(py));
        }
        let out = record_tuples(py, &self.batch.records)?;
        let out = out.unbind();
        self.records = Some(out.clone_ref(py));
        Ok(out)
    }

    /// One (frame index, problem, detail) per problem: "malformed", "unknown_type",
    /// "field" (a field was nulled) or "no_record" (a data frame without a readable ticker).
    #[getter]
    fn problems(&mut self, py: Python<'_>) -> PyResult<Py<PyList>> {
        if let Some(cached) = &self.problems {
            return Ok(cached.clone_ref(py));
        }
        let out = PyList::empty(py);
        for (index, frame) in self.batch.frames.iter().enumerate() {
            if let Some(why) = &frame.malformed {
                out.append((index, "malformed", why.as_str()))?;
            }
            if frame.kind == FrameKind::Unknown {
                out.append((
                    index,
                    "unknown_type",
                    frame.unknown_type.as_deref().unwrap_or(""),
                ))?;
            }
            for e in &frame.field_errors {
                out.append((index, "field", e.to_string()))?;
            }
            if frame.kind.is_data() && frame.record.is_none() {
                out.append((index, "no_record", "no market ticker could be read"))?;
            }
        }
        let out = out.unbind();
        self.problems = Some(out.clone_ref(py));
        Ok(out)
    }

    /// Indices of control frames (subscribed, ok, unsubscribed, error), for the caller to read.
    #[getter]
    fn control(&mut self, py: Python<'_>) -> PyResult<Py<PyList>> {
        if let Some(cached) = &self.control {
            return Ok(cached.clone_ref(py));
        }
        let out = PyList::empty(py);
        for (index, frame) in self.batch.frames.iter().enumerate() {
            if matches!(
                frame.kind,
                FrameKind::Subscribed | FrameKind::Ok | FrameKind::Unsubscribed | FrameKind::Error
            ) {
                out.append(index)?;
            }
        }
        let out = out.unbind();
        self.control = Some(out.clone_ref(py));
        Ok(out)
    }

    /// Frame kind code per frame (an index into FRAME_KINDS).
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

    /// How many frames had at least one problem.
    #[getter]
    fn problem_frames(&self) -> usize {
        self.batch
            .frames
            .iter()
            .filter(|f| {
                f.malformed.is_some()
                    || f.kind == FrameKind::Unknown
                    || !f.field_errors.is_empty()
                    || (f.kind.is_data() && f.record.is_none())
            })
            .count()
    }
}

/// Normalizes Kalshi frames received on connection `conn_id`.
///
/// `receive_ns[i]` is the local receive time of `frames[i]` in Unix nanoseconds.
/// The GIL is released while frames are parsed and encoded.
#[pyfunction]
#[pyo3(signature = (frames, receive_ns, conn_id))]
fn normalize_kalshi(
    py: Python<'_>,
    frames: Vec<Bound<'_, PyBytes>>,
    receive_ns: Vec<u64>,
    conn_id: u64,
) -> PyResult<NormalizedBatch> {
    crate::errors::same_length(frames.len(), receive_ns.len())?;
    let inputs: Vec<(u64, &[u8])> = receive_ns
        .iter()
        .copied()
        .zip(frames.iter().map(|f| f.as_bytes()))
        .collect();
    let batch = py.detach(|| normalize_frames(inputs, conn_id));
    Ok(NormalizedBatch {
        data: PyBytes::new(py, &batch.data).unbind(),
        batch,
        records: None,
        problems: None,
        control: None,
    })
}

/// Decodes a stream of packed Record messages into one dict per record.
#[pyfunction]
fn decode_records<'py>(py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    let mut failure = None;
    let result = codec::for_each_record(data, |record| {
        if failure.is_none() {
            match record_to_dict(py, &record) {
                Ok(d) => {
                    if let Err(e) = out.append(d) {
                        failure = Some(e);
                    }
                }
                Err(e) => failure = Some(e),
            }
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    result.map_err(py_err)?;
    Ok(out)
}

/// (receive_ts, kind, type, ticker or "") of each record of a stream of packed
/// Record messages: what routing a record needs, without building its dict.
#[pyfunction]
fn record_heads(
    py: Python<'_>,
    data: &[u8],
) -> PyResult<Vec<(u64, &'static str, &'static str, String)>> {
    py.detach(|| {
        let mut out = Vec::new();
        codec::for_each_record(data, |r| {
            out.push((
                r.receive_ts,
                r.body.kind(),
                r.body.record_type().name(),
                r.body.ticker().unwrap_or_default().to_string(),
            ));
        })
        .map(|_| out)
    })
    .map_err(py_err)
}

/// The exchange time (Unix ns, 0 when the venue gave none) of each record of a stream
/// of packed Record messages, in order: what a header needs, without a dict per record.
#[pyfunction]
fn exchange_times(py: Python<'_>, data: &[u8]) -> PyResult<Vec<u64>> {
    py.detach(|| {
        let mut out = Vec::new();
        codec::for_each_record(data, |r| out.push(r.exchange_ts)).map(|_| out)
    })
    .map_err(py_err)
}

/// Encodes dicts (in the shape decode_records returns) as a stream of packed Record messages.
#[pyfunction]
fn encode_records<'py>(
    py: Python<'py>,
    records: Vec<Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyBytes>> {
    let mut out = Vec::new();
    let mut encoder = Encoder::new();
    for (i, d) in records.iter().enumerate() {
        let record = dict_to_record(d)
            .map_err(|e| py_err(CoreError::invalid(format!("record {i}: {e}"))))?;
        encoder.encode(&record, &mut out);
    }
    Ok(PyBytes::new(py, &out))
}

/// Byte spans (start, end) of each message in a stream of packed Record messages.
#[pyfunction]
fn record_spans(py: Python<'_>, data: &[u8]) -> PyResult<Vec<(usize, usize)>> {
    let spans = py.detach(|| codec::message_spans(data)).map_err(py_err)?;
    Ok(spans
        .into_iter()
        .map(|(start, len)| (start, start + len))
        .collect())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let names: Vec<&str> = FrameKind::ALL.iter().map(|k| k.name()).collect();
    m.add("FRAME_KINDS", PyTuple::new(m.py(), names)?)?;
    let types: Vec<&str> = RecordType::ALL.iter().map(|t| t.name()).collect();
    m.add("RECORD_TYPES", PyTuple::new(m.py(), types)?)?;
    m.add("SCALE_E6", ssmd_core::fixed::SCALE)?;
    m.add_class::<NormalizedBatch>()?;
    m.add_function(wrap_pyfunction!(normalize_kalshi, m)?)?;
    m.add_function(wrap_pyfunction!(decode_records, m)?)?;
    m.add_function(wrap_pyfunction!(record_heads, m)?)?;
    m.add_function(wrap_pyfunction!(exchange_times, m)?)?;
    m.add_function(wrap_pyfunction!(encode_records, m)?)?;
    m.add_function(wrap_pyfunction!(record_spans, m)?)?;
    Ok(())
}

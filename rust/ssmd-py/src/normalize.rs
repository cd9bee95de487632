//! normalize_kalshi, decode_records, encode_records: frames and records across the boundary.

use crate::errors::ssmd_error;
use crate::records::{dict_to_record, record_to_dict};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use ssmd_core::codec::{self, Encoder};
use ssmd_core::columns::{self, TableKind};
use ssmd_core::model::RecordType;
use ssmd_core::normalize::normalize_kalshi as normalize_frames;
use ssmd_core::venues::kalshi::parse::FrameKind;

/// The result of normalizing one batch of frames.
#[pyclass(module = "ssmd._core", frozen)]
pub struct NormalizedBatch {
    /// Every record as packed Cap'n Proto messages back to back.
    #[pyo3(get)]
    data: Py<PyBytes>,
    /// One (frame index, record type, ticker, start, end) per record; data[start:end] is the record.
    #[pyo3(get)]
    records: Py<PyList>,
    /// One (frame index, problem, detail) per problem: "malformed", "unknown_type", or "field".
    #[pyo3(get)]
    problems: Py<PyList>,
    /// Frame kind code per frame (index into FRAME_KINDS).
    #[pyo3(get)]
    kinds: Py<PyBytes>,
    /// Indices of control frames (subscribed, ok, unsubscribed, error), for the caller to read.
    #[pyo3(get)]
    control: Py<PyList>,
    frames: usize,
}

#[pymethods]
impl NormalizedBatch {
    fn __len__(&self) -> usize {
        self.frames
    }
}

fn kind_code(kind: FrameKind) -> u8 {
    FrameKind::ALL.iter().position(|k| *k == kind).unwrap_or(0) as u8
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
    if frames.len() != receive_ns.len() {
        return Err(pyo3::exceptions::PyValueError::new_err(format!(
            "frames ({}) and receive_ns ({}) differ in length",
            frames.len(),
            receive_ns.len()
        )));
    }
    let inputs: Vec<(u64, &[u8])> = receive_ns.iter().copied().zip(frames.iter().map(|f| f.as_bytes())).collect();
    let batch = py.detach(|| normalize_frames(inputs, conn_id));

    let type_names: Vec<Bound<'_, PyString>> = RecordType::ALL.iter().map(|t| PyString::intern(py, t.name())).collect();
    let type_name = |t: RecordType| type_names[RecordType::ALL.iter().position(|x| *x == t).unwrap_or(0)].clone();
    let records = PyList::empty(py);
    for span in &batch.records {
        records.append(PyTuple::new(
            py,
            [
                span.frame.into_pyobject(py)?.into_any(),
                type_name(span.record_type).into_any(),
                PyString::new(py, &span.ticker).into_any(),
                span.start.into_pyobject(py)?.into_any(),
                span.end.into_pyobject(py)?.into_any(),
            ],
        )?)?;
    }
    let problems = PyList::empty(py);
    let control = PyList::empty(py);
    let mut kinds = Vec::with_capacity(batch.frames.len());
    for (index, frame) in batch.frames.iter().enumerate() {
        kinds.push(kind_code(frame.kind));
        if matches!(frame.kind, FrameKind::Subscribed | FrameKind::Ok | FrameKind::Unsubscribed | FrameKind::Error) {
            control.append(index)?;
        }
        if let Some(why) = &frame.malformed {
            problems.append((index, "malformed", why.as_str()))?;
        }
        if frame.kind == FrameKind::Unknown {
            problems.append((index, "unknown_type", frame.unknown_type.as_deref().unwrap_or("")))?;
        }
        for e in &frame.field_errors {
            problems.append((index, "field", e.to_string()))?;
        }
        if frame.kind.is_data() && frame.record.is_none() {
            problems.append((index, "no_record", "no market ticker could be read"))?;
        }
    }
    Ok(NormalizedBatch {
        data: PyBytes::new(py, &batch.data).unbind(),
        records: records.unbind(),
        problems: problems.unbind(),
        kinds: PyBytes::new(py, &kinds).unbind(),
        control: control.unbind(),
        frames: batch.frames.len(),
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
    result.map_err(|e| ssmd_error(py, "DecodeError", e.to_string()))?;
    Ok(out)
}

/// Encodes dicts (in the shape decode_records returns) as a stream of packed Record messages.
#[pyfunction]
fn encode_records<'py>(py: Python<'py>, records: Vec<Bound<'py, PyDict>>) -> PyResult<Bound<'py, PyBytes>> {
    let mut out = Vec::new();
    let mut encoder = Encoder::new();
    for (i, d) in records.iter().enumerate() {
        let record = dict_to_record(d).map_err(|e| {
            pyo3::exceptions::PyValueError::new_err(format!("record {i}: {e}"))
        })?;
        encoder.encode(&record, &mut out);
    }
    Ok(PyBytes::new(py, &out))
}

/// Byte spans (start, end) of each message in a stream of packed Record messages.
#[pyfunction]
fn record_spans(py: Python<'_>, data: &[u8]) -> PyResult<Vec<(usize, usize)>> {
    let spans = py.detach(|| codec::message_spans(data)).map_err(|e| ssmd_error(py, "DecodeError", e.to_string()))?;
    Ok(spans.into_iter().map(|(start, len)| (start, start + len)).collect())
}

/// The records of one kind as Arrow-layout column buffers:
/// (rows, [(name, type, values, offsets, validity, null_count)]).
#[pyfunction]
#[allow(clippy::type_complexity)]
fn records_to_columns<'py>(
    py: Python<'py>,
    data: &[u8],
    kind: &str,
) -> PyResult<(usize, Vec<(&'static str, &'static str, Bound<'py, PyBytes>, Option<Bound<'py, PyBytes>>, Option<Bound<'py, PyBytes>>, usize)>)> {
    let table_kind = TableKind::from_name(kind).ok_or_else(|| {
        pyo3::exceptions::PyValueError::new_err(format!(
            "no column layout for record kind {kind:?}; use trade, ticker, book_delta or lifecycle"
        ))
    })?;
    let (rows, columns) = py
        .detach(|| columns::to_columns(data, table_kind))
        .map_err(|e| ssmd_error(py, "DecodeError", e.to_string()))?;
    let out = columns
        .into_iter()
        .map(|c| {
            let offsets = (!c.offsets.is_empty()).then(|| PyBytes::new(py, &c.offsets));
            let validity = (c.null_count > 0).then(|| PyBytes::new(py, &c.validity));
            (c.name, c.column_type.name(), PyBytes::new(py, &c.values), offsets, validity, c.null_count)
        })
        .collect();
    Ok((rows, out))
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
    m.add_function(wrap_pyfunction!(encode_records, m)?)?;
    m.add_function(wrap_pyfunction!(record_spans, m)?)?;
    m.add_function(wrap_pyfunction!(records_to_columns, m)?)?;
    Ok(())
}

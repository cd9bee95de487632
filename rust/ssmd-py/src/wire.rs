//! encode_publishes: a batch of OutMsg (python/ssmd/bus/publisher.py) as
//! NATS HPUB commands, ready for the socket.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};
use ssmd_core::wire::{
    header_fields, message_extent, parse_acks, parse_deliveries, write_hpub, Extent,
};

/// The HPUB commands of `msgs` (objects with subject, payload, msg_id,
/// headers and header_lines), the i-th with reply subject
/// `reply_prefix + str(first_token + i)`.
#[pyfunction]
fn encode_publishes<'py>(
    py: Python<'py>,
    msgs: &Bound<'py, PyList>,
    reply_prefix: &[u8],
    first_token: u64,
) -> PyResult<Bound<'py, PyBytes>> {
    let mut out = Vec::with_capacity(msgs.len() * 256);
    let mut extra = Vec::new();
    for (i, msg) in msgs.iter().enumerate() {
        let subject = msg.getattr(intern!(py, "subject"))?;
        let payload = msg.getattr(intern!(py, "payload"))?;
        let msg_id = msg.getattr(intern!(py, "msg_id"))?;
        let headers = msg.getattr(intern!(py, "headers"))?;
        let lines = msg.getattr(intern!(py, "header_lines"))?;
        extra.clear();
        if let Ok(headers) = headers.downcast::<PyDict>() {
            for (k, v) in headers.iter() {
                extra.extend_from_slice(k.downcast::<PyString>()?.to_str()?.as_bytes());
                extra.extend_from_slice(b": ");
                extra.extend_from_slice(v.downcast::<PyString>()?.to_str()?.as_bytes());
                extra.extend_from_slice(b"\r\n");
            }
        }
        extra.extend_from_slice(lines.downcast::<PyBytes>()?.as_bytes());
        write_hpub(
            &mut out,
            subject.downcast::<PyString>()?.to_str()?.as_bytes(),
            reply_prefix,
            first_token + i as u64,
            msg_id.downcast::<PyString>()?.to_str()?.as_bytes(),
            &extra,
            payload.downcast::<PyBytes>()?.as_bytes(),
        );
    }
    Ok(PyBytes::new(py, &out))
}

/// The PubAcks at the start of `data` for inbox `head` on subscription
/// `sid`: ([(token, stream seq, duplicate, payload if refused else None)],
/// offset of the first byte that is not a complete ack).
#[pyfunction]
#[pyo3(name = "parse_acks")]
#[allow(clippy::type_complexity)]
fn py_parse_acks<'py>(
    py: Python<'py>,
    data: &[u8],
    head: &[u8],
    sid: u64,
) -> (Vec<(u64, u64, bool, Option<Bound<'py, PyBytes>>)>, usize) {
    let (acks, end) = parse_acks(data, 0, head, sid);
    let out = acks
        .into_iter()
        .map(|a| {
            let refused = a
                .error
                .then(|| PyBytes::new(py, &data[a.payload.0..a.payload.1]));
            (a.token, a.seq, a.duplicate, refused)
        })
        .collect();
    (out, end)
}

/// One delivered message: (subject, reply, stream seq, stored ns, headers or
/// None, payload, status code or 0).
type PyDelivery<'py> = (
    Bound<'py, PyString>,
    Bound<'py, PyString>,
    u64,
    u64,
    Option<Bound<'py, PyDict>>,
    Bound<'py, PyBytes>,
    u16,
);

/// The messages for subscription `sid` at `data[pos:]` (see
/// `PyDelivery`; stream seq and stored ns come from a JetStream ack reply
/// subject, else 0), and the offset of the first byte that is not one.
#[pyfunction]
#[pyo3(name = "parse_deliveries", signature = (data, sid, pos = 0))]
fn py_parse_deliveries<'py>(
    py: Python<'py>,
    data: &[u8],
    sid: u64,
    pos: usize,
) -> PyResult<(Vec<PyDelivery<'py>>, usize)> {
    let (found, end) = parse_deliveries(data, pos, sid);
    let text =
        |span: (usize, usize)| String::from_utf8_lossy(&data[span.0..span.1]).into_pyobject(py);
    let mut out = Vec::with_capacity(found.len());
    for d in found {
        let block = &data[d.headers.0..d.headers.1];
        let headers = if block.is_empty() {
            None
        } else {
            let dict = PyDict::new(py);
            for (k, v) in header_fields(block) {
                dict.set_item(String::from_utf8_lossy(k), String::from_utf8_lossy(v))?;
            }
            Some(dict)
        };
        out.push((
            text(d.subject)?,
            text(d.reply)?,
            d.stream_seq,
            d.stored_ns,
            headers,
            PyBytes::new(py, &data[d.payload.0..d.payload.1]),
            d.status,
        ));
    }
    Ok((out, end))
}

/// Where the complete MSG/HMSG (any subscription) at `data[pos:]` ends, or
/// None when more bytes are needed; ValueError when the bytes there are not
/// a message the protocol allows.
#[pyfunction]
#[pyo3(name = "message_end")]
fn py_message_end(data: &[u8], pos: usize) -> PyResult<Option<usize>> {
    match message_extent(data, pos) {
        Extent::Complete(end) => Ok(Some(end)),
        Extent::Incomplete => Ok(None),
        Extent::Malformed => Err(pyo3::exceptions::PyValueError::new_err(
            "not a NATS MSG/HMSG at this position",
        )),
    }
}

/// `PUB <reply> 4\r\n+ACK\r\n` for each delivery (the tuples parse_deliveries
/// makes): the acks of a batch in one write.
#[pyfunction]
fn encode_acks<'py>(
    py: Python<'py>,
    deliveries: &Bound<'py, PyList>,
) -> PyResult<Bound<'py, PyBytes>> {
    let mut out = Vec::with_capacity(deliveries.len() * 96);
    for d in deliveries.iter() {
        let reply = d.get_item(1)?;
        out.extend_from_slice(b"PUB ");
        out.extend_from_slice(reply.downcast::<PyString>()?.to_str()?.as_bytes());
        out.extend_from_slice(b" 4\r\n+ACK\r\n");
    }
    Ok(PyBytes::new(py, &out))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(py_message_end, m)?)?;
    m.add_function(wrap_pyfunction!(py_parse_deliveries, m)?)?;
    m.add_function(wrap_pyfunction!(encode_publishes, m)?)?;
    m.add_function(wrap_pyfunction!(py_parse_acks, m)?)?;
    m.add_function(wrap_pyfunction!(encode_acks, m)?)?;
    Ok(())
}

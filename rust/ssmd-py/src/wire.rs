//! encode_publishes: a batch of OutMsg (python/ssmd/bus/publisher.py) as
//! NATS HPUB commands, ready for the socket.

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};
use ssmd_core::wire::{parse_acks, write_hpub};

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

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(encode_publishes, m)?)?;
    m.add_function(wrap_pyfunction!(py_parse_acks, m)?)?;
    Ok(())
}

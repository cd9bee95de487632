//! OutBatch and PublishWindow: ssmd_core::publish for ssmd.bus.publisher and the
//! connector's pipeline.
//!
//! A batch of frames becomes one OutBatch in one call (`add_frames`): the raw
//! frames and their records with subjects, ids and headers, and no Python
//! object per message. The window sends runs of it and matches the PubAcks a
//! read brought (`ack`), handing back counts rather than a callback per message.

use std::collections::HashMap;
use std::sync::Arc;

use pyo3::exceptions::{PyIndexError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};
use pyo3::{intern, Bound};
use ssmd_core::codec;
use ssmd_core::model::RecordType;
use ssmd_core::normalize::Spans;
use ssmd_core::publish::{Outbox, Window};
use ssmd_core::route::{CONN_HEADER, EXCHANGE_HEADER, RECEIVE_HEADER};

use crate::errors::py_err;
use crate::kraken::KrakenBatch;
use crate::nats::PyReceived;
use crate::normalize::NormalizedBatch;
use crate::polymarket::PolymarketBatch;

/// Messages to publish, in order (subject, payload, id, headers, receive time).
#[pyclass(module = "ssmd._core", name = "OutBatch")]
pub struct PyOutBatch {
    inner: Arc<Outbox>,
}

impl PyOutBatch {
    fn outbox(&mut self) -> &mut Outbox {
        Arc::make_mut(&mut self.inner)
    }

    fn index(&self, i: usize) -> PyResult<usize> {
        if i < self.inner.len() {
            Ok(i)
        } else {
            Err(PyIndexError::new_err("OutBatch index out of range"))
        }
    }

    /// Adds an OutMsg (an object with subject, payload, msg_id, headers, receive_ns).
    fn push_msg(&mut self, msg: &Bound<'_, PyAny>) -> PyResult<()> {
        let py = msg.py();
        let subject = msg.getattr(intern!(py, "subject"))?;
        let payload = msg.getattr(intern!(py, "payload"))?;
        let msg_id = msg.getattr(intern!(py, "msg_id"))?;
        let dict = msg.getattr(intern!(py, "headers"))?;
        let receive_ns: u64 = msg.getattr(intern!(py, "receive_ns"))?.extract()?;
        let mut lines = Vec::new();
        if !dict.is_none() {
            for (k, v) in dict.downcast::<PyDict>()?.iter() {
                ssmd_core::nats::encode_header(
                    &mut lines,
                    k.extract::<&str>()?.as_bytes(),
                    v.extract::<&str>()?.as_bytes(),
                )
                .map_err(py_err)?;
            }
        }
        self.outbox()
            .push(
                subject.extract::<&str>()?.as_bytes(),
                msg_id.extract::<&str>()?.as_bytes(),
                &lines,
                payload.downcast::<PyBytes>()?.as_bytes(),
                receive_ns,
                false,
            )
            .map_err(py_err)
    }
}

/// The records of a venue's batch and the bytes they point into.
fn with_records<R>(
    batch: &Bound<'_, PyAny>,
    f: impl FnOnce(&Spans, &[u8]) -> PyResult<R>,
) -> PyResult<R> {
    let py = batch.py();
    if let Ok(b) = batch.downcast::<NormalizedBatch>() {
        let b = b.borrow();
        return f(&b.batch.records, b.data.bind(py).as_bytes());
    }
    if let Ok(b) = batch.downcast::<PolymarketBatch>() {
        let b = b.borrow();
        return f(&b.batch.records, b.data.bind(py).as_bytes());
    }
    if let Ok(b) = batch.downcast::<KrakenBatch>() {
        let b = b.borrow();
        return f(&b.batch.records, b.data.bind(py).as_bytes());
    }
    Err(PyTypeError::new_err(
        "add_frames takes a venue codec's batch (NormalizedBatch, PolymarketBatch or KrakenBatch)",
    ))
}

fn line(out: &mut Vec<u8>, name: &str, value: u64) {
    let mut num = itoa::Buffer::new();
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(num.format(value).as_bytes());
    out.extend_from_slice(b"\r\n");
}

#[pymethods]
impl PyOutBatch {
    #[new]
    #[pyo3(signature = (msgs = None))]
    fn new(msgs: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let mut out = PyOutBatch {
            inner: Arc::new(Outbox::default()),
        };
        if let Some(msgs) = msgs {
            out.extend(msgs)?;
        }
        Ok(out)
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// The sum of the payloads' sizes.
    #[getter]
    fn payload_bytes(&self) -> usize {
        self.inner.payload_bytes()
    }

    /// Adds an OutMsg; raises BusProtocolError on a subject or header NATS refuses.
    fn append(&mut self, msg: &Bound<'_, PyAny>) -> PyResult<()> {
        self.push_msg(msg)
    }

    /// Adds OutMsgs, or every message of another OutBatch, in order.
    fn extend(&mut self, msgs: &Bound<'_, PyAny>) -> PyResult<()> {
        if let Ok(other) = msgs.downcast::<PyOutBatch>() {
            let other = Arc::clone(&other.borrow().inner);
            return self.outbox().extend(&other).map_err(py_err);
        }
        for msg in msgs.try_iter()? {
            self.push_msg(&msg?)?;
        }
        Ok(())
    }

    fn subject(&self, i: usize) -> PyResult<String> {
        let i = self.index(i)?;
        Ok(String::from_utf8_lossy(self.inner.subject(i)).into_owned())
    }

    fn msg_id(&self, i: usize) -> PyResult<String> {
        let i = self.index(i)?;
        Ok(String::from_utf8_lossy(self.inner.msg_id(i)).into_owned())
    }

    /// The header lines after the Nats-Msg-Id line, as sent.
    fn header_lines<'py>(&self, py: Python<'py>, i: usize) -> PyResult<Bound<'py, PyBytes>> {
        let i = self.index(i)?;
        Ok(PyBytes::new(py, self.inner.header_lines(i)))
    }

    fn payload<'py>(&self, py: Python<'py>, i: usize) -> PyResult<Bound<'py, PyBytes>> {
        let i = self.index(i)?;
        Ok(PyBytes::new(py, self.inner.payload(i)))
    }

    /// The local receive time of the frame behind message `i` (0: not from a frame).
    fn receive_ns(&self, i: usize) -> PyResult<u64> {
        Ok(self.inner.receive_ns(self.index(i)?))
    }

    /// The receive time of the last raw frame (0: none).
    #[getter]
    fn last_frame_ns(&self) -> u64 {
        let o = &self.inner;
        (0..o.len())
            .rev()
            .find(|&i| o.is_frame(i))
            .map_or(0, |i| o.receive_ns(i))
    }

    /// Whether message `i` is a raw frame.
    fn is_frame(&self, i: usize) -> PyResult<bool> {
        Ok(self.inner.is_frame(self.index(i)?))
    }

    /// The end of the run from `start` holding at most `count` messages (one at least)
    /// and `size` bytes of payload (or its first message alone, if that is bigger).
    fn end_within(&self, start: usize, count: usize, size: usize) -> usize {
        self.inner.end_within(start, count, size)
    }

    /// Adds one connection's frames and the records a venue's codec made of them
    /// (`batch`): first each frame on `raw_subjects[kinds[k]]` with id
    /// `{conn}:{frame_nos[k]}` and its receive time and connection as headers, then
    /// each record on `heads[type] + token(ticker)` with id `{conn}:{frame}:n` (`:n1`,
    /// `:n2` ... for a frame's further records). `token` is called once per ticker of
    /// the batch. With `exchange_headers`, each record also carries its receive and
    /// exchange times, and each frame with records the exchange time of its first.
    /// Returns the payloads of the lifecycle records.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (batch, frames, kinds, receive_ns, frame_nos, conn, raw_subjects, heads, token, exchange_headers = false))]
    fn add_frames<'py>(
        &mut self,
        py: Python<'py>,
        batch: &Bound<'py, PyAny>,
        frames: &Bound<'py, PyList>,
        kinds: &[u8],
        receive_ns: Vec<u64>,
        frame_nos: Vec<u64>,
        conn: u64,
        raw_subjects: Vec<String>,
        heads: HashMap<String, String>,
        token: &Bound<'py, PyAny>,
        exchange_headers: bool,
    ) -> PyResult<Bound<'py, PyList>> {
        let n = frames.len();
        if kinds.len() != n || receive_ns.len() != n || frame_nos.len() != n {
            return Err(PyTypeError::new_err(
                "frames, kinds, receive_ns and frame_nos differ in length",
            ));
        }
        let lifecycle = PyList::empty(py);
        with_records(batch, |spans, data| {
            let head_of: Vec<Option<&String>> = RecordType::ALL
                .iter()
                .map(|t| heads.get(t.name()))
                .collect();
            let mut tokens: Vec<Option<String>> = vec![None; spans.tickers().len()];
            let exchange = if exchange_headers {
                let mut times = Vec::new();
                codec::for_each_record(data, |r| times.push(r.exchange_ts)).map_err(py_err)?;
                times
            } else {
                Vec::new()
            };
            let mut first_exchange: Vec<Option<u64>> =
                vec![None; if exchange_headers { n } else { 0 }];
            if exchange_headers {
                for (span, ns) in spans.iter().zip(&exchange) {
                    first_exchange[span.frame].get_or_insert(*ns);
                }
            }
            let outbox = Arc::make_mut(&mut self.inner);
            let mut num = itoa::Buffer::new();
            let conn_text = num.format(conn).to_string();
            let mut id = Vec::with_capacity(64);
            let mut lines = Vec::with_capacity(128);
            for k in 0..n {
                let item = frames.get_item(k)?;
                let frame = item.downcast::<PyBytes>()?;
                let subject = raw_subjects.get(kinds[k] as usize).ok_or_else(|| {
                    PyTypeError::new_err(format!("no raw subject for frame kind {}", kinds[k]))
                })?;
                id.clear();
                id.extend_from_slice(conn_text.as_bytes());
                id.push(b':');
                id.extend_from_slice(num.format(frame_nos[k]).as_bytes());
                lines.clear();
                line(&mut lines, RECEIVE_HEADER, receive_ns[k]);
                lines.extend_from_slice(CONN_HEADER.as_bytes());
                lines.extend_from_slice(b": ");
                lines.extend_from_slice(conn_text.as_bytes());
                lines.extend_from_slice(b"\r\n");
                if let Some(Some(ns)) = first_exchange.get(k) {
                    line(&mut lines, EXCHANGE_HEADER, *ns);
                }
                outbox
                    .push(
                        subject.as_bytes(),
                        &id,
                        &lines,
                        frame.as_bytes(),
                        receive_ns[k],
                        true,
                    )
                    .map_err(py_err)?;
            }
            let mut subject = Vec::with_capacity(128);
            let (mut last_frame, mut nth) = (usize::MAX, 0u64);
            for (r, span) in spans.iter().enumerate() {
                nth = if span.frame == last_frame { nth + 1 } else { 0 };
                last_frame = span.frame;
                let type_index = RecordType::ALL
                    .iter()
                    .position(|t| *t == span.record_type)
                    .unwrap_or(0);
                let head = head_of[type_index].ok_or_else(|| {
                    PyTypeError::new_err(format!("no subject for {}", span.record_type.name()))
                })?;
                let slot = &mut tokens[span.ticker as usize];
                if slot.is_none() {
                    let ticker = &spans.tickers()[span.ticker as usize];
                    *slot = Some(token.call1((PyString::new(py, ticker),))?.extract()?);
                }
                subject.clear();
                subject.extend_from_slice(head.as_bytes());
                subject.extend_from_slice(slot.as_deref().unwrap_or_default().as_bytes());
                id.clear();
                id.extend_from_slice(conn_text.as_bytes());
                id.push(b':');
                id.extend_from_slice(num.format(frame_nos[span.frame]).as_bytes());
                id.extend_from_slice(b":n");
                if nth > 0 {
                    id.extend_from_slice(num.format(nth).as_bytes());
                }
                lines.clear();
                if exchange_headers {
                    line(&mut lines, RECEIVE_HEADER, receive_ns[span.frame]);
                    line(&mut lines, EXCHANGE_HEADER, exchange[r]);
                }
                let payload = &data[span.start..span.end];
                outbox
                    .push(
                        &subject,
                        &id,
                        &lines,
                        payload,
                        receive_ns[span.frame],
                        false,
                    )
                    .map_err(py_err)?;
                if span.record_type == RecordType::Lifecycle {
                    lifecycle.append(PyBytes::new(py, payload))?;
                }
            }
            Ok(())
        })?;
        Ok(lifecycle)
    }
}

/// What one read's PubAcks and refusals did to a PublishWindow.
#[pyclass(module = "ssmd._core", name = "Acked", frozen, get_all)]
pub struct PyAcked {
    acked: usize,
    duplicates: usize,
    /// Raw frames among the acked messages, and the newest receive time among them.
    frames: usize,
    newest_frame_ns: u64,
    /// The receive time of each acked frame (when the window keeps them).
    frame_times: Vec<u64>,
    /// Why JetStream refused a message still unacked.
    refused: Vec<String>,
    /// (message id, subject) of each replayed message found stored ahead of a
    /// message published before it.
    reordered: Vec<(String, String)>,
}

/// The messages sent and not yet acked, matched to their PubAcks by reply token.
#[pyclass(module = "ssmd._core", name = "PublishWindow")]
pub struct PyWindow {
    inner: Window,
}

#[pymethods]
impl PyWindow {
    #[new]
    #[pyo3(signature = (reply_prefix, keep_frame_times = false))]
    fn new(reply_prefix: &str, keep_frame_times: bool) -> Self {
        PyWindow {
            inner: Window::new(reply_prefix.as_bytes(), keep_frame_times),
        }
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// The unacked messages' payload size.
    #[getter]
    fn payload_bytes(&self) -> usize {
        self.inner.bytes()
    }

    /// When the oldest unacked message was sent (the caller's `now`), or None.
    #[getter]
    fn oldest_sent(&self) -> Option<f64> {
        self.inner.oldest_sent()
    }

    /// The HPUBs of messages `start..end` of `batch`, which become unacked.
    fn send<'py>(
        &mut self,
        py: Python<'py>,
        batch: &PyOutBatch,
        start: usize,
        end: usize,
        now: f64,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let end = end.min(batch.inner.len());
        let mut out = Vec::new();
        self.inner
            .send(&batch.inner, start, end, now, &mut out)
            .map_err(py_err)?;
        Ok(PyBytes::new(py, &out))
    }

    /// Takes messages `start..end` of `batch` as unacked without sending them.
    fn hold(&mut self, batch: &PyOutBatch, start: usize, end: usize, now: f64) {
        let end = end.min(batch.inner.len());
        self.inner.hold(&batch.inner, start, end, now);
    }

    /// Applies the PubAcks and refusals of one read.
    fn ack(&mut self, got: &PyReceived) -> PyAcked {
        let a = self.inner.ack(&got.ack_list, &got.refusal_list);
        PyAcked {
            acked: a.acked,
            duplicates: a.duplicates,
            frames: a.frames,
            newest_frame_ns: a.newest_frame_ns,
            frame_times: a.frame_times,
            refused: a.refused,
            reordered: a.reordered,
        }
    }

    /// Every unacked message, in the order sent; the window is then empty, and a
    /// replay begins: a replayed message found stored after one stored anew is
    /// reported in `Acked.reordered`.
    fn take_unacked(&mut self) -> PyResult<PyOutBatch> {
        Ok(PyOutBatch {
            inner: Arc::new(self.inner.take_unacked().map_err(py_err)?),
        })
    }

    /// The replay is over.
    fn end_replay(&mut self) {
        self.inner.end_replay();
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyOutBatch>()?;
    m.add_class::<PyAcked>()?;
    m.add_class::<PyWindow>()?;
    Ok(())
}

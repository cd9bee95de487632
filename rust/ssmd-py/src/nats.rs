//! NatsProtocol and Deliveries: the NATS client protocol of ssmd_core::nats,
//! for ssmd.bus.wire.
//!
//! One call per read from the socket (`receive`) and one per batch of
//! publishes (`encode_publishes`) or acks (`encode_acks`); PubAcks are matched
//! to their publish by the token that ends their reply subject. Messages a pull
//! consumer delivers stay here, in Rust, until the archiver takes a batch of
//! them (`take_deliveries`) and routes it (route_batch): no Python object per
//! message.

use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use pyo3::Bound;
use ssmd_core::nats::{
    ack_meta, encode_ack, encode_header, encode_publish, read_reply, status, Op, Parser, Publish,
    Reply,
};

use crate::errors::py_err;

/// The subscription ids the wire gives the reply prefix's wildcard and the pull
/// consumer's inbox (a JetStream delivery keeps its own subject: only the sid
/// says which subscription it came on).
const REPLY_SID: u64 = 1;
const DELIVER_SID: u64 = 2;

/// What one `receive` found, in the order the server sent it within each kind.
#[pyclass(module = "ssmd._core", name = "Received", frozen)]
pub struct PyReceived {
    /// (token, stream seq, duplicate) of each PubAck, for a PublishWindow.
    pub(crate) ack_list: Vec<(u64, u64, bool)>,
    /// (token, reason) of each publish JetStream refused.
    pub(crate) refusal_list: Vec<(u64, String)>,
    /// Each INFO's JSON.
    #[pyo3(get)]
    infos: Py<PyList>,
    /// Each -ERR's text.
    #[pyo3(get)]
    errors: Py<PyList>,
    #[pyo3(get)]
    pings: usize,
    #[pyo3(get)]
    pongs: usize,
    /// Tokens of the answers to acks sent with a reply (`encode_acks`' confirm token).
    #[pyo3(get)]
    confirmations: Py<PyList>,
    /// Deliveries of the pull consumer this read added to those held.
    #[pyo3(get)]
    delivered: usize,
    /// Status codes the pull consumer's inbox received (100 idle heartbeat, 404 no
    /// messages, 408 request expired, 409 request or consumer gone).
    #[pyo3(get)]
    statuses: Py<PyList>,
    /// Messages addressed to neither (none are expected).
    #[pyo3(get)]
    others: usize,
}

/// One message a JetStream pull consumer delivered.
pub struct Delivered {
    pub subject: String,
    /// Its ack subject (empty: made by hand, not to be acked).
    pub reply: Vec<u8>,
    /// The whole header block, "NATS/1.0" line included (empty: none).
    pub headers: Vec<u8>,
    pub payload: Vec<u8>,
    pub seq: u64,
    pub stored_ns: u64,
    /// Messages left for the consumer after this one (0 when made by hand).
    pub pending: u64,
    /// The consumer's delivery sequence (0 when made by hand).
    pub consumer_seq: u64,
}

/// (subject, stream seq, stored ns, headers, payload) of a delivery made by hand.
type HandMade = (String, u64, u64, Option<HashMap<String, String>>, Vec<u8>);
/// (subject, headers, payload) of a delivery.
type MessageTuple<'py> = (String, Option<Bound<'py, PyDict>>, Bound<'py, PyBytes>);

/// Messages delivered by a pull consumer, in the order they arrived, held in Rust.
#[pymethods]
impl PyReceived {
    /// (token, stream seq, duplicate) of each PubAck.
    #[getter]
    fn acks(&self) -> Vec<(u64, u64, bool)> {
        self.ack_list.clone()
    }

    /// (token, reason) of each publish JetStream refused.
    #[getter]
    fn refusals(&self) -> Vec<(u64, String)> {
        self.refusal_list.clone()
    }

    /// How many PubAcks and refusals this read brought.
    #[getter]
    fn replies(&self) -> usize {
        self.ack_list.len() + self.refusal_list.len()
    }
}

#[pyclass(module = "ssmd._core", name = "Deliveries", frozen)]
pub struct PyDeliveries {
    pub msgs: Vec<Delivered>,
}

#[pymethods]
impl PyDeliveries {
    /// Deliveries made by hand (tests, benchmarks): (subject, stream seq, stored ns,
    /// headers or None, payload) each; they have no ack subject.
    #[new]
    fn new(messages: Vec<HandMade>) -> PyResult<Self> {
        let mut msgs = Vec::with_capacity(messages.len());
        for (subject, seq, stored_ns, headers, payload) in messages {
            let mut block = Vec::new();
            if let Some(h) = headers {
                block.extend_from_slice(b"NATS/1.0\r\n");
                for (k, v) in &h {
                    encode_header(&mut block, k.as_bytes(), v.as_bytes()).map_err(py_err)?;
                }
                block.extend_from_slice(b"\r\n");
            }
            msgs.push(Delivered {
                subject,
                reply: Vec::new(),
                headers: block,
                payload,
                seq,
                stored_ns,
                pending: 0,
                consumer_seq: 0,
            });
        }
        Ok(PyDeliveries { msgs })
    }

    fn __len__(&self) -> usize {
        self.msgs.len()
    }

    /// Stream sequences, in delivery order.
    #[getter]
    fn seqs(&self) -> Vec<u64> {
        self.msgs.iter().map(|m| m.seq).collect()
    }

    /// (subject, headers or None, payload) of the message at stream sequence `seq`.
    fn message<'py>(&self, py: Python<'py>, seq: u64) -> PyResult<Option<MessageTuple<'py>>> {
        let Some(m) = self.msgs.iter().find(|m| m.seq == seq) else {
            return Ok(None);
        };
        let headers = if m.headers.is_empty() {
            None
        } else {
            let d = PyDict::new(py);
            for line in m.headers.split(|b| *b == b'\n').skip(1) {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if let Some(colon) = line.iter().position(|b| *b == b':') {
                    d.set_item(
                        String::from_utf8_lossy(&line[..colon]),
                        String::from_utf8_lossy(&line[colon + 1..]).trim(),
                    )?;
                }
            }
            Some(d)
        };
        Ok(Some((
            m.subject.clone(),
            headers,
            PyBytes::new(py, &m.payload),
        )))
    }
}

/// The protocol state of one connection: a parser, the reply prefix, and the
/// deliveries of a pull consumer not yet taken.
#[pyclass(module = "ssmd._core", name = "NatsProtocol")]
pub struct PyNatsProtocol {
    parser: Parser,
    reply_prefix: Vec<u8>,
    deliver_subject: Vec<u8>,
    held: Vec<Delivered>,
}

#[pymethods]
impl PyNatsProtocol {
    /// PubAcks come back on `reply_prefix` + token (the prefix ends with a dot); a
    /// pull consumer delivers to `deliver_subject` (empty: none). The connection
    /// subscribes the first as "{reply_prefix}*" with sid 1 and the second with sid 2.
    #[new]
    #[pyo3(signature = (reply_prefix, deliver_subject = ""))]
    fn new(reply_prefix: &str, deliver_subject: &str) -> Self {
        PyNatsProtocol {
            parser: Parser::new(0),
            reply_prefix: reply_prefix.as_bytes().to_vec(),
            deliver_subject: deliver_subject.as_bytes().to_vec(),
            held: Vec::new(),
        }
    }

    #[getter]
    fn deliver_subject(&self) -> String {
        String::from_utf8_lossy(&self.deliver_subject).into_owned()
    }

    /// Deliveries received and not yet taken.
    #[getter]
    fn held(&self) -> usize {
        self.held.len()
    }

    /// The first `max` deliveries held, in arrival order.
    fn take_deliveries(&mut self, max: usize) -> PyDeliveries {
        let rest = if max < self.held.len() {
            self.held.split_off(max)
        } else {
            Vec::new()
        };
        PyDeliveries {
            msgs: std::mem::replace(&mut self.held, rest),
        }
    }

    /// One PUB of `payload` to `subject` (replying to `reply` when not empty), no
    /// headers: a JetStream API request.
    #[pyo3(signature = (subject, payload, reply = ""))]
    fn encode_publish(
        &self,
        py: Python<'_>,
        subject: &str,
        payload: &[u8],
        reply: &str,
    ) -> PyResult<Py<PyBytes>> {
        let mut out = Vec::with_capacity(subject.len() + reply.len() + payload.len() + 32);
        encode_publish(
            &mut out,
            &Publish {
                subject: subject.as_bytes(),
                reply: reply.as_bytes(),
                headers: b"",
                payload,
            },
        )
        .map_err(py_err)?;
        Ok(PyBytes::new(py, &out).unbind())
    }

    /// "+ACK" to each delivery, the last one replying to the prefix +
    /// `confirm_token` when given (its confirmation then comes back).
    #[pyo3(signature = (deliveries, confirm_token = None))]
    fn encode_acks(
        &self,
        py: Python<'_>,
        deliveries: &PyDeliveries,
        confirm_token: Option<u64>,
    ) -> PyResult<Py<PyBytes>> {
        let bad = |e: ssmd_core::nats::ProtocolError| py_err(e);
        let mut out = Vec::with_capacity(deliveries.msgs.len() * 80);
        let acked: Vec<&Delivered> = deliveries
            .msgs
            .iter()
            .filter(|m| !m.reply.is_empty())
            .collect();
        let mut confirm = Vec::new();
        if let Some(t) = confirm_token {
            confirm.extend_from_slice(&self.reply_prefix);
            confirm.extend_from_slice(itoa::Buffer::new().format(t).as_bytes());
        }
        for (i, m) in acked.iter().enumerate() {
            let last = i + 1 == acked.len();
            encode_ack(&mut out, &m.reply, if last { &confirm } else { b"" }).map_err(bad)?;
        }
        Ok(PyBytes::new(py, &out).unbind())
    }

    #[getter]
    fn reply_prefix(&self) -> String {
        String::from_utf8_lossy(&self.reply_prefix).into_owned()
    }

    /// Refuse messages over `max_payload` bytes (the server's INFO says it).
    fn set_max_payload(&mut self, max_payload: usize) {
        self.parser.set_max_payload(max_payload);
    }

    /// Forget a partial operation: a new connection starts clean.
    fn reset(&mut self) {
        self.parser.reset();
    }

    /// Parses bytes read from the server; raises BusProtocolError when the
    /// server breaks the protocol (the connection is then unusable).
    fn receive(&mut self, py: Python<'_>, data: &[u8]) -> PyResult<PyReceived> {
        let mut ack_list = Vec::new();
        let mut refusal_list = Vec::new();
        let infos = PyList::empty(py);
        let errors = PyList::empty(py);
        let confirmations = PyList::empty(py);
        let statuses = PyList::empty(py);
        let (mut pings, mut pongs, mut others, mut delivered) = (0, 0, 0, 0);
        let mut failed: Option<PyErr> = None;
        let prefix = &self.reply_prefix;
        let deliver = &self.deliver_subject;
        let held = &mut self.held;
        let parsed = self.parser.receive(data, |op| {
            if failed.is_some() {
                return;
            }
            let step = match op {
                Op::Msg {
                    sid: DELIVER_SID,
                    subject,
                    reply,
                    headers,
                    payload,
                } if !deliver.is_empty() => {
                    match (reply.and_then(|r| ack_meta(r).map(|m| (r, m))), headers) {
                        (Some((r, meta)), _) => {
                            held.push(Delivered {
                                subject: String::from_utf8_lossy(subject).into_owned(),
                                reply: r.to_vec(),
                                headers: headers.map(<[u8]>::to_vec).unwrap_or_default(),
                                payload: payload.to_vec(),
                                seq: meta.seq,
                                stored_ns: meta.stored_ns,
                                pending: meta.pending,
                                consumer_seq: meta.consumer_seq,
                            });
                            delivered += 1;
                            Ok(())
                        }
                        (None, Some(h)) if status(h).is_some() => {
                            statuses.append(status(h).unwrap_or_default())
                        }
                        _ => {
                            others += 1;
                            Ok(())
                        }
                    }
                }
                Op::Msg {
                    sid: REPLY_SID,
                    subject,
                    headers,
                    payload,
                    ..
                } => match subject.strip_prefix(prefix.as_slice()).and_then(token) {
                    Some(t) if payload.is_empty() && headers.is_none() => confirmations.append(t),
                    Some(t) => match read_reply(headers, payload) {
                        Reply::Stored { seq, duplicate } => {
                            ack_list.push((t, seq, duplicate));
                            Ok(())
                        }
                        Reply::Refused(why) => {
                            refusal_list.push((t, why));
                            Ok(())
                        }
                    },
                    None => {
                        others += 1;
                        Ok(())
                    }
                },
                Op::Msg { .. } => {
                    others += 1;
                    Ok(())
                }
                Op::Info(json) => infos.append(PyBytes::new(py, json)),
                Op::Err(text) => errors.append(String::from_utf8_lossy(text)),
                Op::Ping => {
                    pings += 1;
                    Ok(())
                }
                Op::Pong => {
                    pongs += 1;
                    Ok(())
                }
                Op::Ok => Ok(()),
            };
            if let Err(e) = step {
                failed = Some(e);
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        parsed.map_err(py_err)?;
        Ok(PyReceived {
            ack_list,
            refusal_list,
            infos: infos.unbind(),
            errors: errors.unbind(),
            confirmations: confirmations.unbind(),
            delivered,
            statuses: statuses.unbind(),
            pings,
            pongs,
            others,
        })
    }
}

fn token(tail: &[u8]) -> Option<u64> {
    if tail.is_empty() || tail.len() > 19 || !tail.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        tail.iter()
            .fold(0u64, |acc, b| acc * 10 + u64::from(b - b'0')),
    )
}

/// (stream sequence, stored ns, pending) from a JetStream ack subject; None when
/// `reply` is not one.
#[pyfunction(name = "ack_meta")]
fn py_ack_meta(reply: &str) -> Option<(u64, u64, u64)> {
    ack_meta(reply.as_bytes()).map(|m| (m.seq, m.stored_ns, m.pending))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(py_ack_meta, m)?)?;
    m.add_class::<PyNatsProtocol>()?;
    m.add_class::<PyReceived>()?;
    m.add_class::<PyDeliveries>()?;
    Ok(())
}

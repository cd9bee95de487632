//! The gateway's fan-in: a batch of stream deliveries applied in one call
//! (`BookSet.apply_deliveries`), with no Python object per message.
//!
//! Books are applied here; what the gateway's Python needs comes back in one
//! `FeedBatch`: the books that changed (once each), the trades with their
//! message already rendered, and the few records it handles itself (status,
//! lifecycle, connector events) as dicts, in stream order.

use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::PyList;
use ssmd_core::book::{BookEvent, BookSet};
use ssmd_core::codec;
use ssmd_core::model::{Body, ConnectorEventKind, Record};
use ssmd_core::render::{record_ms, trade_fields, trade_json, TradeFields};

use crate::errors::py_err;
use crate::nats::PyDeliveries;
use crate::records::record_to_dict;

/// One trade as the gateway keeps and sends it.
#[pyclass(module = "ssmd._core", frozen, get_all)]
pub struct TradeMessage {
    pub ticker: String,
    /// Exchange time, else receive time, Unix ms.
    pub ms: u64,
    pub price_e6: Option<i64>,
    /// When the connector received it, ns.
    pub receive_ns: u64,
    /// The message clients get (`{"type":"trade",...}`).
    pub text: String,
}

/// What one `BookSet.apply_deliveries` did and found.
#[pyclass(module = "ssmd._core", frozen, get_all)]
pub struct FeedBatch {
    /// Deliveries looked at (each counted once, applied or not).
    pub received: usize,
    /// The highest stream sequence applied (the call's `after_seq` when none).
    pub last_seq: u64,
    /// Messages left on the consumer after the last delivery looked at.
    pub pending: u64,
    /// The consumer's delivery sequence of the last delivery looked at.
    pub consumer_seq: u64,
    /// When the stream stored the last delivery looked at (ns since the epoch).
    pub last_stored_ns: u64,
    /// A delivery is missing before the one at which the call stopped: the
    /// rest of the batch was not applied; read again from `last_seq + 1`.
    pub broken: bool,
    /// Deliveries at or below `after_seq`, skipped.
    pub duplicates: usize,
    /// Deliveries of a record type not asked for (raw frames, say), skipped unread.
    pub ignored: usize,
    /// Messages whose payload did not decode, skipped whole.
    pub undecodable: usize,
    /// The newest connector receive time seen, ns.
    pub last_receive_ns: u64,
    /// Messages per record type (the subject's type token).
    pub counts: Vec<(String, usize)>,
    /// Book events by kind (core.BOOK_EVENT_KINDS' names).
    pub book_events: Vec<(String, usize)>,
    /// (ticker, ms) of each book that changed or became invalid, once each, in
    /// the order first changed.
    pub books: Vec<(String, u64)>,
    /// list[TradeMessage], in stream order.
    pub trades: Py<PyList>,
    /// Status, lifecycle and connector-event records as dicts, in stream order.
    pub records: Py<PyList>,
}

struct Trade {
    ticker: String,
    ms: u64,
    price_e6: Option<i64>,
    receive_ns: u64,
    text: String,
}

#[derive(Default)]
struct Outcome {
    received: usize,
    last_seq: u64,
    pending: u64,
    consumer_seq: u64,
    last_stored_ns: u64,
    broken: bool,
    duplicates: usize,
    ignored: usize,
    undecodable: usize,
    last_receive_ns: u64,
    counts: Vec<(String, usize)>,
    book_events: HashMap<&'static str, usize>,
    books: Vec<(String, u64)>,
    book_at: HashMap<String, usize>,
    trades: Vec<Trade>,
    records: Vec<Record<'static>>,
    /// Put before the ticker in a trade's message (a further venue's symbol).
    symbol_prefix: String,
}

impl Outcome {
    fn count(&mut self, typ: &str) {
        match self.counts.iter_mut().find(|(t, _)| t == typ) {
            Some((_, n)) => *n += 1,
            None => self.counts.push((typ.to_owned(), 1)),
        }
    }

    /// `ticker`'s book changed at `ms` (the latest change's time wins).
    fn book(&mut self, ticker: &str, ms: u64) {
        match self.book_at.get(ticker) {
            Some(&i) => self.books[i].1 = ms,
            None => {
                self.book_at.insert(ticker.to_owned(), self.books.len());
                self.books.push((ticker.to_owned(), ms));
            }
        }
    }

    /// A book an event names: listed, keeping the time of a change already listed.
    fn touched(&mut self, ticker: &str, ms: u64) {
        if !self.book_at.contains_key(ticker) {
            self.book(ticker, ms);
        }
    }

    fn event(&mut self, event: &BookEvent, ms: u64) {
        let kind = match event {
            BookEvent::Gap { tickers, .. } | BookEvent::Unreadable { tickers, .. } => {
                for t in tickers {
                    self.touched(t, ms);
                }
                if matches!(event, BookEvent::Gap { .. }) {
                    "gap"
                } else {
                    "unreadable"
                }
            }
            BookEvent::Duplicate { .. } => "duplicate",
            BookEvent::Resynced { ticker } => {
                self.touched(ticker, ms);
                "resynced"
            }
            BookEvent::DeltaWithoutSnapshot { ticker } => {
                self.touched(ticker, ms);
                "delta_without_snapshot"
            }
            BookEvent::Invalidated { ticker, .. } => {
                self.touched(ticker, ms);
                "invalidated"
            }
        };
        *self.book_events.entry(kind).or_default() += 1;
    }

    fn apply(&mut self, books: &mut BookSet, record: Record<'_>) {
        self.last_receive_ns = self.last_receive_ns.max(record.receive_ts);
        let ms = record_ms(&record);
        match &record.body {
            Body::BookSnapshot(_)
            | Body::BookDelta(_)
            | Body::Book(_)
            | Body::SpotView(_)
            | Body::SpotBook(_) => {
                if let Some(t) = record.body.ticker() {
                    self.book(t, ms);
                }
                for event in books.apply(&record) {
                    self.event(&event, ms);
                }
            }
            Body::Trade(_) | Body::SpotTrade(_) => {
                if let Some(t) = trade_fields(&record) {
                    let text = if self.symbol_prefix.is_empty() {
                        trade_json(&t)
                    } else {
                        let symbol = format!("{}{}", self.symbol_prefix, t.ticker);
                        trade_json(&TradeFields {
                            ticker: &symbol,
                            ..t
                        })
                    };
                    self.trades.push(Trade {
                        ticker: t.ticker.to_owned(),
                        ms,
                        price_e6: t.price_e6,
                        receive_ns: record.receive_ts,
                        text,
                    });
                }
            }
            Body::ConnectorEvent(e) => {
                if e.kind == ConnectorEventKind::Disconnected {
                    for t in books.close_connection(record.conn_id) {
                        self.book(&t, ms);
                    }
                }
                self.records.push(codec::into_owned(record));
            }
            Body::Status(_) | Body::Lifecycle(_) if record.body.ticker().is_some() => {
                self.records.push(codec::into_owned(record));
            }
            _ => {}
        }
    }
}

/// The record type a subject names: the token after `prefix.`.
fn subject_type<'s>(subject: &'s str, prefix: &str) -> &'s str {
    let rest = subject
        .strip_prefix(prefix)
        .and_then(|s| s.strip_prefix('.'))
        .unwrap_or(subject);
    rest.split('.').next().unwrap_or(rest)
}

/// Applies `deliveries` in order to `books` (see `BookSet.apply_deliveries`).
#[allow(clippy::too_many_arguments)]
pub fn apply_deliveries(
    py: Python<'_>,
    books: &mut BookSet,
    deliveries: &PyDeliveries,
    after_seq: u64,
    after_consumer_seq: u64,
    prefix: &str,
    types: &[String],
    symbol_prefix: &str,
) -> PyResult<FeedBatch> {
    let out = py.detach(|| {
        let mut out = Outcome {
            last_seq: after_seq,
            consumer_seq: after_consumer_seq,
            symbol_prefix: symbol_prefix.to_owned(),
            ..Outcome::default()
        };
        let mut words = Vec::new();
        for m in &deliveries.msgs {
            if m.consumer_seq != 0
                && out.consumer_seq != 0
                && m.consumer_seq != out.consumer_seq + 1
            {
                out.broken = true;
                break;
            }
            out.received += 1;
            out.pending = m.pending;
            out.last_stored_ns = m.stored_ns;
            if m.consumer_seq != 0 {
                out.consumer_seq = m.consumer_seq;
            }
            if m.seq <= out.last_seq {
                out.duplicates += 1;
                continue;
            }
            out.last_seq = m.seq;
            let typ = subject_type(&m.subject, prefix);
            if !types.iter().any(|t| t == typ) {
                out.ignored += 1;
                continue;
            }
            out.count(typ);
            // Checked whole first, so that a bad message changes nothing.
            if codec::for_each_record_in(&m.payload, &mut words, |_| {}).is_err() {
                out.undecodable += 1;
                continue;
            }
            let _ = codec::for_each_record_in(&m.payload, &mut words, |r| out.apply(books, r));
        }
        out
    });
    let trades = PyList::empty(py);
    for t in out.trades {
        trades.append(Py::new(
            py,
            TradeMessage {
                ticker: t.ticker,
                ms: t.ms,
                price_e6: t.price_e6,
                receive_ns: t.receive_ns,
                text: t.text,
            },
        )?)?;
    }
    let records = PyList::empty(py);
    for r in &out.records {
        records.append(record_to_dict(py, r)?)?;
    }
    let mut book_events: Vec<(String, usize)> = out
        .book_events
        .into_iter()
        .map(|(k, n)| (k.to_owned(), n))
        .collect();
    book_events.sort();
    Ok(FeedBatch {
        received: out.received,
        last_seq: out.last_seq,
        pending: out.pending,
        consumer_seq: out.consumer_seq,
        last_stored_ns: out.last_stored_ns,
        broken: out.broken,
        duplicates: out.duplicates,
        ignored: out.ignored,
        undecodable: out.undecodable,
        last_receive_ns: out.last_receive_ns,
        counts: out.counts,
        book_events,
        books: out.books,
        trades: trades.unbind(),
        records: records.unbind(),
    })
}

/// The gateway's message of each trade in a stream of packed records, in order.
#[pyfunction]
fn trade_messages(data: &[u8]) -> PyResult<Vec<String>> {
    let mut out = Vec::new();
    codec::for_each_record(data, |r| {
        if let Some(t) = trade_fields(&r) {
            out.push(trade_json(&t));
        }
    })
    .map_err(py_err)?;
    Ok(out)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(trade_messages, m)?)?;
    m.add_class::<TradeMessage>()?;
    m.add_class::<FeedBatch>()?;
    Ok(())
}

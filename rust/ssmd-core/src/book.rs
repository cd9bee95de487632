//! Order books rebuilt from Kalshi snapshots and deltas.
//!
//! Kalshi publishes two bid books per market, YES bids and NO bids; a NO bid
//! at p is a YES ask at 1 - p (unless the subscription set `use_yes_price`,
//! in which case NO levels already arrive on the YES scale). Sizes are exact
//! 1e-6 integers, so a level is removed exactly when it reaches zero; float
//! accumulation left phantom levels in earlier implementations.
//!
//! [`Book`] is one market; [`BookSet`] feeds records in stream order to the
//! books of many markets and checks their sequence numbers.
//!
//! A spot venue's book (Kraken) is held the same way with `use_yes_price`
//! set: YES levels are its bids and NO levels its asks, at face value and
//! any price, in units of 1e-6 (the nearest when the venue is finer). Its
//! records (`SpotBook`) carry absolute sizes, the depth the book is cut to
//! and whether the venue's checksum matched; a mismatch makes it invalid until
//! the next snapshot. The exact books and the checksum itself are the venue's
//! (crate::venues::kraken::book).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use crate::fixed::{self, SCALE};
use crate::model::{Body, BookDelta, BookSnapshot, BookView, Level, Outcome, Record, SpotBook};
use crate::seq::{SeqOutcome, SeqTracker};

/// Why a book stopped being exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookError {
    /// A delta without a yes/no side.
    MissingSide,
    /// A delta or snapshot level without a price.
    MissingPrice,
    /// A delta without its size change, or a snapshot level without a size.
    MissingSize,
    /// A spot book's checksum did not match the venue's.
    ChecksumMismatch,
    /// A spot level whose price has no exact 1e-6 value (a precision finer
    /// than 6 decimals: nearest values could merge two levels) or whose size
    /// overflows.
    SpotOutOfRange,
    /// A price outside 0..=1 (in 1e-6 units): no binary-contract price.
    PriceOutOfRange { price_e6: i64 },
    /// A level would hold less than nothing: a delta was missed or applied twice.
    NegativeSize { price_e6: i64, size_e6: i64 },
    /// A size beyond i64.
    Overflow { price_e6: i64 },
    /// A delta arrived on another (conn_id, sid) than the book's snapshot,
    /// so it cannot be sequenced against it.
    OtherStream,
    /// A delta without a ticker arrived on the book's (conn_id, sid): some
    /// book on it missed a change, and which one is unknown.
    UnattributedDelta,
}

impl BookError {
    pub fn as_str(self) -> &'static str {
        match self {
            BookError::MissingSide => "missing_side",
            BookError::MissingPrice => "missing_price",
            BookError::MissingSize => "missing_size",
            BookError::ChecksumMismatch => "checksum_mismatch",
            BookError::SpotOutOfRange => "spot_out_of_range",
            BookError::PriceOutOfRange { .. } => "price_out_of_range",
            BookError::NegativeSize { .. } => "negative_size",
            BookError::Overflow { .. } => "overflow",
            BookError::OtherStream => "other_stream",
            BookError::UnattributedDelta => "unattributed_delta",
        }
    }
}

/// What [`Book::apply_delta`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaOutcome {
    Applied,
    /// The book is invalid; only a snapshot makes it exact again.
    Ignored,
    /// The delta cannot be applied; the book is now invalid and unchanged.
    Rejected(BookError),
}

/// One market's YES-bid and NO-bid books, price_e6 -> size_e6.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Book {
    yes: BTreeMap<i64, i64>,
    no: BTreeMap<i64, i64>,
    use_yes_price: bool,
    valid: bool,
    snapshotted: bool,
    /// A spot book cut to this many levels per side (0: a binary contract's book).
    spot_depth: usize,
}

impl Book {
    /// An empty book, invalid until its first snapshot.
    pub fn new() -> Book {
        Book::default()
    }

    /// Replaces both sides. A bad level leaves the book empty and invalid.
    pub fn apply_snapshot(&mut self, snapshot: &BookSnapshot<'_>) -> Result<(), BookError> {
        let sides = levels_to_map(&snapshot.yes).and_then(|yes| {
            let no = levels_to_map(&snapshot.no)?;
            Ok((yes, no))
        });
        match sides {
            Ok((yes, no)) => {
                self.yes = yes;
                self.no = no;
                self.use_yes_price = snapshot.use_yes_price;
                self.valid = true;
                self.snapshotted = true;
                Ok(())
            }
            Err(err) => {
                self.yes.clear();
                self.no.clear();
                self.valid = false;
                Err(err)
            }
        }
    }

    /// new size = old size + delta; the level goes at exactly 0.
    pub fn apply_delta(&mut self, delta: &BookDelta<'_>) -> DeltaOutcome {
        if !self.valid {
            return DeltaOutcome::Ignored;
        }
        match self.try_delta(delta) {
            Ok(()) => DeltaOutcome::Applied,
            Err(err) => {
                self.valid = false;
                DeltaOutcome::Rejected(err)
            }
        }
    }

    fn try_delta(&mut self, delta: &BookDelta<'_>) -> Result<(), BookError> {
        let side = match delta.side {
            Outcome::Yes => &mut self.yes,
            Outcome::No => &mut self.no,
            Outcome::Unknown => return Err(BookError::MissingSide),
        };
        let price = checked_price(delta.price_e6)?;
        let change = delta.delta_e6.ok_or(BookError::MissingSize)?;
        let old = side.get(&price).copied().unwrap_or(0);
        let new = old
            .checked_add(change)
            .ok_or(BookError::Overflow { price_e6: price })?;
        match new {
            n if n < 0 => Err(BookError::NegativeSize {
                price_e6: price,
                size_e6: n,
            }),
            0 => {
                side.remove(&price);
                Ok(())
            }
            n => {
                side.insert(price, n);
                Ok(())
            }
        }
    }

    /// Applies a spot venue's book message: a snapshot replaces both sides, an
    /// update sets each level in order (size 0 deletes); then each side is cut
    /// to the message's depth. A message whose checksum did not match leaves
    /// the book invalid (and unchanged) until the next snapshot.
    pub fn apply_spot(&mut self, msg: &SpotBook<'_>) -> Result<(), BookError> {
        if !msg.snapshot && !self.valid {
            return Ok(());
        }
        if !msg.checksum_ok {
            self.valid = false;
            return Err(BookError::ChecksumMismatch);
        }
        let exact_e6 = |v: i64, d: u8| {
            let exact = d <= 6
                || 10i64
                    .checked_pow(u32::from(d - 6))
                    .is_some_and(|m| v % m == 0);
            fixed::rescale_e6(v, d)
                .filter(|_| exact)
                .ok_or(BookError::SpotOutOfRange)
        };
        let e6 = |v: i64, d: u8| fixed::rescale_e6(v, d).ok_or(BookError::SpotOutOfRange);
        if msg.snapshot {
            self.yes.clear();
            self.no.clear();
            self.use_yes_price = true;
            self.snapshotted = true;
        }
        for (side, levels) in [(&mut self.yes, &msg.bids), (&mut self.no, &msg.asks)] {
            for l in levels {
                let price = match exact_e6(l.price, msg.price_decimals) {
                    Ok(p) => p,
                    Err(err) => {
                        self.valid = false;
                        return Err(err);
                    }
                };
                let size = match e6(l.qty, msg.qty_decimals) {
                    Ok(q) => q,
                    Err(err) => {
                        self.valid = false;
                        return Err(err);
                    }
                };
                if l.qty == 0 {
                    side.remove(&price);
                } else {
                    side.insert(price, size);
                }
            }
        }
        let depth = usize::from(msg.depth.max(1));
        self.spot_depth = depth;
        while self.yes.len() > depth {
            self.yes.pop_first(); // the lowest bid is the worst
        }
        while self.no.len() > depth {
            self.no.pop_last(); // the highest ask is the worst
        }
        self.valid = true;
        Ok(())
    }

    /// Whether this is a spot venue's book.
    pub fn is_spot(&self) -> bool {
        self.spot_depth > 0
    }

    /// The spot book a full view describes (a `SpotView` checkpoint).
    pub fn from_spot_view(view: &BookView<'_>) -> Result<Book, BookError> {
        let side = |levels: &[Level]| -> Result<BTreeMap<i64, i64>, BookError> {
            let mut out = BTreeMap::new();
            for l in levels {
                let p = l.price_e6.ok_or(BookError::MissingPrice)?;
                let q = l.size_e6.ok_or(BookError::MissingSize)?;
                if q != 0 {
                    out.insert(p, q);
                }
            }
            Ok(out)
        };
        let yes = side(&view.bids)?;
        let no = side(&view.asks)?;
        Ok(Book {
            spot_depth: yes.len().max(no.len()).max(1),
            yes,
            no,
            use_yes_price: true,
            valid: view.valid,
            snapshotted: true,
        })
    }

    /// Marks the book inexact (a gap, a lost connection) until the next snapshot.
    pub fn invalidate(&mut self) {
        self.valid = false;
    }

    pub fn is_valid(&self) -> bool {
        self.valid
    }

    /// Whether any snapshot was ever applied.
    pub fn has_snapshot(&self) -> bool {
        self.snapshotted
    }

    pub fn use_yes_price(&self) -> bool {
        self.use_yes_price
    }

    /// YES bids as (price_e6, size_e6), best (highest) first.
    pub fn bids(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.yes.iter().rev().map(|(p, s)| (*p, *s))
    }

    /// YES asks derived from NO bids as (price_e6, size_e6), best (lowest) first.
    pub fn asks(&self) -> Box<dyn Iterator<Item = (i64, i64)> + '_> {
        if self.use_yes_price {
            // NO levels are already YES-scale ask prices: the lowest is best.
            Box::new(self.no.iter().map(|(p, s)| (*p, *s)))
        } else {
            // The highest NO bid is the lowest YES ask. Prices were checked
            // to lie in 0..=SCALE, so SCALE - p cannot overflow.
            Box::new(self.no.iter().rev().map(|(p, s)| (SCALE - *p, *s)))
        }
    }

    pub fn best_bid(&self) -> Option<(i64, i64)> {
        self.bids().next()
    }

    pub fn best_ask(&self) -> Option<(i64, i64)> {
        self.asks().next()
    }

    /// The book a full view describes: YES bids as they are, NO bids as
    /// 1 - each YES ask (the connector never subscribes with use_yes_price,
    /// so checkpoints are always on that scale).
    pub fn from_view(view: &BookView<'_>) -> Result<Book, BookError> {
        let no: Vec<Level> = view
            .asks
            .iter()
            .map(|l| Level {
                price_e6: l.price_e6.map(|p| SCALE - p),
                size_e6: l.size_e6,
            })
            .collect();
        Ok(Book {
            yes: levels_to_map(&view.bids)?,
            no: levels_to_map(&no)?,
            use_yes_price: false,
            valid: view.valid,
            snapshotted: true,
            spot_depth: 0,
        })
    }

    /// The YES-centric view, `depth` levels per side (0: all). No ticker.
    pub fn view(&self, depth: usize) -> BookView<'static> {
        let take = if depth == 0 { usize::MAX } else { depth };
        BookView {
            ticker: None,
            bids: self.bids().take(take).map(level).collect(),
            asks: self.asks().take(take).map(level).collect(),
            valid: self.valid,
        }
    }
}

fn level((price, size): (i64, i64)) -> Level {
    Level {
        price_e6: Some(price),
        size_e6: Some(size),
    }
}

fn checked_price(price: Option<i64>) -> Result<i64, BookError> {
    match price {
        None => Err(BookError::MissingPrice),
        Some(p) if (0..=SCALE).contains(&p) => Ok(p),
        Some(p) => Err(BookError::PriceOutOfRange { price_e6: p }),
    }
}

/// Snapshot levels to a side. Arrays are not trusted to be sorted or unique:
/// a price listed twice holds the sum, and a zero size holds nothing.
fn levels_to_map(levels: &[Level]) -> Result<BTreeMap<i64, i64>, BookError> {
    let mut side = BTreeMap::new();
    for lvl in levels {
        let price = checked_price(lvl.price_e6)?;
        let size = lvl.size_e6.ok_or(BookError::MissingSize)?;
        let slot = side.entry(price).or_insert(0i64);
        *slot = slot
            .checked_add(size)
            .ok_or(BookError::Overflow { price_e6: price })?;
    }
    if let Some((&price, &size)) = side.iter().find(|(_, s)| **s < 0) {
        return Err(BookError::NegativeSize {
            price_e6: price,
            size_e6: size,
        });
    }
    side.retain(|_, s| *s != 0);
    Ok(side)
}

/// What happened to the books when a record was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BookEvent {
    /// Seqs were skipped on (conn_id, sid): every book on it is invalid until
    /// its next snapshot (a multi-market sid's gap cannot be attributed).
    Gap {
        conn_id: u64,
        sid: u32,
        expected: u64,
        received: u64,
        tickers: Vec<String>,
    },
    /// A redelivered record (seq at or below the last seen); skipped.
    Duplicate { conn_id: u64, sid: u32, seq: u64 },
    /// A snapshot made an invalid book exact again.
    Resynced { ticker: String },
    /// A delta for a market with no snapshot yet; not applied.
    DeltaWithoutSnapshot { ticker: String },
    /// A record made one book invalid.
    Invalidated { ticker: String, reason: BookError },
    /// A delta on (conn_id, sid) at `seq` could not be read (see
    /// [`BookSet::recordless`]): every book on the sid is invalid.
    Unreadable {
        conn_id: u64,
        sid: u32,
        seq: u64,
        tickers: Vec<String>,
    },
}

struct Entry {
    book: Book,
    /// The (conn_id, sid) of the book's last update.
    conn_id: u64,
    sid: u32,
    /// Exchange time of the last update applied, ns (0: none had one).
    exchange_ts: u64,
    /// Changed since the last checkpoint.
    dirty: bool,
}

impl Entry {
    fn touch(&mut self, exchange_ts: u64) {
        self.dirty = true;
        if exchange_ts > 0 {
            self.exchange_ts = exchange_ts;
        }
    }
}

/// Books keyed by ticker, fed normalized records in stream order.
#[derive(Default)]
pub struct BookSet {
    books: HashMap<String, Entry>,
    seqs: SeqTracker,
    ignored_deltas: u64,
    ignore_seqs: bool,
}

impl BookSet {
    pub fn new() -> BookSet {
        BookSet::default()
    }

    /// Books that take each record's seq as it comes, for a reader of one
    /// market's records (an archive file): the sid's seq is shared by every
    /// market of the subscription, so one market's records skip the others'
    /// seqs and would read as gaps. Gaps then come from elsewhere (the
    /// connector's gap events).
    pub fn ignoring_seqs() -> BookSet {
        BookSet {
            ignore_seqs: true,
            ..BookSet::default()
        }
    }

    /// Applies an orderbook snapshot, delta or checkpoint (a `Book` view);
    /// other records are ignored.
    pub fn apply(&mut self, record: &Record<'_>) -> Vec<BookEvent> {
        let mut events = Vec::new();
        let (conn_id, sid) = (record.conn_id, record.sid);
        match &record.body {
            Body::Book(view) => {
                self.restore(record, view, false, &mut events);
                return events;
            }
            Body::SpotView(view) => {
                self.restore(record, view, true, &mut events);
                return events;
            }
            Body::SpotBook(msg) => {
                self.spot(record, msg, &mut events);
                return events;
            }
            _ => {}
        }
        if !matches!(record.body, Body::BookSnapshot(_) | Body::BookDelta(_)) {
            return events;
        }
        // Snapshot and delta share the sid's sequence.
        let seq = if self.ignore_seqs {
            SeqOutcome::Unsequenced
        } else {
            self.seqs.observe(conn_id, sid, record.seq)
        };
        match seq {
            SeqOutcome::Duplicate => {
                events.push(BookEvent::Duplicate {
                    conn_id,
                    sid,
                    seq: record.seq,
                });
                return events;
            }
            SeqOutcome::Gap { expected, received } => {
                let tickers = self.invalidate_where(|e| e.conn_id == conn_id && e.sid == sid);
                events.push(BookEvent::Gap {
                    conn_id,
                    sid,
                    expected,
                    received,
                    tickers,
                });
            }
            SeqOutcome::First | SeqOutcome::InOrder | SeqOutcome::Unsequenced => {}
        }
        match &record.body {
            Body::BookSnapshot(snapshot) => self.snapshot(record, snapshot, &mut events),
            Body::BookDelta(delta) => self.delta(record, delta, &mut events),
            _ => {}
        }
        events
    }

    /// A frame of an order-book stream that yielded no record (its market or
    /// its body could not be read) still took `seq` on (conn_id, sid), so the
    /// frame after it is not a gap; seqs skipped before it are a gap as usual.
    /// A lost delta changed a book on the sid, and which one cannot be told:
    /// every book on the sid becomes invalid (`Unreadable`) until its next
    /// snapshot. A lost snapshot changes no book that was exact.
    pub fn recordless(&mut self, conn_id: u64, sid: u32, seq: u64, delta: bool) -> Vec<BookEvent> {
        let on_sid = |e: &Entry| e.conn_id == conn_id && e.sid == sid;
        match self.seqs.observe(conn_id, sid, seq) {
            SeqOutcome::Duplicate => vec![BookEvent::Duplicate { conn_id, sid, seq }],
            SeqOutcome::Gap { expected, received } => vec![BookEvent::Gap {
                conn_id,
                sid,
                expected,
                received,
                tickers: self.invalidate_where(on_sid),
            }],
            SeqOutcome::First | SeqOutcome::InOrder | SeqOutcome::Unsequenced => {
                let tickers = if delta {
                    self.invalidate_where(on_sid)
                } else {
                    Vec::new()
                };
                if tickers.is_empty() {
                    return Vec::new();
                }
                vec![BookEvent::Unreadable {
                    conn_id,
                    sid,
                    seq,
                    tickers,
                }]
            }
        }
    }

    /// Restores one book from a checkpoint (see [`BookSet::checkpoint`]).
    /// The checkpoint holds everything up to its seq on (conn_id, sid); a
    /// book already held on that stream past that seq is newer and kept.
    fn restore(
        &mut self,
        record: &Record<'_>,
        view: &BookView<'_>,
        spot: bool,
        events: &mut Vec<BookEvent>,
    ) {
        let Some(ticker) = view.ticker.as_deref() else {
            return;
        };
        let (conn_id, sid, seq) = (record.conn_id, record.sid, record.seq);
        let held = self.books.get(ticker);
        let on_stream = held.is_some_and(|e| e.conn_id == conn_id && e.sid == sid);
        if on_stream && self.seqs.last(conn_id, sid).is_some_and(|last| seq < last) {
            return;
        }
        let was_invalid = held.is_some_and(|e| !e.book.is_valid());
        let restored = if spot {
            Book::from_spot_view(view)
        } else {
            Book::from_view(view)
        };
        match restored {
            Ok(book) => {
                let valid = book.is_valid();
                let entry = Entry {
                    book,
                    conn_id,
                    sid,
                    exchange_ts: record.exchange_ts,
                    dirty: true,
                };
                self.books.insert(ticker.to_string(), entry);
                self.seqs.advance_to(conn_id, sid, seq);
                if was_invalid && valid {
                    events.push(BookEvent::Resynced {
                        ticker: ticker.to_string(),
                    });
                }
            }
            Err(reason) => {
                if let Some(entry) = self.books.get_mut(ticker) {
                    entry.book.invalidate();
                    entry.dirty = true;
                }
                events.push(BookEvent::Invalidated {
                    ticker: ticker.to_string(),
                    reason,
                });
            }
        }
    }

    /// Checkpoint records of the books changed since the last checkpoint
    /// (every book with a snapshot when `everything`), sorted by ticker.
    ///
    /// Each is a `Book` view stamped with its (conn_id, sid) and that
    /// stream's last seq, so that a reader starting from it can apply the
    /// deltas that follow exactly: a consumer that joins a stream late
    /// restores the books from their latest checkpoints instead of
    /// replaying every delta since the snapshots.
    pub fn checkpoint(&mut self, receive_ts: u64, everything: bool) -> Vec<Record<'static>> {
        let seqs = &self.seqs;
        let mut out: Vec<Record<'static>> = self
            .books
            .iter_mut()
            .filter(|(_, e)| e.book.has_snapshot() && (e.dirty || everything))
            .map(|(ticker, e)| {
                e.dirty = false;
                let mut view = e.book.view(0);
                view.ticker = Some(Cow::Owned(ticker.clone()));
                Record {
                    receive_ts,
                    exchange_ts: e.exchange_ts,
                    conn_id: e.conn_id,
                    sid: e.sid,
                    seq: seqs.last(e.conn_id, e.sid).unwrap_or(0),
                    body: if e.book.is_spot() {
                        Body::SpotView(view)
                    } else {
                        Body::Book(view)
                    },
                }
            })
            .collect();
        out.sort_unstable_by(|a, b| a.body.ticker().cmp(&b.body.ticker()));
        out
    }

    /// A spot venue's book message (no sequence numbers: its integrity is
    /// the checksum the venue's normalizer verified).
    fn spot(&mut self, record: &Record<'_>, msg: &SpotBook<'_>, events: &mut Vec<BookEvent>) {
        let Some(ticker) = msg.ticker.as_deref() else {
            return;
        };
        let existed = self.books.contains_key(ticker);
        if !msg.snapshot
            && self
                .books
                .get(ticker)
                .is_some_and(|e| e.conn_id != record.conn_id)
        {
            // A late update from a connection the book has left.
            self.ignored_deltas += 1;
            return;
        }
        if !existed && !msg.snapshot {
            events.push(BookEvent::DeltaWithoutSnapshot {
                ticker: ticker.to_string(),
            });
            return;
        }
        let entry = self
            .books
            .entry(ticker.to_string())
            .or_insert_with(|| Entry {
                book: Book::new(),
                conn_id: record.conn_id,
                sid: record.sid,
                exchange_ts: 0,
                dirty: true,
            });
        entry.conn_id = record.conn_id;
        entry.sid = record.sid;
        entry.touch(record.exchange_ts);
        let was_invalid = existed && !entry.book.is_valid();
        let was_valid = entry.book.is_valid();
        match entry.book.apply_spot(msg) {
            Ok(()) if was_invalid && entry.book.is_valid() => events.push(BookEvent::Resynced {
                ticker: ticker.to_string(),
            }),
            Ok(()) => {
                if !entry.book.is_valid() {
                    self.ignored_deltas += 1;
                }
            }
            Err(reason) => {
                if was_valid || msg.snapshot {
                    events.push(BookEvent::Invalidated {
                        ticker: ticker.to_string(),
                        reason,
                    });
                }
            }
        }
    }

    fn snapshot(
        &mut self,
        record: &Record<'_>,
        snapshot: &BookSnapshot<'_>,
        events: &mut Vec<BookEvent>,
    ) {
        let (conn_id, sid) = (record.conn_id, record.sid);
        // A snapshot without a ticker replaces no book; the books it was
        // meant for stay as they are, which is still exact.
        let Some(ticker) = snapshot.ticker.as_deref() else {
            return;
        };
        let existed = self.books.contains_key(ticker);
        let Some(entry) = self.entry(ticker, conn_id, sid) else {
            return;
        };
        entry.conn_id = conn_id;
        entry.sid = sid;
        entry.touch(record.exchange_ts);
        let was_invalid = existed && !entry.book.is_valid();
        match entry.book.apply_snapshot(snapshot) {
            Ok(()) if was_invalid => events.push(BookEvent::Resynced {
                ticker: ticker.to_string(),
            }),
            Ok(()) => {}
            Err(reason) => events.push(BookEvent::Invalidated {
                ticker: ticker.to_string(),
                reason,
            }),
        }
    }

    fn delta(&mut self, record: &Record<'_>, delta: &BookDelta<'_>, events: &mut Vec<BookEvent>) {
        let (conn_id, sid) = (record.conn_id, record.sid);
        let Some(ticker) = delta.ticker.as_deref() else {
            for ticker in
                self.invalidate_where(|e| e.conn_id == conn_id && e.sid == sid && e.book.is_valid())
            {
                events.push(BookEvent::Invalidated {
                    ticker,
                    reason: BookError::UnattributedDelta,
                });
            }
            return;
        };
        let Some(entry) = self.entry(ticker, conn_id, sid) else {
            return;
        };
        let same_stream = entry.conn_id == conn_id && entry.sid == sid;
        entry.conn_id = conn_id;
        entry.sid = sid;
        entry.touch(record.exchange_ts);
        if !entry.book.has_snapshot() {
            events.push(BookEvent::DeltaWithoutSnapshot {
                ticker: ticker.to_string(),
            });
            return;
        }
        let outcome = if same_stream {
            entry.book.apply_delta(delta)
        } else if entry.book.is_valid() {
            entry.book.invalidate();
            DeltaOutcome::Rejected(BookError::OtherStream)
        } else {
            DeltaOutcome::Ignored
        };
        match outcome {
            DeltaOutcome::Applied => {}
            DeltaOutcome::Ignored => self.ignored_deltas += 1,
            DeltaOutcome::Rejected(reason) => events.push(BookEvent::Invalidated {
                ticker: ticker.to_string(),
                reason,
            }),
        }
    }

    /// The entry of `ticker`, created (invalid, on this stream) if missing.
    /// Its stream is left for the caller to update. Looked up before
    /// inserting so that the common case does not allocate the key.
    fn entry(&mut self, ticker: &str, conn_id: u64, sid: u32) -> Option<&mut Entry> {
        if !self.books.contains_key(ticker) {
            let entry = Entry {
                book: Book::new(),
                conn_id,
                sid,
                exchange_ts: 0,
                dirty: false,
            };
            self.books.insert(ticker.to_string(), entry);
        }
        self.books.get_mut(ticker)
    }

    /// Invalidates the books that match; returns their tickers, sorted.
    fn invalidate_where(&mut self, matches: impl Fn(&Entry) -> bool) -> Vec<String> {
        let mut tickers: Vec<String> = self
            .books
            .iter_mut()
            .filter(|(_, e)| matches(e))
            .map(|(ticker, e)| {
                e.book.invalidate();
                e.dirty = true;
                ticker.clone()
            })
            .collect();
        tickers.sort_unstable();
        tickers
    }

    pub fn book(&self, ticker: &str) -> Option<&Book> {
        self.books.get(ticker).map(|e| &e.book)
    }

    /// The (conn_id, sid) of the book's last update.
    pub fn stream(&self, ticker: &str) -> Option<(u64, u32)> {
        self.books.get(ticker).map(|e| (e.conn_id, e.sid))
    }

    /// The view of one book, `depth` levels per side (0: all).
    pub fn view(&self, ticker: &str, depth: usize) -> Option<BookView<'static>> {
        let entry = self.books.get(ticker)?;
        let mut view = entry.book.view(depth);
        view.ticker = Some(Cow::Owned(ticker.to_string()));
        Some(view)
    }

    /// Every ticker held, sorted.
    pub fn tickers(&self) -> Vec<&str> {
        let mut tickers: Vec<&str> = self.books.keys().map(String::as_str).collect();
        tickers.sort_unstable();
        tickers
    }

    /// Drops a market's book (unsubscribed, settled). Returns whether it existed.
    pub fn remove(&mut self, ticker: &str) -> bool {
        self.books.remove(ticker).is_some()
    }

    /// A connection closed: its books are invalid (the next connection brings
    /// new sids and snapshots) and its seq state is dropped. Returns the
    /// tickers invalidated, sorted.
    pub fn close_connection(&mut self, conn_id: u64) -> Vec<String> {
        self.seqs.forget_connection(conn_id);
        self.invalidate_where(|e| e.conn_id == conn_id)
    }

    /// A resubscribe restarts the seq of (conn_id, sid).
    pub fn reset_stream(&mut self, conn_id: u64, sid: u32) {
        self.seqs.reset(conn_id, sid);
    }

    /// Deltas skipped because their book was invalid, since creation.
    pub fn ignored_deltas(&self) -> u64 {
        self.ignored_deltas
    }

    pub fn len(&self) -> usize {
        self.books.len()
    }

    pub fn is_empty(&self) -> bool {
        self.books.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const C: i64 = SCALE / 100; // one cent
    const N: i64 = SCALE; // one contract

    fn lv(price: i64, size: i64) -> Level {
        Level {
            price_e6: Some(price),
            size_e6: Some(size),
        }
    }

    fn snap(ticker: &str, yes: &[(i64, i64)], no: &[(i64, i64)]) -> BookSnapshot<'static> {
        BookSnapshot {
            ticker: Some(Cow::Owned(ticker.to_string())),
            yes: yes.iter().map(|&(p, s)| lv(p, s)).collect(),
            no: no.iter().map(|&(p, s)| lv(p, s)).collect(),
            ..BookSnapshot::default()
        }
    }

    fn delta(ticker: &str, side: Outcome, price: i64, change: i64) -> BookDelta<'static> {
        BookDelta {
            ticker: Some(Cow::Owned(ticker.to_string())),
            side,
            price_e6: Some(price),
            delta_e6: Some(change),
            ..BookDelta::default()
        }
    }

    fn record(conn_id: u64, sid: u32, seq: u64, body: Body<'static>) -> Record<'static> {
        Record {
            receive_ts: 0,
            exchange_ts: 0,
            conn_id,
            sid,
            seq,
            body,
        }
    }

    fn spot(snapshot: bool, ok: bool, bids: &[(i64, i64)], asks: &[(i64, i64)]) -> Body<'static> {
        let lv = |ls: &[(i64, i64)]| {
            ls.iter()
                .map(|&(price, qty)| crate::model::SpotLevel { price, qty })
                .collect()
        };
        Body::SpotBook(SpotBook {
            ticker: Some("BTC/USD".into()),
            snapshot,
            bids: lv(bids),
            asks: lv(asks),
            price_decimals: 1,
            qty_decimals: 8,
            checksum: 0,
            checksum_ok: ok,
            depth: 2,
        })
    }

    #[test]
    fn spot_books_follow_the_checksum_verdict_and_their_depth() {
        let mut set = BookSet::new();
        let q = 100_000_000; // 1.0 at 8 decimals
        set.apply(&record(
            1,
            1,
            0,
            spot(true, true, &[(1000, q), (990, q)], &[(1010, q)]),
        ));
        // A better bid pushes the worst out (cut to depth 2); qty 0 deletes.
        set.apply(&record(
            1,
            1,
            0,
            spot(false, true, &[(1005, 2 * q)], &[(1010, 0), (1020, q)]),
        ));
        let v = set.view("BTC/USD", 0).unwrap();
        assert!(v.valid);
        assert_eq!(
            pairs(&v.bids),
            vec![(100_500_000, 2_000_000), (100_000_000, 1_000_000)]
        );
        assert_eq!(pairs(&v.asks), vec![(102_000_000, 1_000_000)]);
        // A late update from a former connection is ignored.
        set.apply(&record(2, 1, 0, spot(false, true, &[(1005, 0)], &[])));
        assert_eq!(set.view("BTC/USD", 0).unwrap().bids.len(), 2);
        // A mismatch invalidates until the next snapshot, which resyncs.
        let events = set.apply(&record(1, 1, 0, spot(false, false, &[], &[])));
        assert!(matches!(
            &events[..],
            [BookEvent::Invalidated {
                reason: BookError::ChecksumMismatch,
                ..
            }]
        ));
        assert!(set
            .apply(&record(1, 1, 0, spot(false, true, &[(1001, q)], &[])))
            .is_empty());
        assert!(!set.view("BTC/USD", 0).unwrap().valid);
        let events = set.apply(&record(
            1,
            1,
            0,
            spot(true, true, &[(1000, q)], &[(1010, q)]),
        ));
        assert!(matches!(&events[..], [BookEvent::Resynced { .. }]));
        // A checkpoint of a spot book restores as one.
        let cp = set.checkpoint(5, true);
        assert!(matches!(&cp[0].body, Body::SpotView(v) if v.valid));
        let mut other = BookSet::new();
        other.apply(&cp[0]);
        assert_eq!(other.view("BTC/USD", 0), set.view("BTC/USD", 0));
    }

    #[test]
    fn a_spot_price_finer_than_a_millionth_makes_the_book_invalid() {
        let mut set = BookSet::new();
        let mut body = spot(true, true, &[(12_345_678, 1)], &[]);
        if let Body::SpotBook(b) = &mut body {
            b.price_decimals = 9;
        }
        let events = set.apply(&record(1, 1, 0, body));
        assert!(matches!(
            &events[..],
            [BookEvent::Invalidated {
                reason: BookError::SpotOutOfRange,
                ..
            }]
        ));
    }

    fn pairs(levels: &[Level]) -> Vec<(i64, i64)> {
        levels
            .iter()
            .map(|l| (l.price_e6.unwrap_or(-1), l.size_e6.unwrap_or(-1)))
            .collect()
    }

    /// The protocol reference's example moment: YES 0.31/0.33/0.34, NO 0.62/0.64.
    fn example_book() -> Book {
        let mut book = Book::new();
        book.apply_snapshot(&snap(
            "T",
            &[(31 * C, 120 * N), (33 * C, 45_500_000), (34 * C, 210 * N)],
            &[(62 * C, 80 * N), (64 * C, 12_250_000)],
        ))
        .expect("valid snapshot");
        book
    }

    #[test]
    fn one_markets_records_skip_other_markets_seqs_without_a_gap_when_seqs_are_ignored() {
        // seqs 1 and 2 went to another market of the sid; this market's records have 1, 4.
        let records = [
            record(7, 3, 1, Body::BookSnapshot(snap("T", &[(30 * C, N)], &[]))),
            record(
                7,
                3,
                4,
                Body::BookDelta(delta("T", Outcome::Yes, 30 * C, N)),
            ),
        ];
        let mut checked = BookSet::new();
        let mut ignoring = BookSet::ignoring_seqs();
        let events: Vec<BookEvent> = records.iter().flat_map(|r| checked.apply(r)).collect();
        assert!(matches!(
            events[..],
            [BookEvent::Gap {
                expected: 2,
                received: 4,
                ..
            }]
        ));
        assert!(records.iter().all(|r| ignoring.apply(r).is_empty()));
        let view = ignoring.view("T", 0).expect("book");
        assert!(view.valid);
        assert_eq!(pairs(&view.bids), vec![(30 * C, 2 * N)]);
    }

    #[test]
    fn derives_the_yes_quote_from_no_bids() {
        let mut book = example_book();
        assert_eq!(
            book.apply_delta(&delta("T", Outcome::Yes, 34 * C, -60 * N)),
            DeltaOutcome::Applied
        );
        assert_eq!(book.best_bid(), Some((34 * C, 150 * N)));
        // Best NO bid 0.64 is a YES ask of 0.36 for 12.25.
        assert_eq!(book.best_ask(), Some((36 * C, 12_250_000)));
        let view = book.view(0);
        assert!(view.valid);
        assert_eq!(
            pairs(&view.bids),
            vec![(34 * C, 150 * N), (33 * C, 45_500_000), (31 * C, 120 * N)]
        );
        assert_eq!(
            pairs(&view.asks),
            vec![(36 * C, 12_250_000), (38 * C, 80 * N)]
        );
        assert_eq!(pairs(&book.view(1).bids), vec![(34 * C, 150 * N)]);
    }

    #[test]
    fn use_yes_price_keeps_no_levels_on_the_yes_scale() {
        let mut book = Book::new();
        let mut s = snap("T", &[(34 * C, N)], &[(36 * C, 2 * N), (38 * C, 3 * N)]);
        s.use_yes_price = true;
        book.apply_snapshot(&s).expect("valid");
        assert_eq!(book.best_ask(), Some((36 * C, 2 * N)));
        assert_eq!(
            pairs(&book.view(0).asks),
            vec![(36 * C, 2 * N), (38 * C, 3 * N)]
        );
    }

    #[test]
    fn level_goes_at_exactly_zero_and_fractions_are_exact() {
        let mut book = Book::new();
        book.apply_snapshot(&snap("T", &[(50 * C, 100 * N)], &[]))
            .expect("valid");
        for change in [-25_230_000, -74_770_000] {
            assert_eq!(
                book.apply_delta(&delta("T", Outcome::Yes, 50 * C, change)),
                DeltaOutcome::Applied
            );
        }
        assert_eq!(book.best_bid(), None);
        assert!(book.is_valid());
        // A new level appears from a positive delta.
        book.apply_delta(&delta("T", Outcome::No, 10 * C, 7_470_000));
        assert_eq!(book.best_ask(), Some((90 * C, 7_470_000)));
    }

    #[test]
    fn negative_size_invalidates_and_leaves_levels() {
        let mut book = example_book();
        let before = book.view(0);
        assert_eq!(
            book.apply_delta(&delta("T", Outcome::No, 62 * C, -81 * N)),
            DeltaOutcome::Rejected(BookError::NegativeSize {
                price_e6: 62 * C,
                size_e6: -N
            })
        );
        assert!(!book.is_valid());
        assert_eq!(book.view(0).bids, before.bids);
        assert_eq!(book.view(0).asks, before.asks);
        // Invalid books ignore deltas until a snapshot.
        assert_eq!(
            book.apply_delta(&delta("T", Outcome::No, 62 * C, N)),
            DeltaOutcome::Ignored
        );
        book.apply_snapshot(&snap("T", &[], &[])).expect("valid");
        assert!(book.is_valid());
        assert_eq!(
            book.view(0),
            BookView {
                valid: true,
                ..BookView::default()
            }
        );
    }

    #[test]
    fn missing_fields_are_rejected_not_panics() {
        let bad = [
            (
                BookDelta {
                    side: Outcome::Unknown,
                    ..delta("T", Outcome::Yes, C, N)
                },
                BookError::MissingSide,
            ),
            (
                BookDelta {
                    price_e6: None,
                    ..delta("T", Outcome::Yes, C, N)
                },
                BookError::MissingPrice,
            ),
            (
                BookDelta {
                    delta_e6: None,
                    ..delta("T", Outcome::Yes, C, N)
                },
                BookError::MissingSize,
            ),
            (
                delta("T", Outcome::Yes, SCALE + 1, N),
                BookError::PriceOutOfRange {
                    price_e6: SCALE + 1,
                },
            ),
            (
                delta("T", Outcome::Yes, 31 * C, i64::MAX),
                BookError::Overflow { price_e6: 31 * C },
            ),
        ];
        for (d, err) in bad {
            let mut book = example_book();
            assert_eq!(book.apply_delta(&d), DeltaOutcome::Rejected(err));
            assert!(!book.is_valid());
        }
    }

    #[test]
    fn snapshot_levels_are_checked_and_merged() {
        let mut book = Book::new();
        // Unsorted, a duplicate price (summed) and a zero level (dropped).
        book.apply_snapshot(&snap(
            "T",
            &[(40 * C, N), (30 * C, 0), (40 * C, 2 * N)],
            &[],
        ))
        .expect("valid");
        assert_eq!(pairs(&book.view(0).bids), vec![(40 * C, 3 * N)]);
        let mut s = snap("T", &[(40 * C, N)], &[]);
        s.no.push(Level {
            price_e6: Some(C),
            size_e6: None,
        });
        assert_eq!(book.apply_snapshot(&s), Err(BookError::MissingSize));
        assert!(!book.is_valid());
        assert_eq!(book.view(0).bids, vec![]);
        assert_eq!(
            book.apply_snapshot(&snap("T", &[(C, -N)], &[])),
            Err(BookError::NegativeSize {
                price_e6: C,
                size_e6: -N
            })
        );
    }

    fn snap_rec(conn: u64, sid: u32, seq: u64, ticker: &str) -> Record<'static> {
        record(
            conn,
            sid,
            seq,
            Body::BookSnapshot(snap(ticker, &[(40 * C, 10 * N)], &[(50 * C, 10 * N)])),
        )
    }

    fn delta_rec(conn: u64, sid: u32, seq: u64, ticker: &str, change: i64) -> Record<'static> {
        record(
            conn,
            sid,
            seq,
            Body::BookDelta(delta(ticker, Outcome::Yes, 40 * C, change)),
        )
    }

    fn bid_size(set: &BookSet, ticker: &str) -> Option<i64> {
        set.book(ticker)?.best_bid().map(|(_, s)| s)
    }

    /// (ticker, bids, asks, valid) of every book with a snapshot.
    type Views = Vec<(String, Vec<(i64, i64)>, Vec<(i64, i64)>, bool)>;

    fn views(set: &BookSet) -> Views {
        set.tickers()
            .into_iter()
            .filter(|t| set.book(t).is_some_and(Book::has_snapshot))
            .map(|t| {
                let v = set.view(t, 0).expect("held");
                (t.to_string(), pairs(&v.bids), pairs(&v.asks), v.valid)
            })
            .collect()
    }

    #[test]
    fn checkpoint_restores_books_that_take_the_following_deltas() {
        let mut live = BookSet::new();
        live.apply(&snap_rec(1, 5, 1, "A"));
        live.apply(&snap_rec(1, 5, 2, "B"));
        live.apply(&delta_rec(1, 5, 3, "A", 2 * N));
        let cp = live.checkpoint(77, false);
        assert_eq!(cp.len(), 2);
        assert!(cp.iter().all(|r| r.seq == 3 && r.receive_ts == 77));

        let mut late = BookSet::new();
        for r in &cp {
            assert!(late.apply(r).is_empty());
        }
        assert_eq!(views(&late), views(&live));
        // What the late reader sees again of the past is a duplicate.
        let again = late.apply(&delta_rec(1, 5, 3, "A", 2 * N));
        assert!(matches!(again.as_slice(), [BookEvent::Duplicate { .. }]));
        for set in [&mut live, &mut late] {
            assert!(set.apply(&delta_rec(1, 5, 4, "B", N)).is_empty());
        }
        assert_eq!(views(&late), views(&live));
        assert_eq!(bid_size(&late, "B"), Some(11 * N));
    }

    #[test]
    fn checkpoint_holds_only_books_changed_since_the_last() {
        let mut set = BookSet::new();
        set.apply(&snap_rec(1, 5, 1, "A"));
        set.apply(&snap_rec(1, 5, 2, "B"));
        assert_eq!(set.checkpoint(1, false).len(), 2);
        assert!(set.checkpoint(2, false).is_empty());
        set.apply(&delta_rec(1, 5, 3, "B", N));
        let cp = set.checkpoint(3, false);
        assert_eq!(cp.len(), 1);
        assert_eq!(cp[0].body.ticker(), Some("B"));
        assert_eq!(set.checkpoint(4, true).len(), 2);
        // A gap changes validity: that is a change too.
        set.apply(&delta_rec(1, 5, 9, "B", N));
        let cp = set.checkpoint(5, false);
        assert_eq!(cp.len(), 2);
        assert!(cp
            .iter()
            .all(|r| matches!(&r.body, Body::Book(v) if !v.valid)));
    }

    #[test]
    fn an_invalid_checkpoint_waits_for_a_snapshot() {
        let mut live = BookSet::new();
        live.apply(&snap_rec(1, 5, 1, "A"));
        live.apply(&delta_rec(1, 5, 3, "A", N)); // seq 2 lost
        let mut late = BookSet::new();
        for r in live.checkpoint(1, false) {
            late.apply(&r);
        }
        assert_eq!(late.book("A").map(Book::is_valid), Some(false));
        assert!(late.apply(&delta_rec(1, 5, 4, "A", N)).is_empty());
        assert_eq!(late.ignored_deltas(), 1);
        let events = late.apply(&snap_rec(1, 5, 5, "A"));
        assert_eq!(
            events,
            vec![BookEvent::Resynced {
                ticker: "A".to_string()
            }]
        );
        assert_eq!(bid_size(&late, "A"), Some(10 * N));
    }

    #[test]
    fn a_checkpoint_behind_the_held_book_is_ignored() {
        let mut live = BookSet::new();
        live.apply(&snap_rec(1, 5, 1, "A"));
        let old = live.checkpoint(1, false);
        live.apply(&delta_rec(1, 5, 2, "A", N));
        let before = views(&live);
        for r in &old {
            assert!(live.apply(r).is_empty());
        }
        assert_eq!(views(&live), before);
        assert_eq!(bid_size(&live, "A"), Some(11 * N));
    }

    #[test]
    fn checkpoints_round_trip_through_the_codec() {
        let mut live = BookSet::new();
        live.apply(&snap_rec(1, 5, 1, "KXBTCD-26MAR1213-T69499.99"));
        let mut data = Vec::new();
        for r in live.checkpoint(9, true) {
            crate::codec::encode_record(&r, &mut data);
        }
        let mut late = BookSet::new();
        crate::codec::for_each_record(&data, |r| {
            late.apply(&r);
        })
        .expect("decodes");
        assert_eq!(views(&late), views(&live));
    }

    #[test]
    fn gap_invalidates_every_book_on_the_sid_until_resnapshot() {
        let mut set = BookSet::new();
        assert!(set.apply(&snap_rec(1, 5, 1, "A")).is_empty());
        assert!(set.apply(&snap_rec(1, 5, 2, "B")).is_empty());
        assert!(set.apply(&snap_rec(1, 6, 1, "C")).is_empty());
        assert!(set.apply(&delta_rec(1, 5, 3, "A", N)).is_empty());
        assert_eq!(bid_size(&set, "A"), Some(11 * N));
        // seq 4 is lost.
        let events = set.apply(&delta_rec(1, 5, 5, "B", N));
        assert_eq!(
            events,
            vec![BookEvent::Gap {
                conn_id: 1,
                sid: 5,
                expected: 4,
                received: 5,
                tickers: vec!["A".to_string(), "B".to_string()],
            }]
        );
        assert!(!set.book("A").is_some_and(Book::is_valid));
        assert!(!set.book("B").is_some_and(Book::is_valid));
        assert!(set.book("C").is_some_and(Book::is_valid));
        // The delta that revealed the gap was not applied; later ones neither.
        assert_eq!(bid_size(&set, "B"), Some(10 * N));
        assert!(set.apply(&delta_rec(1, 5, 6, "A", N)).is_empty());
        assert_eq!(bid_size(&set, "A"), Some(11 * N));
        assert_eq!(set.ignored_deltas(), 2);
        // A fresh snapshot for A resyncs A only.
        assert_eq!(
            set.apply(&snap_rec(1, 5, 7, "A")),
            vec![BookEvent::Resynced {
                ticker: "A".to_string()
            }]
        );
        assert!(set.book("A").is_some_and(Book::is_valid));
        assert!(!set.book("B").is_some_and(Book::is_valid));
        assert!(set.apply(&delta_rec(1, 5, 8, "A", -N)).is_empty());
        assert_eq!(bid_size(&set, "A"), Some(9 * N));
        let view = set.view("A", 0).expect("held");
        assert_eq!(view.ticker.as_deref(), Some("A"));
        assert!(view.valid);
    }

    #[test]
    fn a_gap_revealed_by_a_snapshot_resyncs_that_book() {
        let mut set = BookSet::new();
        set.apply(&snap_rec(1, 5, 1, "A"));
        set.apply(&snap_rec(1, 5, 2, "B"));
        let events = set.apply(&snap_rec(1, 5, 9, "A"));
        assert_eq!(events.len(), 2);
        assert!(matches!(&events[0], BookEvent::Gap { tickers, .. } if tickers.len() == 2));
        assert_eq!(
            events[1],
            BookEvent::Resynced {
                ticker: "A".to_string()
            }
        );
        assert!(set.book("A").is_some_and(Book::is_valid));
        assert!(!set.book("B").is_some_and(Book::is_valid));
    }

    #[test]
    fn duplicates_and_redeliveries_are_skipped() {
        let mut set = BookSet::new();
        set.apply(&snap_rec(1, 5, 1, "A"));
        set.apply(&delta_rec(1, 5, 2, "A", N));
        set.apply(&delta_rec(1, 5, 3, "A", N));
        // A redelivered batch: 2 and 3 again must not be applied twice.
        for seq in [2, 3, 1] {
            assert_eq!(
                set.apply(&delta_rec(1, 5, seq, "A", N)),
                vec![BookEvent::Duplicate {
                    conn_id: 1,
                    sid: 5,
                    seq
                }]
            );
        }
        assert_eq!(bid_size(&set, "A"), Some(12 * N));
        // The redelivery did not pull the sequence back: 4 is in order.
        assert!(set.apply(&delta_rec(1, 5, 4, "A", N)).is_empty());
        assert_eq!(bid_size(&set, "A"), Some(13 * N));
        assert!(set.book("A").is_some_and(Book::is_valid));
    }

    #[test]
    fn delta_before_snapshot_is_not_applied() {
        let mut set = BookSet::new();
        assert_eq!(
            set.apply(&delta_rec(1, 5, 1, "A", N)),
            vec![BookEvent::DeltaWithoutSnapshot {
                ticker: "A".to_string()
            }]
        );
        assert!(!set.book("A").is_some_and(Book::is_valid));
        assert_eq!(set.view("A", 0).map(|v| v.bids.len()), Some(0));
        assert_eq!(
            set.apply(&snap_rec(1, 5, 2, "A")),
            vec![BookEvent::Resynced {
                ticker: "A".to_string()
            }]
        );
        assert!(set.apply(&delta_rec(1, 5, 3, "A", N)).is_empty());
        assert_eq!(bid_size(&set, "A"), Some(11 * N));
    }

    #[test]
    fn reconnect_starts_fresh_without_a_gap() {
        let mut set = BookSet::new();
        set.apply(&snap_rec(1, 5, 1, "A"));
        set.apply(&delta_rec(1, 5, 2, "A", N));
        assert_eq!(set.stream("A"), Some((1, 5)));
        assert_eq!(set.close_connection(1), vec!["A".to_string()]);
        assert!(!set.book("A").is_some_and(Book::is_valid));
        // New connection: sid 1, seq restarting at 1, never a gap.
        assert_eq!(
            set.apply(&snap_rec(2, 1, 1, "A")),
            vec![BookEvent::Resynced {
                ticker: "A".to_string()
            }]
        );
        assert!(set.apply(&delta_rec(2, 1, 2, "A", N)).is_empty());
        assert_eq!(bid_size(&set, "A"), Some(11 * N));
        assert_eq!(set.stream("A"), Some((2, 1)));
    }

    #[test]
    fn a_delta_from_another_stream_invalidates() {
        let mut set = BookSet::new();
        set.apply(&snap_rec(1, 5, 1, "A"));
        assert_eq!(
            set.apply(&delta_rec(2, 1, 1, "A", N)),
            vec![BookEvent::Invalidated {
                ticker: "A".to_string(),
                reason: BookError::OtherStream
            }]
        );
        assert_eq!(bid_size(&set, "A"), Some(10 * N));
    }

    #[test]
    fn a_delta_without_ticker_invalidates_its_sid() {
        let mut set = BookSet::new();
        set.apply(&snap_rec(1, 5, 1, "A"));
        set.apply(&snap_rec(1, 6, 1, "B"));
        let mut d = delta("A", Outcome::Yes, C, N);
        d.ticker = None;
        assert_eq!(
            set.apply(&record(1, 5, 2, Body::BookDelta(d))),
            vec![BookEvent::Invalidated {
                ticker: "A".to_string(),
                reason: BookError::UnattributedDelta
            }]
        );
        assert!(set.book("B").is_some_and(Book::is_valid));
    }

    #[test]
    fn resubscribe_reset_and_bounded_removal() {
        let mut set = BookSet::new();
        set.apply(&snap_rec(1, 5, 40, "A"));
        set.reset_stream(1, 5);
        // The resubscribed sid restarts at 1: not a duplicate, not a gap.
        assert!(set.apply(&snap_rec(1, 5, 1, "A")).is_empty());
        set.apply(&snap_rec(1, 5, 2, "B"));
        assert_eq!(set.tickers(), vec!["A", "B"]);
        assert!(set.remove("A"));
        assert!(!set.remove("A"));
        assert_eq!(set.len(), 1);
        assert_eq!(set.view("A", 0), None);
    }

    #[test]
    fn non_book_records_are_ignored() {
        let mut set = BookSet::new();
        let trade = record(1, 5, 1, Body::Trade(crate::model::Trade::default()));
        assert!(set.apply(&trade).is_empty());
        assert!(set.is_empty());
        // The trade did not consume a seq of the sid either.
        assert!(set.apply(&snap_rec(1, 5, 1, "A")).is_empty());
    }

    #[test]
    fn a_recordless_frame_takes_its_seq() {
        let mut set = BookSet::new();
        set.apply(&snap_rec(1, 5, 1, "A"));
        set.apply(&snap_rec(1, 5, 2, "B"));
        set.apply(&snap_rec(1, 6, 1, "C"));
        // A snapshot without a readable market: its seq is taken, no book changes.
        assert!(set.recordless(1, 5, 3, false).is_empty());
        assert!(set.apply(&delta_rec(1, 5, 4, "A", N)).is_empty());
        assert!(set.view("A", 0).unwrap().valid);
        // A delta without one: not a gap, but every book of that sid missed a change
        // that cannot be attributed; other sids are untouched.
        assert_eq!(
            set.recordless(1, 5, 5, true),
            vec![BookEvent::Unreadable {
                conn_id: 1,
                sid: 5,
                seq: 5,
                tickers: vec!["A".into(), "B".into()],
            }]
        );
        assert!(!set.view("A", 0).unwrap().valid && !set.view("B", 0).unwrap().valid);
        assert!(set.view("C", 0).unwrap().valid);
        // The next frame is in order: no gap event, the books wait for snapshots.
        assert!(set.apply(&delta_rec(1, 5, 6, "A", N)).is_empty());
        assert_eq!(
            set.apply(&snap_rec(1, 5, 7, "A")),
            vec![BookEvent::Resynced { ticker: "A".into() }]
        );
        // Seqs skipped before a recordless frame are a gap as usual; a repeat is a duplicate.
        assert!(matches!(
            set.recordless(1, 5, 9, false).as_slice(),
            [BookEvent::Gap {
                expected: 8,
                received: 9,
                ..
            }]
        ));
        assert_eq!(
            set.recordless(1, 5, 9, true),
            vec![BookEvent::Duplicate {
                conn_id: 1,
                sid: 5,
                seq: 9
            }]
        );
    }

    /// What a book should hold, recomputed from scratch after every step.
    #[derive(Default)]
    struct Naive {
        levels: Vec<(Outcome, i64, i64)>,
        use_yes_price: bool,
        valid: bool,
    }

    impl Naive {
        fn snapshot(&mut self, s: &BookSnapshot<'_>) {
            self.levels.clear();
            self.valid = false;
            let all = s
                .yes
                .iter()
                .map(|l| (Outcome::Yes, l))
                .chain(s.no.iter().map(|l| (Outcome::No, l)));
            let mut levels: Vec<(Outcome, i64, i64)> = Vec::new();
            for (side, l) in all {
                let (Some(p), Some(sz)) = (l.price_e6, l.size_e6) else {
                    return;
                };
                if !(0..=SCALE).contains(&p) {
                    return;
                }
                match levels.iter_mut().find(|(o, q, _)| *o == side && *q == p) {
                    Some(slot) => slot.2 += sz,
                    None => levels.push((side, p, sz)),
                }
            }
            if levels.iter().any(|l| l.2 < 0) {
                return;
            }
            levels.retain(|l| l.2 != 0);
            self.levels = levels;
            self.use_yes_price = s.use_yes_price;
            self.valid = true;
        }

        fn delta(&mut self, d: &BookDelta<'_>) {
            if !self.valid {
                return;
            }
            let (Some(p), Some(ch)) = (d.price_e6, d.delta_e6) else {
                self.valid = false;
                return;
            };
            if d.side == Outcome::Unknown || !(0..=SCALE).contains(&p) {
                self.valid = false;
                return;
            }
            let old = self
                .levels
                .iter()
                .find(|l| l.0 == d.side && l.1 == p)
                .map_or(0, |l| l.2);
            let new = old + ch;
            if new < 0 {
                self.valid = false;
                return;
            }
            self.levels.retain(|l| !(l.0 == d.side && l.1 == p));
            if new > 0 {
                self.levels.push((d.side, p, new));
            }
        }

        fn bids(&self) -> Vec<(i64, i64)> {
            let mut v: Vec<_> = self
                .levels
                .iter()
                .filter(|l| l.0 == Outcome::Yes)
                .map(|l| (l.1, l.2))
                .collect();
            v.sort_by_key(|l| std::cmp::Reverse(l.0));
            v
        }

        fn asks(&self) -> Vec<(i64, i64)> {
            let mut v: Vec<_> = self
                .levels
                .iter()
                .filter(|l| l.0 == Outcome::No)
                .map(|l| (if self.use_yes_price { l.1 } else { SCALE - l.1 }, l.2))
                .collect();
            v.sort_by_key(|l| l.0);
            v
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Snap(BookSnapshot<'static>),
        Delta(BookDelta<'static>),
    }

    fn price() -> impl Strategy<Value = Option<i64>> {
        // Few distinct prices so that deltas hit existing levels; rare misses.
        prop_oneof![
            20 => (1i64..=6).prop_map(|k| Some(k * 15 * C)),
            1 => Just(None),
            1 => Just(Some(SCALE + C)),
        ]
    }

    fn size() -> impl Strategy<Value = Option<i64>> {
        prop_oneof![
            20 => (0i64..=400).prop_map(|k| Some(k * 10_000)),
            1 => Just(None),
            1 => Just(Some(-N)),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        let level =
            || (price(), size()).prop_map(|(price_e6, size_e6)| Level { price_e6, size_e6 });
        let snapshot = (
            proptest::collection::vec(level(), 0..5),
            proptest::collection::vec(level(), 0..5),
            any::<bool>(),
        )
            .prop_map(|(yes, no, use_yes_price)| {
                Op::Snap(BookSnapshot {
                    ticker: Some(Cow::Borrowed("T")),
                    yes,
                    no,
                    use_yes_price,
                    ..BookSnapshot::default()
                })
            });
        let side = prop_oneof![10 => Just(Outcome::Yes), 10 => Just(Outcome::No), 1 => Just(Outcome::Unknown)];
        let change = prop_oneof![
            20 => (-300i64..=300).prop_map(|k| Some(k * 10_000)),
            1 => Just(None),
        ];
        let delta = (side, price(), change).prop_map(|(side, price_e6, delta_e6)| {
            Op::Delta(BookDelta {
                ticker: Some(Cow::Borrowed("T")),
                side,
                price_e6,
                delta_e6,
                ..BookDelta::default()
            })
        });
        prop_oneof![1 => snapshot, 8 => delta]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn book_matches_a_naive_model(ops in proptest::collection::vec(op(), 1..80)) {
            let mut book = Book::new();
            let mut naive = Naive::default();
            for op in &ops {
                match op {
                    Op::Snap(s) => {
                        let _ = book.apply_snapshot(s);
                        naive.snapshot(s);
                    }
                    Op::Delta(d) => {
                        let was_valid = book.is_valid();
                        let outcome = book.apply_delta(d);
                        naive.delta(d);
                        prop_assert_eq!(outcome == DeltaOutcome::Ignored, !was_valid);
                    }
                }
                prop_assert_eq!(book.is_valid(), naive.valid);
                if naive.valid {
                    let view = book.view(0);
                    prop_assert_eq!(pairs(&view.bids), naive.bids());
                    prop_assert_eq!(pairs(&view.asks), naive.asks());
                    prop_assert_eq!(book.best_bid(), naive.bids().first().copied());
                    prop_assert_eq!(book.best_ask(), naive.asks().first().copied());
                    let top = book.view(2);
                    prop_assert_eq!(pairs(&top.bids), naive.bids().into_iter().take(2).collect::<Vec<_>>());
                }
            }
        }

        /// A reader restoring the checkpoint taken after any prefix of the
        /// records, then applying the rest, holds the same books as one
        /// that applied them all.
        #[test]
        fn checkpoint_then_rest_equals_everything(
            ops in proptest::collection::vec(op(), 1..60),
            cut in 0usize..60,
        ) {
            let recs: Vec<Record<'static>> = ops
                .into_iter()
                .enumerate()
                .map(|(i, op)| {
                    let body = match op {
                        Op::Snap(mut s) => {
                            s.use_yes_price = false;
                            Body::BookSnapshot(s)
                        }
                        Op::Delta(d) => Body::BookDelta(d),
                    };
                    record(1, 1, i as u64 + 1, body)
                })
                .collect();
            let cut = cut.min(recs.len());
            let mut all = BookSet::new();
            let mut late = BookSet::new();
            for r in &recs[..cut] {
                all.apply(r);
            }
            for r in all.checkpoint(1, true) {
                late.apply(&r);
            }
            for r in &recs[cut..] {
                all.apply(r);
                late.apply(r);
            }
            prop_assert_eq!(views(&late), views(&all));
        }

        /// Whatever order records arrive in, BookSet never applies a record
        /// twice and agrees with a book fed only the in-order prefix.
        #[test]
        fn bookset_applies_each_seq_once(order in proptest::collection::vec(1u64..12, 1..40)) {
            let mut set = BookSet::new();
            set.apply(&snap_rec(1, 1, 1, "A"));
            let mut highest = 1u64;
            let mut gapped = false;
            let mut expected_size = 10 * N;
            for seq in order.into_iter().map(|s| s + 1) {
                let events = set.apply(&delta_rec(1, 1, seq, "A", N));
                if seq <= highest {
                    let is_duplicate = matches!(events.as_slice(), [BookEvent::Duplicate { .. }]);
                    prop_assert!(is_duplicate);
                } else {
                    if seq != highest + 1 {
                        gapped = true;
                    }
                    if !gapped {
                        expected_size += N;
                    }
                    highest = seq;
                }
                prop_assert_eq!(set.book("A").map(Book::is_valid), Some(!gapped));
                prop_assert_eq!(bid_size(&set, "A"), Some(expected_size));
            }
        }
    }
}

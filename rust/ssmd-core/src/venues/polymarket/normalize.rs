//! Batch in, buffer out, with the books of every token the connection
//! carries: Polymarket sends no sequence numbers, so the normalizer keeps each
//! token's book to turn absolute level sizes into changes and to notice loss.
//!
//! Loss is suspected (and a fresh snapshot of the token asked for) when
//! - a `book`'s hash does not match its content (hash mode `strict`);
//! - a `book` has a level that cannot be read;
//! - a `price_change` names a token without a usable book (never snapshotted,
//!   or its book was dropped by a suspicion or a `tick_size_change`);
//! - after a `price_change`, the token's best bid or ask differs from the
//!   `best_bid`/`best_ask` the venue sent with it.
//!
//! A suspected token's book is dropped at once and its changes are ignored
//! until the next `book`; one resync is asked per suspicion. Reconnects lose
//! every book (`reset`), and the new connection's initial dump rebuilds them.

use super::hash::{summary_hash, Summary};
use super::parse::{parse_frame_into, Body as Event, BookEvent, Change, EventKind, Parsed};
use crate::codec::Encoder;
use crate::fixed::SCALE;
use crate::model::{
    Body, BookDelta, BookSnapshot, BookView, Level, LifecycleEvent, MarketLifecycle, Outcome,
    Record, Ticker, Trade,
};
use crate::normalize::Spans;
use crate::venues::kalshi::parse::FieldError;
use rustc_hash::FxHashMap;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

/// How a `book`'s hash is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashMode {
    /// Not computed.
    Off,
    /// Computed and counted; a mismatch does not discard the book (the live
    /// venue's hash cannot always be reproduced: docs/venues/polymarket.md).
    Count,
    /// A mismatch discards the book and asks for a fresh one.
    Strict,
    /// Strict for a token once one of its hashes matched (the hash is then known to
    /// be reproducible), counted otherwise; a token whose hash mismatched
    /// `AUTO_MISMATCH_BUDGET` times after matching falls back to counting.
    Auto,
}

/// Hash-triggered resyncs a token gets in `HashMode::Auto` before its hash is only counted.
pub const AUTO_MISMATCH_BUDGET: u32 = 3;

impl HashMode {
    pub fn from_name(name: &str) -> Option<HashMode> {
        match name {
            "off" => Some(HashMode::Off),
            "count" => Some(HashMode::Count),
            "strict" => Some(HashMode::Strict),
            "auto" => Some(HashMode::Auto),
            _ => None,
        }
    }
}

/// Why a token's book is suspected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Suspicion {
    HashMismatch,
    BrokenBook,
    UnknownBook,
    BestMismatch,
}

impl Suspicion {
    pub fn as_str(self) -> &'static str {
        match self {
            Suspicion::HashMismatch => "hash_mismatch",
            Suspicion::BrokenBook => "broken_book",
            Suspicion::UnknownBook => "price_change_without_book",
            Suspicion::BestMismatch => "best_bid_ask_mismatch",
        }
    }
}

/// A token whose book must be fetched again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resync {
    pub frame: usize,
    pub asset_id: String,
    pub reason: Suspicion,
}

/// What became of one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameOutcome {
    /// The kind of the frame's first event.
    pub kind: EventKind,
    /// Events in the frame (the elements of an array).
    pub events: usize,
    /// Unknown `event_type`s, or the control word of a control frame.
    pub type_text: Option<String>,
    pub field_errors: Vec<FieldError>,
    pub malformed: Option<String>,
    /// Data events that yielded no record (no token or market, or a book not
    /// usable), with why.
    pub dropped: Vec<&'static str>,
    /// Indexes into `PolyBatch::records`.
    pub records: Range<usize>,
}

/// Hash checks of the batch's books.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HashCounts {
    pub matched: u64,
    pub mismatched: u64,
    /// No hash, or the token's listing fields (min order size, neg risk) unknown.
    pub unverified: u64,
}

#[derive(Debug, Default)]
pub struct PolyBatch {
    pub conn_id: u64,
    pub data: Vec<u8>,
    pub records: Spans,
    pub frames: Vec<FrameOutcome>,
    pub resyncs: Vec<Resync>,
    /// (frame, asset id): a suspected token's book is exact again.
    pub resynced: Vec<(usize, String)>,
    pub hashes: HashCounts,
}

/// The listing fields the book hash needs and the WebSocket does not send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenMeta {
    pub min_order_size: String,
    pub neg_risk: bool,
}

#[derive(Debug, Default, Clone)]
struct TokenBook {
    bids: BTreeMap<i64, i64>,
    asks: BTreeMap<i64, i64>,
    valid: bool,
    /// A resync was asked and has not been answered by a book yet.
    suspected: bool,
    tick_size: Option<String>,
    /// The last trade price the venue sent for the token (for the hash of a
    /// `book` that does not carry one).
    last_trade_price: Option<String>,
    /// A hash of this token matched (HashMode::Auto).
    hash_proven: bool,
    /// Mismatches after a match (HashMode::Auto).
    hash_strikes: u32,
    /// Changed since the last checkpoint.
    dirty: bool,
    exchange_ts: u64,
    conn_id: u64,
}

impl TokenBook {
    fn best_bid(&self) -> i64 {
        self.bids.keys().next_back().copied().unwrap_or(0)
    }
    fn best_ask(&self) -> i64 {
        self.asks.keys().next().copied().unwrap_or(SCALE)
    }
}

/// The per-connection normalizer for Polymarket's market channel.
pub struct Normalizer {
    mode: HashMode,
    // Keyed by token id, looked up several times per frame: FxHash, not SipHash (the
    // keys are the venue's ids of the tokens subscribed to, not an attacker's choice).
    meta: FxHashMap<String, TokenMeta>,
    books: FxHashMap<String, TokenBook>,
    encoder: Encoder,
    /// Scratch of a `price_change`: (item, best bid, best ask) of each token's last item.
    last_best: Vec<(usize, Option<i64>, Option<i64>)>,
}

impl Normalizer {
    pub fn new(mode: HashMode) -> Normalizer {
        Normalizer {
            mode,
            meta: FxHashMap::default(),
            books: FxHashMap::default(),
            encoder: Encoder::new(),
            last_best: Vec::new(),
        }
    }

    /// Records a token's listing fields, for its book hash.
    pub fn set_token(&mut self, asset_id: &str, meta: TokenMeta) {
        self.meta.insert(asset_id.to_owned(), meta);
    }

    /// Drops a token's book (unsubscribed, or a resync is under way).
    pub fn forget(&mut self, asset_id: &str) {
        self.books.remove(asset_id);
    }

    /// Drops every book: the connection was lost.
    pub fn reset(&mut self) {
        self.books.clear();
    }

    /// Marks every book invalid (its connection ended): the next checkpoint says so.
    pub fn invalidate_all(&mut self) {
        for book in self.books.values_mut() {
            if book.valid {
                book.valid = false;
                book.dirty = true;
            }
        }
    }

    /// A `book` record (schema OrderBookUpdate: bids and asks best first, on the
    /// token's scale) per token changed since the last call, or every token.
    pub fn checkpoint(&mut self, receive_ts: u64, everything: bool) -> Vec<Record<'static>> {
        let mut out: Vec<Record<'static>> = Vec::new();
        let tickers: Vec<String> = self
            .books
            .iter()
            .filter(|(_, b)| b.dirty || everything)
            .map(|(t, _)| t.clone())
            .collect();
        for ticker in tickers {
            let Some(view) = self.view(&ticker, 0) else {
                continue;
            };
            let book = self.books.get_mut(&ticker).expect("listed above");
            book.dirty = false;
            out.push(Record {
                receive_ts,
                exchange_ts: book.exchange_ts,
                conn_id: book.conn_id,
                sid: 0,
                seq: 0,
                body: Body::Book(view),
            });
        }
        out.sort_unstable_by(|a, b| a.body.ticker().cmp(&b.body.ticker()));
        out
    }

    /// True when the token's book is exact as far as the normalizer knows.
    pub fn is_valid(&self, asset_id: &str) -> bool {
        self.books.get(asset_id).is_some_and(|b| b.valid)
    }

    /// The token's book, best first (`depth` 0: every level); bids and asks
    /// on the token's own price scale.
    pub fn view(&self, asset_id: &str, depth: usize) -> Option<BookView<'static>> {
        let book = self.books.get(asset_id)?;
        let take = if depth == 0 { usize::MAX } else { depth };
        let level = |(p, s): (&i64, &i64)| Level {
            price_e6: Some(*p),
            size_e6: Some(*s),
        };
        Some(BookView {
            ticker: Some(Cow::Owned(asset_id.to_owned())),
            bids: book.bids.iter().rev().take(take).map(level).collect(),
            asks: book.asks.iter().take(take).map(level).collect(),
            valid: book.valid,
        })
    }

    /// Normalizes frames received on connection `conn_id`; each comes with its
    /// receive time in Unix nanoseconds.
    pub fn normalize<'f>(
        &mut self,
        frames: impl IntoIterator<Item = (u64, &'f [u8])>,
        conn_id: u64,
    ) -> PolyBatch {
        let frames = frames.into_iter();
        let hint = frames.size_hint().0;
        let mut batch = PolyBatch {
            conn_id,
            data: Vec::with_capacity(hint * 128),
            records: Spans::with_capacity(hint),
            frames: Vec::with_capacity(hint),
            ..PolyBatch::default()
        };
        let mut events = Vec::new();
        for (index, (receive_ts, bytes)) in frames.enumerate() {
            parse_frame_into(bytes, &mut events);
            let start = batch.records.len();
            let mut outcome = FrameOutcome {
                kind: events.first().map_or(EventKind::Empty, |e| e.kind),
                events: events.len(),
                type_text: None,
                field_errors: Vec::new(),
                malformed: None,
                dropped: Vec::new(),
                records: start..start,
            };
            for event in events.drain(..) {
                self.event(index, receive_ts, event, &mut batch, &mut outcome);
            }
            outcome.records = start..batch.records.len();
            batch.frames.push(outcome);
        }
        batch
    }

    fn event(
        &mut self,
        frame: usize,
        receive_ts: u64,
        event: Parsed<'_>,
        batch: &mut PolyBatch,
        outcome: &mut FrameOutcome,
    ) {
        let Parsed {
            kind,
            type_text,
            market,
            exchange_ts,
            body,
            field_errors,
            malformed,
        } = event;
        outcome.field_errors.extend(field_errors);
        if let Some(m) = malformed {
            outcome.kind = EventKind::Malformed;
            outcome.malformed.get_or_insert(m);
        }
        if matches!(
            kind,
            EventKind::Unknown | EventKind::Pong | EventKind::Control
        ) {
            if let Some(t) = type_text {
                outcome.type_text.get_or_insert_with(|| t.into_owned());
            }
        }
        let at = (frame, receive_ts, exchange_ts);
        match body {
            Event::Book(book) => {
                let Some(asset) = book.asset_id.clone() else {
                    outcome.dropped.push("no_asset_id");
                    return;
                };
                match self.apply_book(&book, &asset, &mut batch.hashes) {
                    Ok(was_suspected) => {
                        if let Some(b) = self.books.get_mut(asset.as_ref()) {
                            b.dirty = true;
                            b.exchange_ts = exchange_ts;
                            b.conn_id = batch.conn_id;
                        }
                        if was_suspected {
                            batch.resynced.push((frame, asset.to_string()));
                        }
                        self.emit(
                            batch,
                            at,
                            Body::BookSnapshot(BookSnapshot {
                                ticker: Some(asset),
                                market_id: market,
                                yes: levels(&book.bids),
                                no: levels(&book.asks),
                                use_yes_price: true,
                            }),
                        )
                    }
                    Err(reason) => {
                        outcome.dropped.push(reason.as_str());
                        batch.resyncs.push(Resync {
                            frame,
                            asset_id: asset.into_owned(),
                            reason,
                        });
                    }
                }
            }
            Event::PriceChange(changes) => {
                // The venue's best bid/ask per token, after all of this event's changes.
                let mut last_best = std::mem::take(&mut self.last_best);
                last_best.clear();
                for (i, change) in changes.iter().enumerate() {
                    let Some(asset) = change.asset_id.as_deref() else {
                        outcome.dropped.push("no_asset_id");
                        continue;
                    };
                    match self.apply_change(change, asset) {
                        Ok(Some(delta)) => self.emit(
                            batch,
                            at,
                            Body::BookDelta(BookDelta {
                                ticker: change.asset_id.clone(),
                                market_id: market.clone(),
                                side: if change.bid == Some(true) {
                                    Outcome::Yes
                                } else {
                                    Outcome::No
                                },
                                price_e6: change.price_e6,
                                delta_e6: Some(delta),
                                client_order_id: None,
                            }),
                        ),
                        Ok(None) => outcome.dropped.push("unreadable_change"),
                        Err(reason) => {
                            outcome.dropped.push(reason.as_str());
                            self.suspect(frame, asset, reason, batch);
                        }
                    }
                    match last_best
                        .iter_mut()
                        .find(|(j, _, _)| changes[*j].asset_id.as_deref() == Some(asset))
                    {
                        Some(slot) => *slot = (i, change.best_bid_e6, change.best_ask_e6),
                        None => last_best.push((i, change.best_bid_e6, change.best_ask_e6)),
                    }
                }
                for &(i, bid, ask) in &last_best {
                    let Some(asset) = changes[i].asset_id.as_deref() else {
                        continue;
                    };
                    let Some(book) = self.books.get(asset) else {
                        continue;
                    };
                    if !book.valid {
                        continue;
                    }
                    let bid_off = bid.is_some_and(|b| b != book.best_bid());
                    let ask_off = ask.is_some_and(|a| a != book.best_ask());
                    if bid_off || ask_off {
                        self.suspect(frame, asset, Suspicion::BestMismatch, batch);
                    }
                }
                self.last_best = last_best;
            }
            Event::Trade(t) => match t.asset_id {
                Some(asset) => {
                    if let (Some(book), Some(text)) =
                        (self.books.get_mut(asset.as_ref()), &t.price_text)
                    {
                        book.last_trade_price = Some(text.to_string());
                    }
                    self.emit(
                        batch,
                        at,
                        Body::Trade(Trade {
                            ticker: Some(asset),
                            trade_id: None,
                            price_e6: t.price_e6,
                            no_price_e6: None,
                            size_e6: t.size_e6,
                            taker_outcome: match t.buy {
                                Some(true) => Outcome::Yes,
                                Some(false) => Outcome::No,
                                None => Outcome::Unknown,
                            },
                            taker_book_side: Outcome::Unknown,
                            is_block_trade: false,
                        }),
                    )
                }
                None => outcome.dropped.push("no_asset_id"),
            },
            Event::TickSize { asset_id, old, new } => match asset_id {
                Some(asset) => {
                    // Levels on the old grid are void; the venue sends a book next.
                    let book = self.books.entry(asset.clone().into_owned()).or_default();
                    book.dirty |= book.valid;
                    book.valid = false;
                    book.bids.clear();
                    book.asks.clear();
                    book.tick_size = new.as_deref().map(str::to_owned);
                    let json = serde_json::json!({
                        "old_tick_size": old.as_deref(),
                        "new_tick_size": new.as_deref(),
                    })
                    .to_string();
                    self.emit(
                        batch,
                        at,
                        Body::Lifecycle(MarketLifecycle {
                            ticker: Some(asset),
                            event_type: LifecycleEvent::MetadataUpdated,
                            event_type_text: Some(Cow::Borrowed("tick_size_change")),
                            metadata_json: Some(Cow::Owned(json)),
                            ..MarketLifecycle::default()
                        }),
                    );
                }
                None => outcome.dropped.push("no_asset_id"),
            },
            Event::BestBidAsk {
                asset_id,
                bid_e6,
                ask_e6,
            } => match asset_id {
                Some(asset) => self.emit(
                    batch,
                    at,
                    Body::Ticker(Ticker {
                        ticker: Some(asset),
                        market_id: market,
                        yes_bid_e6: bid_e6,
                        yes_ask_e6: ask_e6,
                        ..Ticker::default()
                    }),
                ),
                None => outcome.dropped.push("no_asset_id"),
            },
            Event::Market {
                created,
                title,
                result,
                json,
            } => match market {
                Some(m) => self.emit(
                    batch,
                    at,
                    Body::Lifecycle(MarketLifecycle {
                        ticker: Some(m),
                        event_type: if created {
                            LifecycleEvent::Created
                        } else {
                            LifecycleEvent::Determined
                        },
                        event_type_text: Some(Cow::Borrowed(kind.name())),
                        result,
                        title,
                        metadata_json: Some(Cow::Borrowed(json)),
                        ..MarketLifecycle::default()
                    }),
                ),
                None => outcome.dropped.push("no_market"),
            },
            Event::None => {}
        }
    }

    fn emit(&mut self, batch: &mut PolyBatch, at: (usize, u64, u64), body: Body<'_>) {
        let (frame, receive_ts, exchange_ts) = at;
        let record = Record {
            receive_ts,
            exchange_ts,
            conn_id: batch.conn_id,
            sid: 0,
            seq: 0,
            body,
        };
        let start = batch.data.len();
        self.encoder.encode(&record, &mut batch.data);
        batch.records.push(
            frame,
            record.body.record_type(),
            record.body.ticker().unwrap_or_default(),
            start,
            batch.data.len(),
        );
    }

    fn suspect(&mut self, frame: usize, asset: &str, reason: Suspicion, batch: &mut PolyBatch) {
        let book = self.books.entry(asset.to_owned()).or_default();
        book.dirty |= book.valid;
        book.valid = false;
        book.bids.clear();
        book.asks.clear();
        if !book.suspected {
            book.suspected = true;
            batch.resyncs.push(Resync {
                frame,
                asset_id: asset.to_owned(),
                reason,
            });
        }
    }

    fn apply_book(
        &mut self,
        event: &BookEvent<'_>,
        asset: &str,
        hashes: &mut HashCounts,
    ) -> Result<bool, Suspicion> {
        if !self.books.contains_key(asset) {
            self.books.insert(asset.to_owned(), TokenBook::default());
        }
        let book = self.books.get_mut(asset).expect("inserted above");
        let side = |levels: &[super::parse::RawLevel<'_>]| -> Option<BTreeMap<i64, i64>> {
            let mut out = BTreeMap::new();
            for l in levels {
                let (Some(p), Some(s)) = (l.price_e6, l.size_e6) else {
                    return None;
                };
                if !(0..=SCALE).contains(&p) || s < 0 {
                    return None;
                }
                if s > 0 {
                    *out.entry(p).or_insert(0) += s;
                }
            }
            Some(out)
        };
        let sides = if event.broken {
            None
        } else {
            side(&event.bids).zip(side(&event.asks))
        };
        let Some((bids, asks)) = sides else {
            book.valid = false;
            book.bids.clear();
            book.asks.clear();
            book.suspected = true;
            return Err(Suspicion::BrokenBook);
        };
        if let Some(tick) = &event.tick_size {
            book.tick_size = Some(tick.to_string());
        }
        if self.mode != HashMode::Off {
            let verdict = match (
                &event.hash,
                &event.timestamp,
                self.meta.get(asset),
                &book.tick_size,
            ) {
                (Some(hash), Some(ts), Some(meta), Some(tick)) => {
                    let bref: Vec<(&str, &str)> =
                        event.bids.iter().map(|l| (&*l.price, &*l.size)).collect();
                    let aref: Vec<(&str, &str)> =
                        event.asks.iter().map(|l| (&*l.price, &*l.size)).collect();
                    let ours = summary_hash(&Summary {
                        market: event.market.as_deref().unwrap_or(""),
                        asset_id: asset,
                        timestamp: ts,
                        bids: &bref,
                        asks: &aref,
                        min_order_size: &meta.min_order_size,
                        tick_size: tick,
                        neg_risk: meta.neg_risk,
                        last_trade_price: event
                            .last_trade_price
                            .as_deref()
                            .or(book.last_trade_price.as_deref())
                            .unwrap_or(""),
                    });
                    Some(ours.eq_ignore_ascii_case(hash))
                }
                _ => None,
            };
            match verdict {
                Some(true) => {
                    hashes.matched += 1;
                    book.hash_proven = true;
                }
                Some(false) => {
                    hashes.mismatched += 1;
                    let strict = match self.mode {
                        HashMode::Strict => true,
                        HashMode::Auto if book.hash_proven => {
                            book.hash_strikes += 1;
                            book.hash_strikes <= AUTO_MISMATCH_BUDGET
                        }
                        _ => false,
                    };
                    if strict {
                        book.valid = false;
                        book.bids.clear();
                        book.asks.clear();
                        book.suspected = true;
                        return Err(Suspicion::HashMismatch);
                    }
                }
                None => hashes.unverified += 1,
            }
        }
        if let Some(ltp) = event.last_trade_price.as_deref().filter(|p| !p.is_empty()) {
            book.last_trade_price = Some(ltp.to_owned());
        }
        book.bids = bids;
        book.asks = asks;
        book.valid = true;
        let was_suspected = std::mem::take(&mut book.suspected);
        Ok(was_suspected)
    }

    /// Sets a level to its new absolute size; returns the change, None when
    /// the item cannot be read, or the suspicion when the book is unusable.
    fn apply_change(&mut self, change: &Change<'_>, asset: &str) -> Result<Option<i64>, Suspicion> {
        let Some(book) = self.books.get_mut(asset).filter(|b| b.valid) else {
            return Err(Suspicion::UnknownBook);
        };
        let (Some(bid), Some(price), Some(size)) = (change.bid, change.price_e6, change.size_e6)
        else {
            return Ok(None);
        };
        if !(0..=SCALE).contains(&price) || size < 0 {
            return Err(Suspicion::BrokenBook);
        }
        book.dirty = true;
        let side = if bid { &mut book.bids } else { &mut book.asks };
        let old = side.get(&price).copied().unwrap_or(0);
        if size == 0 {
            side.remove(&price);
        } else {
            side.insert(price, size);
        }
        Ok(Some(size - old))
    }
}

fn levels(raw: &[super::parse::RawLevel<'_>]) -> Vec<Level> {
    raw.iter()
        .map(|l| Level {
            price_e6: l.price_e6,
            size_e6: l.size_e6,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::decode_all;

    const ASSET: &str = "1029";

    fn book_frame(bids: &str, asks: &str, hash: &str) -> String {
        format!(
            r#"[{{"event_type":"book","market":"0x01","asset_id":"{ASSET}","timestamp":"1767225600000","hash":"{hash}","tick_size":"0.01","last_trade_price":"0.48","bids":{bids},"asks":{asks}}}]"#
        )
    }

    fn change(price: &str, size: &str, side: &str, bb: &str, ba: &str) -> String {
        format!(
            r#"{{"event_type":"price_change","market":"0x01","timestamp":"1767225600001","price_changes":[{{"asset_id":"{ASSET}","price":"{price}","size":"{size}","side":"{side}","hash":"x","best_bid":"{bb}","best_ask":"{ba}"}}]}}"#
        )
    }

    fn run(n: &mut Normalizer, frames: &[String]) -> PolyBatch {
        n.normalize(frames.iter().map(|f| (7, f.as_bytes())), 3)
    }

    type Sides = (Vec<(i64, i64)>, Vec<(i64, i64)>);

    fn bids_asks(n: &Normalizer) -> Sides {
        let v = n.view(ASSET, 0).unwrap();
        let pairs = |ls: &[Level]| {
            ls.iter()
                .map(|l| (l.price_e6.unwrap(), l.size_e6.unwrap()))
                .collect()
        };
        (pairs(&v.bids), pairs(&v.asks))
    }

    fn meta() -> TokenMeta {
        TokenMeta {
            min_order_size: "5".into(),
            neg_risk: false,
        }
    }

    /// The documented worked example, as a WebSocket book.
    fn example_book(hash: &str) -> String {
        format!(
            r#"{{"event_type":"book","market":"0x01","asset_id":"42","timestamp":"1767225600000","hash":"{hash}","tick_size":"0.01","last_trade_price":"0.48","bids":[{{"price":"0.45","size":"120"}},{{"price":"0.47","size":"30.5"}}],"asks":[{{"price":"0.52","size":"80"}},{{"price":"0.50","size":"10"}}]}}"#
        )
    }

    #[test]
    fn absolute_sizes_become_changes_and_best_prices_are_checked() {
        let mut n = Normalizer::new(HashMode::Off);
        let frames = [
            book_frame(
                r#"[{"price":"0.40","size":"500"},{"price":"0.42","size":"120.5"}]"#,
                r#"[{"price":"0.47","size":"75"},{"price":".45","size":"33.25"}]"#,
                "h",
            ),
            change("0.42", "100", "BUY", "0.42", "0.45"),
            change("0.44", "7", "BUY", "0.44", "0.45"),
            change("0.45", "0", "SELL", "0.44", "0.47"),
        ];
        let batch = run(&mut n, &frames);
        assert!(batch.resyncs.is_empty(), "{:?}", batch.resyncs);
        let records = decode_all(&batch.data).unwrap();
        assert_eq!(records.len(), 4);
        let deltas: Vec<(Outcome, i64, i64)> = records[1..]
            .iter()
            .map(|r| match &r.body {
                Body::BookDelta(d) => (d.side, d.price_e6.unwrap(), d.delta_e6.unwrap()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            deltas,
            vec![
                (Outcome::Yes, 420_000, -20_500_000),
                (Outcome::Yes, 440_000, 7_000_000),
                (Outcome::No, 450_000, -33_250_000),
            ]
        );
        let (bids, asks) = bids_asks(&n);
        assert_eq!(
            bids,
            vec![
                (440_000, 7_000_000),
                (420_000, 100_000_000),
                (400_000, 500_000_000)
            ]
        );
        assert_eq!(asks, vec![(470_000, 75_000_000)]);
        match &records[0].body {
            Body::BookSnapshot(s) => {
                assert_eq!(s.ticker.as_deref(), Some(ASSET));
                assert_eq!(s.market_id.as_deref(), Some("0x01"));
                assert!(s.use_yes_price);
                assert_eq!(s.no.len(), 2);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(records[0].exchange_ts, 1_767_225_600_000_000_000);
    }

    #[test]
    fn a_missed_update_shows_in_the_best_prices_and_asks_one_resync() {
        let mut n = Normalizer::new(HashMode::Off);
        let frames = [
            book_frame(
                r#"[{"price":"0.40","size":"5"}]"#,
                r#"[{"price":"0.60","size":"5"}]"#,
                "h",
            ),
            // Missed: 0.41 BUY 3 (best bid 0.41). The next change claims 0.41 is best.
            change("0.39", "2", "BUY", "0.41", "0.60"),
            change("0.38", "2", "BUY", "0.41", "0.60"),
        ];
        let batch = run(&mut n, &frames);
        assert_eq!(
            batch.resyncs,
            vec![Resync {
                frame: 1,
                asset_id: ASSET.into(),
                reason: Suspicion::BestMismatch
            }]
        );
        assert!(!n.is_valid(ASSET));
        // Changes are dropped until a book comes; the book makes it exact again.
        assert_eq!(batch.frames[2].dropped, vec!["price_change_without_book"]);
        let again = run(
            &mut n,
            &[book_frame(r#"[{"price":"0.41","size":"3"}]"#, "[]", "h")],
        );
        assert!(again.resyncs.is_empty());
        assert!(n.is_valid(ASSET));
        // A change for a token never snapshotted asks for one.
        let mut fresh = Normalizer::new(HashMode::Off);
        let b = run(&mut fresh, &[change("0.5", "1", "BUY", "0.5", "1")]);
        assert_eq!(b.resyncs[0].reason, Suspicion::UnknownBook);
        assert_eq!(b.records.len(), 0);
    }

    #[test]
    fn book_hash_is_checked_against_the_listing_fields() {
        let good = "3f4513be0917b66e9654674b96d048586680f38f";
        let mut n = Normalizer::new(HashMode::Strict);
        // Without the listing fields the hash cannot be computed.
        let b = n.normalize([(1, example_book(good).as_bytes())], 1);
        assert_eq!(b.hashes.unverified, 1);
        n.set_token("42", meta());
        let b = n.normalize([(1, example_book(good).as_bytes())], 1);
        assert_eq!((b.hashes.matched, b.records.len()), (1, 1));
        let bad = "0000000000000000000000000000000000000001";
        let b = n.normalize([(1, example_book(bad).as_bytes())], 1);
        assert_eq!(b.hashes.mismatched, 1);
        assert_eq!(b.records.len(), 0);
        assert_eq!(b.resyncs[0].reason, Suspicion::HashMismatch);
        assert!(!n.is_valid("42"));
        // Count mode keeps the book.
        let mut c = Normalizer::new(HashMode::Count);
        c.set_token("42", meta());
        let b = c.normalize([(1, example_book(bad).as_bytes())], 1);
        assert_eq!((b.hashes.mismatched, b.records.len()), (1, 1));
        assert!(b.resyncs.is_empty());
    }

    #[test]
    fn auto_mode_is_strict_once_a_hash_matched_and_gives_up_after_its_budget() {
        let good = "3f4513be0917b66e9654674b96d048586680f38f";
        let bad = "0000000000000000000000000000000000000001";
        let mut n = Normalizer::new(HashMode::Auto);
        n.set_token("42", meta());
        // Never matched: a mismatch is only counted.
        let b = n.normalize([(1, example_book(bad).as_bytes())], 1);
        assert_eq!(
            (b.hashes.mismatched, b.records.len(), b.resyncs.len()),
            (1, 1, 0)
        );
        let b = n.normalize([(1, example_book(good).as_bytes())], 1);
        assert_eq!(b.hashes.matched, 1);
        for _ in 0..AUTO_MISMATCH_BUDGET {
            let b = n.normalize([(1, example_book(bad).as_bytes())], 1);
            assert_eq!(b.resyncs[0].reason, Suspicion::HashMismatch);
            let b = n.normalize([(1, example_book(good).as_bytes())], 1);
            assert_eq!(b.resynced, vec![(0, "42".to_owned())]);
        }
        let b = n.normalize([(1, example_book(bad).as_bytes())], 1);
        assert_eq!((b.records.len(), b.resyncs.len()), (1, 0));
    }

    #[test]
    fn checkpoints_hold_the_changed_books_and_say_when_they_are_invalid() {
        let mut n = Normalizer::new(HashMode::Off);
        run(
            &mut n,
            &[
                book_frame(
                    r#"[{"price":"0.40","size":"5"}]"#,
                    r#"[{"price":"0.60","size":"5"}]"#,
                    "h",
                ),
                change("0.41", "2", "BUY", "0.41", "0.60"),
            ],
        );
        let cp = n.checkpoint(99, false);
        assert_eq!(cp.len(), 1);
        match &cp[0].body {
            Body::Book(v) => {
                assert!(v.valid);
                assert_eq!(v.ticker.as_deref(), Some(ASSET));
                assert_eq!(v.bids[0].price_e6, Some(410_000));
                assert_eq!(v.asks[0].price_e6, Some(600_000));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(cp[0].exchange_ts, 1_767_225_600_000_000_000);
        assert!(n.checkpoint(100, false).is_empty());
        assert_eq!(n.checkpoint(100, true).len(), 1);
        n.invalidate_all();
        let cp = n.checkpoint(101, false);
        assert!(matches!(&cp[0].body, Body::Book(v) if !v.valid));
    }

    #[test]
    fn tick_size_change_voids_the_book_until_the_next_one() {
        let mut n = Normalizer::new(HashMode::Off);
        let tick = r#"{"event_type":"tick_size_change","asset_id":"1029","market":"0x01","old_tick_size":"0.01","new_tick_size":"0.001","timestamp":"1"}"#.to_owned();
        let batch = run(&mut n, &[book_frame("[]", "[]", "h"), tick]);
        assert!(!n.is_valid(ASSET));
        assert!(batch.resyncs.is_empty());
        let records = decode_all(&batch.data).unwrap();
        match &records[1].body {
            Body::Lifecycle(l) => {
                assert_eq!(l.event_type, LifecycleEvent::MetadataUpdated);
                assert_eq!(
                    l.metadata_json.as_deref(),
                    Some(r#"{"new_tick_size":"0.001","old_tick_size":"0.01"}"#)
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_frames_are_counted_not_fatal() {
        let mut n = Normalizer::new(HashMode::Strict);
        let frames: Vec<String> = vec![
            "PONG".into(),
            "{\"event_type\":\"book\"".into(),
            "{\"event_type\":\"mystery\",\"asset_id\":\"1\"}".into(),
            book_frame(r#"[{"price":"abc","size":"1"}]"#, "[]", "h"),
            r#"{"event_type":"last_trade_price","market":"0x01","asset_id":"1029","price":"0.456","size":"219.217767","side":"SELL","fee_rate_bps":"0","timestamp":"1767225600002","transaction_hash":"0xab"}"#.into(),
        ];
        let batch = run(&mut n, &frames);
        let kinds: Vec<EventKind> = batch.frames.iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            vec![
                EventKind::Pong,
                EventKind::Malformed,
                EventKind::Unknown,
                EventKind::Book,
                EventKind::LastTradePrice
            ]
        );
        assert_eq!(batch.frames[0].type_text.as_deref(), Some("PONG"));
        assert_eq!(batch.frames[2].type_text.as_deref(), Some("mystery"));
        assert!(batch.frames[1].malformed.is_some());
        assert_eq!(batch.frames[3].dropped, vec!["broken_book"]);
        assert_eq!(batch.resyncs[0].reason, Suspicion::BrokenBook);
        let records = decode_all(&batch.data).unwrap();
        match &records[0].body {
            Body::Trade(t) => {
                assert_eq!(t.price_e6, Some(456_000));
                assert_eq!(t.size_e6, Some(219_217_767));
                assert_eq!(t.taker_outcome, Outcome::No);
            }
            other => panic!("{other:?}"),
        }
    }
}

//! Records as Python dicts: the one mapping between ssmd-core's model and
//! Python values. Keys are the schema's field names in snake_case; E6 fields
//! stay exact integers (None when undefined); enums are lower-case strings.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use ssmd_core::fixed;
use ssmd_core::model::{
    Body, BookDelta, BookSnapshot, BookView, ConnectorEvent, ConnectorEventKind, EventLifecycle,
    Instrument, Level, LifecycleEvent, MarketLifecycle, MarketStatus, Outcome, Record, SpotBook,
    SpotLevel, SpotTicker, SpotTrade, Status, Ticker, Trade, VenueStatus,
};
use std::borrow::Cow;

const OUTCOMES: [(Outcome, &str); 2] = [(Outcome::Yes, "yes"), (Outcome::No, "no")];
const STATUSES: [(Status, &str); 7] = [
    (Status::Open, "open"),
    (Status::Closed, "closed"),
    (Status::Halted, "halted"),
    (Status::Initialized, "initialized"),
    (Status::Determined, "determined"),
    (Status::Settled, "settled"),
    (Status::Unknown, "unknown"),
];
const LIFECYCLE_EVENTS: [(LifecycleEvent, &str); 8] = [
    (LifecycleEvent::Other, "other"),
    (LifecycleEvent::Created, "created"),
    (LifecycleEvent::Activated, "activated"),
    (LifecycleEvent::Deactivated, "deactivated"),
    (LifecycleEvent::CloseDateUpdated, "close_date_updated"),
    (LifecycleEvent::Determined, "determined"),
    (LifecycleEvent::Settled, "settled"),
    (LifecycleEvent::MetadataUpdated, "metadata_updated"),
];
const CONNECTOR_EVENTS: [(ConnectorEventKind, &str); 10] = [
    (ConnectorEventKind::Connected, "connected"),
    (ConnectorEventKind::Disconnected, "disconnected"),
    (ConnectorEventKind::Gap, "gap"),
    (ConnectorEventKind::Resync, "resync"),
    (ConnectorEventKind::Subscribed, "subscribed"),
    (ConnectorEventKind::Unsubscribed, "unsubscribed"),
    (ConnectorEventKind::BufferFull, "buffer_full"),
    (ConnectorEventKind::Error, "error"),
    (ConnectorEventKind::Heartbeat, "heartbeat"),
    (ConnectorEventKind::Stopped, "stopped"),
];

fn name_of<T: PartialEq + Copy>(table: &[(T, &'static str)], value: T) -> Option<&'static str> {
    table.iter().find(|(v, _)| *v == value).map(|(_, n)| *n)
}

fn value_of<T: Copy>(table: &[(T, &'static str)], name: &str, field: &str) -> Result<T, String> {
    table
        .iter()
        .find(|(_, n)| *n == name)
        .map(|(v, _)| *v)
        .ok_or_else(|| format!("{field}: unknown value {name:?}"))
}

fn levels<'py>(py: Python<'py>, levels: &[Level]) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for l in levels {
        out.append((l.price_e6, l.size_e6))?;
    }
    Ok(out)
}

pub fn record_to_dict<'py>(py: Python<'py>, r: &Record<'_>) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("kind", r.body.kind())?;
    d.set_item("type", r.body.record_type().name())?;
    d.set_item("receive_ts", r.receive_ts)?;
    d.set_item("exchange_ts", r.exchange_ts)?;
    d.set_item("conn_id", r.conn_id)?;
    d.set_item("sid", r.sid)?;
    d.set_item("seq", r.seq)?;
    d.set_item("ticker", r.body.ticker())?;
    let outcome = |o: Outcome| name_of(&OUTCOMES, o);
    match &r.body {
        Body::Trade(t) => {
            d.set_item("trade_id", t.trade_id.as_deref())?;
            d.set_item("price_e6", t.price_e6)?;
            d.set_item("no_price_e6", t.no_price_e6)?;
            d.set_item("size_e6", t.size_e6)?;
            d.set_item("taker_outcome", outcome(t.taker_outcome))?;
            d.set_item("taker_book_side", outcome(t.taker_book_side))?;
            d.set_item("is_block_trade", t.is_block_trade)?;
        }
        Body::BookSnapshot(s) => {
            d.set_item("market_id", s.market_id.as_deref())?;
            d.set_item("yes", levels(py, &s.yes)?)?;
            d.set_item("no", levels(py, &s.no)?)?;
            d.set_item("use_yes_price", s.use_yes_price)?;
        }
        Body::BookDelta(x) => {
            d.set_item("market_id", x.market_id.as_deref())?;
            d.set_item("side", outcome(x.side))?;
            d.set_item("price_e6", x.price_e6)?;
            d.set_item("delta_e6", x.delta_e6)?;
            d.set_item("client_order_id", x.client_order_id.as_deref())?;
        }
        Body::Ticker(t) => {
            d.set_item("market_id", t.market_id.as_deref())?;
            d.set_item("last_price_e6", t.last_price_e6)?;
            d.set_item("yes_bid_e6", t.yes_bid_e6)?;
            d.set_item("yes_ask_e6", t.yes_ask_e6)?;
            d.set_item("yes_bid_size_e6", t.yes_bid_size_e6)?;
            d.set_item("yes_ask_size_e6", t.yes_ask_size_e6)?;
            d.set_item("last_trade_size_e6", t.last_trade_size_e6)?;
            d.set_item("volume_e6", t.volume_e6)?;
            d.set_item("open_interest_e6", t.open_interest_e6)?;
            d.set_item("dollar_volume", t.dollar_volume)?;
            d.set_item("dollar_open_interest", t.dollar_open_interest)?;
        }
        Body::Lifecycle(l) => {
            d.set_item("event_type", name_of(&LIFECYCLE_EVENTS, l.event_type))?;
            d.set_item("event_type_text", l.event_type_text.as_deref())?;
            d.set_item("open_ts", l.open_ts)?;
            d.set_item("close_ts", l.close_ts)?;
            d.set_item("determination_ts", l.determination_ts)?;
            d.set_item("settled_ts", l.settled_ts)?;
            d.set_item("result", l.result.as_deref())?;
            d.set_item("settlement_value_e6", l.settlement_value_e6)?;
            d.set_item("is_deactivated", l.is_deactivated)?;
            d.set_item("event_ticker", l.event_ticker.as_deref())?;
            d.set_item("title", l.title.as_deref())?;
            d.set_item("metadata_json", l.metadata_json.as_deref())?;
        }
        Body::EventLifecycle(e) => {
            d.set_item("event_ticker", e.event_ticker.as_deref())?;
            d.set_item("title", e.title.as_deref())?;
            d.set_item("subtitle", e.subtitle.as_deref())?;
            d.set_item(
                "collateral_return_type",
                e.collateral_return_type.as_deref(),
            )?;
            d.set_item("series_ticker", e.series_ticker.as_deref())?;
            d.set_item("strike_date", e.strike_date)?;
            d.set_item("strike_period", e.strike_period.as_deref())?;
        }
        Body::Status(s) => {
            d.set_item("status", name_of(&STATUSES, s.status))?;
            d.set_item("status_text", s.status_text.as_deref())?;
        }
        Body::ConnectorEvent(e) => {
            d.set_item("event", name_of(&CONNECTOR_EVENTS, e.kind))?;
            d.set_item("shard", e.shard)?;
            d.set_item("reason", e.reason.as_deref())?;
            d.set_item("duration_ns", e.duration_ns)?;
            d.set_item("expected_seq", e.expected_seq)?;
            d.set_item("received_seq", e.received_seq)?;
            let tickers: Vec<&str> = e.tickers.iter().map(|t| t.as_ref()).collect();
            d.set_item("tickers", tickers)?;
        }
        Body::Book(v) | Body::SpotView(v) => {
            d.set_item("bids", levels(py, &v.bids)?)?;
            d.set_item("asks", levels(py, &v.asks)?)?;
            d.set_item("valid", v.valid)?;
            if matches!(r.body, Body::SpotView(_)) {
                d.set_item("spot", true)?;
            }
        }
        Body::SpotBook(k) => {
            d.set_item("snapshot", k.snapshot)?;
            d.set_item("bids", spot_levels(py, &k.bids)?)?;
            d.set_item("asks", spot_levels(py, &k.asks)?)?;
            d.set_item("price_decimals", k.price_decimals)?;
            d.set_item("qty_decimals", k.qty_decimals)?;
            d.set_item("checksum", k.checksum)?;
            d.set_item("checksum_ok", k.checksum_ok)?;
            d.set_item("depth", k.depth)?;
        }
        Body::SpotTrade(t) => {
            let e6 = |v: Option<i64>, dec: u8| v.and_then(|x| fixed::rescale_e6(x, dec));
            d.set_item("trade_id", t.trade_id.as_deref())?;
            d.set_item("price_e6", e6(t.price, t.price_decimals))?;
            d.set_item("no_price_e6", None::<i64>)?;
            d.set_item("size_e6", e6(t.qty, t.qty_decimals))?;
            d.set_item("taker_outcome", None::<&str>)?;
            d.set_item("taker_book_side", None::<&str>)?;
            d.set_item("is_block_trade", false)?;
            d.set_item("price_units", t.price)?;
            d.set_item("size_units", t.qty)?;
            d.set_item("price_decimals", t.price_decimals)?;
            d.set_item("size_decimals", t.qty_decimals)?;
            d.set_item("side", t.taker_buys.map(|b| if b { "buy" } else { "sell" }))?;
            d.set_item("ord_type", t.ord_type.as_deref())?;
            d.set_item("spot", true)?;
        }
        Body::SpotTicker(t) => {
            d.set_item("bid", t.bid)?;
            d.set_item("bid_qty", t.bid_qty)?;
            d.set_item("ask", t.ask)?;
            d.set_item("ask_qty", t.ask_qty)?;
            d.set_item("last", t.last)?;
            d.set_item("volume", t.volume)?;
            d.set_item("vwap", t.vwap)?;
            d.set_item("low", t.low)?;
            d.set_item("high", t.high)?;
            d.set_item("change", t.change)?;
            d.set_item("change_pct", t.change_pct)?;
            d.set_item("price_decimals", t.price_decimals)?;
            d.set_item("qty_decimals", t.qty_decimals)?;
        }
        Body::Instrument(i) => {
            d.set_item("base", i.base.as_deref())?;
            d.set_item("quote", i.quote.as_deref())?;
            d.set_item("status", i.status.as_deref())?;
            d.set_item("price_decimals", i.price_decimals)?;
            d.set_item("qty_decimals", i.qty_decimals)?;
            d.set_item("price_increment", i.price_increment)?;
            d.set_item("qty_increment", i.qty_increment)?;
            d.set_item("qty_min", i.qty_min)?;
            d.set_item("cost_min", i.cost_min.as_deref())?;
        }
        Body::VenueStatus(v) => {
            d.set_item("system", v.system.as_deref())?;
            d.set_item("api_version", v.api_version.as_deref())?;
            d.set_item("connection_id", v.connection_id)?;
            d.set_item("version", v.version.as_deref())?;
        }
    }
    Ok(d)
}

fn spot_levels<'py>(py: Python<'py>, levels: &[SpotLevel]) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    for l in levels {
        out.append((l.price, l.qty))?;
    }
    Ok(out)
}

/// Reads keys from a record dict; absent keys read as None/0/false.
struct Reader<'a, 'py> {
    d: &'a Bound<'py, PyDict>,
}

impl Reader<'_, '_> {
    fn any(&self, key: &str) -> Result<Option<Bound<'_, PyAny>>, String> {
        match self.d.get_item(key) {
            Ok(Some(v)) if !v.is_none() => Ok(Some(v)),
            Ok(_) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
    fn text(&self, key: &str) -> Result<Option<Cow<'static, str>>, String> {
        self.any(key)?
            .map(|v| {
                v.extract::<String>()
                    .map(Cow::Owned)
                    .map_err(|_| format!("{key}: expected str"))
            })
            .transpose()
    }
    fn opt_i64(&self, key: &str) -> Result<Option<i64>, String> {
        self.any(key)?
            .map(|v| {
                v.extract::<i64>()
                    .map_err(|_| format!("{key}: expected int"))
            })
            .transpose()
    }
    fn u64(&self, key: &str) -> Result<u64, String> {
        Ok(self
            .any(key)?
            .map(|v| {
                v.extract::<u64>()
                    .map_err(|_| format!("{key}: expected int >= 0"))
            })
            .transpose()?
            .unwrap_or(0))
    }
    fn u32(&self, key: &str) -> Result<u32, String> {
        u32::try_from(self.u64(key)?).map_err(|_| format!("{key}: out of range"))
    }
    fn flag(&self, key: &str) -> Result<bool, String> {
        Ok(self
            .any(key)?
            .map(|v| {
                v.extract::<bool>()
                    .map_err(|_| format!("{key}: expected bool"))
            })
            .transpose()?
            .unwrap_or(false))
    }
    fn outcome(&self, key: &str) -> Result<Outcome, String> {
        match self.text(key)? {
            None => Ok(Outcome::Unknown),
            Some(n) => value_of(&OUTCOMES, &n, key),
        }
    }
    fn u8(&self, key: &str) -> Result<u8, String> {
        u8::try_from(self.u64(key)?).map_err(|_| format!("{key}: out of range"))
    }
    fn spot_levels(&self, key: &str) -> Result<Vec<SpotLevel>, String> {
        let Some(v) = self.any(key)? else {
            return Ok(Vec::new());
        };
        let pairs: Vec<(i64, i64)> = v
            .extract()
            .map_err(|_| format!("{key}: expected a list of (price, qty)"))?;
        Ok(pairs
            .into_iter()
            .map(|(price, qty)| SpotLevel { price, qty })
            .collect())
    }
    fn levels(&self, key: &str) -> Result<Vec<Level>, String> {
        let Some(v) = self.any(key)? else {
            return Ok(Vec::new());
        };
        let pairs: Vec<(Option<i64>, Option<i64>)> = v
            .extract()
            .map_err(|_| format!("{key}: expected a list of (price_e6, size_e6)"))?;
        Ok(pairs
            .into_iter()
            .map(|(p, s)| Level {
                price_e6: p,
                size_e6: s,
            })
            .collect())
    }
}

pub fn dict_to_record(d: &Bound<'_, PyDict>) -> Result<Record<'static>, String> {
    let r = Reader { d };
    let kind = r.text("kind")?.ok_or("kind: missing")?;
    let body = match kind.as_ref() {
        "trade" if r.flag("spot")? => Body::SpotTrade(SpotTrade {
            ticker: r.text("ticker")?,
            trade_id: r.text("trade_id")?,
            price: r.opt_i64("price_units")?,
            qty: r.opt_i64("size_units")?,
            price_decimals: r.u8("price_decimals")?,
            qty_decimals: r.u8("size_decimals")?,
            taker_buys: match r.text("side")?.as_deref() {
                None => None,
                Some("buy") => Some(true),
                Some("sell") => Some(false),
                Some(other) => return Err(format!("side: {other:?} is neither buy nor sell")),
            },
            ord_type: r.text("ord_type")?,
        }),
        "trade" => Body::Trade(Trade {
            ticker: r.text("ticker")?,
            trade_id: r.text("trade_id")?,
            price_e6: r.opt_i64("price_e6")?,
            no_price_e6: r.opt_i64("no_price_e6")?,
            size_e6: r.opt_i64("size_e6")?,
            taker_outcome: r.outcome("taker_outcome")?,
            taker_book_side: r.outcome("taker_book_side")?,
            is_block_trade: r.flag("is_block_trade")?,
        }),
        "book_snapshot" => Body::BookSnapshot(BookSnapshot {
            ticker: r.text("ticker")?,
            market_id: r.text("market_id")?,
            yes: r.levels("yes")?,
            no: r.levels("no")?,
            use_yes_price: r.flag("use_yes_price")?,
        }),
        "book_delta" => Body::BookDelta(BookDelta {
            ticker: r.text("ticker")?,
            market_id: r.text("market_id")?,
            side: r.outcome("side")?,
            price_e6: r.opt_i64("price_e6")?,
            delta_e6: r.opt_i64("delta_e6")?,
            client_order_id: r.text("client_order_id")?,
        }),
        "ticker" => Body::Ticker(Ticker {
            ticker: r.text("ticker")?,
            market_id: r.text("market_id")?,
            last_price_e6: r.opt_i64("last_price_e6")?,
            yes_bid_e6: r.opt_i64("yes_bid_e6")?,
            yes_ask_e6: r.opt_i64("yes_ask_e6")?,
            yes_bid_size_e6: r.opt_i64("yes_bid_size_e6")?,
            yes_ask_size_e6: r.opt_i64("yes_ask_size_e6")?,
            last_trade_size_e6: r.opt_i64("last_trade_size_e6")?,
            volume_e6: r.opt_i64("volume_e6")?,
            open_interest_e6: r.opt_i64("open_interest_e6")?,
            dollar_volume: r.opt_i64("dollar_volume")?,
            dollar_open_interest: r.opt_i64("dollar_open_interest")?,
        }),
        "lifecycle" => Body::Lifecycle(MarketLifecycle {
            ticker: r.text("ticker")?,
            event_type: match r.text("event_type")? {
                Some(n) => value_of(&LIFECYCLE_EVENTS, &n, "event_type")?,
                None => LifecycleEvent::Other,
            },
            event_type_text: r.text("event_type_text")?,
            open_ts: r.u64("open_ts")?,
            close_ts: r.u64("close_ts")?,
            determination_ts: r.u64("determination_ts")?,
            settled_ts: r.u64("settled_ts")?,
            result: r.text("result")?,
            settlement_value_e6: r.opt_i64("settlement_value_e6")?,
            is_deactivated: r.flag("is_deactivated")?,
            event_ticker: r.text("event_ticker")?,
            title: r.text("title")?,
            metadata_json: r.text("metadata_json")?,
        }),
        "event_lifecycle" => Body::EventLifecycle(EventLifecycle {
            event_ticker: r.text("event_ticker")?.or(r.text("ticker")?),
            title: r.text("title")?,
            subtitle: r.text("subtitle")?,
            collateral_return_type: r.text("collateral_return_type")?,
            series_ticker: r.text("series_ticker")?,
            strike_date: r.u64("strike_date")?,
            strike_period: r.text("strike_period")?,
        }),
        "status" => Body::Status(MarketStatus {
            ticker: r.text("ticker")?,
            status: match r.text("status")? {
                Some(n) => value_of(&STATUSES, &n, "status")?,
                None => return Err("status: missing".into()),
            },
            status_text: r.text("status_text")?,
        }),
        "connector_event" => Body::ConnectorEvent(ConnectorEvent {
            kind: match r.text("event")? {
                Some(n) => value_of(&CONNECTOR_EVENTS, &n, "event")?,
                None => return Err("event: missing".into()),
            },
            shard: r.u32("shard")?,
            reason: r.text("reason")?,
            duration_ns: r.u64("duration_ns")?,
            expected_seq: r.u64("expected_seq")?,
            received_seq: r.u64("received_seq")?,
            tickers: match r.any("tickers")? {
                Some(v) => v
                    .extract::<Vec<String>>()
                    .map_err(|_| "tickers: expected a list of str".to_string())?
                    .into_iter()
                    .map(Cow::Owned)
                    .collect(),
                None => Vec::new(),
            },
        }),
        "book" => {
            let view = BookView {
                ticker: r.text("ticker")?,
                bids: r.levels("bids")?,
                asks: r.levels("asks")?,
                valid: r.flag("valid")?,
            };
            if r.flag("spot")? {
                Body::SpotView(view)
            } else {
                Body::Book(view)
            }
        }
        "spot_book" => Body::SpotBook(SpotBook {
            ticker: r.text("ticker")?,
            snapshot: r.flag("snapshot")?,
            bids: r.spot_levels("bids")?,
            asks: r.spot_levels("asks")?,
            price_decimals: r.u8("price_decimals")?,
            qty_decimals: r.u8("qty_decimals")?,
            checksum: r.u32("checksum")?,
            checksum_ok: r.flag("checksum_ok")?,
            depth: u16::try_from(r.u64("depth")?).map_err(|_| "depth: out of range")?,
        }),
        "spot_ticker" => Body::SpotTicker(SpotTicker {
            ticker: r.text("ticker")?,
            bid: r.opt_i64("bid")?,
            bid_qty: r.opt_i64("bid_qty")?,
            ask: r.opt_i64("ask")?,
            ask_qty: r.opt_i64("ask_qty")?,
            last: r.opt_i64("last")?,
            volume: r.opt_i64("volume")?,
            vwap: r.opt_i64("vwap")?,
            low: r.opt_i64("low")?,
            high: r.opt_i64("high")?,
            change: r.opt_i64("change")?,
            change_pct: r.opt_i64("change_pct")?,
            price_decimals: r.u8("price_decimals")?,
            qty_decimals: r.u8("qty_decimals")?,
        }),
        "instrument" => Body::Instrument(Instrument {
            ticker: r.text("ticker")?,
            base: r.text("base")?,
            quote: r.text("quote")?,
            status: r.text("status")?,
            price_decimals: r.u8("price_decimals")?,
            qty_decimals: r.u8("qty_decimals")?,
            price_increment: r.opt_i64("price_increment")?,
            qty_increment: r.opt_i64("qty_increment")?,
            qty_min: r.opt_i64("qty_min")?,
            cost_min: r.text("cost_min")?,
        }),
        "venue_status" => Body::VenueStatus(VenueStatus {
            system: r.text("system")?,
            api_version: r.text("api_version")?,
            connection_id: r.u64("connection_id")?,
            version: r.text("version")?,
        }),
        other => return Err(format!("kind: unknown record kind {other:?}")),
    };
    Ok(Record {
        receive_ts: r.u64("receive_ts")?,
        exchange_ts: r.u64("exchange_ts")?,
        conn_id: r.u64("conn_id")?,
        sid: r.u32("sid")?,
        seq: r.u64("seq")?,
        body,
    })
}

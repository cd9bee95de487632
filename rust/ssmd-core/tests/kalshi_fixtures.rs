//! The fixture tree tests/data/kalshi/ (shared with pytest) through the parser and codec.

use ssmd_core::codec::{decode_all, encode_record};
use ssmd_core::model::{Body, LifecycleEvent, Outcome, Record};
use ssmd_core::venues::kalshi::parse::{parse_frame, FrameKind, Parsed, Problem, SeqPosition};
use std::path::PathBuf;

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data/kalshi")
        .join(format!("{name}.json"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn all_fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/kalshi");
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn parse(name: &str) -> Parsed<'static> {
    let bytes: &'static [u8] = Box::leak(fixture(name).into_boxed_slice());
    parse_frame(bytes, 1_800_000_000_000_000_000, 7)
}

fn record(name: &str) -> Record<'static> {
    let p = parse(name);
    p.record.unwrap_or_else(|| {
        panic!(
            "{name}: no record; errors {:?} {:?}",
            p.field_errors, p.malformed
        )
    })
}

/// A record with provenance and exchange time zeroed, for comparing values across eras.
fn values(mut r: Record<'static>) -> Record<'static> {
    r.exchange_ts = 0;
    r
}

#[test]
fn every_fixture_is_classified_by_its_name() {
    let fixtures = all_fixtures();
    assert!(
        fixtures.len() >= 50,
        "fixture tree shrank: {}",
        fixtures.len()
    );
    for (name, bytes) in &fixtures {
        let p = parse_frame(bytes, 1, 1);
        let expected = if name.starts_with("malformed") {
            FrameKind::Malformed
        } else if name.starts_with("unknown") || name.starts_with("no_type") {
            FrameKind::Unknown
        } else if name.starts_with("control_") {
            p.kind // checked individually below
        } else if name.starts_with("orderbook_snapshot") || name == "bad_levels" {
            FrameKind::OrderbookSnapshot
        } else if name.starts_with("orderbook_delta") || name == "bad_price_above_one" {
            FrameKind::OrderbookDelta
        } else if name.starts_with("trade")
            || [
                "bad_wrong_types",
                "bad_absurd_numbers",
                "bad_missing_ticker",
            ]
            .contains(&name.as_str())
        {
            FrameKind::Trade
        } else if name.starts_with("ticker") || name == "bad_msg_not_object" {
            FrameKind::Ticker
        } else if name.starts_with("market_lifecycle") {
            FrameKind::MarketLifecycle
        } else if name.starts_with("event_lifecycle") {
            FrameKind::EventLifecycle
        } else {
            panic!("unclassified fixture {name}")
        };
        assert_eq!(p.kind, expected, "{name}");
        if !name.starts_with("bad") && !name.starts_with("malformed") {
            assert!(p.field_errors.is_empty(), "{name}: {:?}", p.field_errors);
        }
        if p.kind.is_data() && !name.starts_with("bad") {
            assert!(p.record.is_some(), "{name}");
        }
    }
}

#[test]
fn the_same_trade_in_every_era_normalizes_to_the_same_values() {
    let c = record("trade_c");
    let b = record("trade_b");
    let a = record("trade_a");
    assert_eq!(values(a.clone()), values(b.clone()));
    // Era C adds the book side; everything else matches.
    let Body::Trade(mut tc) = values(c.clone()).body else {
        panic!()
    };
    assert_eq!(tc.taker_book_side, Outcome::No);
    tc.taker_book_side = Outcome::Unknown;
    assert_eq!(Body::Trade(tc), values(a.clone()).body);
    let Body::Trade(t) = &a.body else { panic!() };
    assert_eq!(t.price_e6, Some(340_000));
    assert_eq!(t.no_price_e6, Some(660_000));
    assert_eq!(t.size_e6, Some(60_000_000));
    assert_eq!(t.taker_outcome, Outcome::No);
    assert_eq!((a.sid, a.seq, a.conn_id), (4, 5120, 7));
    // Seconds in eras A/B, milliseconds in C: the same second either way.
    assert_eq!(a.exchange_ts, 1_784_557_805_000_000_000);
    assert_eq!(c.exchange_ts, 1_784_557_805_409_000_000);
}

#[test]
fn the_same_book_in_every_era_normalizes_to_the_same_values() {
    let c = values(record("orderbook_snapshot_c"));
    assert_eq!(c, values(record("orderbook_snapshot_b")));
    assert_eq!(c, values(record("orderbook_snapshot_a")));
    let Body::BookSnapshot(s) = &c.body else {
        panic!()
    };
    assert_eq!(s.yes.len(), 3);
    assert_eq!(s.yes[2].price_e6, Some(340_000));
    assert_eq!(s.no[1].size_e6, Some(12_000_000));
    assert_eq!(c.seq, 1);

    let dc = record("orderbook_delta_c");
    assert_eq!(values(dc.clone()), values(record("orderbook_delta_b")));
    assert_eq!(values(dc.clone()), values(record("orderbook_delta_a")));
    // RFC 3339 `ts` (microseconds) is more precise than ts_ms and wins.
    assert_eq!(dc.exchange_ts, 1_784_557_805_412_731_000);
    let Body::BookDelta(d) = &dc.body else {
        panic!()
    };
    assert_eq!(
        (d.side, d.price_e6, d.delta_e6),
        (Outcome::Yes, Some(340_000), Some(-60_000_000))
    );
}

#[test]
fn the_same_ticker_in_every_era_keeps_the_fields_every_era_has() {
    for name in ["ticker_a", "ticker_b", "ticker_c"] {
        let Body::Ticker(t) = record(name).body else {
            panic!()
        };
        assert_eq!(t.last_price_e6, Some(340_000), "{name}");
        assert_eq!(t.yes_bid_e6, Some(340_000), "{name}");
        assert_eq!(t.yes_ask_e6, Some(360_000), "{name}");
        assert_eq!(t.dollar_volume, Some(6120), "{name}");
        assert_eq!(t.dollar_open_interest, Some(3050), "{name}");
    }
    let Body::Ticker(c) = record("ticker_c").body else {
        panic!()
    };
    assert_eq!(c.volume_e6, Some(18_422_370_000));
    assert_eq!(c.yes_ask_size_e6, Some(12_250_000));
}

#[test]
fn precision_is_never_lost() {
    let Body::Ticker(t) = record("ticker_c_fractional_volume").body else {
        panic!()
    };
    assert_eq!(t.last_price_e6, Some(999_000));
    assert_eq!(t.volume_e6, Some(2_233_487_480_000));
    assert_eq!(t.yes_bid_size_e6, Some(618_700_140_000));
    let Body::Trade(tr) = record("trade_c_subcent_fractional").body else {
        panic!()
    };
    assert_eq!(
        (tr.price_e6, tr.size_e6, tr.is_block_trade),
        (Some(999_000), Some(110_000), true)
    );
    let Body::BookDelta(d) = record("orderbook_delta_c_fractional").body else {
        panic!()
    };
    assert_eq!(d.delta_e6, Some(-74_770_000));
    assert_eq!(d.client_order_id.as_deref(), Some("cap-test-0001"));
    let r = record("orderbook_delta_a_nanoseconds");
    assert_eq!(r.exchange_ts, 1_755_032_432_539_836_022);
}

#[test]
fn empty_and_never_traded_values_are_null_not_zero() {
    let Body::Ticker(t) = record("ticker_c_never_traded").body else {
        panic!()
    };
    assert_eq!(t.last_price_e6, None);
    assert_eq!(t.yes_bid_e6, Some(0));
    assert_eq!(t.yes_ask_e6, Some(1_000_000));
    let Body::BookSnapshot(s) = record("orderbook_snapshot_c_empty_side").body else {
        panic!()
    };
    assert_eq!(s.yes.len(), 1);
    assert!(s.no.is_empty());
}

#[test]
fn seconds_and_milliseconds_are_told_apart() {
    assert_eq!(
        record("ticker_ts_in_milliseconds").exchange_ts,
        1_784_557_805_412_000_000
    );
    assert_eq!(record("ticker_a").exchange_ts, 1_784_557_805_000_000_000);
}

#[test]
fn lifecycle_events() {
    let Body::Lifecycle(c) = record("market_lifecycle_created").body else {
        panic!()
    };
    assert_eq!(c.event_type, LifecycleEvent::Created);
    assert_eq!(c.open_ts, 1_784_557_800_000_000_000);
    assert_eq!(c.event_ticker.as_deref(), Some("KXBTC15M-26JUL201045"));
    assert_eq!(c.title.as_deref(), Some("BTC 15 min"));
    assert!(c
        .metadata_json
        .as_deref()
        .unwrap()
        .contains("\"floor_strike\":118412.55"));
    let Body::Lifecycle(d) = record("market_lifecycle_determined").body else {
        panic!()
    };
    assert_eq!(
        (d.result.as_deref(), d.settlement_value_e6),
        (Some("yes"), Some(1_000_000))
    );
    assert_eq!(d.determination_ts, 1_784_558_706_000_000_000);
    let Body::Lifecycle(m) = record("market_lifecycle_determined_result_in_metadata").body else {
        panic!()
    };
    assert_eq!(
        (m.result.as_deref(), m.settlement_value_e6),
        (Some("no"), Some(0))
    );
    let Body::Lifecycle(u) = record("market_lifecycle_unknown_event_type").body else {
        panic!()
    };
    assert_eq!(u.event_type, LifecycleEvent::Other);
    assert_eq!(
        u.event_type_text.as_deref(),
        Some("price_level_structure_updated")
    );
    let Body::Lifecycle(x) = record("market_lifecycle_deactivated").body else {
        panic!()
    };
    assert!(x.is_deactivated);
    let Body::EventLifecycle(e) = record("event_lifecycle_sub_title").body else {
        panic!()
    };
    assert_eq!(e.subtitle.as_deref(), Some("Dec 31, 5 PM ET"));
    assert_eq!(e.strike_period.as_deref(), Some("hourly"));
}

#[test]
fn control_frames() {
    let s = parse("control_subscribed");
    assert_eq!((s.kind, s.cmd_id), (FrameKind::Subscribed, Some(1)));
    let ok = parse("control_ok_update");
    assert_eq!(
        (ok.kind, ok.sid, ok.seq),
        (FrameKind::Ok, Some(3), Some(1882))
    );
    assert_eq!(parse("control_ok_list_subscriptions").kind, FrameKind::Ok);
    assert_eq!(parse("control_ok_top_level_tickers").kind, FrameKind::Ok);
    assert_eq!(parse("control_unsubscribed").kind, FrameKind::Unsubscribed);
    let e = parse("control_error");
    assert_eq!(
        (e.kind, e.error_code, e.cmd_id),
        (FrameKind::Error, Some(16), Some(11))
    );
    for p in [s, ok, e] {
        assert!(p.record.is_none() && p.field_errors.is_empty());
    }
}

#[test]
fn wrong_types_null_only_their_field() {
    let p = parse("bad_wrong_types");
    let r = p.record.clone().expect("the record survives");
    let Body::Trade(t) = &r.body else { panic!() };
    assert_eq!(t.ticker.as_deref(), Some("KXBTCD-26JUL2017-T119999.99"));
    assert_eq!(
        t.trade_id.as_deref(),
        Some("b7e1f0c2-5a44-4d0e-9a61-2c7f3e8d9b15")
    );
    assert_eq!((t.price_e6, t.no_price_e6, t.size_e6), (None, None, None));
    assert_eq!(r.seq, 5124);
    let fields: Vec<_> = p.field_errors.iter().map(|e| e.field).collect();
    for f in [
        "sid",
        "yes_price_dollars",
        "no_price_dollars",
        "count",
        "taker_side",
        "is_block_trade",
        "ts",
    ] {
        assert!(fields.contains(&f), "{f} not reported in {fields:?}");
    }
    assert!(p
        .field_errors
        .iter()
        .any(|e| e.field == "count" && e.problem == Problem::WrongType("string")));
}

#[test]
fn absurd_numbers_are_rejected_not_stored() {
    let p = parse("bad_absurd_numbers");
    let Body::Trade(t) = &p.record.as_ref().unwrap().body else {
        panic!()
    };
    assert_eq!(
        (t.price_e6, t.no_price_e6, t.size_e6, t.taker_outcome),
        (None, None, None, Outcome::Unknown)
    );
    assert_eq!(p.record.as_ref().unwrap().exchange_ts, 0);
    assert!(p.field_errors.len() >= 5, "{:?}", p.field_errors);
    let q = parse("bad_price_above_one");
    assert!(q.field_errors.iter().any(|e| e.field == "price_dollars"));
    let Body::BookDelta(d) = &q.record.as_ref().unwrap().body else {
        panic!()
    };
    assert_eq!(d.price_e6, None);
}

#[test]
fn unattributable_frames_have_no_record_but_say_why() {
    let p = parse("bad_missing_ticker");
    assert!(p.record.is_none());
    assert!(p
        .field_errors
        .iter()
        .any(|e| e.field == "market_ticker" && e.problem == Problem::Missing));
    let q = parse("bad_msg_not_object");
    assert!(q.record.is_none());
    assert!(q.field_errors.iter().any(|e| e.field == "msg"));
    let l = parse("bad_levels");
    let Body::BookSnapshot(s) = &l.record.as_ref().unwrap().body else {
        panic!()
    };
    assert_eq!(s.yes.len(), 1, "only the one good level survives");
    assert_eq!(s.yes[0].price_e6, Some(350_000));
    assert!(l.field_errors.iter().any(|e| e.field == "no_dollars_fp"));
}

#[test]
fn every_data_frame_says_where_it_is_in_its_sequence() {
    let at = |kind, sid, seq| Some(SeqPosition { kind, sid, seq });
    assert_eq!(
        parse("orderbook_delta_c").position,
        at(FrameKind::OrderbookDelta, 3, 2)
    );
    // Without a record too: the frame still took its seq.
    assert_eq!(
        parse("bad_missing_ticker").position,
        at(FrameKind::Trade, 4, 5126)
    );
    let no_body = parse_frame(
        br#"{"type":"orderbook_delta","sid":1,"seq":9,"msg":"x"}"#,
        0,
        0,
    );
    assert!(no_body.record.is_none());
    assert_eq!(no_body.position, at(FrameKind::OrderbookDelta, 1, 9));
    // Broken inside `msg`: type, sid and seq were read whole before the text broke.
    let cut = parse("malformed_truncated");
    assert_eq!(cut.kind, FrameKind::Malformed);
    assert_eq!(cut.position, at(FrameKind::Trade, 4, 1));
    // A value cut off by the end of the text is never taken (51 may have been 5126).
    for text in [
        r#"{"type":"trade","sid":4,"seq":51"#,
        r#"{"type":"trade","sid":4,"seq":"#,
        r#"{"type":"trade","sid":4"#,
        r#"{"type":"tra"#,
    ] {
        assert_eq!(parse_frame(text.as_bytes(), 0, 0).position, None, "{text}");
    }
    // Control frames, frames without a seq and unknown types take no place.
    for name in [
        "control_ok_update",
        "control_unsubscribed",
        "ticker_c",
        "unknown_type_future",
    ] {
        assert_eq!(parse(name).position, None, "{name}");
    }
}

#[test]
fn every_record_round_trips_through_capnp() {
    for (name, bytes) in all_fixtures() {
        let p = parse_frame(&bytes, 42, 9);
        if let Some(r) = p.record {
            let mut buf = Vec::new();
            encode_record(&r, &mut buf);
            let back = decode_all(&buf).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(back, vec![ssmd_core::codec::into_owned(r)], "{name}");
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
        let _ = parse_frame(&bytes, 0, 0);
    }

    #[test]
    fn mutated_fixtures_never_panic(index in 0usize..64, cuts in proptest::collection::vec((0usize..600, proptest::num::u8::ANY), 1..6)) {
        let fixtures = all_fixtures();
        let mut bytes = fixtures[index % fixtures.len()].1.clone();
        for (at, byte) in cuts {
            if bytes.is_empty() { break; }
            let at = at % bytes.len();
            bytes[at] = byte;
        }
        let p = parse_frame(&bytes, 0, 0);
        if let Some(r) = p.record {
            let mut buf = Vec::new();
            encode_record(&r, &mut buf);
            proptest::prop_assert!(decode_all(&buf).is_ok());
        }
    }

    #[test]
    fn truncated_fixtures_never_panic(index in 0usize..64, keep in 0usize..600) {
        let fixtures = all_fixtures();
        let bytes = &fixtures[index % fixtures.len()].1;
        let _ = parse_frame(&bytes[..keep.min(bytes.len())], 0, 0);
    }
}

#[test]
fn large_records_are_single_segment_messages() {
    use ssmd_core::model::{BookSnapshot, Level};
    let level = Level {
        price_e6: Some(1),
        size_e6: Some(2),
    };
    let record = Record {
        receive_ts: 1,
        exchange_ts: 2,
        conn_id: 3,
        sid: 4,
        seq: 5,
        body: Body::BookSnapshot(BookSnapshot {
            ticker: Some("T".into()),
            market_id: None,
            yes: vec![level; 500],
            no: vec![level; 3],
            use_yes_price: false,
        }),
    };
    let mut buf = Vec::new();
    let mut encoder = ssmd_core::codec::Encoder::new();
    encoder.encode(&record, &mut buf);
    encoder.encode(&record, &mut buf);
    // A message starts with its segment table, whose first u32 is the segment
    // count minus one; packing marks each non-zero byte of a word in a tag byte.
    for (start, _) in ssmd_core::codec::message_spans(&buf).unwrap() {
        assert_eq!(buf[start] & 0x0F, 0, "more than one segment");
    }
    assert_eq!(decode_all(&buf).unwrap().len(), 2);
}

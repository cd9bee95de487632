//! `cargo run --release --example venue_file -- polymarket|kraken FILE.jsonl [TOKENS.tsv]`:
//! times a venue's normalizer alone (no Python) over a frame stream, one frame per line,
//! in batches of 1,024 frames of one connection, as the benchmark `benches/venues.py`
//! feeds it (`--dump DIR` there writes these files). For Polymarket, TOKENS.tsv holds
//! `asset_id<TAB>min_order_size<TAB>neg_risk` lines (the listing fields of the book hash);
//! for Kraken, `symbol<TAB>price_decimals<TAB>qty_decimals`.

use ssmd_core::venues::kraken::normalize::Kraken;
use ssmd_core::venues::polymarket::normalize::{HashMode, Normalizer, TokenMeta};
use std::time::Instant;

const BATCH: usize = 1024;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (venue, path) = match (args.get(1), args.get(2)) {
        (Some(v), Some(p)) => (v.as_str(), p.as_str()),
        _ => panic!("usage: venue_file polymarket|kraken FILE.jsonl [TOKENS.tsv]"),
    };
    let data = std::fs::read(path).expect("readable frame file");
    let frames: Vec<&[u8]> = data
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let table = args
        .get(3)
        .map(|p| std::fs::read_to_string(p).expect("readable table"))
        .unwrap_or_default();
    let rows: Vec<Vec<&str>> = table.lines().map(|l| l.split('\t').collect()).collect();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let records = match venue {
            "polymarket" => {
                let mut n = Normalizer::new(HashMode::Auto);
                for r in &rows {
                    let meta = TokenMeta {
                        min_order_size: r[1].to_owned(),
                        neg_risk: r[2] == "true",
                    };
                    n.set_token(r[0], meta);
                }
                frames
                    .chunks(BATCH)
                    .map(|c| n.normalize(c.iter().map(|f| (1u64, *f)), 1).records.len())
                    .sum::<usize>()
            }
            "kraken" => {
                let mut k = Kraken::new();
                for r in &rows {
                    let p = r[1].parse().expect("price decimals");
                    let q = r[2].parse().expect("qty decimals");
                    k.set_precision(r[0], p, q);
                }
                frames
                    .chunks(BATCH)
                    .map(|c| k.normalize(c.iter().map(|f| (1u64, *f)), 1).records.len())
                    .sum::<usize>()
            }
            other => panic!("unknown venue {other}"),
        };
        best = best.min(start.elapsed().as_secs_f64());
        assert!(records > 0, "no records");
    }
    println!(
        "{venue}: {} frames: normalize+encode {:.0} frames/s",
        frames.len(),
        frames.len() as f64 / best
    );
    // What reading the JSON alone costs, values skipped: a bound on any normalizer
    // built on serde_json.
    let mut skim = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        for f in &frames {
            let _ = serde_json::from_slice::<serde::de::IgnoredAny>(f);
        }
        skim = skim.min(start.elapsed().as_secs_f64());
    }
    println!(
        "{venue}: serde_json skim (IgnoredAny) {:.0} frames/s",
        frames.len() as f64 / skim
    );
}

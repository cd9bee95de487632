//! `cargo run --release --example normalize_file -- FILE.jsonl`: times the batch
//! normalizer alone (no Python) over a capture, one frame per line.

use std::time::Instant;

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: normalize_file FILE.jsonl");
    let data = std::fs::read(&path).expect("readable capture");
    let frames: Vec<&[u8]> = data
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let batch = ssmd_core::normalize::normalize_kalshi(frames.iter().map(|f| (1u64, *f)), 1);
        let parse_only = start.elapsed().as_secs_f64();
        best = best.min(parse_only);
        assert_eq!(batch.frames.len(), frames.len());
    }
    let start = Instant::now();
    for f in &frames {
        let _ = ssmd_core::venues::kalshi::parse_frame(f, 1, 1);
    }
    let parse = start.elapsed().as_secs_f64();
    lower_bound(&frames);
    println!(
        "{} frames: normalize+encode {:.0} frames/s; parse only {:.0} frames/s",
        frames.len(),
        frames.len() as f64 / best,
        frames.len() as f64 / parse
    );
}

#[allow(dead_code)]
fn lower_bound(frames: &[&[u8]]) {
    let start = Instant::now();
    for f in frames {
        let _ = serde_json::from_slice::<serde::de::IgnoredAny>(f);
    }
    let t = start.elapsed().as_secs_f64();
    println!(
        "serde_json skim (IgnoredAny): {:.0} frames/s",
        frames.len() as f64 / t
    );
    let start = Instant::now();
    for f in frames {
        let mut e = ssmd_core::venues::kalshi::messages::Envelope::default();
        let mut m = ssmd_core::venues::kalshi::messages::Msg::default();
        let _ = ssmd_core::venues::kalshi::messages::read_frame(
            std::str::from_utf8(f).unwrap_or(""),
            &mut e,
            &mut m,
        );
    }
    let t = start.elapsed().as_secs_f64();
    println!(
        "envelope+msg deserialize: {:.0} frames/s",
        frames.len() as f64 / t
    );
}

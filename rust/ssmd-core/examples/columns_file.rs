//! `cargo run --release --example columns_file -- FILE`: times unpacking and
//! column building over a stream of packed trade records (no Python).

use std::time::Instant;

fn main() {
    let path = std::env::args().nth(1).expect("usage: columns_file FILE");
    let data = std::fs::read(&path).expect("readable stream");
    let mut best = (f64::MAX, f64::MAX);
    let mut rows = 0;
    for _ in 0..5 {
        let start = Instant::now();
        let words = ssmd_core::codec::unpack(&data).expect("valid stream");
        let unpack = start.elapsed().as_secs_f64();
        drop(words);
        let start = Instant::now();
        let (n, _) = ssmd_core::columns::to_columns(&data, ssmd_core::columns::TableKind::Trade)
            .expect("valid stream");
        rows = n;
        best = (
            best.0.min(unpack),
            best.1.min(start.elapsed().as_secs_f64()),
        );
    }
    println!(
        "{rows} rows: unpack {:.1} ms, to_columns {:.1} ms ({:.2} M rows/s)",
        best.0 * 1e3,
        best.1 * 1e3,
        rows as f64 / best.1 / 1e6
    );
}

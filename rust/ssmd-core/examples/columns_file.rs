//! `cargo run --release --example columns_file -- FILE KIND`: times each stage
//! of reading a normalized archive (a data.capnp.zst) into columns, without
//! Python: zstd alone, then unpacking, then decoding, then the columns.

use ssmd_core::archive;
use ssmd_core::codec::for_each_record_in;
use ssmd_core::columns::{TableBuilder, TableKind};
use ssmd_core::packed::unpack_into;
use std::time::Instant;

fn best_ms(mut run: impl FnMut()) -> f64 {
    (0..7)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::MAX, f64::min)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: columns_file FILE [KIND]");
    let kind_name = args.next().unwrap_or_else(|| "trade".into());
    let kind = TableKind::from_name(&kind_name).expect("a table kind, such as trade");
    let file = std::fs::read(&path).expect("readable archive");
    let mut words = Vec::new();
    let mut records = 0;
    let stages: [(&str, f64); 4] = [
        (
            "zstd",
            best_ms(|| {
                archive::for_each_frame(&file, |_, _| {}).expect("archive");
            }),
        ),
        (
            "zstd + unpack",
            best_ms(|| {
                archive::for_each_frame(&file, |_, c| {
                    unpack_into(c, &mut words).expect("packed");
                })
                .expect("archive");
            }),
        ),
        (
            "zstd + unpack + decode",
            best_ms(|| {
                records = 0;
                archive::for_each_frame(&file, |_, c| {
                    records += for_each_record_in(c, &mut words, |_| {}).expect("records");
                })
                .expect("archive");
            }),
        ),
        (
            "columns (all of it)",
            best_ms(|| {
                let mut table = TableBuilder::new(kind);
                table.expect_total(archive::stated_content_len(&file));
                archive::for_each_frame(&file, |_, c| table.push_stream(c).expect("records"))
                    .expect("archive");
                std::hint::black_box(table.finish());
            }),
        ),
    ];
    for (stage, ms) in stages {
        println!(
            "{stage:>24}: {ms:7.1} ms, {:.2} M records/s",
            records as f64 / ms / 1e3
        );
    }
}

//! `cargo run -p ssmd-schemagen -- OUT_DIR`: compile schemas/ssmd.capnp into Rust.
//!
//! The generated file is committed (rust/ssmd-core/src/generated/) so that a
//! fresh clone builds without the Cap'n Proto compiler; `just check-schemas`
//! runs this into a temporary directory and fails if the output differs.

use std::path::PathBuf;

fn main() {
    let out: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            eprintln!("usage: ssmd-schemagen OUT_DIR");
            std::process::exit(2)
        });
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let schemas = root.join("schemas");
    if let Err(e) = capnpc::CompilerCommand::new()
        .src_prefix(&schemas)
        .file(schemas.join("ssmd.capnp"))
        .output_path(&out)
        .run()
    {
        eprintln!("capnp compile failed: {e} (is the capnp compiler installed? Debian: apt-get install capnproto)");
        std::process::exit(1);
    }
}

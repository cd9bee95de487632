//! ssmd-core: the hot path of ssmd, in pure Rust (no Python, no I/O).
//!
//! Bytes in, bytes out: Kalshi frames are parsed and normalized into Cap'n
//! Proto records (schemas/ssmd.capnp), archives are framed with zstd, books
//! are rebuilt from snapshots and deltas, and records are laid out as columns
//! for Arrow. Python (ssmd, through the ssmd-py bindings) owns every socket,
//! file and await.

#[allow(clippy::all, clippy::pedantic, unused_qualifications, dead_code)]
#[rustfmt::skip]
pub mod ssmd_capnp {
    include!("generated/ssmd_capnp.rs");
}

pub mod archive;
pub mod book;
pub mod codec;
pub mod columns;
pub mod coverage;
pub mod error;
pub mod fixed;
pub mod model;
pub mod nats;
pub mod normalize;
pub mod packed;
pub mod publish;
pub mod raw_line;
pub mod render;
pub mod route;
pub mod scalar;
pub mod seq;
pub mod time;
pub mod venues;
pub mod websocket;

//! Kraken spot WebSocket v2: frames -> normalized records (`normalize`), the
//! exact books and their CRC32 (`book`, `crc`).
pub mod book;
pub mod crc;
pub mod normalize;

pub use normalize::{Batch, Event, FrameKind, Kraken};

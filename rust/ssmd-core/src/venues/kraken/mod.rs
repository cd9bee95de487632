//! Kraken spot WebSocket v2: frames -> normalized records (`normalize`), the
//! exact books and their CRC32 (`book`).
pub mod book;
pub mod normalize;

pub use normalize::{Batch, Event, FrameKind, Kraken};

//! Kalshi Trade API v2 WebSocket frames, in all three format eras (A: cents,
//! B: cents + dollar strings, C: dollar and fixed-point strings only).
pub mod messages;
pub mod parse;

pub use parse::{parse_frame, FrameKind, Parsed};

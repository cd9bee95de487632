//! Polymarket CLOB market channel: wire structs (`messages`), frame -> events
//! (`parse`), the book summary hash (`hash`) and the per-connection
//! normalizer that keeps each token's book (`normalize`).
pub mod hash;
pub mod messages;
pub mod normalize;
pub mod parse;

pub use normalize::{HashMode, Normalizer, PolyBatch, Resync, Suspicion, TokenMeta};
pub use parse::EventKind;

//! One module per exchange: wire structs (`messages`) and wire -> normalized (`parse`).
pub mod kalshi;
pub mod kraken;
pub mod polymarket;

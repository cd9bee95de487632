//! PyO3 bindings: the extension module `ssmd._core`.
//!
//! Thin by design: each module converts arguments, releases the GIL around
//! the work in ssmd-core, and converts results. One file per area; each has a
//! `register` function called below.

use pyo3::prelude::*;

mod archive;
mod book;
mod columns;
mod errors;
mod events;
mod feed;
mod kraken;
mod nats;
mod normalize;
mod polymarket;
mod publish;
mod records;
mod route;
mod seq;
mod websocket;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add(
        "build_profile",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    )?;
    errors::register(m)?;
    events::register(m)?;
    normalize::register(m)?;
    archive::register(m)?;
    columns::register(m)?;
    book::register(m)?;
    feed::register(m)?;
    seq::register(m)?;
    route::register(m)?;
    polymarket::register(m)?;
    kraken::register(m)?;
    nats::register(m)?;
    publish::register(m)?;
    websocket::register(m)?;
    Ok(())
}

//! The one place Rust errors become Python exceptions.
//!
//! The classes live in python/ssmd/exceptions.py (the package's single
//! hierarchy); they are looked up there by name when an error is raised.

use pyo3::prelude::*;
use pyo3::types::PyType;

/// An exception of class `ssmd.exceptions.<class>` with `message`.
pub fn ssmd_error(py: Python<'_>, class: &str, message: impl Into<String>) -> PyErr {
    let message = message.into();
    let class = py
        .import("ssmd.exceptions")
        .and_then(|module| module.getattr(class))
        .and_then(|cls| cls.downcast_into::<PyType>().map_err(PyErr::from));
    match class {
        Ok(cls) => PyErr::from_type(cls, message),
        Err(lookup_failed) => lookup_failed,
    }
}

//! The one conversion of the core's errors (ssmd_core::error::CoreError) into
//! Python exceptions.
//!
//! The classes are those of python/ssmd/exceptions.py, the package's one
//! hierarchy: each kind of CoreError has its class there (CoreError itself for
//! an argument the core does not accept). They are bound once, when the module
//! loads, never looked up when an error is raised.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;
use ssmd_core::error::CoreError;

struct Classes {
    decode: Py<PyType>,
    archive: Py<PyType>,
    protocol: Py<PyType>,
    invalid: Py<PyType>,
}

static CLASSES: PyOnceLock<Classes> = PyOnceLock::new();

fn bind(py: Python<'_>) -> PyResult<Classes> {
    let module = py.import("ssmd.exceptions")?;
    let class = |name: &str| -> PyResult<Py<PyType>> {
        Ok(module.getattr(name)?.downcast_into::<PyType>()?.unbind())
    };
    Ok(Classes {
        decode: class("DecodeError")?,
        archive: class("ArchiveError")?,
        protocol: class("BusProtocolError")?,
        invalid: class("CoreError")?,
    })
}

/// The Python exception for a core error.
pub fn py_err(err: impl Into<CoreError>) -> PyErr {
    Python::attach(|py| convert(py, err.into()))
}

/// An argument error unless `frames` and `receive_ns` are as many.
pub fn same_length(frames: usize, receive_ns: usize) -> PyResult<()> {
    if frames == receive_ns {
        return Ok(());
    }
    Err(py_err(CoreError::invalid(format!(
        "frames ({frames}) and receive_ns ({receive_ns}) differ in length"
    ))))
}

fn convert(py: Python<'_>, err: CoreError) -> PyErr {
    let classes = match CLASSES.get_or_try_init(py, || bind(py)) {
        Ok(classes) => classes,
        Err(binding_failed) => return binding_failed,
    };
    let class = match &err {
        CoreError::Decode(_) => &classes.decode,
        CoreError::Archive(_) => &classes.archive,
        CoreError::Protocol(_) => &classes.protocol,
        CoreError::Invalid(_) => &classes.invalid,
    };
    PyErr::from_type(class.bind(py).clone(), err.to_string())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    CLASSES.get_or_try_init(py, || bind(py))?;
    Ok(())
}

//! WsReader: ssmd_core::websocket for ssmd.venues.websocket.
//!
//! One call per read from the socket: the read's whole messages as bytes, those
//! of them the session must look at (`watch`), its pings and pongs, and how the
//! connection ended once it did.

use memchr::memmem::Finder;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use ssmd_core::websocket::{End, Event, FrameReader};

/// How a WebSocket connection ended, as read: the server's close frame
/// (`by_server`) or the protocol error the client closes for (`code` 1002, 1007
/// or 1009).
#[pyclass(module = "ssmd._core", name = "WsEnd", frozen, eq, get_all)]
#[derive(Clone, PartialEq, Eq)]
pub struct WsEnd {
    code: u16,
    reason: String,
    by_server: bool,
}

impl From<&End> for WsEnd {
    fn from(end: &End) -> Self {
        WsEnd {
            code: end.code,
            reason: end.reason.clone(),
            by_server: end.by_server,
        }
    }
}

/// What one read from the socket held, in order within each list.
#[pyclass(module = "ssmd._core", name = "WsRead", frozen, get_all)]
pub struct WsRead {
    messages: Vec<Py<PyBytes>>,
    watched: Vec<Py<PyBytes>>,
    pings: Vec<Py<PyBytes>>,
    pongs: Vec<Py<PyBytes>>,
    end: Option<WsEnd>,
}

/// Reads the frames a WebSocket server sends (no extension agreed); refuses a
/// message over `max_size` bytes. The messages that contain one of `watch` are
/// also listed in `watched`.
#[pyclass(module = "ssmd._core", name = "WsReader")]
pub struct PyWsReader {
    inner: FrameReader,
    watch: Vec<Finder<'static>>,
}

#[pymethods]
impl PyWsReader {
    #[new]
    #[pyo3(signature = (max_size, watch = Vec::new()))]
    fn new(max_size: usize, watch: Vec<Vec<u8>>) -> Self {
        PyWsReader {
            inner: FrameReader::new(max_size),
            watch: watch
                .iter()
                .map(|needle| Finder::new(needle).into_owned())
                .collect(),
        }
    }

    /// Reads `data` (the next bytes from the socket).
    fn read(&mut self, py: Python<'_>, data: &[u8]) -> WsRead {
        let (mut messages, mut watched) = (Vec::new(), Vec::new());
        let (mut pings, mut pongs) = (Vec::new(), Vec::new());
        let watch = &self.watch;
        let end = self.inner.read(data, &mut |ev| match ev {
            Event::Message(m) => {
                let bytes = PyBytes::new(py, m).unbind();
                if watch.iter().any(|f| f.find(m).is_some()) {
                    watched.push(bytes.clone_ref(py));
                }
                messages.push(bytes);
            }
            Event::Ping(p) => pings.push(PyBytes::new(py, p).unbind()),
            Event::Pong(p) => pongs.push(PyBytes::new(py, p).unbind()),
        });
        WsRead {
            messages,
            watched,
            pings,
            pongs,
            end: end.map(WsEnd::from),
        }
    }

    /// Bytes held for a frame or a message not yet whole.
    #[getter]
    fn buffered(&self) -> usize {
        self.inner.buffered()
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyWsReader>()?;
    m.add_class::<WsRead>()?;
    m.add_class::<WsEnd>()?;
    Ok(())
}

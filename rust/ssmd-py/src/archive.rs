//! ArchiveWriter, ArchiveReader, read_archive: zstd archive framing.
//!
//! Compression and decompression run with the GIL released; Python gets one
//! bytes object per call.

use crate::errors::py_err;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};
use ssmd_core::archive::{self, ArchiveContents, ArchiveReader, ArchiveWriter};
use ssmd_core::error::CoreError;
use ssmd_core::raw_line::parse_raw_line;

const _: () = assert!(archive::DEFAULT_LEVEL == 3);

/// Collects whole records; each flush returns one independent zstd frame.
///
/// Holds what was written since the last flush: flush by size or time.
#[pyclass(module = "ssmd._core", name = "ArchiveWriter")]
pub struct PyArchiveWriter {
    inner: ArchiveWriter,
}

#[pymethods]
impl PyArchiveWriter {
    // A literal so that Python's signature shows it; checked below.
    #[new]
    #[pyo3(signature = (level = 3))]
    fn new(level: i32) -> PyResult<Self> {
        let inner = ArchiveWriter::new(level).map_err(py_err)?;
        Ok(PyArchiveWriter { inner })
    }

    /// Buffers whole records (JSONL lines, packed Record messages).
    fn write(&mut self, data: &[u8]) {
        self.inner.write(data);
    }

    /// One complete zstd frame with everything written since the last
    /// flush; b"" when nothing is pending.
    fn flush<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let inner = &mut self.inner;
        let frame = py.detach(|| inner.flush()).map_err(py_err)?;
        Ok(PyBytes::new(py, &frame))
    }

    #[getter]
    fn pending_len(&self) -> usize {
        self.inner.pending_len()
    }
}

/// What an archive, or its readable prefix, holds.
#[pyclass(module = "ssmd._core", name = "ArchiveContents", frozen)]
pub struct PyArchiveContents {
    /// Decompressed content of every complete frame.
    #[pyo3(get)]
    data: Py<PyBytes>,
    /// Number of complete frames.
    #[pyo3(get)]
    frames: u64,
    /// Byte length of the readable prefix (where complete frames end).
    #[pyo3(get)]
    complete_len: u64,
    /// (offset, length) of an incomplete last frame, or None.
    #[pyo3(get)]
    truncated_tail: Option<(u64, u64)>,
}

#[pymethods]
impl PyArchiveContents {
    fn __repr__(&self) -> String {
        let tail = match self.truncated_tail {
            Some((offset, len)) => format!("({offset}, {len})"),
            None => "None".to_string(),
        };
        format!(
            "ArchiveContents(frames={}, complete_len={}, truncated_tail={tail})",
            self.frames, self.complete_len
        )
    }
}

fn contents_to_py(py: Python<'_>, contents: ArchiveContents) -> PyArchiveContents {
    PyArchiveContents {
        data: PyBytes::new(py, &contents.data).unbind(),
        frames: contents.frames,
        complete_len: contents.complete_len,
        truncated_tail: contents.truncated_tail,
    }
}

/// Reads a whole archive: every complete frame, and the incomplete tail an
/// interrupted write left. Raises ArchiveError on damage elsewhere.
#[pyfunction(name = "read_archive")]
fn py_read_archive(py: Python<'_>, data: &[u8]) -> PyResult<PyArchiveContents> {
    let contents = py.detach(|| archive::read_archive(data)).map_err(py_err)?;
    Ok(contents_to_py(py, contents))
}

/// Push-style reader for large archives: feed chunks, take content as frames
/// complete, finish for the frame count and the tail. Memory stays at one
/// incomplete frame plus what was not taken yet.
#[pyclass(module = "ssmd._core", name = "ArchiveReader")]
pub struct PyArchiveReader {
    inner: Option<ArchiveReader>,
}

impl PyArchiveReader {
    fn reader(&mut self) -> PyResult<&mut ArchiveReader> {
        self.inner
            .as_mut()
            .ok_or_else(|| py_err(CoreError::invalid("ArchiveReader is finished")))
    }
}

#[pymethods]
impl PyArchiveReader {
    #[new]
    fn new() -> Self {
        PyArchiveReader {
            inner: Some(ArchiveReader::new()),
        }
    }

    /// Adds the next bytes of the archive; raises ArchiveError on damage.
    fn feed(&mut self, py: Python<'_>, chunk: &[u8]) -> PyResult<()> {
        let reader = self.reader()?;
        py.detach(|| reader.feed(chunk)).map_err(py_err)
    }

    /// Decompressed content of the frames completed since the last take.
    fn take<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let data = self.reader()?.take();
        Ok(PyBytes::new(py, &data))
    }

    /// Ends the input. `data` of the result holds what was not taken yet.
    fn finish(&mut self, py: Python<'_>) -> PyResult<PyArchiveContents> {
        let reader = self
            .inner
            .take()
            .ok_or_else(|| py_err(CoreError::invalid("ArchiveReader is finished")))?;
        let contents = py.detach(move || reader.finish()).map_err(py_err)?;
        Ok(contents_to_py(py, contents))
    }
}

/// The raw archive lines of `data` (whole lines; empty ones are skipped), each as
/// (receive_ns, stream seq, msgtype, conn id or None, frame bytes): tuples, so that
/// the frames of several files merge in receive order by comparing them.
/// ArchiveError names the first line that is not a raw line, numbering the lines of
/// `data` from `first_line`.
#[pyfunction]
#[pyo3(signature = (data, first_line = 1))]
fn raw_lines<'py>(py: Python<'py>, data: &[u8], first_line: usize) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    let mut msgtypes: Vec<(String, Bound<'py, PyString>)> = Vec::new();
    for (index, line) in data.split(|&b| b == b'\n').enumerate() {
        if line.is_empty() {
            continue;
        }
        let raw = parse_raw_line(line).map_err(|why| {
            py_err(CoreError::Archive(format!(
                "line {} is not a raw line: {why}",
                first_line + index
            )))
        })?;
        // A file holds one or two frame kinds: one Python string each.
        let msgtype = match msgtypes.iter().find(|(name, _)| *name == raw.msgtype) {
            Some((_, s)) => s.clone(),
            None => {
                let s = PyString::new(py, &raw.msgtype);
                msgtypes.push((raw.msgtype, s.clone()));
                s
            }
        };
        out.append((
            raw.receive_ns,
            raw.seq,
            msgtype,
            raw.conn,
            PyBytes::new(py, &raw.frame),
        ))?;
    }
    Ok(out)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("ARCHIVE_DEFAULT_LEVEL", archive::DEFAULT_LEVEL)?;
    m.add_class::<PyArchiveWriter>()?;
    m.add_class::<PyArchiveContents>()?;
    m.add_class::<PyArchiveReader>()?;
    m.add_function(wrap_pyfunction!(py_read_archive, m)?)?;
    m.add_function(wrap_pyfunction!(raw_lines, m)?)?;
    Ok(())
}

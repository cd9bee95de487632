//! records_to_columns, archive_to_columns: records as Arrow-layout buffers.
//!
//! The buffers are handed over without a copy: each is a `ColumnBuffer` that
//! owns the Rust vector and exposes it through the buffer protocol, so
//! `pyarrow.py_buffer` wraps the memory Rust filled.

use crate::errors::py_err;
use pyo3::ffi;
use pyo3::prelude::*;
use ssmd_core::archive::{self, ArchiveError};
use ssmd_core::codec::CodecError;
use ssmd_core::columns::{self, Column, TableBuilder, TableKind};
use ssmd_core::error::CoreError;
use std::os::raw::c_int;

/// Read-only bytes owned by Rust, exposed through the buffer protocol.
#[pyclass(module = "ssmd._core", name = "ColumnBuffer", frozen)]
pub struct ColumnBuffer {
    data: Vec<u8>,
}

#[pymethods]
impl ColumnBuffer {
    fn __len__(&self) -> usize {
        self.data.len()
    }

    /// # Safety
    /// Called by Python with a valid `view`. The memory stays valid while the
    /// view exists: the view holds a reference to this object, which is
    /// frozen, so the vector is neither moved nor changed.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let data = &slf.get().data;
        let len = isize::try_from(data.len())
            .map_err(|_| py_err(CoreError::invalid("buffer larger than isize::MAX")))?;
        // SAFETY: see above; readonly = 1, so Python never writes through the view.
        let filled = unsafe {
            ffi::PyBuffer_FillInfo(
                view,
                slf.as_ptr(),
                data.as_ptr() as *mut std::os::raw::c_void,
                len,
                1,
                flags,
            )
        };
        if filled == -1 {
            return Err(PyErr::fetch(slf.py()));
        }
        Ok(())
    }
}

/// (name, type, values, offsets, validity, null_count) of one column.
type PyColumn = (
    &'static str,
    &'static str,
    ColumnBuffer,
    Option<ColumnBuffer>,
    Option<ColumnBuffer>,
    usize,
);

fn to_py(columns: Vec<Column>) -> Vec<PyColumn> {
    columns
        .into_iter()
        .map(|c| {
            let offsets = (!c.offsets.is_empty()).then_some(ColumnBuffer { data: c.offsets });
            let validity = (c.null_count > 0).then_some(ColumnBuffer { data: c.validity });
            (
                c.name,
                c.column_type.name(),
                ColumnBuffer { data: c.values },
                offsets,
                validity,
                c.null_count,
            )
        })
        .collect()
}

fn table_kind(kind: &str) -> PyResult<TableKind> {
    TableKind::from_name(kind).ok_or_else(|| {
        py_err(CoreError::invalid(format!(
            "no column layout for record kind {kind:?}; use one of trade, ticker, book_delta, book_level, lifecycle, event_lifecycle, status, connector_event"
        )))
    })
}

/// The records of one kind in a stream of packed records, as Arrow-layout
/// column buffers: (rows, [(name, type, values, offsets, validity, null_count)]).
#[pyfunction]
fn records_to_columns(py: Python<'_>, data: &[u8], kind: &str) -> PyResult<(usize, Vec<PyColumn>)> {
    let kind = table_kind(kind)?;
    let (rows, columns) = py
        .detach(|| columns::to_columns(data, kind))
        .map_err(py_err)?;
    Ok((rows, to_py(columns)))
}

enum ReadError {
    Archive(ArchiveError),
    Records { frame_offset: u64, err: CodecError },
}

/// The records of one kind in a normalized archive (zstd frames of packed
/// records), decoded frame by frame so that the decompressed stream is never
/// held whole: (rows, columns, truncated_tail). `truncated_tail` is the
/// (offset, length) of an incomplete last frame, whose records are not in
/// the columns, or None.
#[pyfunction]
#[allow(clippy::type_complexity)]
fn archive_to_columns(
    py: Python<'_>,
    archive: &[u8],
    kind: &str,
) -> PyResult<(usize, Vec<PyColumn>, Option<(u64, u64)>)> {
    let mut table = TableBuilder::new(table_kind(kind)?);
    let read = py.detach(|| {
        table.expect_total(archive::stated_content_len(archive));
        let mut failed = None;
        let contents = archive::for_each_frame(archive, |frame_offset, content| {
            if failed.is_none() {
                if let Err(err) = table.push_stream(content) {
                    failed = Some(ReadError::Records { frame_offset, err });
                }
            }
        })
        .map_err(ReadError::Archive)?;
        failed.map_or(Ok(contents.truncated_tail), Err)
    });
    let tail = read.map_err(|e| match e {
        ReadError::Archive(err) => py_err(err),
        ReadError::Records { frame_offset, err } => py_err(CoreError::decode(format!(
            "zstd frame at byte {frame_offset}: {err}"
        ))),
    })?;
    let (rows, columns) = table.finish();
    Ok((rows, to_py(columns), tail))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ColumnBuffer>()?;
    m.add_function(wrap_pyfunction!(records_to_columns, m)?)?;
    m.add_function(wrap_pyfunction!(archive_to_columns, m)?)?;
    Ok(())
}

//! The one-time answer to a request on a route (`Reply`).

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::errors::IntoPyResult;

/// The one-time answer to a request on a route.
#[pyclass(module = "tidings._tidings", frozen)]
pub(crate) struct Reply {
    inner: tidings::Reply,
}

impl Reply {
    pub(crate) fn new(inner: tidings::Reply) -> Self {
        Reply { inner }
    }
}

#[pymethods]
impl Reply {
    /// Sends the response: `body` as str (UTF-8) or bytes.
    #[pyo3(signature = (body, status=200, content_type="text/html; charset=utf-8"))]
    fn send(&self, body: &Bound<'_, PyAny>, status: u16, content_type: &str) -> PyResult<()> {
        let bytes = if let Ok(text) = body.cast::<PyString>() {
            bytes::Bytes::from(text.to_cow()?.into_owned())
        } else if let Ok(raw) = body.cast::<PyBytes>() {
            bytes::Bytes::copy_from_slice(raw.as_bytes())
        } else {
            return Err(PyTypeError::new_err("a reply body must be str or bytes"));
        };
        self.inner.send(status, content_type, bytes).py_err()
    }

    /// Answers a handler that failed: with `status` and `reason` (plain
    /// text) if `status` is an HTTP error status (400–599), else 500.
    #[pyo3(signature = (status, reason))]
    fn refuse(&self, status: Option<u16>, reason: &str) -> PyResult<()> {
        self.inner.refuse(status, reason).py_err()
    }
}

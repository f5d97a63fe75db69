//! The one-time answers: to a request on a route (`Reply`), and to the
//! question whether a client may subscribe to a channel (`Verdict`).

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

/// The one-time decision on a client that subscribes to a channel with an
/// authorize check.
#[pyclass(module = "tidings._tidings", frozen)]
pub(crate) struct Verdict {
    inner: tidings::Verdict,
}

impl Verdict {
    pub(crate) fn new(inner: tidings::Verdict) -> Self {
        Verdict { inner }
    }
}

#[pymethods]
impl Verdict {
    /// Lets the client subscribe.
    fn allow(&self) -> PyResult<()> {
        self.inner.allow().py_err()
    }

    /// Turns the client away with `status` (400-599) and `message`.
    #[pyo3(signature = (status, message=""))]
    fn deny(&self, status: u16, message: &str) -> PyResult<()> {
        self.inner.deny(status, message).py_err()
    }
}

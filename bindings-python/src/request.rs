//! What a Python handler sees of the request that opened a stream or reached
//! a route (`Request`).

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The request that opened a stream or reached a route.
#[pyclass(module = "tidings._tidings", frozen)]
pub(crate) struct Request {
    inner: tidings::Request,
}

impl Request {
    pub(crate) fn new(inner: tidings::Request) -> Self {
        Request { inner }
    }
}

#[pymethods]
impl Request {
    /// The HTTP method.
    #[getter]
    fn method(&self) -> &str {
        self.inner.method()
    }

    /// The path, as sent.
    #[getter]
    fn path(&self) -> &str {
        self.inner.path()
    }

    /// The raw query string, without `?`.
    #[getter]
    fn query_string(&self) -> &str {
        self.inner.query_string()
    }

    /// Query parameters, decoded; the first value of each name.
    #[getter]
    fn query<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let query = PyDict::new(py);
        for (name, value) in self.inner.query_first_values() {
            query.set_item(name, value)?;
        }
        Ok(query)
    }

    /// Headers with lower-case names; repeated headers are joined with ", ".
    #[getter]
    fn headers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let headers = PyDict::new(py);
        for (name, value) in self.inner.headers_joined() {
            headers.set_item(name, value)?;
        }
        Ok(headers)
    }

    /// The id the client last saw (`Last-Event-ID` header or `lastEventId`
    /// query parameter), or None.
    #[getter]
    fn last_event_id(&self) -> Option<&str> {
        self.inner.last_event_id()
    }

    /// ``"https"`` if the request arrived over TLS, else ``"http"``.
    #[getter]
    fn scheme(&self) -> &'static str {
        self.inner.scheme()
    }

    /// The client's address as (host, port).
    #[getter]
    fn client(&self) -> (String, u16) {
        let peer = self.inner.peer_addr();
        (peer.ip().to_string(), peer.port())
    }

    fn __repr__(&self) -> String {
        format!("<Request {} {}>", self.inner.method(), self.inner.path())
    }
}

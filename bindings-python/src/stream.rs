//! What a Python handler receives: the request, the sink of one client's
//! stream, and the reply of a route.

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};

use crate::convert::stream_item;
use crate::dispatch::Dispatcher;
use crate::errors::IntoPyResult;

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

/// The sending end of one client's event stream, driven by the package's
/// stream runner; all calls are safe from any thread.
#[pyclass(module = "tidings._tidings", frozen)]
pub(crate) struct StreamSink {
    sender: tidings::StreamSender,
    dispatcher: Dispatcher,
}

impl StreamSink {
    pub(crate) fn new(sender: tidings::StreamSender, dispatcher: Dispatcher) -> Self {
        StreamSink { sender, dispatcher }
    }
}

#[pymethods]
impl StreamSink {
    /// Starts the `200` event-stream response now.
    fn accept(&self) -> PyResult<()> {
        self.sender.accept();
        Ok(())
    }

    /// Answers with `status` (400–599) and a plain-text `message` instead of
    /// a stream; only before anything was sent.
    pub(crate) fn reject(&self, status: u16, message: String) -> PyResult<()> {
        self.sender.reject(status, message).py_err()
    }

    /// Answers a handler that failed before anything was sent: with `status`
    /// and `reason` if `status` is an HTTP error status (400–599), else 500.
    #[pyo3(signature = (status, reason))]
    fn refuse(&self, status: Option<u16>, reason: &str) -> PyResult<()> {
        self.sender.refuse(status, reason).py_err()
    }

    /// Queues `item` if there is room: True if queued, False if the queue is
    /// full. Raises ClientDisconnected once the client has gone.
    fn try_send(&self, item: &Bound<'_, PyAny>) -> PyResult<bool> {
        try_send_item(&self.sender, item)
    }

    /// Queues `item`, blocking this (non-asyncio) thread while the queue is
    /// full, with the GIL released.
    fn send_blocking(&self, py: Python<'_>, item: &Bound<'_, PyAny>) -> PyResult<()> {
        let event = stream_item(item)?;
        py.detach(|| self.sender.blocking_send(event)).py_err()
    }

    /// Calls `callback(True)` once the queue has room, or `callback(False)`
    /// once the client has gone; on the server's callback thread.
    fn when_ready(&self, callback: Py<PyAny>) -> PyResult<()> {
        let dispatcher = self.dispatcher.clone();
        self.sender.when_ready(move |has_room| {
            dispatcher.submit(move |py| callback.call1(py, (has_room,)).map(drop));
        });
        Ok(())
    }

    /// Calls `callback()` once when the connection ends, for any reason.
    fn on_close(&self, callback: Py<PyAny>) -> PyResult<()> {
        let dispatcher = self.dispatcher.clone();
        self.sender.on_close(move || {
            dispatcher.submit(move |py| callback.call0(py).map(drop));
        });
        Ok(())
    }

    /// Ends the response normally after the queued events.
    fn close(&self) {
        self.sender.close();
    }

    /// Ends the response with `event: error` after the queued events.
    fn fail(&self) {
        self.sender.fail();
    }

    /// Whether the client has gone (or the stream was closed).
    #[getter]
    fn closed(&self) -> bool {
        self.sender.is_closed()
    }
}

/// Queues `item` on `sender` if there is room: true if queued, false if the
/// queue is full; `ClientDisconnected` once the client has gone.
pub(crate) fn try_send_item(
    sender: &tidings::StreamSender,
    item: &Bound<'_, PyAny>,
) -> PyResult<bool> {
    match sender.try_send(stream_item(item)?) {
        Ok(()) => Ok(true),
        Err(tidings::Error::QueueFull) => Ok(false),
        Err(err) => Err(crate::errors::to_py(err)),
    }
}

/// The one-time answer to a request on a route.
#[pyclass(module = "tidings._tidings", frozen)]
pub(crate) struct Reply {
    reply: tidings::Reply,
}

impl Reply {
    pub(crate) fn new(reply: tidings::Reply) -> Self {
        Reply { reply }
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
        self.reply.send(status, content_type, bytes).py_err()
    }

    /// Answers a handler that failed: with `status` and `reason` (plain
    /// text) if `status` is an HTTP error status (400–599), else 500.
    #[pyo3(signature = (status, reason))]
    fn refuse(&self, status: Option<u16>, reason: &str) -> PyResult<()> {
        self.reply.refuse(status, reason).py_err()
    }
}

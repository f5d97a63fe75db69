//! The sending end of one client's stream (`StreamSink`), driven by the
//! package's stream runner: accept or reject, queue events with
//! backpressure, learn when the client leaves.

use pyo3::prelude::*;

use crate::convert::stream_item;
use crate::dispatch::Dispatcher;
use crate::errors::IntoPyResult;

/// The sending end of one client's event stream, driven by the package's
/// stream runner; all calls are safe from any thread.
#[pyclass(module = "tidings._tidings", frozen)]
pub(crate) struct StreamSink {
    inner: tidings::StreamSender,
    dispatcher: Dispatcher,
}

impl StreamSink {
    pub(crate) fn new(inner: tidings::StreamSender, dispatcher: Dispatcher) -> Self {
        StreamSink { inner, dispatcher }
    }
}

#[pymethods]
impl StreamSink {
    /// Starts the `200` event-stream response now.
    fn accept(&self) -> PyResult<()> {
        self.inner.accept();
        Ok(())
    }

    /// Answers with `status` (400–599) and a plain-text `message` instead of
    /// a stream; only before anything was sent.
    pub(crate) fn reject(&self, status: u16, message: String) -> PyResult<()> {
        self.inner.reject(status, message).py_err()
    }

    /// Answers a handler that failed before anything was sent: with `status`
    /// and `reason` if `status` is an HTTP error status (400–599), else 500.
    #[pyo3(signature = (status, reason))]
    fn refuse(&self, status: Option<u16>, reason: &str) -> PyResult<()> {
        self.inner.refuse(status, reason).py_err()
    }

    /// Queues `item` if there is room: True if queued, False if the queue is
    /// full. Raises ClientDisconnected once the client has gone.
    fn try_send(&self, item: &Bound<'_, PyAny>) -> PyResult<bool> {
        try_send_item(&self.inner, item)
    }

    /// Queues `item`, blocking this (non-asyncio) thread while the queue is
    /// full, with the GIL released.
    fn send_blocking(&self, py: Python<'_>, item: &Bound<'_, PyAny>) -> PyResult<()> {
        let event = stream_item(item)?;
        py.detach(|| self.inner.blocking_send(event)).py_err()
    }

    /// Calls `callback(True)` once the queue has room, or `callback(False)`
    /// once the client has gone; on the server's callback thread.
    fn when_ready(&self, callback: Py<PyAny>) -> PyResult<()> {
        let dispatcher = self.dispatcher.clone();
        self.inner.when_ready(move |has_room| {
            dispatcher.submit(move |py| callback.call1(py, (has_room,)).map(drop));
        });
        Ok(())
    }

    /// Calls `callback()` once when the connection ends, for any reason.
    fn on_close(&self, callback: Py<PyAny>) -> PyResult<()> {
        let dispatcher = self.dispatcher.clone();
        self.inner.on_close(move || {
            dispatcher.submit(move |py| callback.call0(py).map(drop));
        });
        Ok(())
    }

    /// Ends the response normally after the queued events.
    fn close(&self) {
        self.inner.close();
    }

    /// Ends the response with `event: error` after the queued events.
    fn fail(&self) {
        self.inner.fail();
    }

    /// Whether the client has gone (or the stream was closed).
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
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

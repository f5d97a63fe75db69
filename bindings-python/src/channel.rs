//! `tidings.Channel`: publish from any thread.

use pyo3::prelude::*;

use crate::convert::{build, Event};
use crate::dispatch::Dispatcher;
use crate::errors::{ConfigError, IntoPyResult};
use crate::listen::Listener;
use crate::reply::Verdict;
use crate::request::Request;
use crate::server::BUSY;

/// A broadcast channel: every `publish` reaches every current subscriber.
#[pyclass(module = "tidings._tidings", frozen)]
pub(crate) struct Channel {
    inner: tidings::Channel,
    dispatcher: Dispatcher,
}

impl Channel {
    pub(crate) fn new(inner: tidings::Channel, dispatcher: Dispatcher) -> Self {
        Channel { inner, dispatcher }
    }

    /// The core channel.
    pub(crate) fn core(&self) -> &tidings::Channel {
        &self.inner
    }

    fn hook(&self, callback: Py<PyAny>) -> impl Fn(&tidings::Request) + Send + Sync + 'static {
        let dispatcher = self.dispatcher.clone();
        let callback = std::sync::Arc::new(callback);
        move |request: &tidings::Request| {
            let callback = std::sync::Arc::clone(&callback);
            let request = request.clone();
            dispatcher.submit(move |py| callback.call1(py, (Request::new(request),)).map(drop));
        }
    }
}

/// The event `publish` was given: an `Event`, or the fields to build one.
fn event_to_publish(
    data: Option<&Bound<'_, PyAny>>,
    event: Option<String>,
    id: Option<String>,
    retry: Option<&Bound<'_, PyAny>>,
    comment: Option<String>,
) -> PyResult<tidings::Event> {
    match data.map(|d| d.cast::<Event>()) {
        Some(Ok(given)) => {
            if event.is_some() || id.is_some() || retry.is_some() || comment.is_some() {
                return Err(ConfigError::new_err(
                    "publish(Event) takes no other arguments; set them on the Event",
                ));
            }
            Ok(given.get().inner.clone())
        }
        _ => build(data, event, id, retry, comment),
    }
}

#[pymethods]
impl Channel {
    /// Subscribes from Python: a `Listener` of the events after
    /// `last_event_id` (or of new events only).
    #[pyo3(signature = (last_event_id=None))]
    fn listen(&self, last_event_id: Option<&str>) -> PyResult<Listener> {
        Listener::open(&self.inner, last_event_id)
    }

    /// Publishes one event to every subscriber and into the history; returns
    /// the id it was sent with (its own or an automatic one), or None.
    ///
    /// `data`: str, UTF-8 bytes, dict or list (compact JSON), or an `Event`
    /// (then no other argument may be given). Never waits for the network.
    #[pyo3(signature = (data=None, *, event=None, id=None, retry=None, comment=None))]
    fn publish(
        &self,
        data: Option<&Bound<'_, PyAny>>,
        event: Option<String>,
        id: Option<String>,
        retry: Option<&Bound<'_, PyAny>>,
        comment: Option<String>,
    ) -> PyResult<Option<String>> {
        let built = event_to_publish(data, event, id, retry, comment)?;
        let id = self.inner.publish(built).py_err()?;
        Ok(id.map(|id| id.as_str().to_owned()))
    }

    /// Publishes like `publish`, then blocks (without the GIL) until the
    /// event is stored: at once without a broker; with one, once the broker
    /// stored it and it is in this server's history. Returns the id it is
    /// sent with, the broker's automatic id included. `timeout` in seconds;
    /// past it, BrokerError (the event may still be delivered).
    #[pyo3(signature = (data=None, *, event=None, id=None, retry=None, comment=None, timeout=None))]
    #[allow(clippy::too_many_arguments)]
    fn publish_confirmed(
        &self,
        py: Python<'_>,
        data: Option<&Bound<'_, PyAny>>,
        event: Option<String>,
        id: Option<String>,
        retry: Option<&Bound<'_, PyAny>>,
        comment: Option<String>,
        timeout: Option<f64>,
    ) -> PyResult<Option<String>> {
        let built = event_to_publish(data, event, id, retry, comment)?;
        let timeout = timeout
            .map(|seconds| tidings::duration_from_secs("timeout", seconds))
            .transpose()
            .py_err()?;
        let published = self.inner.publish_confirmed(built);
        let id = py.detach(|| published.wait(timeout)).py_err()?;
        Ok(id.map(|id| id.as_str().to_owned()))
    }

    /// The channel's path.
    #[getter]
    fn path(&self) -> &str {
        self.inner.path()
    }

    /// Current number of subscribers.
    #[getter]
    fn subscribers(&self) -> usize {
        self.inner.subscribers()
    }

    /// Events published so far.
    #[getter]
    fn events_published(&self) -> u64 {
        self.inner.events_published()
    }

    /// Events offered for replay now.
    #[getter]
    fn history_len(&self) -> usize {
        self.inner.history_len()
    }

    /// Calls `callback(request)` once for every new subscriber.
    fn on_subscribe(&self, callback: Py<PyAny>) {
        self.inner.on_subscribe(self.hook(callback));
    }

    /// Calls `callback(request, verdict)` on the server's callback thread
    /// for every client that subscribes at the channel's path; it answers
    /// `verdict` once, from any thread. `tidings.Server.authorize` wraps it.
    fn set_authorizer(&self, callback: Py<PyAny>) {
        let dispatcher = self.dispatcher.clone();
        let callback = std::sync::Arc::new(callback);
        self.inner.authorize(move |request, verdict| {
            let Some(ticket) = dispatcher.reserve() else {
                let _ = verdict.deny(503, BUSY);
                return;
            };
            let callback = std::sync::Arc::clone(&callback);
            ticket.submit(move |py| {
                let verdict = Py::new(py, Verdict::new(verdict))?;
                callback
                    .call1(py, (Request::new(request), verdict))
                    .map(drop)
            });
        });
    }

    /// Calls `callback(request)` once for every subscriber that leaves.
    fn on_unsubscribe(&self, callback: Py<PyAny>) {
        self.inner.on_unsubscribe(self.hook(callback));
    }

    fn __repr__(&self) -> String {
        format!(
            "<Channel {} subscribers={}>",
            self.inner.path(),
            self.inner.subscribers()
        )
    }
}

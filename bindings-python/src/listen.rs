//! `tidings._tidings.Listener`: a channel read from Python, for responses
//! the engine does not serve (a `ChannelResponse` under another ASGI
//! server). A publish wakes the asyncio loop through a `Wakeup`, so no
//! thread waits for the interpreter.

use std::sync::{Arc, Mutex, PoisonError};

use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::IntoPyResult;
use crate::wakeup::Wakeup;

/// An in-process subscriber of a channel.
#[pyclass(module = "tidings._tidings", frozen)]
pub(crate) struct Listener {
    /// `None` once closed.
    inner: Mutex<Option<tidings::Listener>>,
    wakeup: Arc<Wakeup>,
}

impl Listener {
    pub(crate) fn open(channel: &tidings::Channel, last_event_id: Option<&str>) -> PyResult<Self> {
        let wakeup = Arc::new(Wakeup::new()?);
        let woken = Arc::clone(&wakeup);
        let inner = channel
            .listen(last_event_id, move || woken.wake())
            .py_err()?;
        Ok(Listener {
            inner: Mutex::new(Some(inner)),
            wakeup,
        })
    }
}

#[pymethods]
impl Listener {
    /// The file descriptor that turns readable when there may be events.
    fn fileno(&self) -> i32 {
        self.wakeup.fileno()
    }

    /// The next encoded events; None if there are none yet, b"" once the
    /// listener has ended (the channel closed, or it fell too far behind).
    fn next_frames<'py>(&self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        self.wakeup.clear();
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(listener) = inner.as_mut() else {
            return Some(PyBytes::new(py, b""));
        };
        match listener.try_next() {
            tidings::Received::Frames(bytes) => Some(PyBytes::new(py, &bytes)),
            tidings::Received::Pending => None,
            tidings::Received::TooSlow | tidings::Received::Closed => {
                inner.take();
                Some(PyBytes::new(py, b""))
            }
        }
    }

    /// The channel's own keep-alive period in seconds, if it sets one.
    #[getter]
    fn keepalive(&self) -> Option<f64> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner
            .as_ref()?
            .keepalive()
            .map(|period| period.as_secs_f64())
    }

    /// Unsubscribes (idempotent).
    fn close(&self) {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }
}

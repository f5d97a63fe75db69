//! The one thread of a server that calls into Python on the engine's behalf.
//!
//! Engine threads never wait for the GIL: a stream opening, a client leaving,
//! a presence hook, all become jobs queued here, and this thread runs them
//! attached to the interpreter. A Python program holding the GIL for a while
//! delays these callbacks, never the delivery of events to other clients.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use pyo3::prelude::*;

type Job = Box<dyn FnOnce(Python<'_>) -> PyResult<()> + Send>;

/// A handle to queue jobs; cheap to clone, usable from any thread.
#[derive(Clone)]
pub(crate) struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    queue: Mutex<Option<mpsc::Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Dispatcher {
    pub(crate) fn start() -> PyResult<Self> {
        let (queue, jobs) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("tidings-python".into())
            .spawn(move || {
                for job in jobs {
                    Python::attach(|py| {
                        if let Err(err) = job(py) {
                            // A failing callback is reported like an
                            // exception in a finalizer: visible, not fatal.
                            err.write_unraisable(py, None);
                        }
                    });
                }
            })
            .map_err(|err| pyo3::exceptions::PyOSError::new_err(err.to_string()))?;
        Ok(Dispatcher {
            inner: Arc::new(Inner {
                queue: Mutex::new(Some(queue)),
                thread: Mutex::new(Some(thread)),
            }),
        })
    }

    /// Queues `job`; dropped silently once the dispatcher has shut down.
    pub(crate) fn submit(&self, job: impl FnOnce(Python<'_>) -> PyResult<()> + Send + 'static) {
        let queue = self.inner.queue.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(queue) = queue.as_ref() {
            let _ = queue.send(Box::new(job));
        }
    }

    /// Stops taking jobs; the thread ends after the queued ones, unjoined.
    pub(crate) fn close(&self) {
        self.inner
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }

    /// Runs the jobs already queued, then ends the thread and joins it. Call
    /// detached from the interpreter: the jobs need it.
    pub(crate) fn shutdown(&self) {
        self.inner
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let thread = self
            .inner
            .thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

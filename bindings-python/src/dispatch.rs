//! The one thread of a server that calls into Python on the engine's behalf.
//!
//! Engine threads never wait for the GIL: a stream opening, a client leaving,
//! a presence hook, all become jobs queued here, and this thread runs them
//! attached to the interpreter. A Python program holding the GIL for a while
//! delays these callbacks, never the delivery of events to other clients.
//!
//! New requests (stream opens, route calls) may wait here at most
//! `max_pending` at a time; beyond that they are refused at once (the caller
//! answers 503) and counted, so a stalled interpreter cannot make the queue,
//! and the requests it holds, grow without bound. Callbacks about connections
//! that already exist (closes, room in a queue, presence) are never refused:
//! their number is bounded by the connections themselves.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, ThreadId};

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
    thread_id: ThreadId,
    max_pending: usize,
    /// New requests queued and not yet run.
    pending: AtomicUsize,
    /// New requests refused because `max_pending` were waiting.
    refused: AtomicU64,
}

/// A new request's place in the queue, given back when its job has run (or
/// when the ticket is dropped unused).
pub(crate) struct Ticket {
    dispatcher: Dispatcher,
}

impl Ticket {
    /// Queues the request's job.
    pub(crate) fn submit(self, job: impl FnOnce(Python<'_>) -> PyResult<()> + Send + 'static) {
        let dispatcher = self.dispatcher.clone();
        dispatcher.submit(move |py| {
            drop(self);
            job(py)
        });
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.dispatcher.inner.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Dispatcher {
    pub(crate) fn start(max_pending: usize) -> PyResult<Self> {
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
                thread_id: thread.thread().id(),
                thread: Mutex::new(Some(thread)),
                max_pending,
                pending: AtomicUsize::new(0),
                refused: AtomicU64::new(0),
            }),
        })
    }

    /// Queues a callback about an existing connection; dropped silently once
    /// the dispatcher has shut down.
    pub(crate) fn submit(&self, job: impl FnOnce(Python<'_>) -> PyResult<()> + Send + 'static) {
        let queue = self.inner.queue.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(queue) = queue.as_ref() {
            let _ = queue.send(Box::new(job));
        }
    }

    /// A place in the queue for a new request, or `None` (counted) if
    /// `max_pending` already wait: the caller then answers 503 itself.
    pub(crate) fn reserve(&self) -> Option<Ticket> {
        let inner = &self.inner;
        if inner.pending.fetch_add(1, Ordering::AcqRel) >= inner.max_pending {
            inner.pending.fetch_sub(1, Ordering::AcqRel);
            inner.refused.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(Ticket {
            dispatcher: self.clone(),
        })
    }

    /// New requests refused so far because too many were waiting.
    pub(crate) fn refused(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }

    /// Whether the calling thread is the dispatcher's own.
    pub(crate) fn is_current(&self) -> bool {
        std::thread::current().id() == self.inner.thread_id
    }

    /// Stops taking jobs; the thread ends after the queued ones, unjoined.
    pub(crate) fn close(&self) {
        self.inner
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }

    /// Runs the jobs already queued, then ends the thread and joins it
    /// (unless called from that thread, which then ends after its current
    /// job). Call detached from the interpreter: the jobs need it.
    pub(crate) fn shutdown(&self) {
        self.close();
        if self.is_current() {
            return;
        }
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

//! Per-connection streams: one producer per client, fed through a bounded
//! queue so that a slow client slows its own producer and nobody else.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, Result};
use crate::event::Event;
use crate::frame::EventBuf;
use crate::reply::refusal;
use crate::request::Request;

/// Called once per client connection on a stream route, on an engine thread.
///
/// The implementation starts whatever produces this client's events (a task, a
/// thread, a host-language generator) and returns at once; the producer sends
/// through `stream` from any thread.
///
/// The response head waits for the handler's decision: [`StreamSender::accept`]
/// or the first send answers `200` with the event stream,
/// [`StreamSender::reject`] answers with an error status instead, and dropping
/// every sender undecided answers `204 No Content` (which tells `EventSource`
/// not to reconnect). Once accepted, the response ends when every clone of the
/// sender is dropped (or [`StreamSender::fail`] is called), and the producer
/// learns that the client left from [`StreamSender::closed`],
/// [`StreamSender::on_close`] or a failed send.
pub trait StreamHandler: Send + Sync + 'static {
    /// Opens the stream for one client.
    fn open(&self, request: Request, stream: StreamSender);
}

impl<F> StreamHandler for F
where
    F: Fn(Request, StreamSender) + Send + Sync + 'static,
{
    fn open(&self, request: Request, stream: StreamSender) {
        self(request, stream)
    }
}

/// What a stream handler decided about the response head.
pub(crate) enum Decision {
    Accept,
    Reject {
        status: http::StatusCode,
        message: String,
    },
}

/// What every clone of one stream's sender shares: the queue's sending end
/// (taken by `close`, so one call ends the stream for all of them) and the
/// pending head decision (when the last sender goes undecided, the oneshot
/// closes and the response is `204`).
struct Senders {
    tx: Mutex<Option<mpsc::Sender<Bytes>>>,
    decided: AtomicBool,
    decision: Mutex<Option<oneshot::Sender<Decision>>>,
}

impl Senders {
    fn decide(&self, decision: Decision) -> Result<()> {
        // The flag keeps the per-send cost of an accepted stream to one load.
        if self.decided.load(Ordering::Acquire) {
            return Err(Error::AlreadyAccepted);
        }
        let sender = lock(&self.decision).take();
        // Taken without a decision: the stream was closed.
        let sender = sender.ok_or(Error::Disconnected)?;
        self.decided.store(true, Ordering::Release);
        sender.send(decision).map_err(|_| Error::Disconnected)
    }

    /// The queue's sending end, unless the stream was closed.
    fn tx(&self) -> Result<mpsc::Sender<Bytes>> {
        lock(&self.tx).clone().ok_or(Error::Disconnected)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

type CloseHook = Box<dyn FnOnce() + Send>;

struct StreamState {
    /// `None` once the connection has ended and the hooks have run.
    close_hooks: Mutex<Option<Vec<CloseHook>>>,
    failed: AtomicBool,
    /// The engine's runtime, for waits started by hosts without one.
    runtime: tokio::runtime::Handle,
}

/// The sending half of one client's event stream. Clone it to send from
/// several places; it is `Send` and `Sync`.
#[derive(Clone)]
pub struct StreamSender {
    senders: Arc<Senders>,
    state: Arc<StreamState>,
}

impl fmt::Debug for StreamSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamSender")
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// The `event: error` a failed producer's response ends with. It names no
/// cause: tracebacks and messages stay in the server's log.
pub(crate) const ERROR_EVENT: &[u8] = b"event: error\ndata: stream failed\n\n";

/// Creates the two ends of a stream whose queue holds `capacity` events, and
/// the receiver of the handler's head decision; waits start on `runtime`
/// (the engine's).
pub(crate) fn stream_pair(
    capacity: usize,
    runtime: tokio::runtime::Handle,
) -> (StreamSender, StreamReceiver, oneshot::Receiver<Decision>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let (decision_tx, decision_rx) = oneshot::channel();
    let state = Arc::new(StreamState {
        close_hooks: Mutex::new(Some(Vec::new())),
        failed: AtomicBool::new(false),
        runtime,
    });
    let receiver = StreamReceiver {
        rx,
        state: Arc::clone(&state),
        finished: false,
    };
    let senders = Arc::new(Senders {
        tx: Mutex::new(Some(tx)),
        decided: AtomicBool::new(false),
        decision: Mutex::new(Some(decision_tx)),
    });
    (StreamSender { senders, state }, receiver, decision_rx)
}

impl StreamSender {
    /// Answers the request with `200` and the event stream now, before any
    /// event is sent. Sending accepts implicitly; calling it again does nothing.
    pub fn accept(&self) {
        let _ = self.senders.decide(Decision::Accept);
    }

    /// Answers the request with `status` (400–599) and `message` as plain
    /// text instead of a stream, and closes the stream. Only possible before
    /// the stream was accepted: fails with [`Error::AlreadyAccepted`] after,
    /// with [`Error::Disconnected`] if the client has gone or the stream was
    /// closed, and with [`Error::InvalidStatus`] for a status outside
    /// 400–599 (the stream is then still usable).
    pub fn reject(&self, status: u16, message: impl Into<String>) -> Result<()> {
        let status = http::StatusCode::from_u16(status)
            .ok()
            .filter(|s| s.is_client_error() || s.is_server_error())
            .ok_or(Error::InvalidStatus(status))?;
        self.senders.decide(Decision::Reject {
            status,
            message: message.into(),
        })?;
        self.close();
        Ok(())
    }

    /// Answers a producer that failed before its stream began: with `status`
    /// and `reason` (plain text) when its error names an HTTP error status
    /// (400–599), else `500 stream handler failed`. The cause is for the
    /// host's log, never the client. Errors as [`reject`](Self::reject).
    pub fn refuse(&self, status: Option<u16>, reason: &str) -> Result<()> {
        let (status, text) = refusal(status, reason, "stream handler failed\n");
        self.reject(status, text)
    }

    /// Sends `event`, waiting while the client's queue is full. Fails with
    /// [`Error::Disconnected`] once the client has gone or the stream was
    /// closed.
    pub async fn send(&self, event: Event) -> Result<()> {
        self.accept();
        let tx = self.senders.tx()?;
        tx.send(event.encode())
            .await
            .map_err(|_| Error::Disconnected)
    }

    /// Sends `event` if the queue has room: [`Error::QueueFull`] if not,
    /// [`Error::Disconnected`] if the client has gone or the stream was closed.
    pub fn try_send(&self, event: Event) -> Result<()> {
        self.accept();
        let tx = lock(&self.senders.tx);
        let tx = tx.as_ref().ok_or(Error::Disconnected)?;
        tx.try_send(event.encode()).map_err(|err| match err {
            mpsc::error::TrySendError::Full(_) => Error::QueueFull,
            mpsc::error::TrySendError::Closed(_) => Error::Disconnected,
        })
    }

    /// Sends `event`, blocking the calling thread while the queue is full. For
    /// plain threads (C hosts, worker threads) and `spawn_blocking` threads.
    /// On a multi-thread runtime's worker it blocks in place (the runtime
    /// hands the worker's other tasks to another thread, as
    /// `tokio::task::block_in_place` does). On a current-thread runtime, where
    /// blocking would stall every task, it fails with
    /// [`Error::BlockingInAsync`]: use [`send`](Self::send) there.
    pub fn blocking_send(&self, event: Event) -> Result<()> {
        let send = || {
            self.accept();
            let tx = self.senders.tx()?;
            tx.blocking_send(event.encode())
                .map_err(|_| Error::Disconnected)
        };
        match tokio::runtime::Handle::try_current().map(|handle| handle.runtime_flavor()) {
            Err(_) => send(),
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(send),
            // A current-thread runtime's own thread and its blocking threads
            // look alike from here; refuse rather than risk stalling it.
            Ok(_) => Err(Error::BlockingInAsync),
        }
    }

    /// Calls `ready(true)` on an engine thread once the queue has room, or
    /// `ready(false)` once the client has gone (or the stream was closed):
    /// backpressure for hosts whose producers cannot await Rust futures (an
    /// asyncio or Node event loop). Then `try_send` succeeds unless another
    /// producer took the room first.
    pub fn when_ready(&self, ready: impl FnOnce(bool) + Send + 'static) {
        let tx = self.senders.tx().ok();
        self.state.runtime.spawn(async move {
            // The permit is released at once: it only proves there is room.
            let has_room = match tx {
                Some(tx) => tx.reserve().await.is_ok(),
                None => false,
            };
            ready(has_room);
        });
    }

    /// Resolves once the client has gone (or the stream was closed).
    pub async fn closed(&self) {
        if let Ok(tx) = self.senders.tx() {
            tx.closed().await
        }
    }

    /// Whether the client has gone (or the stream was closed).
    pub fn is_closed(&self) -> bool {
        lock(&self.senders.tx)
            .as_ref()
            .is_none_or(mpsc::Sender::is_closed)
    }

    /// Runs `hook` once when this stream's connection ends, for whatever
    /// reason; at once if it already has. Runs on an engine thread (or the
    /// caller's, in the latter case).
    pub fn on_close(&self, hook: impl FnOnce() + Send + 'static) {
        let mut hooks = lock(&self.state.close_hooks);
        match hooks.as_mut() {
            Some(pending) => pending.push(Box::new(hook)),
            None => {
                drop(hooks);
                hook();
            }
        }
    }

    /// Ends the response normally after the events already queued, for this
    /// sender and every clone of it: later sends fail with
    /// [`Error::Disconnected`]. Closed before any decision, the response is
    /// `204 No Content`. Idempotent.
    pub fn close(&self) {
        lock(&self.senders.tx).take();
        lock(&self.senders.decision).take();
    }

    /// Ends the response with `event: error` after the events already
    /// queued, like [`close`](Self::close). Use it when the producer failed;
    /// log the cause yourself, it is not sent to the client.
    pub fn fail(&self) {
        self.accept();
        self.state.failed.store(true, Ordering::Release);
        self.close();
    }
}

/// The receiving half, owned by the connection's response body.
pub(crate) struct StreamReceiver {
    rx: mpsc::Receiver<Bytes>,
    state: Arc<StreamState>,
    finished: bool,
}

/// Most queued events taken per wake-up.
const MAX_BATCH: usize = 64;

impl StreamReceiver {
    /// The next queued events; at the end, the error event if the producer
    /// failed, then `None`.
    pub(crate) fn poll_batch(&mut self, cx: &mut Context<'_>) -> Poll<Option<EventBuf>> {
        if self.finished {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(first)) => {
                let mut more = Vec::new();
                while more.len() + 1 < MAX_BATCH {
                    match self.rx.try_recv() {
                        Ok(bytes) => more.push(bytes),
                        Err(_) => break,
                    }
                }
                if more.is_empty() {
                    return Poll::Ready(Some(EventBuf::one(first)));
                }
                more.insert(0, first);
                Poll::Ready(Some(EventBuf::gather(more)))
            }
            Poll::Ready(None) => {
                self.finished = true;
                if self.state.failed.load(Ordering::Acquire) {
                    Poll::Ready(Some(EventBuf::one(Bytes::from_static(ERROR_EVENT))))
                } else {
                    Poll::Ready(None)
                }
            }
        }
    }
}

impl Drop for StreamReceiver {
    fn drop(&mut self) {
        // Close first so a producer woken by a hook already sees the stream gone.
        self.rx.close();
        let hooks = lock(&self.state.close_hooks).take();
        for hook in hooks.into_iter().flatten() {
            hook();
        }
    }
}

/// Adapts an async Rust function into a [`StreamHandler`]: the future runs on
/// the engine's runtime and is dropped the moment the client leaves.
pub(crate) struct AsyncStream<F>(pub(crate) F);

impl<F, Fut, E> StreamHandler for AsyncStream<F>
where
    F: Fn(Request, StreamSender) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: fmt::Display + Send + 'static,
{
    fn open(&self, request: Request, stream: StreamSender) {
        let path = request.path().to_owned();
        stream.accept();
        // Holding a clone keeps the response open until the outcome is known,
        // so a failure is reported as `event: error`, not as a normal end.
        let guard = stream.clone();
        // The producer runs as its own task so that a panic in it is caught
        // (as a JoinError) and reported like an error.
        let producer = tokio::spawn((self.0)(request, stream));
        let cancel = producer.abort_handle();
        tokio::spawn(async move {
            tokio::select! {
                outcome = producer => match outcome {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => {
                        tracing::warn!(%path, error = %err, "stream producer failed");
                        guard.fail();
                    }
                    Err(join) => {
                        tracing::error!(%path, panicked = join.is_panic(), "stream producer died");
                        guard.fail();
                    }
                },
                () = guard.closed() => {
                    cancel.abort();
                    tracing::debug!(%path, "client left; stream producer cancelled");
                }
            }
        });
    }
}

//! Requests that no route serves, answered by the host's application
//! (an ASGI app, a web framework) mounted with
//! [`Server::mount`](crate::Server::mount).
//!
//! The request body streams in and the response streams out, each with
//! backpressure. Or the application, once it has decided who may have the
//! connection (after its authentication, say), hands it to a channel or a
//! stream, and the engine serves it from then on.

use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::StatusCode;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::oneshot;

use crate::batch;
use crate::channel::Channel;
use crate::error::{Error, Result};
use crate::request::Request;
use crate::stream::{stream_pair, StreamReceiver, StreamSender};

/// Answers every request that no route of the server serves. Called on an
/// engine thread; it must return at once, and answers through the
/// [`Exchange`] later, from any thread. An exchange dropped unanswered
/// answers `500`.
pub trait AppHandler: Send + Sync + 'static {
    /// Takes one request.
    fn call(&self, exchange: Exchange);
}

impl<F> AppHandler for F
where
    F: Fn(Exchange) + Send + Sync + 'static,
{
    fn call(&self, exchange: Exchange) {
        self(exchange)
    }
}

/// Bytes of response body queued beyond which a writer should wait
/// ([`Exchange::write`] says so) until [`Exchange::when_writable`] calls back.
pub const WRITE_HIGH_WATER: usize = 64 * 1024;

/// What reading the request body gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyRead {
    /// A chunk of the body; `last` when nothing follows it.
    Chunk {
        /// The bytes.
        data: Bytes,
        /// Whether this chunk ends the body.
        last: bool,
    },
    /// The body has ended (at once, for a request without one).
    End,
    /// Nothing has arrived yet: wait with [`Exchange::when_readable`].
    Pending,
    /// The client left, or broke the body's framing, before it ended.
    Disconnected,
}

/// One request for the application, and its answer. Cheap to clone; usable
/// from any thread. When the last clone is dropped, an unanswered request
/// gets `500` and an unfinished response is cut short, as by
/// [`fail`](Self::fail).
///
/// The response is sent the way ASGI describes it: [`start`](Self::start)
/// gives the status and headers, which leave with the first
/// [`write`](Self::write); the write with `more = false` ends the response.
/// A single write that ends the response sends it with a `Content-Length`.
/// Or, instead of writing, [`subscribe`](Self::subscribe) or
/// [`stream`](Self::stream) hand the connection to the engine.
#[derive(Clone)]
pub struct Exchange {
    handle: Arc<Handle>,
}

/// The application's side of the exchange; the connection's side (the
/// close guard, the reader task) holds `Shared` without it.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        fail(&self.shared);
    }
}

impl fmt::Debug for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exchange")
            .field("method", &self.request().method())
            .field("path", &self.request().path())
            .field("closed", &self.is_closed())
            .finish()
    }
}

type Hook = Box<dyn FnOnce() + Send>;
type WritableHook = Box<dyn FnOnce(bool) + Send>;

struct Shared {
    request: Request,
    inbound: Mutex<Inbound>,
    outbound: Mutex<Outbound>,
    /// `None` once the exchange is over and its hooks have run.
    close_hooks: Mutex<Option<Vec<Hook>>>,
    runtime: tokio::runtime::Handle,
}

struct Inbound {
    /// `None` while a reader task holds it, and once the body has ended.
    body: Option<Incoming>,
    /// What a reader task read, for the next `try_read`.
    ready: Option<BodyRead>,
    /// How the body ended, once it has.
    ended: Option<BodyRead>,
    /// Called when a reader task finishes.
    waiters: Vec<Hook>,
}

/// The status and headers given by `start`, not yet sent.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
}

struct Outbound {
    head: Option<ResponseHead>,
    /// Where the answer goes; `None` once answered.
    answer: Option<oneshot::Sender<Answer>>,
    /// The streamed body's queue, once the response streams.
    flow: Option<Arc<Mutex<Flow>>>,
    /// Whether the response has ended (or failed).
    finished: bool,
}

impl Outbound {
    /// Answers with the head given to `start` and a body streamed from
    /// `flow`, which later writes go on filling. Only once a head is set
    /// and nothing has answered yet.
    fn respond(&mut self, flow: Flow, runtime: &tokio::runtime::Handle) -> Result<()> {
        let head = self.head.take().ok_or(Error::ResponseNotStarted)?;
        let answer = self.answer.take().ok_or(Error::ResponseStarted)?;
        if answer.is_closed() {
            return Err(Error::Disconnected);
        }
        let flow = Arc::new(Mutex::new(Flow {
            runtime: Some(runtime.clone()),
            ..flow
        }));
        self.flow = Some(Arc::clone(&flow));
        // Held until the thread's batch ends, if it holds its wake-ups. A
        // client that leaves before then is a client that left after the
        // answer.
        batch::wake_now_or_held(Some(runtime), move || {
            let _ = answer.send(Answer::Respond {
                head,
                body: AppBody { flow },
            });
        });
        Ok(())
    }
}

/// How the application answered.
pub(crate) enum Answer {
    /// A response whose body is the `AppBody`.
    Respond { head: ResponseHead, body: AppBody },
    /// The connection becomes a subscriber of the channel.
    Subscribe {
        head: Option<ResponseHead>,
        channel: Channel,
    },
    /// The connection becomes an event stream fed by the host.
    Stream {
        head: Option<ResponseHead>,
        receiver: StreamReceiver,
    },
    /// The application failed before its response started: `500`.
    Failed,
    /// The application failed after its response started: close the
    /// connection without answering.
    Abort,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A new exchange for `request`, the receiver of its answer, and the guard
/// whose drop (the connection ended, or the response is done) tells the
/// application the client is gone.
pub(crate) fn exchange(
    request: Request,
    body: Incoming,
    runtime: tokio::runtime::Handle,
) -> (Exchange, oneshot::Receiver<Answer>, CloseGuard) {
    let (answer, answered) = oneshot::channel();
    let ended = body.is_end_stream().then_some(BodyRead::End);
    let shared = Arc::new(Shared {
        request,
        inbound: Mutex::new(Inbound {
            body: ended.is_none().then_some(body),
            ready: None,
            ended,
            waiters: Vec::new(),
        }),
        outbound: Mutex::new(Outbound {
            head: None,
            answer: Some(answer),
            flow: None,
            finished: false,
        }),
        close_hooks: Mutex::new(Some(Vec::new())),
        runtime,
    });
    let guard = CloseGuard(Arc::clone(&shared));
    let exchange = Exchange {
        handle: Arc::new(Handle { shared }),
    };
    (exchange, answered, guard)
}

/// Runs an exchange's close hooks when dropped.
pub(crate) struct CloseGuard(Arc<Shared>);

impl Drop for CloseGuard {
    fn drop(&mut self) {
        let hooks = lock(&self.0.close_hooks).take();
        for hook in hooks.into_iter().flatten() {
            hook();
        }
    }
}

/// Polls the request body for its next chunk, skipping empty frames and
/// trailers.
fn poll_body(body: &mut Incoming, cx: &mut Context<'_>) -> Poll<BodyRead> {
    loop {
        return match Pin::new(&mut *body).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => Poll::Ready(BodyRead::End),
            Poll::Ready(Some(Err(err))) => {
                tracing::debug!(error = %err, "request body ended early");
                Poll::Ready(BodyRead::Disconnected)
            }
            Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) if !data.is_empty() => Poll::Ready(BodyRead::Chunk {
                    data,
                    last: body.is_end_stream(),
                }),
                _ => continue,
            },
        };
    }
}

impl Inbound {
    /// Takes `read` as the next result, noting when it ends the body.
    fn settle(&mut self, read: BodyRead) -> BodyRead {
        match &read {
            BodyRead::Chunk { last: true, .. } => self.finish(BodyRead::End),
            BodyRead::End | BodyRead::Disconnected => self.finish(read.clone()),
            BodyRead::Chunk { .. } | BodyRead::Pending => {}
        }
        read
    }

    fn finish(&mut self, how: BodyRead) {
        self.body = None;
        self.ended.get_or_insert(how);
    }
}

fn fail(shared: &Shared) {
    let mut outbound = lock(&shared.outbound);
    if outbound.finished {
        return;
    }
    outbound.finished = true;
    let started = outbound.head.take().is_some();
    if let Some(answer) = outbound.answer.take() {
        let _ = answer.send(if started {
            Answer::Abort
        } else {
            Answer::Failed
        });
    }
    if let Some(flow) = &outbound.flow {
        let mut flow = lock(flow);
        flow.end = Some(FlowEnd::Aborted);
        flow.wake();
    }
}

impl Exchange {
    fn shared(&self) -> &Arc<Shared> {
        &self.handle.shared
    }

    /// The request.
    pub fn request(&self) -> &Request {
        &self.shared().request
    }

    // The request body ------------------------------------------------------

    /// The next chunk of the request body if it has arrived. The first read
    /// is what sends `100 Continue` to a client that asked for it.
    pub fn try_read(&self) -> BodyRead {
        let mut inbound = lock(&self.shared().inbound);
        if let Some(read) = inbound.ready.take() {
            return inbound.settle(read);
        }
        let Some(body) = inbound.body.as_mut() else {
            // Ended, or a reader task is waiting for the next chunk.
            return inbound.ended.clone().unwrap_or(BodyRead::Pending);
        };
        // Polling with a no-op waker only asks hyper for more; the reader
        // task of `when_readable` registers the waker that matters.
        match poll_body(body, &mut Context::from_waker(Waker::noop())) {
            Poll::Ready(read) => inbound.settle(read),
            Poll::Pending => BodyRead::Pending,
        }
    }

    /// Calls `ready` once [`try_read`](Self::try_read) has something new to
    /// say (a chunk, the end, or that the client left): at once if it
    /// already has, else on an engine thread.
    pub fn when_readable(&self, ready: impl FnOnce() + Send + 'static) {
        let mut inbound = lock(&self.shared().inbound);
        if inbound.ready.is_some() || inbound.ended.is_some() {
            drop(inbound);
            ready();
            return;
        }
        inbound.waiters.push(Box::new(ready));
        let Some(mut body) = inbound.body.take() else {
            return; // a reader task is already waiting
        };
        drop(inbound);
        let shared = Arc::clone(self.shared());
        self.shared().runtime.spawn(async move {
            let read = std::future::poll_fn(|cx| poll_body(&mut body, cx)).await;
            let waiters = {
                let mut inbound = lock(&shared.inbound);
                inbound.body = Some(body);
                inbound.ready = Some(read);
                std::mem::take(&mut inbound.waiters)
            };
            for waiter in waiters {
                waiter();
            }
        });
    }

    // The response ----------------------------------------------------------

    /// Sets the response's status (200–599) and headers; they leave with
    /// the first [`write`](Self::write). Fails with
    /// [`Error::ResponseStarted`] if called twice, [`Error::InvalidStatus`]
    /// or [`Error::InvalidHeader`] for values that are not valid HTTP, and
    /// [`Error::Disconnected`] once the client has gone.
    pub fn start<N, V>(&self, status: u16, headers: impl IntoIterator<Item = (N, V)>) -> Result<()>
    where
        N: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let status = StatusCode::from_u16(status)
            .ok()
            .filter(|s| s.as_u16() >= 200)
            .ok_or(Error::InvalidStatus(status))?;
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let (name, value) = (name.as_ref(), value.as_ref());
            let invalid = || Error::InvalidHeader(String::from_utf8_lossy(name).into_owned());
            let name = HeaderName::from_bytes(name).map_err(|_| invalid())?;
            let value = HeaderValue::from_bytes(value).map_err(|_| invalid())?;
            map.append(name, value);
        }
        if self.is_closed() {
            return Err(Error::Disconnected);
        }
        let mut outbound = lock(&self.shared().outbound);
        if outbound.head.is_some() || outbound.answer.is_none() {
            return Err(Error::ResponseStarted);
        }
        outbound.head = Some(ResponseHead {
            status,
            headers: map,
        });
        Ok(())
    }

    /// Queues `data` for the response body; `more = false` ends the
    /// response after it. Returns whether the caller should wait (with
    /// [`when_writable`](Self::when_writable)) before writing more: the
    /// queue holds [`WRITE_HIGH_WATER`] bytes or more. Fails with
    /// [`Error::ResponseNotStarted`] before [`start`](Self::start),
    /// [`Error::AlreadyAnswered`] after the response ended, and
    /// [`Error::Disconnected`] once the client has gone.
    pub fn write(&self, data: Bytes, more: bool) -> Result<bool> {
        let mut outbound = lock(&self.shared().outbound);
        if outbound.finished {
            return Err(Error::AlreadyAnswered);
        }
        if self.is_closed() {
            return Err(Error::Disconnected);
        }
        if let Some(flow) = outbound.flow.clone() {
            let mut flow = lock(&flow);
            if flow.gone {
                return Err(Error::Disconnected);
            }
            if !more {
                outbound.finished = true;
                flow.end = Some(FlowEnd::Finished);
            }
            flow.push(data);
            return Ok(flow.queued >= WRITE_HIGH_WATER);
        }
        if outbound.head.is_none() {
            return Err(Error::ResponseNotStarted);
        }
        // Filled before it is sent: a response that ends with this write
        // then goes out with its length.
        let mut flow = Flow::default();
        flow.push(data);
        if !more {
            outbound.finished = true;
            flow.end = Some(FlowEnd::Finished);
        }
        let must_wait = flow.queued >= WRITE_HIGH_WATER;
        outbound.respond(flow, &self.shared().runtime)?;
        Ok(must_wait)
    }

    /// Sends the status and headers given to [`start`](Self::start) now,
    /// before any body, as a streamed response (no `Content-Length` unless
    /// the headers carry one): a stream that may stay idle for a while (an
    /// event stream) is then open for its client at once. Does nothing
    /// unless the response has started and nothing was written yet.
    pub fn flush_head(&self) -> Result<()> {
        let mut outbound = lock(&self.shared().outbound);
        if outbound.head.is_none() || outbound.answer.is_none() {
            return Ok(());
        }
        outbound.respond(Flow::default(), &self.shared().runtime)
    }

    /// Calls `ready(true)` once the response's queue is below
    /// [`WRITE_HIGH_WATER`], or `ready(false)` once the client has gone: at
    /// once if either holds already, else on an engine thread.
    pub fn when_writable(&self, ready: impl FnOnce(bool) + Send + 'static) {
        let flow = lock(&self.shared().outbound).flow.clone();
        let Some(flow) = flow else {
            ready(!self.is_closed());
            return;
        };
        let mut state = lock(&flow);
        if state.gone || state.queued < WRITE_HIGH_WATER {
            let open = !state.gone;
            drop(state);
            ready(open);
            return;
        }
        state.writable.push(Box::new(ready));
    }

    /// Ends the response after what was queued, as a `write` of nothing
    /// with `more = false` does.
    pub fn finish(&self) -> Result<()> {
        self.write(Bytes::new(), false).map(drop)
    }

    /// The application failed: before the response started, the client
    /// gets `500`; after, the connection is closed without finishing the
    /// response (the client sees it cut short, never a complete answer).
    /// Idempotent, and a no-op once the response has ended.
    pub fn fail(&self) {
        fail(&self.handle.shared);
    }

    /// Hands the connection to `channel`: it becomes one of its
    /// subscribers, served by the engine, resumed from its `Last-Event-ID`
    /// as any subscriber is. The status and headers given to
    /// [`start`](Self::start), if any, replace the defaults (except the
    /// framing headers, which the engine owns). Fails with
    /// [`Error::ResponseStarted`] once the response has been written or
    /// handed over, and [`Error::Disconnected`] if the client has gone.
    pub fn subscribe(&self, channel: &Channel) -> Result<()> {
        let channel = channel.clone();
        self.hand_over(|head| Answer::Subscribe { head, channel })
    }

    /// Hands the connection to a stream the host feeds: the response
    /// becomes an event stream (accepted: `200` unless
    /// [`start`](Self::start) said otherwise) and its events come from the
    /// returned sender, with keep-alives and disconnect detection done by
    /// the engine. Errors as [`subscribe`](Self::subscribe).
    pub fn stream(&self, queue: usize) -> Result<StreamSender> {
        let runtime = self.shared().runtime.clone();
        let (sender, receiver, _decision) = stream_pair(queue.max(1), runtime);
        sender.accept();
        self.hand_over(|head| Answer::Stream { head, receiver })?;
        Ok(sender)
    }

    fn hand_over(&self, answer: impl FnOnce(Option<ResponseHead>) -> Answer) -> Result<()> {
        let mut outbound = lock(&self.shared().outbound);
        let sender = outbound.answer.take().ok_or(Error::ResponseStarted)?;
        outbound.finished = true;
        let head = outbound.head.take();
        sender.send(answer(head)).map_err(|_| Error::Disconnected)
    }

    /// Whether the response is complete: ended, failed, or handed to a
    /// channel or a stream.
    pub fn is_answered(&self) -> bool {
        lock(&self.shared().outbound).finished
    }

    // The connection ---------------------------------------------------------

    /// Whether the exchange is over: the client has gone, or the response
    /// has been sent (or handed over) in full.
    pub fn is_closed(&self) -> bool {
        lock(&self.shared().close_hooks).is_none()
    }

    /// Runs `hook` once the exchange is over (see
    /// [`is_closed`](Self::is_closed)): on an engine thread, or at once on
    /// the caller's if it already is.
    pub fn on_close(&self, hook: impl FnOnce() + Send + 'static) {
        let mut hooks = lock(&self.shared().close_hooks);
        match hooks.as_mut() {
            Some(pending) => pending.push(Box::new(hook)),
            None => {
                drop(hooks);
                hook();
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlowEnd {
    Finished,
    Aborted,
}

/// A streamed response body's queue, shared by the exchange (which writes)
/// and the body (which hyper polls).
#[derive(Default)]
struct Flow {
    chunks: VecDeque<Bytes>,
    /// Bytes in `chunks`.
    queued: usize,
    end: Option<FlowEnd>,
    /// The body's task, waiting for a chunk.
    waker: Option<Waker>,
    /// Writers waiting for the queue to drain.
    writable: Vec<WritableHook>,
    /// The body was dropped: the client has gone or the response was sent.
    gone: bool,
    /// The engine's runtime, once the body is answered: held wake-ups of
    /// the body's task are handed to it.
    runtime: Option<tokio::runtime::Handle>,
}

impl Flow {
    fn push(&mut self, data: Bytes) {
        if !data.is_empty() {
            self.queued += data.len();
            self.chunks.push_back(data);
        }
        self.wake();
    }

    fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            batch::wake_now_or_held(self.runtime.as_ref(), move || waker.wake());
        }
    }
}

/// The body of a response the application writes.
pub(crate) struct AppBody {
    flow: Arc<Mutex<Flow>>,
}

/// Why an application's response body was cut short.
#[derive(Debug, thiserror::Error)]
#[error("the application failed while sending its response")]
pub(crate) struct AppFailed;

impl Body for AppBody {
    type Data = Bytes;
    type Error = AppFailed;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, AppFailed>>> {
        let mut flow = lock(&self.flow);
        if let Some(chunk) = flow.chunks.pop_front() {
            let before = flow.queued;
            flow.queued -= chunk.len();
            let writers = if before >= WRITE_HIGH_WATER && flow.queued < WRITE_HIGH_WATER {
                std::mem::take(&mut flow.writable)
            } else {
                Vec::new()
            };
            drop(flow);
            for writer in writers {
                writer(true);
            }
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        match flow.end {
            Some(FlowEnd::Finished) => Poll::Ready(None),
            Some(FlowEnd::Aborted) => Poll::Ready(Some(Err(AppFailed))),
            None => {
                flow.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let flow = lock(&self.flow);
        flow.chunks.is_empty() && flow.end == Some(FlowEnd::Finished)
    }

    fn size_hint(&self) -> SizeHint {
        let flow = lock(&self.flow);
        if flow.end == Some(FlowEnd::Finished) {
            SizeHint::with_exact(flow.queued as u64)
        } else {
            SizeHint::default()
        }
    }
}

impl Drop for AppBody {
    fn drop(&mut self) {
        let writers = {
            let mut flow = lock(&self.flow);
            flow.gone = true;
            flow.chunks.clear();
            std::mem::take(&mut flow.writable)
        };
        for writer in writers {
            writer(false);
        }
    }
}

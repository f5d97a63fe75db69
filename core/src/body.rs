//! Response bodies: fixed bodies for pages and errors, and the endless event
//! stream body that drains a channel subscription or a stream queue, sends
//! keep-alives, and ends on shutdown.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::app::{AppBody, AppFailed, CloseGuard};
use crate::channel::{Lagged, Subscription, RESET_EVENT};
use crate::frame::EventBuf;
use crate::shutdown::Shutdown;
use crate::stats::Counters;
use crate::stream::StreamReceiver;

/// What every event-stream body needs from the server: its counters, its
/// stop signal, and the server-wide keep-alive period.
#[derive(Clone)]
pub(crate) struct BodyContext {
    pub(crate) counters: Arc<Counters>,
    pub(crate) shutdown: Arc<Shutdown>,
    pub(crate) keepalive: Option<Duration>,
}

/// Why an event stream was cut short.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StreamEnd {
    #[error("subscriber fell too far behind and was disconnected")]
    TooSlow,
    #[error("reading the file failed: {0}")]
    File(#[source] io::Error),
    #[error(transparent)]
    App(#[from] AppFailed),
}

/// Where an event stream's events come from.
pub(crate) enum Source {
    Channel(Subscription),
    Stream(StreamReceiver),
}

const KEEPALIVE_COMMENT: &[u8] = b":\n\n";

struct KeepAlive {
    period: Duration,
    timer: Pin<Box<Sleep>>,
    last_write: Instant,
}

/// The body of an event-stream response.
pub(crate) struct SseBody {
    source: Source,
    prelude: Option<Bytes>,
    keepalive: Option<KeepAlive>,
    stopping: Pin<Box<WaitForCancellationFutureOwned>>,
    /// When the subscriber's token expires, the stream ends.
    expiry: Option<Pin<Box<Sleep>>>,
    context: BodyContext,
    draining: bool,
    done: bool,
}

impl SseBody {
    pub(crate) fn new(source: Source, context: &BodyContext) -> Self {
        let (prelude, keepalive) = match &source {
            Source::Channel(sub) => (
                sub.needs_reset().then_some(Bytes::from_static(RESET_EVENT)),
                sub.keepalive().or(context.keepalive),
            ),
            Source::Stream(_) => (None, context.keepalive),
        };
        let keepalive = keepalive.filter(|p| !p.is_zero()).map(|period| KeepAlive {
            period,
            timer: Box::pin(tokio::time::sleep(period)),
            last_write: Instant::now(),
        });
        context
            .counters
            .streams_open
            .fetch_add(1, Ordering::Relaxed);
        SseBody {
            source,
            prelude,
            keepalive,
            stopping: Box::pin(context.shutdown.stopping_owned()),
            expiry: None,
            context: context.clone(),
            draining: false,
            done: false,
        }
    }

    /// Ends the stream at `until`, if given: nothing published later is
    /// delivered.
    pub(crate) fn ending_at(mut self, until: Option<std::time::Instant>) -> Self {
        self.expiry = until.map(|until| Box::pin(tokio::time::sleep_until(until.into())));
        self
    }

    fn poll_keepalive(&mut self, cx: &mut Context<'_>) -> Poll<Bytes> {
        let Some(keepalive) = &mut self.keepalive else {
            return Poll::Pending;
        };
        // The timer is not reset on every event (that would cost a timer-wheel
        // update per delivery); when it fires early it is re-armed instead.
        while keepalive.timer.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            let due = keepalive.last_write + keepalive.period;
            if due > now {
                keepalive.timer.as_mut().reset(due);
                continue;
            }
            keepalive.last_write = now;
            keepalive.timer.as_mut().reset(now + keepalive.period);
            return Poll::Ready(Bytes::from_static(KEEPALIVE_COMMENT));
        }
        Poll::Pending
    }

    /// Ends the stream, with the shutdown farewell first if the server is stopping.
    fn finish(&mut self) -> Poll<Option<Result<Frame<EventBuf>, StreamEnd>>> {
        self.done = true;
        let farewell = self
            .draining
            .then(|| self.context.shutdown.farewell())
            .flatten();
        Poll::Ready(farewell.map(|bytes| Ok(Frame::data(EventBuf::one(bytes)))))
    }

    /// Ready with the end of the stream once a channel subscriber fell off
    /// the ring while its last frame is still being written.
    pub(crate) fn poll_lagged(&mut self, cx: &mut Context<'_>) -> Poll<StreamEnd> {
        match &mut self.source {
            Source::Channel(sub) if !self.done => sub.poll_lagged(cx).map(|Lagged| self.too_slow()),
            _ => Poll::Pending,
        }
    }

    fn too_slow(&mut self) -> StreamEnd {
        self.done = true;
        self.context
            .counters
            .slow_consumer_drops
            .fetch_add(1, Ordering::Relaxed);
        tracing::debug!("disconnecting a subscriber that fell too far behind");
        StreamEnd::TooSlow
    }

    fn deliver(&mut self, batch: EventBuf) -> Poll<Option<Result<Frame<EventBuf>, StreamEnd>>> {
        let counters = &self.context.counters;
        counters
            .events_delivered
            .fetch_add(batch.events(), Ordering::Relaxed);
        if let Some(keepalive) = &mut self.keepalive {
            keepalive.last_write = Instant::now();
        }
        Poll::Ready(Some(Ok(Frame::data(batch))))
    }
}

impl http_body::Body for SseBody {
    type Data = EventBuf;
    type Error = StreamEnd;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<EventBuf>, StreamEnd>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(prelude) = this.prelude.take() {
            return Poll::Ready(Some(Ok(Frame::data(EventBuf::one(prelude)))));
        }
        // On shutdown, what was already published or queued still goes out,
        // then the farewell (if any), then the end of the stream.
        if !this.draining && this.stopping.as_mut().poll(cx).is_ready() {
            this.draining = true;
        }
        if let Some(expiry) = &mut this.expiry {
            if expiry.as_mut().poll(cx).is_ready() {
                tracing::debug!("ending a subscription whose token expired");
                return this.finish();
            }
        }
        let next = match &mut this.source {
            Source::Channel(sub) => sub.poll_batch(cx),
            Source::Stream(stream) => stream.poll_batch(cx).map(|batch| batch.map(Ok)),
        };
        match next {
            Poll::Ready(Some(Ok(batch))) => return this.deliver(batch),
            Poll::Ready(Some(Err(Lagged))) => return Poll::Ready(Some(Err(this.too_slow()))),
            Poll::Ready(None) => return this.finish(),
            Poll::Pending if this.draining => return this.finish(),
            Poll::Pending => {}
        }
        this.poll_keepalive(cx)
            .map(|comment| Some(Ok(Frame::data(EventBuf::one(comment)))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        self.context
            .counters
            .streams_open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// A file streamed in chunks, `length` bytes as its metadata said.
pub(crate) struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
}

/// Bytes read from a file per frame.
const FILE_CHUNK: usize = 64 * 1024;

impl FileBody {
    pub(crate) fn new(file: tokio::fs::File, length: u64) -> Self {
        FileBody {
            file,
            remaining: length,
        }
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, StreamEnd>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = usize::try_from(self.remaining).map_or(FILE_CHUNK, |r| r.min(FILE_CHUNK));
        let mut chunk = BytesMut::zeroed(want);
        let mut buf = ReadBuf::new(&mut chunk);
        match Pin::new(&mut self.file).poll_read(cx, &mut buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(err)) => Poll::Ready(Some(Err(StreamEnd::File(err)))),
            // The file shrank after its length was sent.
            Poll::Ready(Ok(())) if buf.filled().is_empty() => Poll::Ready(Some(Err(
                StreamEnd::File(io::ErrorKind::UnexpectedEof.into()),
            ))),
            Poll::Ready(Ok(())) => {
                let read = buf.filled().len();
                self.remaining -= read as u64;
                chunk.truncate(read);
                Poll::Ready(Some(Ok(chunk.freeze())))
            }
        }
    }
}

/// Every response body the server sends.
pub(crate) enum ResponseBody {
    Full(Option<Bytes>),
    File(FileBody),
    Events(SseBody),
    /// A mounted application's response, and the guard that tells the
    /// application when it is over.
    App {
        body: AppBody,
        _closes: CloseGuard,
    },
}

impl ResponseBody {
    pub(crate) fn empty() -> Self {
        ResponseBody::Full(None)
    }

    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        ResponseBody::Full((!bytes.is_empty()).then_some(bytes))
    }
}

impl http_body::Body for ResponseBody {
    type Data = EventBuf;
    type Error = StreamEnd;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<EventBuf>, StreamEnd>>> {
        match self.get_mut() {
            ResponseBody::Full(bytes) => Poll::Ready(
                bytes
                    .take()
                    .map(|bytes| Ok(Frame::data(EventBuf::one(bytes)))),
            ),
            ResponseBody::File(file) => file
                .poll_chunk(cx)
                .map(|chunk| chunk.map(|chunk| chunk.map(|c| Frame::data(EventBuf::one(c))))),
            ResponseBody::Events(body) => Pin::new(body).poll_frame(cx),
            ResponseBody::App { body, .. } => Pin::new(body).poll_frame(cx).map(|frame| {
                frame.map(|frame| {
                    frame
                        .map(|frame| frame.map_data(EventBuf::one))
                        .map_err(StreamEnd::from)
                })
            }),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Full(bytes) => bytes.is_none(),
            ResponseBody::File(file) => file.remaining == 0,
            ResponseBody::Events(body) => body.is_end_stream(),
            ResponseBody::App { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            ResponseBody::File(file) => SizeHint::with_exact(file.remaining),
            ResponseBody::Events(_) => SizeHint::default(),
            ResponseBody::App { body, .. } => body.size_hint(),
        }
    }
}

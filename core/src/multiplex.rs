//! HTTP/2 streams as tasks of their own: each stream of a connection runs on
//! the connections' tracker (so `stop` waits for it, and a reset ends only
//! it), watched by a per-stream write timeout, and counted so that a
//! connection left with no stream can be closed.
//!
//! Over HTTP/1.1 a client that stops reading stalls the socket, and the
//! socket's write timeout closes it. Over HTTP/2 one stream can stall while
//! its siblings flow: its client withholds flow-control credit, hyper stops
//! polling that stream's body, and the socket never notices. So each
//! response body hands its frames out through [`Watched`], which notes when
//! a frame was handed out and not yet followed by another poll; a stream
//! whose frame waits longer than the write timeout is dropped, and h2 resets
//! it (`RST_STREAM`) without touching the connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use crate::stats::Counters;

tokio::task_local! {
    /// The watch of the HTTP/2 stream whose task is running.
    static STREAM: Arc<StreamWatch>;
}

/// When the frame a stream's body last handed out has been waiting since,
/// if it still waits (the body has not been polled again).
#[derive(Debug, Default)]
pub(crate) struct StreamWatch {
    waiting_since: Mutex<Option<Instant>>,
}

impl StreamWatch {
    /// The watch of the current HTTP/2 stream, if this runs in one.
    pub(crate) fn current() -> Option<Arc<StreamWatch>> {
        STREAM.try_with(Arc::clone).ok()
    }

    fn set(&self, since: Option<Instant>) {
        *self
            .waiting_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = since;
    }

    fn since(&self) -> Option<Instant> {
        *self
            .waiting_since
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Resolves once a frame has waited longer than `timeout`.
    async fn stalled(&self, timeout: Duration) {
        loop {
            match self.since() {
                Some(since) if since.elapsed() >= timeout => return,
                Some(since) => tokio::time::sleep_until(since + timeout).await,
                // Nothing waiting: look again a timeout later (one timer per
                // stream per period, whatever its traffic).
                None => tokio::time::sleep(timeout).await,
            }
        }
    }
}

/// A response body that tells its stream's watch when a frame it handed out
/// is still waiting to be sent. Outside HTTP/2 it passes frames through.
pub(crate) struct Watched<B> {
    body: B,
    watch: Option<Arc<StreamWatch>>,
}

impl<B> Watched<B> {
    /// `body`, watched by the current HTTP/2 stream (if any).
    pub(crate) fn new(body: B) -> Self {
        Watched {
            body,
            watch: StreamWatch::current(),
        }
    }
}

impl<B: Body + Unpin> Body for Watched<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if let Some(watch) = &this.watch {
            // Polled again: hyper had room for the last frame. A new one
            // starts waiting now, until the next poll.
            let handed_out = matches!(&polled, Poll::Ready(Some(Ok(_))));
            watch.set(handed_out.then(Instant::now));
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The HTTP/2 streams of one connection: how many are open, and how many
/// have been opened in all.
#[derive(Debug, Default)]
pub(crate) struct Streams {
    open: AtomicUsize,
    opened: AtomicU64,
}

impl Streams {
    /// Resolves once the connection has had no open stream, and opened none,
    /// for a whole `idle` period (so after `idle` to twice `idle`).
    pub(crate) async fn idle_for(&self, idle: Duration) {
        let mut opened = self.opened.load(Ordering::Relaxed);
        loop {
            tokio::time::sleep(idle).await;
            let now_opened = self.opened.load(Ordering::Relaxed);
            if self.open.load(Ordering::Relaxed) == 0 && now_opened == opened {
                return;
            }
            opened = now_opened;
        }
    }
}

/// Counts a stream open for as long as it lives.
struct OpenStream(Arc<Streams>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs each HTTP/2 stream of a connection as a task on the connections'
/// tracker, under its write timeout.
#[derive(Clone)]
pub(crate) struct StreamExecutor {
    tasks: TaskTracker,
    streams: Arc<Streams>,
    write_timeout: Duration,
    counters: Arc<Counters>,
}

impl StreamExecutor {
    pub(crate) fn new(
        tasks: TaskTracker,
        streams: Arc<Streams>,
        write_timeout: Duration,
        counters: Arc<Counters>,
    ) -> Self {
        StreamExecutor {
            tasks,
            streams,
            write_timeout,
            counters,
        }
    }
}

impl<F> hyper::rt::Executor<F> for StreamExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, stream: F) {
        self.streams.open.fetch_add(1, Ordering::Relaxed);
        self.streams.opened.fetch_add(1, Ordering::Relaxed);
        let open = OpenStream(Arc::clone(&self.streams));
        let timeout = self.write_timeout;
        let counters = Arc::clone(&self.counters);
        self.tasks.spawn(async move {
            let _open = open;
            let watch = Arc::new(StreamWatch::default());
            let serving = STREAM.scope(Arc::clone(&watch), stream);
            tokio::select! {
                _ = serving => {}
                () = watch.stalled(timeout) => {
                    // Dropping the stream's future resets that stream only.
                    counters.write_timeouts.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("resetting an HTTP/2 stream whose client did not take its data in time");
                }
            }
        });
    }
}

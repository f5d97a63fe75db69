//! Response bodies: fixed bodies for pages and errors, and the endless event
//! stream body that drains a channel subscription or a stream queue, sends
//! keep-alives, and ends on shutdown.

use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::channel::{Lagged, Subscription, RESET_EVENT};
use crate::server::Shared;
use crate::stream::StreamReceiver;

/// Batches up to this many bytes are copied into one buffer (see `gather`).
const GATHER_LIMIT: usize = 16 * 1024;

/// One or more encoded events handed to hyper (or the direct path) as a
/// single body frame, written with one write: either contiguous bytes (one
/// event, or a small batch joined by `gather`) or the events' shared `Bytes`
/// for a vectored write without a copy.
#[derive(Debug)]
pub(crate) enum EventBuf {
    /// Contiguous bytes holding this many events.
    One(Bytes, u64),
    Many {
        parts: Vec<Bytes>,
        at: usize,
        remaining: usize,
    },
}

impl EventBuf {
    pub(crate) fn one(bytes: Bytes) -> Self {
        EventBuf::One(bytes, 1)
    }

    /// Several events for one write. Small events are copied into one
    /// buffer: the kernel's per-segment cost of a vectored write is higher
    /// than a user-space copy of a few hundred bytes. Large ones stay shared.
    pub(crate) fn gather(parts: Vec<Bytes>) -> Self {
        let total: usize = parts.iter().map(Bytes::len).sum();
        if total > GATHER_LIMIT {
            return Self::many(parts);
        }
        let mut joined = BytesMut::with_capacity(total);
        for part in &parts {
            joined.extend_from_slice(part);
        }
        EventBuf::One(joined.freeze(), parts.len() as u64)
    }

    pub(crate) fn many(parts: Vec<Bytes>) -> Self {
        let remaining = parts.iter().map(Bytes::len).sum();
        EventBuf::Many {
            parts,
            at: 0,
            remaining,
        }
    }

    fn events(&self) -> u64 {
        match self {
            EventBuf::One(_, events) => *events,
            EventBuf::Many { parts, .. } => parts.len() as u64,
        }
    }
}

impl Buf for EventBuf {
    fn remaining(&self) -> usize {
        match self {
            EventBuf::One(bytes, _) => bytes.len(),
            EventBuf::Many { remaining, .. } => *remaining,
        }
    }

    fn chunk(&self) -> &[u8] {
        match self {
            EventBuf::One(bytes, _) => bytes,
            EventBuf::Many { parts, at, .. } => parts.get(*at).map_or(&[], |part| part),
        }
    }

    fn advance(&mut self, mut count: usize) {
        match self {
            EventBuf::One(bytes, _) => bytes.advance(count),
            EventBuf::Many {
                parts,
                at,
                remaining,
            } => {
                assert!(count <= *remaining, "advance past the end of an EventBuf");
                *remaining -= count;
                while count > 0 {
                    let part = &mut parts[*at];
                    let step = count.min(part.len());
                    part.advance(step);
                    count -= step;
                    if part.is_empty() {
                        *at += 1;
                    }
                }
                while parts.get(*at).is_some_and(Bytes::is_empty) {
                    *at += 1;
                }
            }
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        match self {
            EventBuf::One(bytes, _) if !bytes.is_empty() && !dst.is_empty() => {
                dst[0] = IoSlice::new(bytes);
                1
            }
            EventBuf::One(..) => 0,
            EventBuf::Many { parts, at, .. } => {
                let mut filled = 0;
                for part in parts[*at..].iter().filter(|part| !part.is_empty()) {
                    if filled == dst.len() {
                        break;
                    }
                    dst[filled] = IoSlice::new(part);
                    filled += 1;
                }
                filled
            }
        }
    }
}

/// Why an event stream was cut short.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StreamEnd {
    #[error("subscriber fell too far behind and was disconnected")]
    TooSlow,
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
    shutdown: Pin<Box<WaitForCancellationFutureOwned>>,
    shared: Arc<Shared>,
    draining: bool,
    done: bool,
}

impl SseBody {
    pub(crate) fn new(source: Source, shared: Arc<Shared>) -> Self {
        let (prelude, keepalive) = match &source {
            Source::Channel(sub) => (
                sub.needs_reset().then_some(Bytes::from_static(RESET_EVENT)),
                sub.keepalive().or(shared.config.keepalive),
            ),
            Source::Stream(_) => (None, shared.config.keepalive),
        };
        let keepalive = keepalive.filter(|p| !p.is_zero()).map(|period| KeepAlive {
            period,
            timer: Box::pin(tokio::time::sleep(period)),
            last_write: Instant::now(),
        });
        shared.counters.streams_open.fetch_add(1, Ordering::Relaxed);
        SseBody {
            source,
            prelude,
            keepalive,
            shutdown: Box::pin(shared.shutdown.clone().cancelled_owned()),
            shared,
            draining: false,
            done: false,
        }
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
        let farewell = self.draining.then(|| self.shared.final_event()).flatten();
        Poll::Ready(farewell.map(|bytes| Ok(Frame::data(EventBuf::one(bytes)))))
    }

    fn deliver(&mut self, batch: EventBuf) -> Poll<Option<Result<Frame<EventBuf>, StreamEnd>>> {
        let counters = &self.shared.counters;
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
        if !this.draining && this.shutdown.as_mut().poll(cx).is_ready() {
            this.draining = true;
        }
        let next = match &mut this.source {
            Source::Channel(sub) => sub.poll_batch(cx),
            Source::Stream(stream) => stream.poll_batch(cx).map(|batch| batch.map(Ok)),
        };
        match next {
            Poll::Ready(Some(Ok(batch))) => return this.deliver(batch),
            Poll::Ready(Some(Err(Lagged))) => {
                this.done = true;
                this.shared
                    .counters
                    .slow_consumer_drops
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!("disconnecting a subscriber that fell too far behind");
                return Poll::Ready(Some(Err(StreamEnd::TooSlow)));
            }
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
        self.shared
            .counters
            .streams_open
            .fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every response body the server sends.
pub(crate) enum ResponseBody {
    Full(Option<Bytes>),
    Events(SseBody),
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
            ResponseBody::Events(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Full(bytes) => bytes.is_none(),
            ResponseBody::Events(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            ResponseBody::Events(_) => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_buf_advances_across_parts() {
        let mut buf = EventBuf::many(vec![
            Bytes::from_static(b"ab"),
            Bytes::from_static(b""),
            Bytes::from_static(b"cde"),
        ]);
        assert_eq!(buf.remaining(), 5);
        let mut slices = [IoSlice::new(&[]); 4];
        assert_eq!(buf.chunks_vectored(&mut slices), 2);
        buf.advance(3);
        assert_eq!(buf.chunk(), b"de");
        assert_eq!(buf.remaining(), 2);
        buf.advance(2);
        assert_eq!(buf.remaining(), 0);
        assert_eq!(buf.chunk(), b"");
    }

    #[test]
    fn small_batches_are_joined_and_still_count_their_events() {
        let parts = vec![
            Bytes::from_static(b"data: a\n\n"),
            Bytes::from_static(b"data: b\n\n"),
        ];
        let buf = EventBuf::gather(parts);
        assert_eq!(buf.chunk(), b"data: a\n\ndata: b\n\n");
        assert_eq!(buf.events(), 2);
    }

    #[test]
    fn large_batches_stay_shared() {
        let big = Bytes::from(vec![b'x'; GATHER_LIMIT]);
        let buf = EventBuf::gather(vec![big.clone(), Bytes::from_static(b"y")]);
        assert_eq!(buf.events(), 2);
        assert_eq!(buf.remaining(), GATHER_LIMIT + 1);
        // The first part is the published buffer itself, not a copy.
        assert_eq!(buf.chunk().as_ptr(), big.as_ptr());
    }
}

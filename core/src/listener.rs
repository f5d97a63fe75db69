//! In-process subscribers: a channel read by the host itself rather than by
//! an HTTP client of the engine, e.g. a web framework's own response loop
//! when the engine does not serve the connection (an ASGI app under another
//! server). Works whether or not the server is running.

use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::HeaderMap;

use crate::channel::{Channel, Lagged, SubscribeError, Subscription, RESET_EVENT};
use crate::error::{Error, Result};
use crate::request::{Endpoints, Request};

/// What [`Listener::try_next`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// One or more events, encoded as they go on the wire.
    Frames(Bytes),
    /// Nothing new: the wake callback runs when there is.
    Pending,
    /// The listener fell more than `max_lag` events behind and was dropped.
    TooSlow,
    /// The channel was closed (its server stopped).
    Closed,
}

/// A subscriber of a channel that the host reads from; made by
/// [`Channel::listen`]. It counts among the channel's subscribers, resumes
/// from `Last-Event-ID` and falls behind as any subscriber does.
pub struct Listener {
    subscription: Subscription,
    waker: Waker,
    reset: bool,
    finished: bool,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener").finish_non_exhaustive()
    }
}

struct Callback<F>(F);

impl<F: Fn() + Send + Sync + 'static> Wake for Callback<F> {
    fn wake(self: Arc<Self>) {
        (self.0)()
    }

    fn wake_by_ref(self: &Arc<Self>) {
        (self.0)()
    }
}

impl Channel {
    /// Subscribes the host itself: events after `last_event_id` (or only new
    /// ones), read with [`Listener::try_next`]. `wake` is called, on
    /// whichever thread publishes, each time `try_next` would find
    /// something new after it said [`Received::Pending`]; it must return at
    /// once. Fails with [`Error::ChannelFull`] if the channel has its
    /// `max_subscribers` and [`Error::Stopped`] once it was closed.
    pub fn listen(
        &self,
        last_event_id: Option<&str>,
        wake: impl Fn() + Send + Sync + 'static,
    ) -> Result<Listener> {
        let mut headers = HeaderMap::new();
        if let Some(id) = last_event_id {
            let value = http::HeaderValue::from_str(id).map_err(|_| {
                Error::InvalidConfig(format!("last_event_id {id:?} is not a header value"))
            })?;
            headers.insert("last-event-id", value);
        }
        let uri: http::Uri = self
            .path()
            .parse()
            .unwrap_or_else(|_| http::Uri::from_static("/"));
        let nowhere = std::net::SocketAddr::from(([0, 0, 0, 0], 0));
        let request = Request::new(
            http::Method::GET,
            &uri,
            http::Version::HTTP_11,
            headers,
            Endpoints {
                peer: nowhere,
                local: nowhere,
                tls: false,
            },
        );
        let subscription = self.subscribe(request).map_err(|err| match err {
            SubscribeError::Full => Error::ChannelFull,
            SubscribeError::Stopped => Error::Stopped,
        })?;
        Ok(Listener {
            reset: subscription.needs_reset(),
            subscription,
            waker: Waker::from(Arc::new(Callback(wake))),
            finished: false,
        })
    }
}

impl Listener {
    /// The next events, if any: `event: reset` first when the id it resumed
    /// from was unknown, as an HTTP subscriber gets.
    pub fn try_next(&mut self) -> Received {
        if self.finished {
            return Received::Closed;
        }
        if std::mem::take(&mut self.reset) {
            return Received::Frames(Bytes::from_static(RESET_EVENT));
        }
        match self
            .subscription
            .poll_batch(&mut Context::from_waker(&self.waker))
        {
            Poll::Ready(Some(Ok(mut batch))) => {
                Received::Frames(batch.copy_to_bytes(batch.remaining()))
            }
            Poll::Ready(Some(Err(Lagged))) => {
                self.finished = true;
                Received::TooSlow
            }
            Poll::Ready(None) => {
                self.finished = true;
                Received::Closed
            }
            Poll::Pending => Received::Pending,
        }
    }

    /// The channel's own keep-alive period, if it sets one.
    pub fn keepalive(&self) -> Option<Duration> {
        self.subscription.keepalive()
    }
}

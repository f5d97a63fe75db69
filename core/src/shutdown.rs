//! The server's stop signal, seen by every stream: once it fires, streams
//! deliver what they already have, then the farewell event (if any), then end.

use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Fired once by `Server::stop`; cheap to check, and awaitable.
#[derive(Default)]
pub(crate) struct Shutdown {
    token: CancellationToken,
    farewell: Mutex<Option<Bytes>>,
}

impl Shutdown {
    /// Fires the signal; `farewell` is the last event every open stream sends.
    pub(crate) fn begin(&self, farewell: Option<Bytes>) {
        *self.farewell.lock().unwrap_or_else(PoisonError::into_inner) = farewell;
        self.token.cancel();
    }

    pub(crate) fn is_stopping(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Resolves once the signal fired.
    pub(crate) async fn stopping(&self) {
        self.token.cancelled().await
    }

    /// An owned future resolving once the signal fired, for bodies to poll.
    pub(crate) fn stopping_owned(&self) -> WaitForCancellationFutureOwned {
        self.token.clone().cancelled_owned()
    }

    /// The farewell event, if one was given.
    pub(crate) fn farewell(&self) -> Option<Bytes> {
        self.farewell
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

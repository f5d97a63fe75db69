//! A one-time answer that a host gives from any thread, and the engine
//! awaits: a route's [`Reply`](crate::Reply), a subscriber's
//! [`Verdict`](crate::Verdict).

use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::error::{Error, Result};

/// The sending half: the first [`give`](Answer::give) answers.
pub(crate) struct Answer<T> {
    sender: Mutex<Option<oneshot::Sender<T>>>,
}

impl<T> std::fmt::Debug for Answer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer").finish_non_exhaustive()
    }
}

impl<T> Answer<T> {
    /// An answer to give, and where the engine awaits it (closed if the
    /// answer is dropped ungiven).
    pub(crate) fn pair() -> (Self, oneshot::Receiver<T>) {
        let (sender, receiver) = oneshot::channel();
        let answer = Answer {
            sender: Mutex::new(Some(sender)),
        };
        (answer, receiver)
    }

    /// Gives `value`. Fails with [`Error::AlreadyAnswered`] after an
    /// earlier answer, and with [`Error::Disconnected`] if nobody awaits it
    /// any more (the client has gone).
    pub(crate) fn give(&self, value: T) -> Result<()> {
        let sender = self
            .sender
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
            .ok_or(Error::AlreadyAnswered)?;
        sender.send(value).map_err(|_| Error::Disconnected)
    }
}

//! A host's decision on a subscriber ([`Channel::authorize`](crate::Channel::authorize)):
//! given once, at once or later, from any thread.

use std::sync::Arc;

use http::StatusCode;
use tokio::sync::oneshot;

use crate::answer::Answer;
use crate::error::{Error, Result};
use crate::request::Request;

/// Decides whether a request may subscribe to a channel: called on an
/// engine thread with the request and the [`Verdict`] to give.
pub type AuthorizeHook = Arc<dyn Fn(Request, Verdict) + Send + Sync>;

/// What the host decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    Allow,
    Deny { status: StatusCode, message: String },
}

/// The answer an [`AuthorizeHook`] owes: [`allow`](Verdict::allow) or
/// [`deny`](Verdict::deny), once. Dropped without either, the subscriber
/// gets `500`.
#[derive(Debug)]
pub struct Verdict {
    answer: Answer<Decision>,
}

pub(crate) fn verdict_pair() -> (Verdict, oneshot::Receiver<Decision>) {
    let (answer, decision) = Answer::pair();
    (Verdict { answer }, decision)
}

impl Verdict {
    /// Lets the subscriber in. Fails with [`Error::AlreadyAnswered`] after
    /// an earlier answer, [`Error::Disconnected`] if the client has gone.
    pub fn allow(&self) -> Result<()> {
        self.answer.give(Decision::Allow)
    }

    /// Turns the subscriber away with `status` (400–599, else
    /// [`Error::InvalidStatus`]) and `message` as a line of plain text.
    /// Fails as [`allow`](Self::allow) does.
    pub fn deny(&self, status: u16, message: &str) -> Result<()> {
        let status = StatusCode::from_u16(status)
            .ok()
            .filter(|s| s.is_client_error() || s.is_server_error())
            .ok_or(Error::InvalidStatus(status))?;
        self.answer.give(Decision::Deny {
            status,
            message: message.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verdict_is_given_once_with_an_error_status() {
        let (verdict, mut decision) = verdict_pair();
        assert!(matches!(
            verdict.deny(302, "go"),
            Err(Error::InvalidStatus(302))
        ));
        assert!(matches!(
            verdict.deny(600, "?"),
            Err(Error::InvalidStatus(600))
        ));
        verdict.deny(402, "pay first").unwrap();
        assert!(matches!(verdict.allow(), Err(Error::AlreadyAnswered)));
        assert_eq!(
            decision.try_recv().unwrap(),
            Decision::Deny {
                status: StatusCode::PAYMENT_REQUIRED,
                message: "pay first".into()
            }
        );
        let (verdict, decision) = verdict_pair();
        drop(decision);
        assert!(matches!(verdict.allow(), Err(Error::Disconnected)));
    }
}

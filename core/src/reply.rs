//! Routes whose response the host computes per request (a page rendered with
//! a session id, a small JSON answer), from any thread.

use bytes::Bytes;
use http::header::HeaderValue;
use http::StatusCode;
use tokio::sync::oneshot;

use crate::answer::Answer;
use crate::error::{Error, Result};
use crate::request::Request;

/// Answers requests on a route registered with
/// [`Server::route`](crate::Server::route). Called on an engine thread; reply
/// at once or later, from any thread. A dropped [`Reply`] answers `500`.
pub trait RouteHandler: Send + Sync + 'static {
    /// Handles one request.
    fn handle(&self, request: Request, reply: Reply);
}

impl<F> RouteHandler for F
where
    F: Fn(Request, Reply) + Send + Sync + 'static,
{
    fn handle(&self, request: Request, reply: Reply) {
        self(request, reply)
    }
}

/// A finished response computed by a route handler.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) status: StatusCode,
    pub(crate) content_type: HeaderValue,
    pub(crate) body: Bytes,
}

/// The one-time answer to a request on a handler route. Usable from any
/// thread; the first successful [`send`](Reply::send) answers.
#[derive(Debug)]
pub struct Reply {
    answer: Answer<Page>,
}

pub(crate) fn reply_pair() -> (Reply, oneshot::Receiver<Page>) {
    let (answer, page) = Answer::pair();
    (Reply { answer }, page)
}

impl Reply {
    /// Sends the response. `status` must be 200–599 and `content_type` a
    /// valid header value (e.g. `text/html; charset=utf-8`); an invalid one
    /// fails and leaves the reply unanswered. Fails with
    /// [`Error::AlreadyAnswered`] after a successful send, and with
    /// [`Error::Disconnected`] if the client has gone.
    pub fn send(&self, status: u16, content_type: &str, body: impl Into<Bytes>) -> Result<()> {
        let status = StatusCode::from_u16(status)
            .ok()
            .filter(|s| s.as_u16() >= 200)
            .ok_or(Error::InvalidStatus(status))?;
        let content_type = HeaderValue::from_str(content_type)
            .map_err(|_| Error::InvalidContentType(content_type.to_owned()))?;
        self.answer.give(Page {
            status,
            content_type,
            body: body.into(),
        })
    }
}

/// How a host's failure answers a request that has no response yet: a
/// failure that names an HTTP error status (400–599) answers with it and its
/// reason as a line of plain text; any other failure (no status, or one
/// outside that range) answers `500` with `fallback`, and its cause stays in
/// the host's log.
pub(crate) fn refusal(status: Option<u16>, reason: &str, fallback: &str) -> (u16, String) {
    match status {
        Some(status @ 400..=599) if reason.is_empty() => (status, String::new()),
        Some(status @ 400..=599) => (status, format!("{reason}\n")),
        _ => (500, fallback.to_owned()),
    }
}

impl Reply {
    /// Answers a handler that failed: with `status` and `reason` (plain
    /// text) when its error names an HTTP error status (400–599), else `500
    /// route handler failed`. Errors as [`send`](Reply::send).
    pub fn refuse(&self, status: Option<u16>, reason: &str) -> Result<()> {
        let (status, text) = refusal(status, reason, "route handler failed\n");
        self.send(status, "text/plain; charset=utf-8", text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_error_statuses_pass_through_a_refusal() {
        assert_eq!(
            refusal(Some(418), "teapot", "x\n"),
            (418, "teapot\n".into())
        );
        assert_eq!(refusal(Some(404), "", "x\n"), (404, String::new()));
        for status in [None, Some(200), Some(302), Some(600), Some(0)] {
            assert_eq!(refusal(status, "why", "failed\n"), (500, "failed\n".into()));
        }
    }
}

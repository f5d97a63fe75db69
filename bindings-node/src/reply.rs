//! The one-time answers: to a request on a route (`Reply`), and to the
//! question whether a client may subscribe to a channel (`Verdict`).

use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::errors::{js_error, Code};

/// The one-time answer to a request on a route.
#[napi]
pub struct Reply {
    inner: tidings::Reply,
}

impl Reply {
    pub(crate) fn new(inner: tidings::Reply) -> Self {
        Reply { inner }
    }
}

#[napi]
impl Reply {
    /// Sends the response.
    #[napi]
    pub fn send(
        &self,
        body: Either<String, Buffer>,
        status: Option<u32>,
        content_type: Option<String>,
    ) -> Result<(), Code> {
        let body = match body {
            Either::A(text) => text.into_bytes(),
            Either::B(bytes) => bytes.to_vec(),
        };
        let status = u16::try_from(status.unwrap_or(200)).unwrap_or(0);
        let content_type = content_type.unwrap_or_else(|| "text/html; charset=utf-8".to_owned());
        self.inner
            .send(status, &content_type, body)
            .map_err(js_error)
    }

    /// Answers a handler that failed: `status` and `reason` (plain text) if
    /// `status` is an HTTP error status (400-599), else 500.
    #[napi]
    pub fn refuse(&self, status: Option<u32>, reason: String) -> Result<(), Code> {
        let status = status.map(|s| u16::try_from(s).unwrap_or(0));
        self.inner.refuse(status, &reason).map_err(js_error)
    }
}

/// The one-time decision on a client that subscribes to a channel with an
/// authorize check.
#[napi]
pub struct Verdict {
    inner: tidings::Verdict,
}

impl Verdict {
    pub(crate) fn new(inner: tidings::Verdict) -> Self {
        Verdict { inner }
    }
}

#[napi]
impl Verdict {
    /// Lets the client subscribe.
    #[napi]
    pub fn allow(&self) -> Result<(), Code> {
        self.inner.allow().map_err(js_error)
    }

    /// Turns the client away with `status` (400-599) and `message`.
    #[napi]
    pub fn deny(&self, status: u32, message: Option<String>) -> Result<(), Code> {
        let status = u16::try_from(status).unwrap_or(0);
        self.inner
            .deny(status, message.as_deref().unwrap_or(""))
            .map_err(js_error)
    }
}

//! The one-time answer to a request on a route (`Reply`).

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

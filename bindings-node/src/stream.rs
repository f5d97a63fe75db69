//! The sending end of one client's stream (`StreamSink`), driven by the JS
//! stream runner: accept or reject, queue events with backpressure, learn
//! when the client leaves.

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunctionCallMode, UnknownReturnValue};
use napi_derive::napi;

use crate::convert::{to_event, EventInit};
use crate::dispatch::engine_callback;
use crate::errors::{js_error, Code};

/// The sending end of one client's stream, used by the JS stream runner.
#[napi]
pub struct StreamSink {
    inner: tidings::StreamSender,
}

impl StreamSink {
    pub(crate) fn new(inner: tidings::StreamSender) -> Self {
        StreamSink { inner }
    }
}

#[napi]
impl StreamSink {
    /// Answers 200 with the event stream now.
    #[napi]
    pub fn accept(&self) -> Result<(), Code> {
        self.inner.accept();
        Ok(())
    }

    /// Answers `status` (400-599) with a plain-text message instead.
    #[napi]
    pub fn reject(&self, status: u32, message: String) -> Result<(), Code> {
        let status =
            u16::try_from(status).map_err(|_| js_error(tidings::Error::InvalidStatus(u16::MAX)))?;
        self.inner.reject(status, message).map_err(js_error)
    }

    /// Answers a handler that failed before anything was sent: `status` and
    /// `reason` if `status` is an HTTP error status (400-599), else 500.
    #[napi]
    pub fn refuse(&self, status: Option<u32>, reason: String) -> Result<(), Code> {
        let status = status.map(|s| u16::try_from(s).unwrap_or(0));
        self.inner.refuse(status, &reason).map_err(js_error)
    }

    /// Queues an event if there is room: true if queued, false if full.
    #[napi]
    pub fn try_send(&self, event: EventInit) -> Result<bool, Code> {
        match self.inner.try_send(to_event(event)?) {
            Ok(()) => Ok(true),
            Err(tidings::Error::QueueFull) => Ok(false),
            Err(err) => Err(js_error(err)),
        }
    }

    /// Calls `callback(true)` once there is room, `callback(false)` once the client is gone.
    #[napi(ts_args_type = "callback: (hasRoom: boolean) => void")]
    pub fn when_ready(&self, callback: Function<bool, UnknownReturnValue>) -> Result<(), Code> {
        let ready = engine_callback(&callback, |has_room: bool| has_room)?;
        self.inner.when_ready(move |has_room| {
            ready.call(has_room, ThreadsafeFunctionCallMode::NonBlocking);
        });
        Ok(())
    }

    /// Calls `callback()` once when the connection ends, for any reason.
    #[napi(ts_args_type = "callback: () => void")]
    pub fn on_close(&self, callback: Function<(), UnknownReturnValue>) -> Result<(), Code> {
        let closed = engine_callback(&callback, |()| ())?;
        self.inner.on_close(move || {
            closed.call((), ThreadsafeFunctionCallMode::NonBlocking);
        });
        Ok(())
    }

    /// Ends the response normally after the queued events.
    #[napi]
    pub fn close(&self) {
        self.inner.close();
    }

    /// Ends the response with `event: error` after the queued events.
    #[napi]
    pub fn fail(&self) {
        self.inner.fail();
    }

    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.inner.is_closed()
    }
}

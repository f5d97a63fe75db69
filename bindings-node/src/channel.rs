//! A broadcast channel (`NativeChannel`): publish, counters and presence
//! hooks.

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunctionCallMode, UnknownReturnValue};
use napi::{Env, Task};
use napi_derive::napi;

use crate::convert::{to_event, EventInit};
use crate::dispatch::{engine_callback, Callback};
use crate::errors::{js_error, Code};
use crate::reply::Verdict;
use crate::request::{request_info, RequestInfo};

/// Channel options; durations in seconds.
#[napi(object)]
pub struct ChannelOptions {
    pub history: Option<u32>,
    pub auto_id: Option<bool>,
    pub max_lag: Option<u32>,
    /// 0 turns keep-alives off for this channel; absent, the server's apply.
    pub keepalive: Option<f64>,
    pub max_subscribers: Option<u32>,
    /// Subscribers must bring a token that grants the channel.
    pub private: Option<bool>,
}

/// Waits for a publish's confirmation on the libuv thread pool.
pub struct ConfirmTask {
    published: Option<tidings::Published>,
    timeout: Option<std::time::Duration>,
}

#[napi]
impl Task for ConfirmTask {
    type Output = Option<String>;
    type JsValue = Option<String>;

    fn compute(&mut self) -> Result<Option<String>> {
        let published = self
            .published
            .take()
            .ok_or_else(|| Error::from_reason("the confirmation was already taken"))?;
        match published.wait(self.timeout) {
            Ok(id) => Ok(id.map(|id| id.as_str().to_owned())),
            Err(err) => Err(Error::new(
                Status::GenericFailure,
                format!("ERR_TIDINGS_{}: {err}", err.code()),
            )),
        }
    }

    fn resolve(&mut self, _env: Env, id: Option<String>) -> Result<Option<String>> {
        Ok(id)
    }
}

/// A broadcast channel.
#[napi]
pub struct NativeChannel {
    inner: tidings::Channel,
}

impl NativeChannel {
    pub(crate) fn new(inner: tidings::Channel) -> Self {
        NativeChannel { inner }
    }
}

#[napi]
impl NativeChannel {
    /// Publishes one event; returns the id it was sent with, or null.
    #[napi]
    pub fn publish(&self, event: EventInit) -> Result<Option<String>, Code> {
        let id = self.inner.publish(to_event(event)?).map_err(js_error)?;
        Ok(id.map(|id| id.as_str().to_owned()))
    }

    /// Publishes one event and resolves once it is stored (with a broker:
    /// stored by the broker and in this server's history) to the id it is
    /// sent with, the broker's automatic id included. Waits on the libuv
    /// thread pool, never on the JS thread; `timeout` in seconds.
    #[napi(ts_return_type = "Promise<string | null>")]
    pub fn publish_confirmed(
        &self,
        event: EventInit,
        timeout: Option<f64>,
    ) -> Result<AsyncTask<ConfirmTask>, Code> {
        let timeout = timeout
            .map(|seconds| tidings::duration_from_secs("timeout", seconds))
            .transpose()
            .map_err(js_error)?;
        let published = Some(self.inner.publish_confirmed(to_event(event)?));
        Ok(AsyncTask::new(ConfirmTask { published, timeout }))
    }

    #[napi(getter)]
    pub fn path(&self) -> String {
        self.inner.path().to_owned()
    }

    #[napi(getter)]
    pub fn subscribers(&self) -> u32 {
        self.inner.subscribers() as u32
    }

    #[napi(getter)]
    pub fn events_published(&self) -> f64 {
        self.inner.events_published() as f64
    }

    #[napi(getter)]
    pub fn history_len(&self) -> u32 {
        self.inner.history_len() as u32
    }

    #[napi(ts_args_type = "callback: (request: RequestInfo) => void")]
    pub fn on_subscribe(
        &self,
        callback: Function<RequestInfo, UnknownReturnValue>,
    ) -> Result<(), Code> {
        let hook = request_hook(callback)?;
        self.inner.on_subscribe(move |request| {
            hook.call(request.clone(), ThreadsafeFunctionCallMode::NonBlocking);
        });
        Ok(())
    }

    /// Asks `callback(request, verdict)` about every client that subscribes
    /// at the channel's path; it answers `verdict` once.
    #[napi(ts_args_type = "callback: (request: RequestInfo, verdict: Verdict) => void")]
    pub fn authorize(
        &self,
        callback: Function<FnArgs<(RequestInfo, Verdict)>, UnknownReturnValue>,
    ) -> Result<(), Code> {
        let hook = engine_callback(
            &callback,
            |(request, verdict): (tidings::Request, tidings::Verdict)| {
                FnArgs::from((request_info(&request), Verdict::new(verdict)))
            },
        )?;
        self.inner.authorize(move |request, verdict| {
            // Dropped unanswered if the JS thread cannot take it: 500.
            hook.call((request, verdict), ThreadsafeFunctionCallMode::NonBlocking);
        });
        Ok(())
    }

    #[napi(ts_args_type = "callback: (request: RequestInfo) => void")]
    pub fn on_unsubscribe(
        &self,
        callback: Function<RequestInfo, UnknownReturnValue>,
    ) -> Result<(), Code> {
        let hook = request_hook(callback)?;
        self.inner.on_unsubscribe(move |request| {
            hook.call(request.clone(), ThreadsafeFunctionCallMode::NonBlocking);
        });
        Ok(())
    }
}

/// A presence hook: `callback(request)` on the JS thread.
fn request_hook(
    callback: Function<RequestInfo, UnknownReturnValue>,
) -> Result<Callback<tidings::Request, RequestInfo>, Code> {
    engine_callback(&callback, |request: tidings::Request| {
        request_info(&request)
    })
}

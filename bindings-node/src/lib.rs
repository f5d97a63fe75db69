//! The native half of the `tidings` npm package: JS values to core types and
//! back, core errors to JS errors with stable codes, and engine callbacks to
//! the JS thread through threadsafe functions. Every behaviour is in the core.
//!
//! Every threadsafe function is weak (it never keeps the process alive: the
//! JS layer holds a handle while the server runs), and JS callbacks are
//! wrapped by the JS layer so that none can throw into a TSFN call, which
//! would be fatal to the process.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{
    ThreadsafeFunction, ThreadsafeFunctionCallMode, UnknownReturnValue,
};
use napi::{Env, Task};
use napi_derive::napi;

/// A JS error code such as `ERR_TIDINGS_INVALID_EVENT`.
pub struct Code(String);

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<Status> for Code {
    fn from(status: Status) -> Self {
        Code(status.as_ref().to_owned())
    }
}

fn js_error(err: tidings::Error) -> Error<Code> {
    Error::new(Code(format!("ERR_TIDINGS_{}", err.code())), err.to_string())
}

fn config_error(message: String) -> Error<Code> {
    Error::new(Code("ERR_TIDINGS_INVALID_CONFIG".into()), message)
}

fn napi_error(err: Error) -> Error<Code> {
    Error::new(Code(err.status.as_ref().to_owned()), err.reason.clone())
}

fn millis(ms: u32) -> Duration {
    Duration::from_millis(ms.into())
}

/// Seconds from JS as a duration, checked by the core (range, NaN).
fn seconds(name: &str, value: f64) -> Result<Duration, Code> {
    tidings::duration_from_secs(name, value).map_err(js_error)
}

/// A keep-alive period in seconds, where 0 turns keep-alives off.
fn keepalive(name: &str, value: f64) -> Result<Option<Duration>, Code> {
    Ok(Some(seconds(name, value)?).filter(|period| !period.is_zero()))
}

/// Server options; durations in seconds (checked by the core).
#[napi(object)]
pub struct ServerOptions {
    pub host: Option<String>,
    pub port: Option<u32>,
    /// `"*"` or a list of origins.
    pub cors: Option<Either<String, Vec<String>>>,
    /// 0 disables keep-alive comments.
    pub keepalive: Option<f64>,
    pub write_timeout: Option<f64>,
    /// 0 disables TCP keep-alive.
    pub tcp_keepalive: Option<f64>,
    pub drain_timeout: Option<f64>,
    pub worker_threads: Option<u32>,
    pub stream_queue: Option<u32>,
    pub max_connections: Option<u32>,
    pub max_connections_per_ip: Option<u32>,
    pub max_head_bytes: Option<u32>,
    pub head_timeout: Option<f64>,
}

/// Channel options; durations in seconds.
#[napi(object)]
pub struct ChannelOptions {
    pub history: Option<u32>,
    pub auto_id: Option<bool>,
    pub max_lag: Option<u32>,
    /// 0 turns keep-alives off for this channel; absent, the server's apply.
    pub keepalive: Option<f64>,
    pub max_subscribers: Option<u32>,
}

/// An event's fields (data already a string).
#[napi(object)]
pub struct EventInit {
    pub data: Option<String>,
    pub event: Option<String>,
    pub id: Option<String>,
    pub retry: Option<u32>,
    pub comment: Option<String>,
}

fn to_event(init: EventInit) -> Result<tidings::Event, Code> {
    let mut event = match init.data {
        Some(data) => tidings::Event::data(data),
        None => tidings::Event::default(),
    };
    if let Some(name) = init.event {
        event = event.event(name).map_err(js_error)?;
    }
    if let Some(id) = init.id {
        event = event.id(id).map_err(js_error)?;
    }
    if let Some(retry) = init.retry {
        event = event.retry(millis(retry));
    }
    if let Some(comment) = init.comment {
        event = event.comment(comment);
    }
    Ok(event)
}

#[napi(object)]
pub struct ClientAddress {
    pub address: String,
    pub port: u32,
}

/// The request that opened a stream or reached a route.
#[napi(object, use_nullable = true)]
pub struct RequestInfo {
    pub method: String,
    pub path: String,
    pub query_string: String,
    pub query: HashMap<String, String>,
    pub headers: HashMap<String, String>,
    pub last_event_id: Option<String>,
    pub client: ClientAddress,
}

fn request_info(request: &tidings::Request) -> RequestInfo {
    let query: HashMap<String, String> = request.query_first_values().into_iter().collect();
    let headers: HashMap<String, String> = request
        .headers_joined()
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
    let peer = request.peer_addr();
    RequestInfo {
        method: request.method().to_owned(),
        path: request.path().to_owned(),
        query_string: request.query_string().to_owned(),
        query,
        headers,
        last_event_id: request.last_event_id().map(str::to_owned),
        client: ClientAddress {
            address: peer.ip().to_string(),
            port: peer.port().into(),
        },
    }
}

#[napi(object)]
pub struct ChannelStats {
    pub subscribers: u32,
    pub events_published: f64,
    pub history_length: u32,
}

#[napi(object)]
pub struct Stats {
    pub connections_open: u32,
    pub connections_total: f64,
    pub connections_refused: f64,
    pub subscribers_refused: f64,
    pub streams_open: u32,
    pub events_published: f64,
    pub events_delivered: f64,
    pub bytes_written: f64,
    pub slow_consumer_drops: f64,
    pub write_timeouts: f64,
    pub channels: HashMap<String, ChannelStats>,
}

/// A JS callback the engine may call from any thread, weakly held.
type Callback<T, Args> = ThreadsafeFunction<T, UnknownReturnValue, Args, Status, false, true>;

/// Stops a server on the libuv thread pool (it waits for the engine's threads).
pub struct StopTask {
    server: Arc<tidings::Server>,
    farewell: Option<tidings::Event>,
}

#[napi]
impl Task for StopTask {
    type Output = ();
    type JsValue = ();

    fn compute(&mut self) -> Result<()> {
        match self.farewell.take() {
            Some(event) => self.server.stop_with(event),
            None => self.server.stop(),
        }
        Ok(())
    }

    fn resolve(&mut self, _env: Env, _output: ()) -> Result<()> {
        Ok(())
    }
}

/// The native server; the JS `Server` wraps it.
#[napi]
pub struct NativeServer {
    inner: Arc<tidings::Server>,
}

#[napi]
impl NativeServer {
    #[napi(constructor)]
    pub fn new(options: Option<ServerOptions>) -> Result<Self, Code> {
        let mut config = tidings::Config::default();
        if let Some(options) = options {
            if let Some(host) = options.host {
                config.host = host;
            }
            if let Some(port) = options.port {
                config.port = u16::try_from(port)
                    .map_err(|_| config_error(format!("port {port} is out of range")))?;
            }
            config.cors = match options.cors {
                None => tidings::Cors::Disabled,
                Some(Either::A(origin)) => tidings::Cors::from_origins([origin]),
                Some(Either::B(origins)) => tidings::Cors::from_origins(origins),
            };
            if let Some(value) = options.keepalive {
                config.keepalive = keepalive("keepalive", value)?;
            }
            if let Some(value) = options.write_timeout {
                config.write_timeout = seconds("writeTimeout", value)?;
            }
            if let Some(value) = options.tcp_keepalive {
                config.tcp_keepalive = keepalive("tcpKeepalive", value)?;
            }
            if let Some(value) = options.drain_timeout {
                config.drain_timeout = seconds("drainTimeout", value)?;
            }
            if let Some(threads) = options.worker_threads {
                config.worker_threads = threads as usize;
            }
            if let Some(queue) = options.stream_queue {
                config.stream_queue = queue as usize;
            }
            config.limits.max_connections = options.max_connections.map(|n| n as usize);
            config.limits.max_connections_per_ip =
                options.max_connections_per_ip.map(|n| n as usize);
            if let Some(bytes) = options.max_head_bytes {
                config.limits.max_head_bytes = bytes as usize;
            }
            if let Some(value) = options.head_timeout {
                config.limits.head_timeout = seconds("limits.headTimeout", value)?;
            }
        }
        let inner = tidings::Server::new(config).map_err(js_error)?;
        Ok(NativeServer {
            inner: Arc::new(inner),
        })
    }

    /// Registers a broadcast channel.
    #[napi]
    pub fn channel(
        &self,
        path: String,
        options: Option<ChannelOptions>,
    ) -> Result<NativeChannel, Code> {
        let mut settings = tidings::ChannelOptions::default();
        if let Some(options) = options {
            if let Some(history) = options.history {
                settings.history = history as usize;
            }
            if let Some(auto_id) = options.auto_id {
                settings.auto_id = auto_id;
            }
            if let Some(max_lag) = options.max_lag {
                settings.max_lag = max_lag as usize;
            }
            // Some(0) is "none on this channel"; absent is "the server's".
            settings.keepalive = options
                .keepalive
                .map(|value| seconds("keepalive", value))
                .transpose()?;
            settings.max_subscribers = options.max_subscribers.map(|n| n as usize);
        }
        let inner = self.inner.channel(&path, settings).map_err(js_error)?;
        Ok(NativeChannel { inner })
    }

    /// Registers a stream route: `opener(request, sink)` runs on the JS thread
    /// for every client.
    #[napi(ts_args_type = "path: string, opener: (request: RequestInfo, sink: StreamSink) => void")]
    pub fn stream(
        &self,
        path: String,
        opener: Function<FnArgs<(RequestInfo, StreamSink)>, UnknownReturnValue>,
    ) -> Result<(), Code> {
        let opener: Callback<
            (tidings::Request, tidings::StreamSender),
            FnArgs<(RequestInfo, StreamSink)>,
        > = opener
            .build_threadsafe_function::<(tidings::Request, tidings::StreamSender)>()
            .callee_handled::<false>()
            .weak::<true>()
            .build_callback(|ctx| {
                let (request, sender) = ctx.value;
                Ok(FnArgs::from((
                    request_info(&request),
                    StreamSink::new(sender),
                )))
            })
            .map_err(napi_error)?;
        let opener = Arc::new(opener);
        self.inner
            .stream_handler(
                &path,
                move |request: tidings::Request, sender: tidings::StreamSender| {
                    // If the JS side is gone the sender is dropped: the client gets 204.
                    opener.call((request, sender), ThreadsafeFunctionCallMode::NonBlocking);
                },
            )
            .map_err(js_error)
    }

    /// Registers a route: `handler(request, reply)` runs on the JS thread.
    #[napi(ts_args_type = "path: string, handler: (request: RequestInfo, reply: Reply) => void")]
    pub fn route(
        &self,
        path: String,
        handler: Function<FnArgs<(RequestInfo, Reply)>, UnknownReturnValue>,
    ) -> Result<(), Code> {
        let handler: Callback<(tidings::Request, tidings::Reply), FnArgs<(RequestInfo, Reply)>> =
            handler
                .build_threadsafe_function::<(tidings::Request, tidings::Reply)>()
                .callee_handled::<false>()
                .weak::<true>()
                .build_callback(|ctx| {
                    let (request, reply) = ctx.value;
                    Ok(FnArgs::from((request_info(&request), Reply::new(reply))))
                })
                .map_err(napi_error)?;
        let handler = Arc::new(handler);
        self.inner
            .route(
                &path,
                move |request: tidings::Request, reply: tidings::Reply| {
                    handler.call((request, reply), ThreadsafeFunctionCallMode::NonBlocking);
                },
            )
            .map_err(js_error)
    }

    /// Serves `file` at `path`.
    #[napi]
    pub fn page(&self, path: String, file: String) -> Result<(), Code> {
        self.inner.page(&path, file).map_err(js_error)
    }

    /// Serves the files under `directory` below `prefix`.
    #[napi]
    pub fn files(&self, prefix: String, directory: String) -> Result<(), Code> {
        self.inner.files(&prefix, directory).map_err(js_error)
    }

    /// Binds and starts serving; returns the port.
    #[napi]
    pub fn start(&self) -> Result<u32, Code> {
        self.inner
            .start()
            .map(|addr| addr.port().into())
            .map_err(js_error)
    }

    /// Stops off the JS thread; resolves when the engine's threads are done.
    #[napi]
    pub fn stop(&self, farewell: Option<EventInit>) -> Result<AsyncTask<StopTask>, Code> {
        let farewell = farewell.map(to_event).transpose()?;
        Ok(AsyncTask::new(StopTask {
            server: Arc::clone(&self.inner),
            farewell,
        }))
    }

    #[napi(getter)]
    pub fn port(&self) -> Option<u32> {
        self.inner.local_addr().map(|addr| addr.port().into())
    }

    #[napi(getter)]
    pub fn host(&self) -> String {
        self.inner.config().host.clone()
    }

    #[napi(getter)]
    pub fn running(&self) -> bool {
        self.inner.is_running()
    }

    #[napi]
    pub fn stats(&self) -> Stats {
        let stats = self.inner.stats();
        Stats {
            connections_open: stats.connections_open as u32,
            connections_total: stats.connections_total as f64,
            connections_refused: stats.connections_refused as f64,
            subscribers_refused: stats.subscribers_refused as f64,
            streams_open: stats.streams_open as u32,
            events_published: stats.events_published as f64,
            events_delivered: stats.events_delivered as f64,
            bytes_written: stats.bytes_written as f64,
            slow_consumer_drops: stats.slow_consumer_drops as f64,
            write_timeouts: stats.write_timeouts as f64,
            channels: stats
                .channels
                .into_iter()
                .map(|c| {
                    let entry = ChannelStats {
                        subscribers: c.subscribers as u32,
                        events_published: c.events_published as f64,
                        history_length: c.history_len as u32,
                    };
                    (c.path, entry)
                })
                .collect(),
        }
    }
}

/// A broadcast channel.
#[napi]
pub struct NativeChannel {
    inner: tidings::Channel,
}

#[napi]
impl NativeChannel {
    /// Publishes one event; returns the id it was sent with, or null.
    #[napi]
    pub fn publish(&self, event: EventInit) -> Result<Option<String>, Code> {
        let id = self.inner.publish(to_event(event)?).map_err(js_error)?;
        Ok(id.map(|id| id.as_str().to_owned()))
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

fn request_hook(
    callback: Function<RequestInfo, UnknownReturnValue>,
) -> Result<Callback<tidings::Request, RequestInfo>, Code> {
    callback
        .build_threadsafe_function::<tidings::Request>()
        .callee_handled::<false>()
        .weak::<true>()
        .build_callback(|ctx| Ok(request_info(&ctx.value)))
        .map_err(napi_error)
}

/// The sending end of one client's stream, used by the JS stream runner.
#[napi]
pub struct StreamSink {
    sender: tidings::StreamSender,
}

impl StreamSink {
    fn new(sender: tidings::StreamSender) -> Self {
        StreamSink { sender }
    }
}

#[napi]
impl StreamSink {
    /// Answers 200 with the event stream now.
    #[napi]
    pub fn accept(&self) -> Result<(), Code> {
        self.sender.accept();
        Ok(())
    }

    /// Answers `status` (400-599) with a plain-text message instead.
    #[napi]
    pub fn reject(&self, status: u32, message: String) -> Result<(), Code> {
        let status =
            u16::try_from(status).map_err(|_| js_error(tidings::Error::InvalidStatus(u16::MAX)))?;
        self.sender.reject(status, message).map_err(js_error)
    }

    /// Answers a handler that failed before anything was sent: `status` and
    /// `reason` if `status` is an HTTP error status (400-599), else 500.
    #[napi]
    pub fn refuse(&self, status: Option<u32>, reason: String) -> Result<(), Code> {
        let status = status.map(|s| u16::try_from(s).unwrap_or(0));
        self.sender.refuse(status, &reason).map_err(js_error)
    }

    /// Queues an event if there is room: true if queued, false if full.
    #[napi]
    pub fn try_send(&self, event: EventInit) -> Result<bool, Code> {
        match self.sender.try_send(to_event(event)?) {
            Ok(()) => Ok(true),
            Err(tidings::Error::QueueFull) => Ok(false),
            Err(err) => Err(js_error(err)),
        }
    }

    /// Calls `callback(true)` once there is room, `callback(false)` once the client is gone.
    #[napi(ts_args_type = "callback: (hasRoom: boolean) => void")]
    pub fn when_ready(&self, callback: Function<bool, UnknownReturnValue>) -> Result<(), Code> {
        let ready: Callback<bool, bool> = callback
            .build_threadsafe_function::<bool>()
            .callee_handled::<false>()
            .weak::<true>()
            .build_callback(|ctx| Ok(ctx.value))
            .map_err(napi_error)?;
        self.sender.when_ready(move |has_room| {
            ready.call(has_room, ThreadsafeFunctionCallMode::NonBlocking);
        });
        Ok(())
    }

    /// Calls `callback()` once when the connection ends, for any reason.
    #[napi(ts_args_type = "callback: () => void")]
    pub fn on_close(&self, callback: Function<(), UnknownReturnValue>) -> Result<(), Code> {
        let closed: Callback<(), ()> = callback
            .build_threadsafe_function::<()>()
            .callee_handled::<false>()
            .weak::<true>()
            .build_callback(|_ctx| Ok(()))
            .map_err(napi_error)?;
        self.sender.on_close(move || {
            closed.call((), ThreadsafeFunctionCallMode::NonBlocking);
        });
        Ok(())
    }

    /// Ends the response normally after the queued events.
    #[napi]
    pub fn close(&self) {
        self.sender.close();
    }

    /// Ends the response with `event: error` after the queued events.
    #[napi]
    pub fn fail(&self) {
        self.sender.fail();
    }

    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.sender.is_closed()
    }
}

/// The one-time answer to a request on a route.
#[napi]
pub struct Reply {
    reply: tidings::Reply,
}

impl Reply {
    fn new(reply: tidings::Reply) -> Self {
        Reply { reply }
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
        self.reply
            .send(status, &content_type, body)
            .map_err(js_error)
    }

    /// Answers a handler that failed: `status` and `reason` (plain text) if
    /// `status` is an HTTP error status (400-599), else 500.
    #[napi]
    pub fn refuse(&self, status: Option<u32>, reason: String) -> Result<(), Code> {
        let status = status.map(|s| u16::try_from(s).unwrap_or(0));
        self.reply.refuse(status, &reason).map_err(js_error)
    }
}

/// The version of the native module.
#[napi]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

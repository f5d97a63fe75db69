//! The native server (`NativeServer`; the JS `Server` wraps it): options,
//! routes and lifecycle. `stop()` waits for the engine's threads on the libuv
//! thread pool, never on the JS thread.

use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunctionCallMode, UnknownReturnValue};
use napi::{Env, Task};
use napi_derive::napi;

use crate::channel::{ChannelOptions, NativeChannel};
use crate::convert::{self, keepalive, seconds, to_event, EventInit, Stats};
use crate::dispatch::engine_callback;
use crate::errors::{config_error, js_error, Code};
use crate::reply::Reply;
use crate::request::{request_info, RequestInfo};
use crate::stream::StreamSink;

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
    /// Let other processes listen on the same host and port (SO_REUSEPORT).
    pub reuse_port: Option<bool>,
    /// A Redis URL (`redis://host:port/db`, or `rediss://` over TLS)
    /// joining this server's channels with every server on it.
    pub broker: Option<String>,
    /// Most publishes waiting for the broker.
    pub broker_queue: Option<u32>,
    /// A PEM file of the authorities a `rediss://` broker's certificate
    /// must chain to (default: the system's).
    pub broker_ca: Option<String>,
    /// A PEM file with the certificate chain: with `tls_key`, HTTPS only.
    pub tls_cert: Option<String>,
    /// A PEM file with the private key of `tls_cert`.
    pub tls_key: Option<String>,
    /// Whether clients may speak HTTP/2 (default true).
    pub http2: Option<bool>,
    /// Most HTTP/2 streams open at once on one connection.
    pub max_streams_per_connection: Option<u32>,
    /// A path that serves Prometheus metrics (e.g. `/metrics`).
    pub metrics_path: Option<String>,
    /// How tokens are verified for private channels.
    pub jwt: Option<JwtOptions>,
    /// A Mercure hub.
    pub hub: Option<HubOptions>,
}

/// A Mercure hub; the keys are a secret's bytes for `HS*`, else a public
/// key in PEM.
#[napi(object)]
pub struct HubOptions {
    pub path: Option<String>,
    pub publisher_key: Option<Buffer>,
    pub subscriber_key: Option<Buffer>,
    pub algorithm: Option<String>,
    pub anonymous: Option<bool>,
    pub topic_base: Option<String>,
    pub history: Option<u32>,
    pub max_topics: Option<u32>,
    pub max_publish_bytes: Option<u32>,
}

/// The core's hub settings from the JS options.
fn hub_config(options: HubOptions) -> tidings::HubConfig {
    let defaults = tidings::HubConfig::default();
    let algorithm = options.algorithm.as_deref().unwrap_or("HS256");
    let key = |given: Option<Buffer>| {
        given.map(|key| tidings::JwtConfig::mercure_with(algorithm, key.to_vec()))
    };
    tidings::HubConfig {
        path: options.path.unwrap_or(defaults.path),
        publisher_jwt: key(options.publisher_key),
        subscriber_jwt: key(options.subscriber_key),
        anonymous: options.anonymous.unwrap_or(defaults.anonymous),
        topic_base: options.topic_base,
        history: options.history.map_or(defaults.history, |n| n as usize),
        max_lag: defaults.max_lag,
        max_topics: options
            .max_topics
            .map_or(defaults.max_topics, |n| n as usize),
        max_publish_bytes: options
            .max_publish_bytes
            .map_or(defaults.max_publish_bytes, |n| n as usize),
    }
}

/// Token verification for private channels; `leeway` in seconds. An empty
/// `cookie` or `query` reads none (the JS side's `null`).
#[napi(object)]
pub struct JwtOptions {
    /// The HMAC secret's bytes.
    pub secret: Option<Buffer>,
    /// A PEM file with the public key.
    pub key_file: Option<String>,
    /// A JSON Web Key Set file.
    pub jwks_file: Option<String>,
    pub algorithm: Option<String>,
    pub leeway: Option<f64>,
    pub cookie: Option<String>,
    pub query: Option<String>,
    pub claim: Option<String>,
    pub audience: Option<String>,
    pub issuer: Option<String>,
    pub end_at_expiry: Option<bool>,
}

/// The core's token settings from the JS options.
fn jwt_config(options: JwtOptions) -> Result<tidings::JwtConfig, Code> {
    let key = tidings::JwtKey::one_of(
        options.secret.map(|secret| secret.to_vec()),
        options.key_file.map(std::path::PathBuf::from),
        options.jwks_file.map(std::path::PathBuf::from),
    )
    .map_err(js_error)?;
    let Some(key) = key else {
        return Err(js_error(tidings::Error::InvalidConfig(
            "jwt needs a secret, a keyFile or a jwksFile".to_owned(),
        )));
    };
    let mut config = tidings::JwtConfig::new(key);
    if let Some(algorithm) = options.algorithm {
        config.algorithm = algorithm;
    }
    if let Some(leeway) = options.leeway {
        config.leeway = seconds("jwt.leeway", leeway)?;
    }
    config.name_carriers(options.cookie, options.query);
    if let Some(claim) = options.claim {
        config.claim = claim;
    }
    config.audience = options.audience;
    config.issuer = options.issuer;
    if let Some(end) = options.end_at_expiry {
        config.end_at_expiry = end;
    }
    Ok(config)
}

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
            config.reuse_port = options.reuse_port.unwrap_or(false);
            config.broker = options.broker;
            if let Some(queue) = options.broker_queue {
                config.broker_queue = queue as usize;
            }
            config.broker_ca = options.broker_ca.map(std::path::PathBuf::from);
            config.tls_cert = options.tls_cert.map(std::path::PathBuf::from);
            config.tls_key = options.tls_key.map(std::path::PathBuf::from);
            if let Some(http2) = options.http2 {
                config.http2 = http2;
            }
            if let Some(streams) = options.max_streams_per_connection {
                config.limits.max_streams_per_connection = streams;
            }
            config.metrics_path = options.metrics_path;
            config.jwt = options.jwt.map(jwt_config).transpose()?;
            config.hub = options.hub.map(hub_config);
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
            settings.private = options.private.unwrap_or(false);
        }
        let inner = self.inner.channel(&path, settings).map_err(js_error)?;
        Ok(NativeChannel::new(inner))
    }

    /// Registers a stream route: `opener(request, sink)` runs on the JS thread
    /// for every client.
    #[napi(ts_args_type = "path: string, opener: (request: RequestInfo, sink: StreamSink) => void")]
    pub fn stream(
        &self,
        path: String,
        opener: Function<FnArgs<(RequestInfo, StreamSink)>, UnknownReturnValue>,
    ) -> Result<(), Code> {
        let opener = engine_callback(
            &opener,
            |(request, sender): (tidings::Request, tidings::StreamSender)| {
                FnArgs::from((request_info(&request), StreamSink::new(sender)))
            },
        )?;
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
        let handler = engine_callback(
            &handler,
            |(request, reply): (tidings::Request, tidings::Reply)| {
                FnArgs::from((request_info(&request), Reply::new(reply)))
            },
        )?;
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

    /// Reads the certificate and key files again; new connections get the
    /// new pair, open ones keep theirs. Throws (keeping the pair in
    /// service) if the files do not hold a matching pair.
    #[napi]
    pub fn reload_tls(&self) -> Result<(), Code> {
        self.inner.reload_tls().map_err(js_error)
    }

    #[napi]
    pub fn stats(&self) -> Stats {
        convert::stats(self.inner.stats())
    }
}

//! `tidings._tidings.Server`: configuration, routes and lifecycle, with the
//! GIL released around everything that waits.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString};

use crate::app::{AppBridge, Mailbox};
use crate::channel::Channel;
use crate::convert::stream_item;
use crate::dispatch::Dispatcher;
use crate::errors::IntoPyResult;
use crate::reply::Reply;
use crate::request::Request;
use crate::stream::StreamSink;

/// The native server. `tidings.Server` wraps it with asyncio integration.
#[pyclass(module = "tidings._tidings", frozen)]
pub(crate) struct Server {
    inner: Arc<tidings::Server>,
    dispatcher: Dispatcher,
    /// A stop started from a callback, for a later `stop()` to wait for.
    stopping: Arc<Mutex<Option<JoinHandle<()>>>>,
    max_pending_callbacks: usize,
    /// The mounted application's mailbox, for its counters.
    mailbox: Mutex<Option<Mailbox>>,
}

#[pymethods]
impl Server {
    #[new]
    #[pyo3(signature = (
        host="127.0.0.1", port=8000, *, cors=None, keepalive=Some(15.0), write_timeout=30.0,
        tcp_keepalive=Some(60.0), drain_timeout=5.0, worker_threads=0, stream_queue=32,
        max_connections=None, max_connections_per_ip=None, max_head_bytes=16384, head_timeout=10.0,
        max_pending_callbacks=1024, reuse_port=false, broker=None, broker_queue=10_000, broker_ca=None,
        tls_cert=None, tls_key=None, http2=true, max_streams_per_connection=100, metrics_path=None,
        jwt_key=None, jwt_key_file=None, jwt_jwks_file=None, jwt_algorithm="HS256", jwt_leeway=5.0,
        jwt_cookie=Some("tidings_token".to_owned()), jwt_query=Some("access_token".to_owned()), jwt_claim="tidings",
        jwt_audience=None, jwt_issuer=None, jwt_end_at_expiry=true,
        hub=false, hub_path=None, hub_publisher_key=None, hub_subscriber_key=None,
        hub_jwt_algorithm="HS256", hub_anonymous=true, hub_topic_base=None, hub_history=1000,
    ), text_signature = "(host='127.0.0.1', port=8000, *, cors=None, keepalive=15.0, write_timeout=30.0, \
        tcp_keepalive=60.0, drain_timeout=5.0, worker_threads=0, stream_queue=32, max_connections=None, \
        max_connections_per_ip=None, max_head_bytes=16384, head_timeout=10.0, max_pending_callbacks=1024, \
        reuse_port=False, broker=None, broker_queue=10000, broker_ca=None, tls_cert=None, tls_key=None, \
        http2=True, max_streams_per_connection=100, metrics_path=None, \
        jwt_key=None, jwt_key_file=None, jwt_jwks_file=None, jwt_algorithm='HS256', jwt_leeway=5.0, \
        jwt_cookie='tidings_token', jwt_query='access_token', jwt_claim='tidings', jwt_audience=None, \
        jwt_issuer=None, jwt_end_at_expiry=True, hub=False, hub_path=None, hub_publisher_key=None, \
        hub_subscriber_key=None, hub_jwt_algorithm='HS256', hub_anonymous=True, hub_topic_base=None, \
        hub_history=1000)")]
    #[allow(clippy::too_many_arguments)]
    fn new(
        host: &str,
        port: u16,
        cors: Option<&Bound<'_, PyAny>>,
        keepalive: Option<f64>,
        write_timeout: f64,
        tcp_keepalive: Option<f64>,
        drain_timeout: f64,
        worker_threads: usize,
        stream_queue: usize,
        max_connections: Option<usize>,
        max_connections_per_ip: Option<usize>,
        max_head_bytes: usize,
        head_timeout: f64,
        max_pending_callbacks: usize,
        reuse_port: bool,
        broker: Option<String>,
        broker_queue: usize,
        broker_ca: Option<std::path::PathBuf>,
        tls_cert: Option<std::path::PathBuf>,
        tls_key: Option<std::path::PathBuf>,
        http2: bool,
        max_streams_per_connection: u32,
        metrics_path: Option<String>,
        jwt_key: Option<&Bound<'_, PyAny>>,
        jwt_key_file: Option<PathBuf>,
        jwt_jwks_file: Option<PathBuf>,
        jwt_algorithm: &str,
        jwt_leeway: f64,
        jwt_cookie: Option<String>,
        jwt_query: Option<String>,
        jwt_claim: &str,
        jwt_audience: Option<String>,
        jwt_issuer: Option<String>,
        jwt_end_at_expiry: bool,
        hub: bool,
        hub_path: Option<String>,
        hub_publisher_key: Option<&Bound<'_, PyAny>>,
        hub_subscriber_key: Option<&Bound<'_, PyAny>>,
        hub_jwt_algorithm: &str,
        hub_anonymous: bool,
        hub_topic_base: Option<String>,
        hub_history: usize,
    ) -> PyResult<Self> {
        let secret = jwt_key.map(secret_bytes).transpose()?;
        let jwt = match tidings::JwtKey::one_of(secret, jwt_key_file, jwt_jwks_file).py_err()? {
            Some(key) => Some(tidings::JwtConfig {
                algorithm: jwt_algorithm.to_owned(),
                leeway: seconds("jwt_leeway", jwt_leeway)?,
                cookie: jwt_cookie,
                query: jwt_query,
                claim: jwt_claim.to_owned(),
                audience: jwt_audience,
                issuer: jwt_issuer,
                end_at_expiry: jwt_end_at_expiry,
                ..tidings::JwtConfig::new(key)
            }),
            None => None,
        };
        let hub_key = |given: Option<&Bound<'_, PyAny>>| -> PyResult<_> {
            let key = given.map(secret_bytes).transpose()?;
            Ok(key.map(|key| tidings::JwtConfig::mercure_with(hub_jwt_algorithm, key)))
        };
        let hub_settings = hub_path.is_some()
            || hub_publisher_key.is_some()
            || hub_subscriber_key.is_some()
            || hub_topic_base.is_some()
            || !hub_anonymous;
        let hub = match hub {
            true => Some(tidings::HubConfig {
                path: hub_path.unwrap_or_else(|| tidings::HubConfig::default().path),
                publisher_jwt: hub_key(hub_publisher_key)?,
                subscriber_jwt: hub_key(hub_subscriber_key)?,
                anonymous: hub_anonymous,
                topic_base: hub_topic_base,
                history: hub_history,
                ..tidings::HubConfig::default()
            }),
            false if hub_settings => {
                return Err(tidings::Error::InvalidConfig(
                    "hub_* settings need hub=True".to_owned(),
                ))
                .py_err();
            }
            false => None,
        };
        let config = tidings::Config {
            host: host.to_owned(),
            port,
            worker_threads,
            cors: cors_policy(cors)?,
            cors_allow_headers: Vec::new(),
            keepalive: keepalive.map(|s| seconds("keepalive", s)).transpose()?,
            write_timeout: seconds("write_timeout", write_timeout)?,
            tcp_keepalive: tcp_keepalive
                .map(|s| seconds("tcp_keepalive", s))
                .transpose()?,
            drain_timeout: seconds("drain_timeout", drain_timeout)?,
            stream_queue,
            limits: tidings::Limits {
                max_connections,
                max_connections_per_ip,
                max_head_bytes,
                head_timeout: seconds("head_timeout", head_timeout)?,
                max_streams_per_connection,
            },
            reuse_port,
            broker,
            broker_queue,
            broker_ca,
            tls_cert,
            tls_key,
            http2,
            metrics_path,
            jwt,
            hub,
        };
        Ok(Server {
            inner: Arc::new(tidings::Server::new(config).py_err()?),
            dispatcher: Dispatcher::start(max_pending_callbacks)?,
            stopping: Arc::default(),
            max_pending_callbacks,
            mailbox: Mutex::default(),
        })
    }

    /// Reads `tls_cert` and `tls_key` again and serves the new pair to new
    /// connections; open ones keep theirs. Raises ConfigError (keeping the
    /// pair in service) if the files do not hold a matching pair.
    fn reload_tls(&self, py: Python<'_>) -> PyResult<()> {
        let inner = Arc::clone(&self.inner);
        py.detach(move || inner.reload_tls()).py_err()
    }

    /// Registers a broadcast channel at `path` (served there unless
    /// `route` is false: then only hand-overs and listeners reach it).
    #[pyo3(signature = (path, *, history=1000, auto_id=true, max_lag=1024, keepalive=None, max_subscribers=None, route=true, private=false))]
    #[allow(clippy::too_many_arguments)]
    fn channel(
        &self,
        path: &str,
        history: usize,
        auto_id: bool,
        max_lag: usize,
        keepalive: Option<f64>,
        max_subscribers: Option<usize>,
        route: bool,
        private: bool,
    ) -> PyResult<Channel> {
        let options = tidings::ChannelOptions {
            history,
            auto_id,
            max_lag,
            keepalive: keepalive.map(|s| seconds("keepalive", s)).transpose()?,
            max_subscribers,
            private,
        };
        let channel = if route {
            self.inner.channel(path, options)
        } else {
            self.inner.unrouted_channel(path, options)
        }
        .py_err()?;
        Ok(Channel::new(channel, self.dispatcher.clone()))
    }

    /// Registers a stream route: `opener(request, sink)` is called on the
    /// server's callback thread for every client.
    fn stream(&self, path: &str, opener: Py<PyAny>) -> PyResult<()> {
        let dispatcher = self.dispatcher.clone();
        let opener = Arc::new(opener);
        self.inner
            .stream_handler(
                path,
                move |request: tidings::Request, sender: tidings::StreamSender| {
                    let opener = Arc::clone(&opener);
                    let sink_dispatcher = dispatcher.clone();
                    let Some(ticket) = dispatcher.reserve() else {
                        let _ = sender.reject(503, BUSY);
                        return;
                    };
                    ticket.submit(move |py| {
                        let sink = Py::new(py, StreamSink::new(sender, sink_dispatcher))?;
                        let opened = opener.call1(py, (Request::new(request), sink.clone_ref(py)));
                        if opened.is_err() {
                            // Nothing was decided: answer 500 rather than leave the client waiting.
                            let _ = sink.get().reject(500, "stream handler failed\n".into());
                        }
                        opened.map(drop)
                    });
                },
            )
            .py_err()
    }

    /// Registers a route: `handler(request, reply)` is called on the server's
    /// callback thread for every request.
    fn route(&self, path: &str, handler: Py<PyAny>) -> PyResult<()> {
        let dispatcher = self.dispatcher.clone();
        let handler = Arc::new(handler);
        self.inner
            .route(
                path,
                move |request: tidings::Request, reply: tidings::Reply| {
                    let Some(ticket) = dispatcher.reserve() else {
                        let _ = reply.send(503, "text/plain; charset=utf-8", BUSY);
                        return;
                    };
                    let handler = Arc::clone(&handler);
                    ticket.submit(move |py| {
                        handler
                            .call1(py, (Request::new(request), Reply::new(reply)))
                            .map(drop)
                    });
                },
            )
            .py_err()
    }

    /// Mounts an application for every request no route serves; returns
    /// the bridge its asyncio loop drains (see `tidings._asgi`).
    fn mount(&self) -> PyResult<AppBridge> {
        let mailbox = Mailbox::new(self.max_pending_callbacks)?;
        let submit = mailbox.clone();
        self.inner
            .mount(move |exchange: tidings::Exchange| submit.submit(exchange))
            .py_err()?;
        *self.mailbox.lock().unwrap_or_else(|p| p.into_inner()) = Some(mailbox.clone());
        Ok(AppBridge::new(mailbox))
    }

    /// Serves the file `file` at `path`.
    fn page(&self, path: &str, file: PathBuf) -> PyResult<()> {
        self.inner.page(path, file).py_err()
    }

    /// Serves the files under `directory` below `prefix`.
    fn files(&self, prefix: &str, directory: PathBuf) -> PyResult<()> {
        self.inner.files(prefix, directory).py_err()
    }

    /// Binds and starts serving on the engine's threads; returns the port.
    fn start(&self, py: Python<'_>) -> PyResult<u16> {
        crate::logging::refresh_level(py);
        let server = Arc::clone(&self.inner);
        let addr = py.detach(move || server.start()).py_err()?;
        Ok(addr.port())
    }

    /// Stops the server (idempotent): open streams get what was queued, then
    /// `farewell` if given, then end. Returns when every thread has finished,
    /// unless `wait` is false or it is called from the callback thread (a
    /// hook or handler), which would wait for itself: then it starts the stop
    /// and returns.
    #[pyo3(signature = (farewell=None, wait=true))]
    fn stop(
        &self,
        py: Python<'_>,
        farewell: Option<&Bound<'_, PyAny>>,
        wait: bool,
    ) -> PyResult<()> {
        let farewell = farewell.map(stream_item).transpose()?;
        let server = Arc::clone(&self.inner);
        let dispatcher = self.dispatcher.clone();
        let stop = move || {
            match farewell {
                Some(event) => server.stop_with(event),
                None => server.stop(),
            }
            dispatcher.shutdown();
        };
        if wait && !self.dispatcher.is_current() {
            let stopping = Arc::clone(&self.stopping);
            py.detach(move || {
                stop();
                let started = stopping.lock().unwrap_or_else(|p| p.into_inner()).take();
                if let Some(started) = started {
                    let _ = started.join();
                }
            });
            return Ok(());
        }
        let handle = std::thread::Builder::new()
            .name("tidings-stop".into())
            .spawn(stop)
            .map_err(|err| pyo3::exceptions::PyOSError::new_err(err.to_string()))?;
        *self.stopping.lock().unwrap_or_else(|p| p.into_inner()) = Some(handle);
        Ok(())
    }

    /// The bound port while running, else None.
    #[getter]
    fn port(&self) -> Option<u16> {
        self.inner.local_addr().map(|addr| addr.port())
    }

    /// The host it listens (or will listen) on.
    #[getter]
    fn host(&self) -> String {
        self.inner.host()
    }

    /// Changes where and how it will listen, and how long its stop drains,
    /// until it starts.
    #[pyo3(signature = (host, port, drain_timeout=None, reuse_port=false))]
    fn set_start_options(
        &self,
        host: &str,
        port: u16,
        drain_timeout: Option<f64>,
        reuse_port: bool,
    ) -> PyResult<()> {
        let drain_timeout = drain_timeout
            .map(|s| seconds("drain_timeout", s))
            .transpose()?;
        self.inner
            .set_start_options(tidings::StartOptions {
                host: host.to_owned(),
                port,
                drain_timeout,
                reuse_port,
            })
            .py_err()
    }

    /// Whether the server is running.
    #[getter]
    fn running(&self) -> bool {
        self.inner.is_running()
    }

    /// A snapshot of the server's counters.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = self.inner.stats();
        let out = PyDict::new(py);
        out.set_item("connections_open", stats.connections_open)?;
        out.set_item("connections_total", stats.connections_total)?;
        out.set_item("connections_refused", stats.connections_refused)?;
        out.set_item("subscribers_refused", stats.subscribers_refused)?;
        out.set_item("streams_open", stats.streams_open)?;
        out.set_item("events_published", stats.events_published)?;
        out.set_item("events_delivered", stats.events_delivered)?;
        out.set_item("bytes_written", stats.bytes_written)?;
        out.set_item("slow_consumer_drops", stats.slow_consumer_drops)?;
        out.set_item("write_timeouts", stats.write_timeouts)?;
        out.set_item("tls_handshakes_failed", stats.tls_handshakes_failed)?;
        let app_refused = self
            .mailbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map_or(0, Mailbox::refused);
        out.set_item("callbacks_refused", self.dispatcher.refused() + app_refused)?;
        let channels = PyDict::new(py);
        for channel in &stats.channels {
            let entry = PyDict::new(py);
            entry.set_item("subscribers", channel.subscribers)?;
            entry.set_item("events_published", channel.events_published)?;
            entry.set_item("history_len", channel.history_len)?;
            entry.set_item("cluster_subscribers", channel.cluster_subscribers)?;
            channels.set_item(&channel.path, entry)?;
        }
        out.set_item("channels", channels)?;
        let broker = match &stats.broker {
            None => None,
            Some(broker) => {
                let entry = PyDict::new(py);
                entry.set_item("url", &broker.url)?;
                entry.set_item("connected", broker.connected)?;
                entry.set_item("faults", broker.faults)?;
                entry.set_item("reconnects", broker.reconnects)?;
                entry.set_item("queued", broker.queued)?;
                entry.set_item("sent", broker.sent)?;
                entry.set_item("refused", broker.refused)?;
                entry.set_item("received", broker.received)?;
                entry.set_item("gaps", broker.gaps)?;
                entry.set_item("last_error", &broker.last_error)?;
                Some(entry)
            }
        };
        out.set_item("broker", broker)?;
        Ok(out)
    }
}

/// A JWT secret given as `str` (its UTF-8 bytes) or `bytes`.
fn secret_bytes(key: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(text) = key.cast::<PyString>() {
        return Ok(text.to_cow()?.as_bytes().to_vec());
    }
    key.extract::<Vec<u8>>()
        .map_err(|_| PyTypeError::new_err("jwt_key must be str or bytes"))
}

fn seconds(name: &str, value: f64) -> PyResult<Duration> {
    tidings::duration_from_secs(name, value).py_err()
}

/// The answer to a request that found too many waiting for the interpreter.
pub(crate) const BUSY: &str = "server busy: too many requests waiting for Python\n";

fn cors_policy(cors: Option<&Bound<'_, PyAny>>) -> PyResult<tidings::Cors> {
    let Some(cors) = cors.filter(|c| !c.is_none()) else {
        return Ok(tidings::Cors::Disabled);
    };
    if let Ok(origin) = cors.cast::<PyString>() {
        return Ok(tidings::Cors::from_origins([origin.to_cow()?.into_owned()]));
    }
    if cors.is_instance_of::<PyList>() || cors.is_instance_of::<pyo3::types::PyTuple>() {
        let origins: Vec<String> = cors
            .extract()
            .map_err(|_| PyTypeError::new_err("cors origins must be strings"))?;
        return Ok(tidings::Cors::from_origins(origins));
    }
    Err(PyTypeError::new_err(
        "cors must be None, \"*\" or a list of origins",
    ))
}

impl Drop for Server {
    fn drop(&mut self) {
        // The engine stops with the core server; the callback thread ends on
        // its own once its queue closes (joining it here could wait on the
        // GIL this thread may hold).
        self.dispatcher.close();
    }
}

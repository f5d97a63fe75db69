//! The public server: routes registered by the host, and the lifecycle of the
//! engine's own runtime (start, drain, stop).

use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use crate::app::AppHandler;
use crate::auth::Verifier;
use crate::body::BodyContext;
use crate::broker::Broker;
use crate::channel::{Channel, ChannelOptions};
use crate::cluster::RedisBroker;
use crate::config::Config;
use crate::conn::{accept_loop, Connections};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::files;
use crate::http::Site;
use crate::hub::Hub;
use crate::metrics::MetricsRoute;
use crate::reply::RouteHandler;
use crate::request::Request;
use crate::routes::{Route, Routes};
use crate::stats::{ChannelStats, Counters, Stats};
use crate::stream::{AsyncStream, StreamHandler, StreamSender};
use crate::tls::Tls;

enum Lifecycle {
    Ready,
    Running(Running),
    Stopped,
}

struct Running {
    runtime: tokio::runtime::Runtime,
    addr: SocketAddr,
    connections: TaskTracker,
}

/// An SSE server: register routes, [`start`](Server::start) it on its own
/// threads, publish from anywhere, [`stop`](Server::stop) it.
///
/// ```
/// use std::time::Duration;
/// use tidings::{ChannelOptions, Config, Event, Server};
///
/// let server = Server::new(Config { port: 0, ..Config::default() })?;
/// let scores = server.channel("/livescore", ChannelOptions { history: 100, ..Default::default() })?;
/// server.stream("/stream", |_request, tx: tidings::StreamSender| async move {
///     for n in 1..=3 {
///         tx.send(Event::data(format!("Counter value {n}")).event("new_message")?).await?;
///     }
///     Ok::<(), tidings::Error>(())
/// })?;
/// let addr = server.start()?;
/// println!("listening on http://{addr}");
/// let id = scores.publish(Event::data(r#"{"home":1,"away":0}"#).event("goal")?)?;
/// assert!(id.is_some());
/// server.stop();
/// # Ok::<(), tidings::Error>(())
/// ```
pub struct Server {
    site: Arc<Site>,
    lifecycle: Mutex<Lifecycle>,
    /// The thread finishing a stop that was started from an engine thread,
    /// for a later `stop` from elsewhere to wait for.
    stopper: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Where to listen and how long to drain: the configuration's, unless
    /// changed before the start.
    settings: Mutex<StartSettings>,
    /// The broker that joins this server's channels with other servers'.
    broker: Option<Arc<RedisBroker>>,
    /// The Mercure hub, whose ring every channel copies its events into.
    hub: Option<Arc<Hub>>,
}

/// Where and how a server listens, when whatever starts it decides (see
/// [`Server::set_start_options`]); each field replaces the server's
/// [`Config`] value.
#[derive(Clone, Debug)]
pub struct StartOptions {
    /// Address to listen on.
    pub host: String,
    /// Port to listen on; 0 picks a free one.
    pub port: u16,
    /// How long a stop lets streams finish; `None` keeps the configured one.
    pub drain_timeout: Option<Duration>,
    /// Whether other sockets may listen on the same host and port
    /// ([`Config::reuse_port`]).
    pub reuse_port: bool,
}

#[derive(Clone)]
struct StartSettings {
    host: String,
    port: u16,
    drain_timeout: Duration,
    reuse_port: bool,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("host", &lock(&self.settings).host)
            .field("local_addr", &self.local_addr())
            .finish()
    }
}

thread_local! {
    static ON_ENGINE_THREAD: Cell<bool> = const { Cell::new(false) };
}

impl Server {
    /// Creates a server; nothing listens until [`start`](Server::start).
    pub fn new(config: Config) -> Result<Self> {
        config.validate()?;
        let bodies = BodyContext {
            counters: Arc::new(Counters::new(config.metrics_path.is_some())),
            shutdown: Arc::default(),
            keepalive: config.keepalive,
        };
        let broker = match &config.broker {
            Some(url) => Some(Arc::new(RedisBroker::new(
                url,
                config.broker_ca.as_deref(),
                config.broker_queue,
            )?)),
            None => None,
        };
        let auth = config.jwt.as_ref().map(Verifier::new).transpose()?;
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(Tls::new(cert, key, config.http2)?),
            _ => None,
        };
        let settings = StartSettings {
            host: config.host.clone(),
            port: config.port,
            drain_timeout: config.drain_timeout,
            reuse_port: config.reuse_port,
        };
        let metrics_path = config.metrics_path.clone();
        let hub = match &config.hub {
            Some(hub) => {
                let options = ChannelOptions {
                    history: hub.history,
                    max_lag: hub.max_lag,
                    ..ChannelOptions::default()
                };
                let counters = Arc::clone(&bodies.counters);
                let to_broker = broker.clone().map(|broker| broker as Arc<dyn Broker>);
                let ring = Channel::new(hub.path.clone(), options, counters, to_broker);
                Some(Arc::new(Hub::new(hub.clone(), ring)?))
            }
            None => None,
        };
        let server = Server {
            site: Arc::new(Site::new(config, bodies, tls, auth)),
            lifecycle: Mutex::new(Lifecycle::Ready),
            stopper: Mutex::new(None),
            settings: Mutex::new(settings),
            broker,
            hub: hub.clone(),
        };
        if let Some(hub) = hub {
            let path = hub.config().path.clone();
            server.share_with_broker(hub.channel());
            server.add_route(&path, Route::Hub(hub))?;
        }
        if let Some(path) = metrics_path {
            let route = metrics_route(&server.site, server.broker.as_ref());
            server.add_route(&path, Route::Handler(Arc::new(route)))?;
        }
        Ok(server)
    }

    /// The configuration the server was created with (see
    /// [`host`](Self::host) for the address it listens on).
    pub fn config(&self) -> &Config {
        &self.site.config
    }

    /// The host it listens (or will listen) on.
    pub fn host(&self) -> String {
        lock(&self.settings).host.clone()
    }

    /// Changes where and how the server will listen, and how long its stop
    /// drains, until it starts: a server declared when a program is
    /// imported, with its channels, can be started by whatever runs the
    /// program (`tidings run`). Fails with [`Error::AlreadyRunning`] once started,
    /// [`Error::Stopped`] once stopped, [`Error::InvalidConfig`] for a
    /// drain timeout out of range.
    pub fn set_start_options(&self, options: StartOptions) -> Result<()> {
        if let Some(timeout) = options.drain_timeout {
            Config {
                drain_timeout: timeout,
                ..Config::default()
            }
            .validate()?;
        }
        match &*lock(&self.lifecycle) {
            Lifecycle::Running(running) => return Err(Error::AlreadyRunning(running.addr)),
            Lifecycle::Stopped => return Err(Error::Stopped),
            Lifecycle::Ready => {}
        }
        let mut settings = lock(&self.settings);
        settings.host = options.host;
        settings.port = options.port;
        settings.reuse_port = options.reuse_port;
        if let Some(timeout) = options.drain_timeout {
            settings.drain_timeout = timeout;
        }
        Ok(())
    }

    /// Reads [`Config::tls_cert`] and [`Config::tls_key`] again (a renewed
    /// certificate) and gives the new pair to every handshake from now on;
    /// open connections keep theirs. Fails with [`Error::InvalidConfig`],
    /// keeping the pair in service, if the files do not hold a matching
    /// pair, and if the server does not speak TLS.
    pub fn reload_tls(&self) -> Result<()> {
        match &self.site.tls {
            Some(tls) => tls.reload(),
            None => Err(Error::InvalidConfig(
                "reload_tls: the server has no tls_cert and tls_key".to_owned(),
            )),
        }
    }

    /// Registers a broadcast channel at `path` and returns its handle.
    pub fn channel(&self, path: &str, options: ChannelOptions) -> Result<Channel> {
        let channel = self.new_channel(path, options)?;
        self.add_route(path, Route::Channel(channel.clone()))?;
        self.share_with_broker(&channel);
        Ok(channel)
    }

    fn new_channel(&self, path: &str, options: ChannelOptions) -> Result<Channel> {
        options.validate()?;
        if options.private && self.site.config.jwt.is_none() {
            return Err(Error::InvalidConfig(format!(
                "channel {path} is private, but the server has no JWT key to verify tokens with"
            )));
        }
        let counters = Arc::clone(&self.site.bodies.counters);
        let broker = self.broker.clone().map(|broker| broker as Arc<dyn Broker>);
        let channel = Channel::new(path.to_owned(), options, counters, broker);
        Ok(match &self.hub {
            Some(hub) => {
                let topic = hub.config().topic_of(path);
                channel.mirrored_into(hub.channel().clone(), topic)
            }
            None => channel,
        })
    }

    fn share_with_broker(&self, channel: &Channel) {
        if let Some(broker) = &self.broker {
            broker.register(channel);
        }
    }

    /// Registers a broadcast channel that no path serves: clients reach it
    /// only when a mounted application hands them over
    /// ([`Exchange::subscribe`](crate::Exchange::subscribe)), after its own
    /// checks, and the host reads it with [`Channel::listen`]. `name` is
    /// path-shaped and unique among the server's routes; stats list it.
    pub fn unrouted_channel(&self, name: &str, options: ChannelOptions) -> Result<Channel> {
        let channel = self.new_channel(name, options)?;
        self.edit_routes(|routes| routes.insert_unrouted(name, channel.clone()))?;
        self.share_with_broker(&channel);
        Ok(channel)
    }

    /// Registers a per-connection stream at `path` driven by an async
    /// function: it runs on the engine's runtime once per client, sends that
    /// client's events, and is dropped (cancelled) as soon as the client
    /// leaves. Returning `Err` ends the response with `event: error` and logs
    /// the error; returning `Ok` ends it normally.
    pub fn stream<F, Fut, E>(&self, path: &str, producer: F) -> Result<()>
    where
        F: Fn(Request, StreamSender) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        self.stream_handler(path, AsyncStream(producer))
    }

    /// Registers a per-connection stream at `path` driven by a
    /// [`StreamHandler`], for hosts that produce events outside Rust futures.
    pub fn stream_handler(&self, path: &str, handler: impl StreamHandler) -> Result<()> {
        self.add_route(path, Route::Stream(Arc::new(handler)))
    }

    /// Registers a route at `path` whose response `handler` computes per
    /// request (`GET`/`HEAD`): a rendered page, a small JSON answer.
    pub fn route(&self, path: &str, handler: impl RouteHandler) -> Result<()> {
        self.add_route(path, Route::Handler(Arc::new(handler)))
    }

    /// Serves the file `file` at `path` (`GET`/`HEAD`), read on each request.
    pub fn page(&self, path: &str, file: impl AsRef<Path>) -> Result<()> {
        let file = files::checked_file(file.as_ref())?;
        self.add_route(path, Route::Page(file))
    }

    /// Serves the files under `dir` below the path `prefix`; a directory
    /// serves its `index.html`. Nothing outside `dir` is reachable.
    pub fn files(&self, prefix: &str, dir: impl AsRef<Path>) -> Result<()> {
        let dir = files::checked_dir(dir.as_ref())?;
        self.edit_routes(|routes| routes.insert_directory(prefix, dir))
    }

    /// Mounts `app` to answer every request that no route serves (any
    /// method, any path, and files missing from a [`files`](Self::files)
    /// directory): an ASGI application, a web framework. Routes registered
    /// on the server win. Fails with [`Error::AlreadyMounted`] the second time.
    pub fn mount(&self, app: impl AppHandler) -> Result<()> {
        self.edit_routes(|routes| routes.mount(Arc::new(app)))
    }

    fn add_route(&self, path: &str, route: Route) -> Result<()> {
        self.edit_routes(|routes| routes.insert(path, route))
    }

    /// Changes the routing table, unless the server was stopped.
    fn edit_routes(&self, edit: impl FnOnce(&mut Routes) -> Result<()>) -> Result<()> {
        if self.site.bodies.shutdown.is_stopping() {
            return Err(Error::Stopped);
        }
        let mut routes = self
            .site
            .routes
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        edit(&mut routes)
    }

    /// Binds the listening socket and starts serving on the engine's own
    /// threads; returns the bound address (useful with port 0).
    ///
    /// Works from a plain thread and from inside another async runtime alike.
    pub fn start(&self) -> Result<SocketAddr> {
        let mut lifecycle = lock(&self.lifecycle);
        match &*lifecycle {
            Lifecycle::Running(running) => return Err(Error::AlreadyRunning(running.addr)),
            Lifecycle::Stopped => return Err(Error::Stopped),
            Lifecycle::Ready => {}
        }
        let config = &self.site.config;
        let workers = match config.worker_threads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("tidings-worker")
            .on_thread_start(|| ON_ENGINE_THREAD.with(|flag| flag.set(true)))
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let settings = lock(&self.settings).clone();
        let listener = bind(&settings.host, settings.port, settings.reuse_port)?;
        let addr = listener.local_addr().map_err(Error::Runtime)?;
        let listener = {
            let _context = runtime.enter();
            TcpListener::from_std(listener).map_err(Error::Runtime)?
        };
        if let Some(broker) = &self.broker {
            broker.start(runtime.handle());
        }
        let connections = TaskTracker::new();
        runtime.spawn(accept_loop(
            listener,
            Arc::new(Connections::new(Arc::clone(&self.site), addr)),
            connections.clone(),
        ));
        tracing::info!(%addr, workers, "tidings listening");
        *lifecycle = Lifecycle::Running(Running {
            runtime,
            addr,
            connections,
        });
        Ok(addr)
    }

    /// The address the server listens on, while it runs.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match &*lock(&self.lifecycle) {
            Lifecycle::Running(running) => Some(running.addr),
            _ => None,
        }
    }

    /// Whether the server is running.
    pub fn is_running(&self) -> bool {
        self.local_addr().is_some()
    }

    /// Stops the server: stops accepting, ends every stream, waits up to the
    /// drain timeout for responses to finish, then closes what is left and
    /// joins the engine's threads. Channels accept no more events afterwards.
    /// Idempotent.
    ///
    /// Called from an engine thread (inside a stream handler or hook), it
    /// starts the shutdown and returns without waiting for it; a later call
    /// from another thread waits for that shutdown to finish.
    pub fn stop(&self) {
        self.shutdown(None);
    }

    /// Like [`stop`](Server::stop), but every open stream is sent `farewell`
    /// as its last event.
    pub fn stop_with(&self, farewell: Event) {
        self.shutdown(Some(farewell.encode()));
    }

    fn shutdown(&self, farewell: Option<Bytes>) {
        let previous = std::mem::replace(&mut *lock(&self.lifecycle), Lifecycle::Stopped);
        if matches!(previous, Lifecycle::Stopped) {
            // Stopped already, or stopping from an engine thread: wait for
            // that to finish, where waiting is possible.
            if !ON_ENGINE_THREAD.with(Cell::get) {
                let stopper = lock(&self.stopper).take();
                if let Some(stopper) = stopper {
                    let _ = stopper.join();
                }
            }
            return;
        }
        self.site.bodies.shutdown.begin(farewell);
        for channel in self.site.routes().channels() {
            channel.close();
        }
        let Lifecycle::Running(running) = previous else {
            if let Some(broker) = &self.broker {
                broker.discard_unsent();
            }
            return;
        };
        let drain = lock(&self.settings).drain_timeout;
        let broker = self.broker.clone();
        // A dedicated thread owns the runtime's shutdown: that is legal from
        // any caller, including one inside another runtime.
        let stopper = std::thread::Builder::new()
            .name("tidings-stop".into())
            .spawn(move || {
                let Running {
                    runtime,
                    connections,
                    addr,
                } = running;
                connections.close();
                // Publishes still queued for the broker go out within the
                // same drain time as the responses.
                let flushed = async {
                    if let Some(broker) = &broker {
                        broker.flush().await;
                    }
                };
                let drained = runtime.block_on(async {
                    let finished = async { tokio::join!(connections.wait(), flushed) };
                    tokio::time::timeout(drain, finished).await.is_ok()
                });
                if !drained {
                    tracing::warn!(%addr, "drain timeout passed; closing the remaining connections");
                }
                runtime.shutdown_timeout(Duration::from_secs(1));
                tracing::info!(%addr, "tidings stopped");
            });
        match stopper {
            Ok(handle) if !ON_ENGINE_THREAD.with(Cell::get) => {
                let _ = handle.join();
            }
            Ok(handle) => *lock(&self.stopper) = Some(handle),
            Err(err) => tracing::error!(error = %err, "cannot spawn the stop thread"),
        }
    }

    /// A snapshot of the server's counters.
    pub fn stats(&self) -> Stats {
        snapshot(&self.site, self.broker.as_deref())
    }
}

/// The counters of the server made of `site` and `broker`.
fn snapshot(site: &Site, broker: Option<&RedisBroker>) -> Stats {
    let mut channels: Vec<ChannelStats> = site
        .routes()
        .channels()
        .map(|channel| ChannelStats {
            path: channel.path().to_owned(),
            subscribers: channel.subscribers(),
            cluster_subscribers: broker
                .and_then(|broker| broker.cluster_subscribers(channel.path())),
            events_published: channel.events_published(),
            history_len: channel.history_len(),
        })
        .collect();
    channels.sort_by(|a, b| a.path.cmp(&b.path));
    site.bodies
        .counters
        .snapshot(channels, broker.map(RedisBroker::stats))
}

/// The route of [`Config::metrics_path`]. It holds the server weakly: the
/// routing table it sits in belongs to the server.
fn metrics_route(site: &Arc<Site>, broker: Option<&Arc<RedisBroker>>) -> MetricsRoute {
    let weak_site = Arc::downgrade(site);
    let weak_broker = broker.map(Arc::downgrade);
    MetricsRoute {
        stats: Box::new(move || {
            let site = weak_site.upgrade()?;
            let broker = match &weak_broker {
                Some(weak) => Some(weak.upgrade()?),
                None => None,
            };
            Some(snapshot(&site, broker.as_deref()))
        }),
        counters: Arc::clone(&site.bodies.counters),
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown(None);
    }
}

/// Binds with a deep accept backlog: a burst of reconnecting clients must not
/// overflow the default one (128) and wait a second for SYN retries.
fn bind(host: &str, port: u16, reuse_port: bool) -> Result<std::net::TcpListener> {
    use std::net::ToSocketAddrs;
    let shown = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let fail = |source| Error::Bind {
        addr: shown.clone(),
        source,
    };
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(fail)?
        .next()
        .ok_or_else(|| {
            fail(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "host has no address",
            ))
        })?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .map_err(fail)?;
    socket.set_reuse_address(true).map_err(fail)?;
    if reuse_port {
        socket.set_reuse_port(true).map_err(fail)?;
    }
    socket.set_nonblocking(true).map_err(fail)?;
    socket.bind(&addr.into()).map_err(fail)?;
    socket.listen(4096).map_err(fail)?;
    Ok(socket.into())
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

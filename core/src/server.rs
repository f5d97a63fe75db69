//! The server: configuration, routes, and the lifecycle of the engine's own
//! runtime (start, accept, drain, stop).

use std::cell::Cell;
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};
use std::time::Duration;

use bytes::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::channel::{Channel, ChannelOptions};
use crate::direct;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::files;
use crate::http::{self as routing, Route, Routes};
use crate::reply::RouteHandler;
use crate::request::Request;
use crate::socket::Socket;
use crate::stats::{ChannelStats, Counters, Stats};
use crate::stream::{AsyncStream, StreamHandler, StreamSender};

/// Which cross-origin pages may read the server's responses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Cors {
    /// No CORS headers: only same-origin pages can read responses.
    #[default]
    Disabled,
    /// `Access-Control-Allow-Origin: *` for every response.
    AnyOrigin,
    /// Only these origins (e.g. `https://app.example`), with credentials.
    Origins(Vec<String>),
}

/// Limits that keep one client, or many, from taking the server down.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Most open connections; beyond it new ones get 429. Default none.
    pub max_connections: Option<usize>,
    /// Most open connections from one IP address; beyond it 429. Default none
    /// (many users may share an address behind NAT).
    pub max_connections_per_ip: Option<usize>,
    /// Largest request head in bytes; beyond it 431. At least 8192. Default 16 KiB.
    pub max_head_bytes: usize,
    /// Time a client has to send its request head (slow-loris defence). Default 10 s.
    pub head_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: None,
            max_connections_per_ip: None,
            max_head_bytes: 16 * 1024,
            head_timeout: Duration::from_secs(10),
        }
    }
}

/// Server configuration. Start from `Config::default()` and set what you need.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on. Default `127.0.0.1`.
    pub host: String,
    /// Port to listen on; 0 picks a free one (see [`Server::start`]). Default 8000.
    pub port: u16,
    /// Engine threads; 0 means one per CPU core. Default 0.
    pub worker_threads: usize,
    /// Cross-origin policy. Default [`Cors::Disabled`].
    pub cors: Cors,
    /// A comment is sent on a stream idle this long, so proxies and clients
    /// keep it open; `None` disables. Default 15 s.
    pub keepalive: Option<Duration>,
    /// A write that cannot complete this long closes the connection (a
    /// client that stopped reading or vanished). Default 30 s.
    pub write_timeout: Duration,
    /// TCP keep-alive probes after this much silence, to find peers that
    /// vanished; `None` disables. Default 60 s.
    pub tcp_keepalive: Option<Duration>,
    /// How long [`Server::stop`] lets streams finish before closing them. Default 5 s.
    pub drain_timeout: Duration,
    /// Events queued per stream-route connection before `send` waits. Default 32.
    pub stream_queue: usize,
    /// Connection and request limits.
    pub limits: Limits,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            host: "127.0.0.1".to_owned(),
            port: 8000,
            worker_threads: 0,
            cors: Cors::Disabled,
            keepalive: Some(Duration::from_secs(15)),
            write_timeout: Duration::from_secs(30),
            tcp_keepalive: Some(Duration::from_secs(60)),
            drain_timeout: Duration::from_secs(5),
            stream_queue: 32,
            limits: Limits::default(),
        }
    }
}

impl Config {
    fn validate(&self) -> Result<()> {
        let invalid = |message: &str| Err(Error::InvalidConfig(message.to_owned()));
        if self.host.is_empty() {
            return invalid("host must not be empty");
        }
        if self.limits.max_head_bytes < 8192 {
            return invalid("limits.max_head_bytes must be at least 8192");
        }
        if self.stream_queue == 0 {
            return invalid("stream_queue must be at least 1");
        }
        if self.write_timeout.is_zero() {
            return invalid("write_timeout must be greater than zero");
        }
        if self.limits.head_timeout.is_zero() {
            return invalid("limits.head_timeout must be greater than zero");
        }
        Ok(())
    }
}

/// State shared by the server handle and every task of the engine.
pub(crate) struct Shared {
    pub(crate) config: Config,
    routes: RwLock<Routes>,
    pub(crate) counters: Arc<Counters>,
    /// Cancelled by `stop`: the accept loop ends, streams send the final
    /// event (if any) and finish.
    pub(crate) shutdown: CancellationToken,
    final_event: Mutex<Option<Bytes>>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

impl Shared {
    pub(crate) fn routes(&self) -> RwLockReadGuard<'_, Routes> {
        self.routes
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn final_event(&self) -> Option<Bytes> {
        lock(&self.final_event).clone()
    }

    fn add_route(&self, path: &str, route: Route) -> Result<()> {
        self.edit_routes(|routes| routes.insert(path, route))
    }

    /// Changes the routing table, unless the server was stopped.
    fn edit_routes(&self, edit: impl FnOnce(&mut Routes) -> Result<()>) -> Result<()> {
        if self.shutdown.is_cancelled() {
            return Err(Error::Stopped);
        }
        let mut routes = self
            .routes
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        edit(&mut routes)
    }
}

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
    shared: Arc<Shared>,
    lifecycle: Mutex<Lifecycle>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("host", &self.shared.config.host)
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
        Ok(Server {
            shared: Arc::new(Shared {
                config,
                routes: RwLock::default(),
                counters: Arc::default(),
                shutdown: CancellationToken::new(),
                final_event: Mutex::new(None),
                per_ip: Mutex::default(),
            }),
            lifecycle: Mutex::new(Lifecycle::Ready),
        })
    }

    /// The configuration the server was created with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// Registers a broadcast channel at `path` and returns its handle.
    pub fn channel(&self, path: &str, options: ChannelOptions) -> Result<Channel> {
        let channel = Channel::new(path.to_owned(), options, Arc::clone(&self.shared.counters));
        self.shared
            .add_route(path, Route::Channel(channel.clone()))?;
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
        self.shared
            .add_route(path, Route::Stream(Arc::new(handler)))
    }

    /// Registers a route at `path` whose response `handler` computes per
    /// request (`GET`/`HEAD`): a rendered page, a small JSON answer.
    pub fn route(&self, path: &str, handler: impl RouteHandler) -> Result<()> {
        self.shared
            .add_route(path, Route::Handler(Arc::new(handler)))
    }

    /// Serves the file `file` at `path` (`GET`/`HEAD`), read on each request.
    pub fn page(&self, path: &str, file: impl AsRef<Path>) -> Result<()> {
        let file = files::checked_file(file.as_ref())?;
        self.shared.add_route(path, Route::Page(file))
    }

    /// Serves the files under `dir` below the path `prefix`; a directory
    /// serves its `index.html`. Nothing outside `dir` is reachable.
    pub fn files(&self, prefix: &str, dir: impl AsRef<Path>) -> Result<()> {
        let dir = files::checked_dir(dir.as_ref())?;
        self.shared
            .edit_routes(|routes| routes.insert_directory(prefix, dir))
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
        let config = &self.shared.config;
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
        let listener = bind(&config.host, config.port)?;
        let addr = listener.local_addr().map_err(Error::Runtime)?;
        let listener = {
            let _context = runtime.enter();
            TcpListener::from_std(listener).map_err(Error::Runtime)?
        };
        let connections = TaskTracker::new();
        runtime.spawn(accept_loop(
            listener,
            Arc::clone(&self.shared),
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
    /// starts the shutdown and returns without waiting for it.
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
            return;
        }
        *lock(&self.shared.final_event) = farewell;
        self.shared.shutdown.cancel();
        for channel in self.shared.routes().channels() {
            channel.close();
        }
        let Lifecycle::Running(running) = previous else {
            return;
        };
        let drain = self.shared.config.drain_timeout;
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
                let drained = runtime.block_on(async {
                    tokio::time::timeout(drain, connections.wait()).await.is_ok()
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
            Ok(_) => {}
            Err(err) => tracing::error!(error = %err, "cannot spawn the stop thread"),
        }
    }

    /// A snapshot of the server's counters.
    pub fn stats(&self) -> Stats {
        let mut channels: Vec<ChannelStats> = self
            .shared
            .routes()
            .channels()
            .map(|channel| ChannelStats {
                path: channel.path().to_owned(),
                subscribers: channel.subscribers(),
                events_published: channel.events_published(),
                history_len: channel.history_len(),
            })
            .collect();
        channels.sort_by(|a, b| a.path.cmp(&b.path));
        self.shared.counters.snapshot(channels)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown(None);
    }
}

/// Binds with a deep accept backlog: a burst of reconnecting clients must not
/// overflow the default one (128) and wait a second for SYN retries.
fn bind(host: &str, port: u16) -> Result<std::net::TcpListener> {
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
    socket.set_nonblocking(true).map_err(fail)?;
    socket.bind(&addr.into()).map_err(fail)?;
    socket.listen(4096).map_err(fail)?;
    Ok(socket.into())
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, connections: TaskTracker) {
    loop {
        let accepted = tokio::select! {
            biased;
            () = shared.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                shared
                    .counters
                    .connections_total
                    .fetch_add(1, Ordering::Relaxed);
                let admission = Admission::new(&shared, peer.ip());
                connections.spawn(serve_connection(
                    stream,
                    peer,
                    Arc::clone(&shared),
                    admission,
                ));
            }
            Err(err) => {
                // Out of file descriptors or similar: back off instead of
                // spinning, and keep serving the connections we have.
                tracing::warn!(error = %err, "accept failed");
                tokio::select! {
                    () = shared.shutdown.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        }
    }
}

/// A connection's place under the connection limits; released on drop.
struct Admission {
    shared: Arc<Shared>,
    ip: IpAddr,
    admitted: bool,
}

impl Admission {
    fn new(shared: &Arc<Shared>, ip: IpAddr) -> Self {
        let limits = &shared.config.limits;
        let counters = &shared.counters;
        let open = counters.connections_open.fetch_add(1, Ordering::Relaxed);
        let mut admitted = limits.max_connections.is_none_or(|max| open < max);
        if admitted && limits.max_connections_per_ip.is_some() {
            let mut per_ip = lock(&shared.per_ip);
            let count = per_ip.entry(ip).or_insert(0);
            admitted = limits.max_connections_per_ip.is_none_or(|max| *count < max);
            if admitted {
                *count += 1;
            }
        }
        if !admitted {
            counters
                .connections_rejected
                .fetch_add(1, Ordering::Relaxed);
        }
        Admission {
            shared: Arc::clone(shared),
            ip,
            admitted,
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.shared
            .counters
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
        if self.admitted && self.shared.config.limits.max_connections_per_ip.is_some() {
            let mut per_ip = lock(&self.shared.per_ip);
            if let Some(count) = per_ip.get_mut(&self.ip) {
                *count -= 1;
                if *count == 0 {
                    per_ip.remove(&self.ip);
                }
            }
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    admission: Admission,
) {
    let config = &shared.config;
    // Events must leave at once, not wait for Nagle to coalesce them.
    let _ = stream.set_nodelay(true);
    if let Some(idle) = config.tcp_keepalive {
        let probes = socket2::TcpKeepalive::new()
            .with_time(idle)
            .with_interval(Duration::from_secs(10));
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&probes);
    }
    let socket = Socket::new(stream, config.write_timeout, Arc::clone(&shared.counters));
    let io = if admission.admitted {
        // Channel subscribers are served directly; the rest goes to hyper.
        match direct::sniff(socket, peer, &shared).await {
            direct::Sniffed::Served => return,
            direct::Sniffed::Hyper { socket, prefix } => direct::Replay::new(prefix, socket),
        }
    } else {
        direct::Replay::new(bytes::BytesMut::new(), socket)
    };
    // Boxed: hyper's connection state is large, and this task's future must
    // not carry room for it while it serves a subscriber directly.
    Box::pin(serve_with_hyper(io, peer, shared, admission)).await;
}

async fn serve_with_hyper(
    io: direct::Replay,
    peer: SocketAddr,
    shared: Arc<Shared>,
    admission: Admission,
) {
    let io = TokioIo::new(io);
    let config = &shared.config;
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.limits.head_timeout)
        .max_buf_size(config.limits.max_head_bytes);

    if !admission.admitted {
        builder.keep_alive(false);
        let refuse = service_fn(|_request| async {
            Ok::<_, std::convert::Infallible>(routing::retry_later(
                http::StatusCode::TOO_MANY_REQUESTS,
                "too many connections\n",
            ))
        });
        if let Err(err) = builder.serve_connection(io, refuse).await {
            tracing::debug!(%peer, error = %err, "refused connection ended");
        }
        return;
    }

    let service_shared = Arc::clone(&shared);
    let service = service_fn(move |request| {
        let shared = Arc::clone(&service_shared);
        async move { Ok::<_, std::convert::Infallible>(routing::handle(shared, peer, request).await) }
    });
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let outcome = tokio::select! {
        outcome = connection.as_mut() => outcome,
        () = shared.shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = outcome {
        tracing::debug!(%peer, error = %err, "connection ended with an error");
    }
    drop(admission);
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

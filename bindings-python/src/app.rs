//! The bridge between a mounted ASGI application and the engine.
//!
//! Engine threads never wait for the interpreter: a new request, a request
//! body chunk that arrived, room in a response's queue, a client that left,
//! each becomes a job in the mailbox, and the first job after the mailbox
//! was emptied has one byte written to a socket pair once the engine thread
//! has run the connections that are ready (`tidings::after_ready_tasks`).
//! The application's asyncio loop watches the other end (`loop.add_reader`)
//! and drains every job queued by then in one pass, attached to the
//! interpreter once. The answers a loop turn gives go back to the engine
//! together, too (`Mailbox::hold_for_this_turn`).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::ThreadId;

use bytes::Bytes;
use ipnet::IpNet;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use pyo3::{intern, IntoPyObjectExt};

use crate::channel::Channel;
use crate::errors::IntoPyResult;
use crate::wakeup::Wakeup;

/// A job for the application's loop.
enum Job {
    /// A new request, for the loop to run the application on.
    Request(tidings::Exchange),
    /// Resolve this future with this value (unless it is done already).
    Resolve(Py<PyAny>, bool),
    /// Cancel this task: its client left before its response was complete.
    Cancel(Py<PyAny>),
}

struct Inner {
    jobs: Mutex<Vec<Job>>,
    /// Woken when a job lands in an empty mailbox.
    wakeup: Wakeup,
    max_pending: usize,
    /// Requests queued and not yet drained.
    pending: AtomicUsize,
    /// Requests refused because `max_pending` were queued.
    refused: AtomicU64,
    /// The loop's thread, and what schedules `release_wakes` on it behind
    /// the callbacks ready now (see `AppBridge.attach`).
    loop_turn: OnceLock<(ThreadId, Py<PyAny>)>,
}

/// The mailbox; cheap to clone, usable from any thread.
#[derive(Clone)]
pub(crate) struct Mailbox {
    inner: Arc<Inner>,
}

impl Mailbox {
    pub(crate) fn new(max_pending: usize) -> PyResult<Self> {
        Ok(Mailbox {
            inner: Arc::new(Inner {
                jobs: Mutex::new(Vec::new()),
                wakeup: Wakeup::new()?,
                max_pending,
                pending: AtomicUsize::new(0),
                refused: AtomicU64::new(0),
                loop_turn: OnceLock::new(),
            }),
        })
    }

    fn push(&self, job: Job) {
        let was_empty = {
            let mut jobs = self
                .inner
                .jobs
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let was_empty = jobs.is_empty();
            jobs.push(job);
            was_empty
        };
        if was_empty {
            // From an engine thread, once the connections ready now have
            // queued their requests too: the loop then takes them in one
            // pass rather than being woken for each.
            let inner = Arc::clone(&self.inner);
            tidings::after_ready_tasks(move || inner.wakeup.wake());
        }
    }

    /// Queues a new request, or answers `503` at once if `max_pending` are
    /// already waiting for the loop.
    pub(crate) fn submit(&self, exchange: tidings::Exchange) {
        let inner = &self.inner;
        if inner.pending.fetch_add(1, Ordering::AcqRel) >= inner.max_pending {
            inner.pending.fetch_sub(1, Ordering::AcqRel);
            inner.refused.fetch_add(1, Ordering::Relaxed);
            let busy = exchange
                .start(
                    503,
                    [
                        ("content-type", "text/plain; charset=utf-8"),
                        ("retry-after", "1"),
                    ],
                )
                .and_then(|()| exchange.write(Bytes::from_static(BUSY), false));
            if let Err(err) = busy {
                tracing::debug!(error = %err, "could not refuse a request");
            }
            return;
        }
        self.push(Job::Request(exchange));
    }

    /// On the loop's thread, holds the engine wake-ups this thread's
    /// answers cause until the loop has run the callbacks ready now: the
    /// responses a loop turn gives leave together, instead of handing the
    /// core to the engine after each. Elsewhere, or before a loop is
    /// attached, does nothing.
    fn hold_for_this_turn(&self, py: Python<'_>) -> PyResult<()> {
        let Some((thread, schedule_release)) = self.inner.loop_turn.get() else {
            return Ok(());
        };
        if *thread == std::thread::current().id() && tidings::hold_wakes() {
            if let Err(err) = schedule_release.call0(py) {
                tidings::release_wakes();
                return Err(err);
            }
        }
        Ok(())
    }

    pub(crate) fn refused(&self) -> u64 {
        self.inner.refused.load(Ordering::Relaxed)
    }

    /// A hook that resolves `future` with `value` on the loop.
    fn resolver(&self, future: Py<PyAny>) -> impl FnOnce(bool) + Send + 'static {
        let mailbox = self.clone();
        move |value| mailbox.push(Job::Resolve(future, value))
    }
}

/// The answer to a request that found too many waiting for the loop.
const BUSY: &[u8] = b"server busy: too many requests waiting for Python\n";

/// The loop's end of the mailbox (`tidings._tidings.AppBridge`).
#[pyclass(module = "tidings._tidings", frozen)]
pub(crate) struct AppBridge {
    mailbox: Mailbox,
}

impl AppBridge {
    pub(crate) fn new(mailbox: Mailbox) -> Self {
        AppBridge { mailbox }
    }
}

#[pymethods]
impl AppBridge {
    /// The file descriptor to watch for readability.
    fn fileno(&self) -> i32 {
        self.mailbox.inner.wakeup.fileno()
    }

    /// Runs on `loop`'s thread from now on: `schedule_release()` must
    /// schedule `release_wakes` behind the callbacks ready now (`call_soon`).
    /// Once only.
    fn attach(&self, schedule_release: Py<PyAny>) -> PyResult<()> {
        let thread = std::thread::current().id();
        self.mailbox
            .inner
            .loop_turn
            .set((thread, schedule_release))
            .map_err(|_| pyo3::exceptions::PyRuntimeError::new_err("a loop is attached already"))
    }

    /// Runs the queued jobs: resolves futures and cancels tasks, and returns
    /// the new requests for the caller to run the application on (their
    /// first responses leave together: see `Mailbox::hold_for_this_turn`).
    fn drain<'py>(&self, py: Python<'py>) -> PyResult<Vec<Exchange>> {
        self.mailbox.hold_for_this_turn(py)?;
        let inner = &self.mailbox.inner;
        // Cleared first: a job queued from here on wakes the loop again.
        inner.wakeup.clear();
        let jobs = std::mem::take(&mut *inner.jobs.lock().unwrap_or_else(PoisonError::into_inner));
        let mut requests = Vec::new();
        for job in jobs {
            match job {
                Job::Request(exchange) => {
                    inner.pending.fetch_sub(1, Ordering::AcqRel);
                    requests.push(Exchange::new(exchange, self.mailbox.clone()));
                }
                Job::Resolve(future, value) => {
                    let future = future.bind(py);
                    if !future.call_method0(intern!(py, "done"))?.is_truthy()? {
                        future.call_method1(intern!(py, "set_result"), (value,))?;
                    }
                }
                Job::Cancel(task) => {
                    task.bind(py).call_method0(intern!(py, "cancel"))?;
                }
            }
        }
        Ok(requests)
    }

    /// Sends the responses held since the hold began (see `attach`).
    fn release_wakes(&self) {
        tidings::release_wakes();
    }

    /// Requests answered `503` because too many were waiting for the loop.
    #[getter]
    fn refused(&self) -> u64 {
        self.mailbox.refused()
    }
}

/// Which peers may set the client's address and scheme through
/// `X-Forwarded-For` / `X-Forwarded-Proto`.
#[derive(Clone, Debug, Default)]
pub(crate) enum TrustedProxies {
    #[default]
    None,
    All,
    Some(Vec<IpNet>),
}

impl TrustedProxies {
    /// Parses uvicorn's `--forwarded-allow-ips`: `*` or a comma-separated
    /// list of addresses and networks (`10.0.0.0/8`, `fd00::/8`).
    pub(crate) fn parse(list: &str) -> PyResult<Self> {
        let mut networks = Vec::new();
        for item in list
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            if item == "*" {
                return Ok(TrustedProxies::All);
            }
            let network = item
                .parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    pyo3::exceptions::PyValueError::new_err(format!(
                        "forwarded_allow_ips: {item:?} is not an IP address, a network \
                         (address/prefix) or \"*\""
                    ))
                })?;
            networks.push(network);
        }
        Ok(TrustedProxies::Some(networks))
    }

    fn trusts(&self, peer: IpAddr) -> bool {
        // An IPv4 client reached over an IPv6 socket is still that client.
        let peer = peer.to_canonical();
        match self {
            TrustedProxies::None => false,
            TrustedProxies::All => true,
            TrustedProxies::Some(list) => list.iter().any(|network| network.contains(&peer)),
        }
    }
}

/// One request for the application (`tidings._tidings.AppExchange`): its
/// scope, and the native halves of its `receive` and `send`.
#[pyclass(module = "tidings._tidings", frozen, name = "AppExchange")]
pub(crate) struct Exchange {
    inner: tidings::Exchange,
    mailbox: Mailbox,
    /// Whether the whole request body has been given to the application.
    body_done: AtomicBool,
}

impl Exchange {
    fn new(inner: tidings::Exchange, mailbox: Mailbox) -> Self {
        Exchange {
            inner,
            mailbox,
            body_done: AtomicBool::new(false),
        }
    }
}

fn message<'py>(py: Python<'py>, kind: &str) -> PyResult<Bound<'py, PyDict>> {
    let message = PyDict::new(py);
    message.set_item(intern!(py, "type"), PyString::new(py, kind))?;
    Ok(message)
}

#[pymethods]
impl Exchange {
    /// The request's ASGI HTTP scope; `state` (the lifespan's) is copied in.
    fn scope<'py>(
        &self,
        py: Python<'py>,
        config: &ScopeConfig,
        state: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let request = self.inner.request();
        // What every scope of this mount shares, copied; then this request's.
        let scope = config.template.bind(py).copy()?;
        // Its own: an app may change its scope's dicts.
        scope.set_item(intern!(py, "asgi"), config.asgi.bind(py).copy()?)?;
        let extensions = PyDict::new(py);
        extensions.set_item(intern!(py, "tidings.channel"), PyDict::new(py))?;
        scope.set_item(intern!(py, "extensions"), extensions)?;
        scope.set_item(intern!(py, "http_version"), request.http_version())?;
        scope.set_item(intern!(py, "method"), request.method())?;
        let root = config.root_path.as_str();
        let path = request.decoded_path();
        if root.is_empty() {
            scope.set_item(intern!(py, "path"), path.as_ref())?;
            scope.set_item(
                intern!(py, "raw_path"),
                PyBytes::new(py, request.path().as_bytes()),
            )?;
        } else {
            scope.set_item(intern!(py, "path"), format!("{root}{path}"))?;
            let raw = [root.as_bytes(), request.path().as_bytes()].concat();
            scope.set_item(intern!(py, "raw_path"), PyBytes::new(py, &raw))?;
        }
        scope.set_item(
            intern!(py, "query_string"),
            PyBytes::new(py, request.query_string().as_bytes()),
        )?;
        let headers = PyList::empty(py);
        let mut forwarded_for = None;
        let mut forwarded_proto = None;
        for (name, value) in request.header_bytes() {
            match name {
                "x-forwarded-for" => forwarded_for = Some(value),
                "x-forwarded-proto" => forwarded_proto = Some(value),
                _ => {}
            }
            headers.append((PyBytes::new(py, name.as_bytes()), PyBytes::new(py, value)))?;
        }
        scope.set_item(intern!(py, "headers"), headers)?;
        let peer = request.peer_addr();
        let mut scheme = request.scheme();
        let mut client = config.client(py, peer)?;
        if config.proxies.trusts(peer.ip()) {
            if let Some(proto) = forwarded_proto.and_then(|p| std::str::from_utf8(p).ok()) {
                let proto = proto.trim().to_ascii_lowercase();
                scheme = if proto == "https" { "https" } else { "http" };
            }
            // The nearest address the proxy did not add itself: the last one.
            let nearest = forwarded_for
                .and_then(|f| std::str::from_utf8(f).ok())
                .and_then(|f| f.rsplit(',').next())
                .map(str::trim)
                .filter(|host| !host.is_empty());
            if let Some(host) = nearest {
                client = PyTuple::new(
                    py,
                    [host.into_bound_py_any(py)?, 0u16.into_bound_py_any(py)?],
                )?;
            }
        }
        scope.set_item(intern!(py, "scheme"), scheme)?;
        scope.set_item(intern!(py, "client"), client)?;
        scope.set_item(
            intern!(py, "server"),
            config.server(py, request.local_addr())?,
        )?;
        if let Some(state) = state {
            scope.set_item(intern!(py, "state"), state.copy()?)?;
        }
        Ok(scope)
    }

    /// The next `receive()` message if one is ready, else None (then wait
    /// with `wait_receive`). After the body: `http.disconnect` once the
    /// client has gone or the response is complete.
    fn receive_nowait<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyDict>>> {
        if self.body_done.load(Ordering::Acquire) {
            return if self.inner.is_closed() {
                message(py, "http.disconnect").map(Some)
            } else {
                Ok(None)
            };
        }
        let (body, more) = match self.inner.try_read() {
            tidings::BodyRead::Pending => return Ok(None),
            tidings::BodyRead::Disconnected => {
                self.body_done.store(true, Ordering::Release);
                return message(py, "http.disconnect").map(Some);
            }
            tidings::BodyRead::End => (Bytes::new(), false),
            tidings::BodyRead::Chunk { data, last } => (data, !last),
        };
        if !more {
            self.body_done.store(true, Ordering::Release);
        }
        let request = message(py, "http.request")?;
        request.set_item(intern!(py, "body"), PyBytes::new(py, &body))?;
        request.set_item(intern!(py, "more_body"), more)?;
        Ok(Some(request))
    }

    /// Resolves `future` (with True) once `receive_nowait` may have a new
    /// message.
    fn wait_receive(&self, future: Py<PyAny>) {
        let resolve = self.mailbox.resolver(future);
        if self.body_done.load(Ordering::Acquire) {
            self.inner.on_close(move || resolve(true));
        } else {
            self.inner.when_readable(move || resolve(true));
        }
    }

    /// `http.response.start`: the status and `headers` (pairs of bytes).
    /// Returns whether the response has no `Content-Length` (so it may
    /// stream, and its head should go out without waiting for a body:
    /// `flush_head`).
    fn start(&self, status: u16, headers: &Bound<'_, PyAny>) -> PyResult<bool> {
        let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        let mut sized = false;
        for pair in headers.try_iter()? {
            let pair = pair?;
            let (name, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair
                .extract()
                .map_err(|_| PyTypeError::new_err("each header must be a (name, value) pair"))?;
            let name = header_bytes(&name)?;
            sized |= name.eq_ignore_ascii_case(b"content-length");
            pairs.push((name, header_bytes(&value)?));
        }
        self.inner.start(status, pairs).py_err()?;
        Ok(!sized)
    }

    /// Sends the head now unless a body was written since `start`.
    fn flush_head(&self, py: Python<'_>) -> PyResult<()> {
        // An answer like `write`'s, so it leaves with the loop turn's others.
        self.mailbox.hold_for_this_turn(py)?;
        match self.inner.flush_head() {
            // The client left: the app learns it at its next send.
            Ok(()) | Err(tidings::Error::Disconnected) => Ok(()),
            Err(err) => Err(crate::errors::to_py(err)),
        }
    }

    /// `http.response.body`: queues `body`; True if the caller must wait
    /// (`wait_writable`) before sending more.
    fn write(&self, body: &Bound<'_, PyAny>, more: bool) -> PyResult<bool> {
        self.mailbox.hold_for_this_turn(body.py())?;
        self.inner.write(body_bytes(body)?, more).py_err()
    }

    /// Resolves `future` with True once the response's queue has room, or
    /// False once the client has gone.
    fn wait_writable(&self, future: Py<PyAny>) {
        self.inner.when_writable(self.mailbox.resolver(future));
    }

    /// Hands the connection to `channel`, as one of its subscribers.
    fn subscribe(&self, channel: &Channel) -> PyResult<()> {
        self.inner.subscribe(channel.core()).py_err()
    }

    /// Hands the connection to an event stream fed through the returned
    /// `AppStream` (`queue` events deep), with keep-alives and disconnect
    /// detection done by the engine.
    fn stream(&self, queue: usize) -> PyResult<AppStream> {
        Ok(AppStream {
            inner: self.inner.stream(queue).py_err()?,
            mailbox: self.mailbox.clone(),
        })
    }

    /// The application failed: `500` before its response started, a cut
    /// connection after. A no-op once the response is complete.
    fn fail(&self) {
        self.inner.fail();
    }

    /// Cancels `task` on the loop if the client leaves before the response
    /// is complete.
    fn cancel_on_disconnect(&self, task: Py<PyAny>) {
        let mailbox = self.mailbox.clone();
        let exchange = self.inner.clone();
        self.inner.on_close(move || {
            if !exchange.is_answered() {
                mailbox.push(Job::Cancel(task));
            }
        });
    }

    /// Whether the exchange is over: the client has gone, or the response
    /// was sent in full.
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }

    /// Whether the response is complete (or was handed over).
    #[getter]
    fn answered(&self) -> bool {
        self.inner.is_answered()
    }

    /// The path, for logs.
    #[getter]
    fn path(&self) -> &str {
        self.inner.request().path()
    }

    /// The method, for logs.
    #[getter]
    fn method(&self) -> &str {
        self.inner.request().method()
    }
}

fn header_bytes(value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(bytes) = value.cast::<PyBytes>() {
        return Ok(bytes.as_bytes().to_vec());
    }
    if let Ok(text) = value.cast::<PyString>() {
        // Lenient where ASGI asks for bytes: header text is Latin-1.
        return text
            .to_cow()?
            .chars()
            .map(|c| u8::try_from(u32::from(c)))
            .collect::<Result<_, _>>()
            .map_err(|_| PyTypeError::new_err("header text must be Latin-1"));
    }
    Err(PyTypeError::new_err(format!(
        "header names and values must be bytes, not {}",
        value.get_type().name()?
    )))
}

fn body_bytes(body: &Bound<'_, PyAny>) -> PyResult<Bytes> {
    if let Ok(bytes) = body.cast::<PyBytes>() {
        return Ok(Bytes::copy_from_slice(bytes.as_bytes()));
    }
    if let Ok(bytes) = body.extract::<Vec<u8>>() {
        if !body.is_instance_of::<PyString>() {
            return Ok(Bytes::from(bytes));
        }
    }
    Err(PyTypeError::new_err(format!(
        "a response body must be bytes, not {}",
        body.get_type().name()?
    )))
}

/// How every request's ASGI scope is built, set once per mount
/// (`tidings._tidings.ScopeConfig`).
#[pyclass(module = "tidings._tidings", frozen)]
pub(crate) struct ScopeConfig {
    root_path: String,
    proxies: TrustedProxies,
    /// The keys every scope has with the same value (`type`, `root_path`);
    /// each scope starts as a copy of it.
    template: Py<PyDict>,
    /// `scope["asgi"]`, copied into each scope.
    asgi: Py<PyDict>,
    /// The last addresses turned into Python objects. Requests come from
    /// few peers and reach one listening address, and formatting an
    /// address costs more than the scope's other fields together.
    addresses: Mutex<AddressCache>,
}

#[derive(Default)]
struct AddressCache {
    client_host: Option<(IpAddr, Py<PyString>)>,
    server: Option<(SocketAddr, Py<PyTuple>)>,
}

impl ScopeConfig {
    fn addresses(&self) -> MutexGuard<'_, AddressCache> {
        self.addresses
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// `client`: `(host, port)`.
    fn client<'py>(&self, py: Python<'py>, peer: SocketAddr) -> PyResult<Bound<'py, PyTuple>> {
        let host = {
            let mut cache = self.addresses();
            match &cache.client_host {
                Some((ip, host)) if *ip == peer.ip() => host.clone_ref(py),
                _ => {
                    let host = PyString::new(py, &peer.ip().to_string()).unbind();
                    cache.client_host = Some((peer.ip(), host.clone_ref(py)));
                    host
                }
            }
        };
        PyTuple::new(
            py,
            [
                host.into_bound(py).into_any(),
                peer.port().into_bound_py_any(py)?,
            ],
        )
    }

    /// `server`: `(host, port)`, the same object for every request to it
    /// (tuples are immutable).
    fn server<'py>(&self, py: Python<'py>, local: SocketAddr) -> PyResult<Bound<'py, PyTuple>> {
        let mut cache = self.addresses();
        if let Some((addr, server)) = &cache.server {
            if *addr == local {
                return Ok(server.bind(py).clone());
            }
        }
        let server = PyTuple::new(
            py,
            [
                local.ip().to_string().into_bound_py_any(py)?,
                local.port().into_bound_py_any(py)?,
            ],
        )?;
        cache.server = Some((local, server.clone().unbind()));
        Ok(server)
    }
}

#[pymethods]
impl ScopeConfig {
    #[new]
    #[pyo3(signature = (root_path="", forwarded_allow_ips=None))]
    fn new(py: Python<'_>, root_path: &str, forwarded_allow_ips: Option<&str>) -> PyResult<Self> {
        let proxies = match forwarded_allow_ips {
            None => TrustedProxies::None,
            Some(list) => TrustedProxies::parse(list)?,
        };
        let root_path = root_path.trim_end_matches('/').to_owned();
        let asgi = PyDict::new(py);
        asgi.set_item("version", "3.0")?;
        asgi.set_item("spec_version", "2.4")?;
        let template = PyDict::new(py);
        template.set_item("type", "http")?;
        template.set_item("root_path", &root_path)?;
        Ok(ScopeConfig {
            root_path,
            proxies,
            template: template.unbind(),
            asgi: asgi.unbind(),
            addresses: Mutex::default(),
        })
    }
}

/// The sending end of a connection handed to an event stream
/// (`tidings._tidings.AppStream`); its wake-ups come through the mailbox.
#[pyclass(module = "tidings._tidings", frozen)]
pub(crate) struct AppStream {
    inner: tidings::StreamSender,
    mailbox: Mailbox,
}

#[pymethods]
impl AppStream {
    /// Queues one item (str, bytes, dict of fields or `Event`); False if
    /// the queue is full (wait with `wait_ready`). Raises
    /// `ClientDisconnected` once the client has gone.
    fn try_send(&self, item: &Bound<'_, PyAny>) -> PyResult<bool> {
        crate::stream::try_send_item(&self.inner, item)
    }

    /// Resolves `future` with True once there is room, False once the
    /// client has gone.
    fn wait_ready(&self, future: Py<PyAny>) {
        self.inner.when_ready(self.mailbox.resolver(future));
    }

    /// Resolves `future` (with True) once the client has gone.
    fn wait_closed(&self, future: Py<PyAny>) {
        let resolve = self.mailbox.resolver(future);
        self.inner.on_close(move || resolve(true));
    }

    /// Ends the stream after what was queued.
    fn close(&self) {
        self.inner.close();
    }

    /// Ends the stream with `event: error` after what was queued.
    fn fail(&self) {
        self.inner.fail();
    }

    /// Whether the client has gone (or the stream was closed).
    #[getter]
    fn closed(&self) -> bool {
        self.inner.is_closed()
    }
}

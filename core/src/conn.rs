//! Connections: the accept loop, admission under the connection limits, and
//! serving one connection: its TLS handshake, then the direct path for a
//! subscriber, hyper (HTTP/1.1 or HTTP/2) for the rest.

use std::collections::HashMap;
use std::future::poll_fn;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::BytesMut;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;

use crate::config::Limits;
use crate::direct;
use crate::head::{read_head, Head};
use crate::http::{self as service, Site};
use crate::multiplex::{StreamExecutor, Streams, Watched};
use crate::request::Endpoints;
use crate::socket::{Io, Replay, Socket};
use crate::stats::Counters;
use crate::tls;

/// What the accept loop and its connections share.
pub(crate) struct Connections {
    pub(crate) site: Arc<Site>,
    /// The listening address: every connection's local address, unless it
    /// is a wildcard (then each connection asks its socket).
    listening: SocketAddr,
    /// Open connections per client, keyed by [`client_key`].
    per_client: Mutex<HashMap<IpAddr, usize>>,
}

impl Connections {
    pub(crate) fn new(site: Arc<Site>, listening: SocketAddr) -> Self {
        Connections {
            site,
            listening,
            per_client: Mutex::default(),
        }
    }

    fn counters(&self) -> &Counters {
        &self.site.bodies.counters
    }
}

/// Accepts connections until the server stops; each is served by its own
/// task, tracked by `tasks` so that `stop` can wait for them.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    connections: Arc<Connections>,
    tasks: TaskTracker,
) {
    let shutdown = Arc::clone(&connections.site.bodies.shutdown);
    loop {
        let accepted = tokio::select! {
            biased;
            () = shutdown.stopping() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                connections
                    .counters()
                    .connections_total
                    .fetch_add(1, Ordering::Relaxed);
                match Admission::new(&connections, peer.ip()) {
                    Ok(admission) => {
                        let site = Arc::clone(&connections.site);
                        let streams = tasks.clone();
                        tasks.spawn(serve_connection(stream, peer, site, admission, streams));
                    }
                    Err(limit) => {
                        let counters = connections.counters();
                        counters.connections_refused.fetch_add(1, Ordering::Relaxed);
                        if limit == Limit::PerClient {
                            counters
                                .connections_refused_per_client
                                .fetch_add(1, Ordering::Relaxed);
                        }
                        tasks.spawn(refuse(stream, Arc::clone(&connections.site), TOO_MANY));
                    }
                }
            }
            Err(err) => {
                // Out of file descriptors or similar: back off instead of
                // spinning, and keep serving the connections we have.
                tracing::warn!(error = %err, "accept failed");
                tokio::select! {
                    () = shutdown.stopping() => break,
                    () = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        }
    }
}

/// Who the per-client limit counts as one client: an IPv4 address, or an
/// IPv6 /64 (one subscriber line's whole prefix, which it may rotate through).
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(v6.to_bits() & !u128::from(u64::MAX))),
        },
    }
}

/// An admitted connection's place under the connection limits; released on
/// drop.
struct Admission {
    connections: Arc<Connections>,
    client: IpAddr,
}

/// The connection limit that refused a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Limit {
    /// `max_connections`.
    Total,
    /// `max_connections_per_ip`.
    PerClient,
}

impl Admission {
    /// A place for a connection from `ip`, or the limit that refuses it.
    fn new(connections: &Arc<Connections>, ip: IpAddr) -> Result<Self, Limit> {
        let limits = &connections.site.config.limits;
        let open = &connections.counters().connections_open;
        let before = open.fetch_add(1, Ordering::Relaxed);
        if limits.max_connections.is_some_and(|max| before >= max) {
            open.fetch_sub(1, Ordering::Relaxed);
            return Err(Limit::Total);
        }
        let client = client_key(ip);
        if let Some(max) = limits.max_connections_per_ip {
            let mut per_client = connections
                .per_client
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let count = per_client.entry(client).or_insert(0);
            if *count >= max {
                open.fetch_sub(1, Ordering::Relaxed);
                return Err(Limit::PerClient);
            }
            *count += 1;
        }
        Ok(Admission {
            connections: Arc::clone(connections),
            client,
        })
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let connections = &self.connections;
        connections
            .counters()
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
        if connections
            .site
            .config
            .limits
            .max_connections_per_ip
            .is_some()
        {
            let mut per_client = connections
                .per_client
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if let Some(count) = per_client.get_mut(&self.client) {
                *count -= 1;
                if *count == 0 {
                    per_client.remove(&self.client);
                }
            }
        }
    }
}

/// Serves one admitted connection; `tasks` tracks the HTTP/2 streams it
/// opens, for `stop` to wait for them too.
async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    site: Arc<Site>,
    admission: Admission,
    tasks: TaskTracker,
) {
    let config = &site.config;
    // Events must leave at once, not wait for Nagle to coalesce them.
    let _ = stream.set_nodelay(true);
    if let Some(idle) = config.tcp_keepalive {
        let probes = socket2::TcpKeepalive::new()
            .with_time(idle)
            .with_interval(Duration::from_secs(10));
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&probes);
    }
    // Keep-alive probes are not sent while data is unacknowledged, so a peer
    // that vanished mid-write would linger ~15 minutes of retransmissions.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = socket2::SockRef::from(&stream).set_tcp_user_timeout(Some(config.write_timeout));
    let local = if admission.connections.listening.ip().is_unspecified() {
        stream
            .local_addr()
            .unwrap_or(admission.connections.listening)
    } else {
        admission.connections.listening
    };
    let socket = Socket::new(
        stream,
        config.write_timeout,
        Arc::clone(&site.bodies.counters),
    );
    let shutdown = &site.bodies.shutdown;
    let mut io = match &site.tls {
        None => Io::Plain(socket),
        // Boxed, like hyper below: a handshake's state is large, and this
        // task's future must stay small for the subscribers it serves. The
        // handshake has the head's time: both are the client's to send.
        Some(tls) => {
            let timeout = config.limits.head_timeout;
            match Box::pin(handshake(tls.acceptor(), socket, timeout, &site)).await {
                Handshake::Done(io) => io,
                Handshake::Failed => {
                    site.bodies
                        .counters
                        .tls_handshakes_failed
                        .fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Handshake::Stopping => return,
            }
        }
    };
    let ends = Endpoints {
        peer,
        local,
        tls: io.is_tls(),
    };
    if let Io::Tls(stream) = &io {
        if tls::negotiated_h2(stream.get_ref().1.alpn_protocol()) {
            let io = Replay::new(BytesMut::new(), io);
            return Box::pin(serve_with_hyper(io, ends, site, admission, tasks, true)).await;
        }
    }
    let prefix = match read_head(&mut io, &config.limits, shutdown).await {
        Head::Abandoned => return,
        Head::TimedOut => {
            site.bodies
                .counters
                .heads_timed_out
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        // Boxed, like hyper below: this task's future must stay small for
        // the subscribers it serves for hours.
        Head::TooLarge => {
            site.bodies
                .counters
                .heads_too_large
                .fetch_add(1, Ordering::Relaxed);
            return Box::pin(answer_and_close(io, &site, HEAD_TOO_LARGE, false)).await;
        }
        Head::Complete(bytes) => match direct::subscribe(&bytes, ends, &site) {
            // Channel subscribers are served directly (the head's buffer is
            // given back first: the connection may live for hours); the
            // rest goes to hyper.
            Some(stream) => {
                drop(bytes);
                return direct::serve(io, stream).await;
            }
            None => bytes,
        },
    };
    // h2c by prior knowledge: the preface's first line ended the "head".
    let h2c = prefix.starts_with(H2_PREFACE);
    // Boxed: hyper's connection state is large, and this task's future must
    // not carry room for it while it serves a subscriber directly.
    Box::pin(serve_with_hyper(
        Replay::new(prefix, io),
        ends,
        site,
        admission,
        tasks,
        h2c,
    ))
    .await;
}

/// How a TLS handshake ended.
enum Handshake {
    Done(Io),
    /// The client broke it off, spoke something else, or took too long.
    Failed,
    Stopping,
}

/// The TLS handshake on `socket`, within `timeout`, given up at once if the
/// server is stopping.
async fn handshake(
    acceptor: &tokio_rustls::TlsAcceptor,
    socket: Socket,
    timeout: Duration,
    site: &Site,
) -> Handshake {
    let shaking = tokio::time::timeout(timeout, acceptor.accept(socket));
    tokio::select! {
        outcome = shaking => match outcome {
            Ok(Ok(stream)) => Handshake::Done(Io::Tls(Box::new(stream))),
            Ok(Err(err)) => {
                tracing::debug!(error = %err, "TLS handshake failed");
                Handshake::Failed
            }
            Err(_elapsed) => Handshake::Failed,
        },
        () = site.bodies.shutdown.stopping() => Handshake::Stopping,
    }
}

/// Most bytes an HTTP/2 stream buffers beyond what its client's flow
/// control window takes (hyper's default is 400 KiB): a stream that stops
/// reading costs no more than this, and lag detection does the rest.
const H2_SEND_BUFFER: usize = 64 * 1024;

/// Most streams a client may reset before the server has answered them
/// (the "rapid reset" attack, CVE-2023-44487).
const H2_PENDING_RESETS: usize = 20;

/// How an HTTP/2 connection without TLS begins.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

/// Serves a connection with hyper: HTTP/1.1, or HTTP/2 (`h2`: known to be,
/// by ALPN or the preface), whose streams run as tasks on `tasks`.
async fn serve_with_hyper(
    io: Replay,
    ends: Endpoints,
    site: Arc<Site>,
    admission: Admission,
    tasks: TaskTracker,
    h2: bool,
) {
    let io = TokioIo::new(io);
    let config = &site.config;
    let streams = Arc::new(Streams::default());
    let executor = StreamExecutor::new(
        tasks,
        Arc::clone(&streams),
        config.write_timeout,
        Arc::clone(&site.bodies.counters),
    );
    let mut builder = auto::Builder::new(executor);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.limits.head_timeout)
        .max_buf_size(config.limits.max_head_bytes);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.limits.max_streams_per_connection)
        .max_header_list_size(u32::try_from(config.limits.max_head_bytes).unwrap_or(u32::MAX))
        .max_send_buf_size(H2_SEND_BUFFER)
        .max_pending_accept_reset_streams(H2_PENDING_RESETS)
        // PING finds a peer that vanished even while its streams are idle.
        .keep_alive_interval(config.tcp_keepalive)
        .keep_alive_timeout(config.write_timeout);
    if !config.http2 {
        builder = builder.http1_only();
    }
    let service_site = Arc::clone(&site);
    let service = service_fn(move |request| {
        let site = Arc::clone(&service_site);
        async move {
            let response = service::handle(&site, ends, request).await?;
            // Made in the stream's task, where its watch is found.
            Ok::<_, service::Aborted>(response.map(Watched::new))
        }
    });
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    // HTTP/1.1 has hyper's head timeout between requests; an HTTP/2
    // connection with no stream open for as long is closed the same way.
    let idle = async {
        if h2 {
            streams.idle_for(config.limits.head_timeout).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let outcome = tokio::select! {
        outcome = connection.as_mut() => outcome,
        () = site.bodies.shutdown.stopping() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
        () = idle => {
            tracing::debug!(peer = %ends.peer, "closing an HTTP/2 connection left without a stream");
            connection.as_mut().graceful_shutdown();
            // A client that does not answer the GOAWAY's PING is not waited
            // for: the connection is dropped a head timeout later.
            let closing = tokio::time::timeout(config.limits.head_timeout, connection.as_mut());
            tokio::select! {
                outcome = closing => outcome.unwrap_or(Ok(())),
                () = site.bodies.shutdown.stopping() => Ok(()),
            }
        }
    };
    if let Err(err) = outcome {
        tracing::debug!(peer = %ends.peer, error = %err, "connection ended with an error");
    }
    drop(admission);
}

/// A fixed answer written without reading the request: a status line, a
/// reason, and whether the client may retry soon.
struct Refusal {
    status: &'static str,
    reason: &'static str,
    retry_after: bool,
}

const TOO_MANY: Refusal = Refusal {
    status: "429 Too Many Requests",
    reason: "too many connections\n",
    retry_after: true,
};

const HEAD_TOO_LARGE: Refusal = Refusal {
    status: "431 Request Header Fields Too Large",
    reason: "request head too large\n",
    retry_after: false,
};

/// Most time and bytes a refused connection may cost after its answer.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 64 * 1024;

/// Refuses a connection once its request head has arrived (so that the
/// answer is never unsolicited), or after a moment without one (a browser's
/// pre-connected socket): never after the full head timeout.
async fn refuse(stream: TcpStream, site: Arc<Site>, refusal: Refusal) {
    let socket = Socket::new(
        stream,
        site.config.write_timeout.min(LINGER),
        Arc::clone(&site.bodies.counters),
    );
    let limits = Limits {
        head_timeout: LINGER,
        ..site.config.limits.clone()
    };
    let shutdown = &site.bodies.shutdown;
    let mut io = match &site.tls {
        None => Io::Plain(socket),
        // Offering HTTP/1.1 only, so that the raw answer below is one the
        // client reads.
        Some(tls) => match handshake(tls.http1_acceptor(), socket, LINGER, &site).await {
            Handshake::Done(io) => io,
            Handshake::Failed | Handshake::Stopping => return,
        },
    };
    // Whatever arrives (a head, too much, or nothing in time), the answer
    // is the same; only a HEAD request gets it without a body.
    let head = read_head(&mut io, &limits, shutdown).await;
    let head_only = matches!(&head, Head::Complete(bytes) if bytes.starts_with(b"HEAD "));
    answer_and_close(io, &site, refusal, head_only).await;
}

/// Writes `refusal`, then closes the connection in a way that lets the
/// client read it: the write side first, then what the client still sends
/// is read and dropped for a moment, since closing with unread bytes would
/// reset the connection and could discard the answer on the client's side.
async fn answer_and_close(mut socket: Io, site: &Site, refusal: Refusal, head_only: bool) {
    let mut answer = BytesMut::with_capacity(256);
    let retry = if refusal.retry_after {
        "retry-after: 2\r\n"
    } else {
        ""
    };
    answer.extend_from_slice(
        format!(
            "HTTP/1.1 {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\n\
             {retry}connection: close\r\ndate: {}\r\n\r\n{}",
            refusal.status,
            refusal.reason.len(),
            httpdate::fmt_http_date(std::time::SystemTime::now()),
            if head_only { "" } else { refusal.reason },
        )
        .as_bytes(),
    );
    let shutdown = &site.bodies.shutdown;
    let lingering = async {
        if direct::write_all(&mut socket, &mut answer).await.is_err() {
            return;
        }
        if poll_fn(|cx| Pin::new(&mut socket).poll_shutdown(cx))
            .await
            .is_err()
        {
            return;
        }
        let mut sink = [0u8; 4096];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            let mut buf = ReadBuf::new(&mut sink);
            match poll_fn(|cx| Pin::new(&mut socket).poll_read(cx, &mut buf)).await {
                Ok(()) if !buf.filled().is_empty() => drained += buf.filled().len(),
                _ => break,
            }
        }
    };
    tokio::select! {
        _ = tokio::time::timeout(LINGER, lingering) => {}
        () = shutdown.stopping() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_clients_are_counted_per_64_and_mapped_ipv4_as_ipv4() {
        let key = |text: &str| client_key(text.parse().unwrap());
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2::"));
        assert_eq!(key("::ffff:192.0.2.7"), key("192.0.2.7"));
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
    }
}

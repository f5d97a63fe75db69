//! Connections: the accept loop, admission under the connection limits, and
//! serving one connection (the direct path for a subscriber, hyper for the
//! rest).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;

use crate::direct;
use crate::head::{read_head, Head};
use crate::http::{self as service, Site};
use crate::socket::{Replay, Socket};

/// What the accept loop and its connections share.
pub(crate) struct Connections {
    pub(crate) site: Arc<Site>,
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

impl Connections {
    pub(crate) fn new(site: Arc<Site>) -> Self {
        Connections {
            site,
            per_ip: Mutex::default(),
        }
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
                    .site
                    .bodies
                    .counters
                    .connections_total
                    .fetch_add(1, Ordering::Relaxed);
                let admission = Admission::new(&connections, peer.ip());
                tasks.spawn(serve_connection(
                    stream,
                    peer,
                    Arc::clone(&connections.site),
                    admission,
                ));
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

/// A connection's place under the connection limits; released on drop.
struct Admission {
    connections: Arc<Connections>,
    ip: IpAddr,
    admitted: bool,
}

impl Admission {
    fn new(connections: &Arc<Connections>, ip: IpAddr) -> Self {
        let limits = &connections.site.config.limits;
        let counters = &connections.site.bodies.counters;
        let open = counters.connections_open.fetch_add(1, Ordering::Relaxed);
        let mut admitted = limits.max_connections.is_none_or(|max| open < max);
        if admitted && limits.max_connections_per_ip.is_some() {
            let mut per_ip = connections
                .per_ip
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
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
            connections: Arc::clone(connections),
            ip,
            admitted,
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let site = &self.connections.site;
        site.bodies
            .counters
            .connections_open
            .fetch_sub(1, Ordering::Relaxed);
        if self.admitted && site.config.limits.max_connections_per_ip.is_some() {
            let mut per_ip = self
                .connections
                .per_ip
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
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
    site: Arc<Site>,
    admission: Admission,
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
    let mut socket = Socket::new(
        stream,
        config.write_timeout,
        Arc::clone(&site.bodies.counters),
    );
    let io = if admission.admitted {
        // Channel subscribers are served directly; the rest goes to hyper.
        match read_head(&mut socket, &config.limits, &site.bodies.shutdown).await {
            Head::Abandoned => return,
            Head::TooLarge(prefix) => Replay::new(prefix, socket),
            Head::Complete(prefix) => match direct::subscribe(&prefix, peer, &site) {
                Some(stream) => return direct::serve(socket, stream).await,
                None => Replay::new(prefix, socket),
            },
        }
    } else {
        Replay::new(bytes::BytesMut::new(), socket)
    };
    // Boxed: hyper's connection state is large, and this task's future must
    // not carry room for it while it serves a subscriber directly.
    Box::pin(serve_with_hyper(io, peer, site, admission)).await;
}

async fn serve_with_hyper(io: Replay, peer: SocketAddr, site: Arc<Site>, admission: Admission) {
    let io = TokioIo::new(io);
    let config = &site.config;
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.limits.head_timeout)
        .max_buf_size(config.limits.max_head_bytes);

    if !admission.admitted {
        builder.keep_alive(false);
        let refuse = service_fn(|_request| async {
            Ok::<_, std::convert::Infallible>(service::retry_later(
                http::StatusCode::TOO_MANY_REQUESTS,
                "too many connections\n",
            ))
        });
        if let Err(err) = builder.serve_connection(io, refuse).await {
            tracing::debug!(%peer, error = %err, "refused connection ended");
        }
        return;
    }

    let service_site = Arc::clone(&site);
    let service = service_fn(move |request| {
        let site = Arc::clone(&service_site);
        async move { Ok::<_, std::convert::Infallible>(service::handle(&site, peer, request).await) }
    });
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let outcome = tokio::select! {
        outcome = connection.as_mut() => outcome,
        () = site.bodies.shutdown.stopping() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(err) = outcome {
        tracing::debug!(%peer, error = %err, "connection ended with an error");
    }
    drop(admission);
}

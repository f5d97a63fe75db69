//! Counters the engine keeps, and the snapshot [`Server::stats`](crate::Server::stats) returns.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Live counters shared by the engine's tasks. Relaxed atomics: each is a
/// monotonic tally or a gauge read for reporting, never for synchronisation.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) connections_open: AtomicUsize,
    pub(crate) connections_total: AtomicU64,
    pub(crate) connections_refused: AtomicU64,
    pub(crate) subscribers_refused: AtomicU64,
    pub(crate) streams_open: AtomicUsize,
    pub(crate) events_published: AtomicU64,
    pub(crate) events_delivered: AtomicU64,
    pub(crate) bytes_written: AtomicU64,
    pub(crate) slow_consumer_drops: AtomicU64,
    pub(crate) write_timeouts: AtomicU64,
    pub(crate) tls_handshakes_failed: AtomicU64,
}

/// A snapshot of the server's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// TCP connections open now and admitted (refused ones are not counted).
    pub connections_open: usize,
    /// TCP connections accepted since start, refused ones included.
    pub connections_total: u64,
    /// Connections turned away at once by a connection limit (429).
    pub connections_refused: u64,
    /// Subscriptions refused because their channel was full (503).
    pub subscribers_refused: u64,
    /// Event streams (channel subscribers and per-connection streams) open now.
    pub streams_open: usize,
    /// Events published to channels.
    pub events_published: u64,
    /// Events handed to connections (one per event per subscriber).
    pub events_delivered: u64,
    /// Bytes written to sockets, heads included (over TLS, the encrypted
    /// bytes).
    pub bytes_written: u64,
    /// Subscribers disconnected for falling too far behind.
    pub slow_consumer_drops: u64,
    /// Connections closed because a write could not complete in time.
    pub write_timeouts: u64,
    /// TLS handshakes that failed or did not finish within the head
    /// timeout (a client that distrusts the certificate, or speaks plain
    /// HTTP to the TLS port).
    pub tls_handshakes_failed: u64,
    /// Per channel, in path order.
    pub channels: Vec<ChannelStats>,
    /// The broker's state, when the server has one ([`Config::broker`](crate::Config::broker)).
    pub broker: Option<BrokerStats>,
}

/// A snapshot of the connection to the broker that joins servers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BrokerStats {
    /// The broker's address, without credentials.
    pub url: String,
    /// Whether both of the server's broker connections (publishing and
    /// reading) are up now.
    pub connected: bool,
    /// Times a broker connection was lost or could not be made.
    pub faults: u64,
    /// Connections made again after a fault.
    pub reconnects: u64,
    /// Events waiting to be sent to the broker.
    pub queued: usize,
    /// Events the broker stored for this server.
    pub sent: u64,
    /// Events refused: by the broker (an error reply), or at once because
    /// the queue was full.
    pub refused: u64,
    /// Events read from the broker and appended to the channels here
    /// (duplicates of a retried send are dropped and not counted).
    pub received: u64,
    /// Times a channel's subscribers were sent `event: reset` because the
    /// broker lost entries this server had not read (trimmed past, or a
    /// broker restarted without its data).
    pub gaps: u64,
    /// The last fault, as the broker client reported it.
    pub last_error: Option<String>,
}

/// A snapshot of one channel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChannelStats {
    /// The channel's path.
    pub path: String,
    /// Subscribers now, on this server.
    pub subscribers: usize,
    /// Subscribers on every server sharing the broker, as last counted
    /// (every 2 s); `None` without a broker, or before the first count.
    pub cluster_subscribers: Option<usize>,
    /// Events published on it.
    pub events_published: u64,
    /// Events offered for replay now.
    pub history_len: usize,
}

impl Counters {
    pub(crate) fn snapshot(
        &self,
        channels: Vec<ChannelStats>,
        broker: Option<BrokerStats>,
    ) -> Stats {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Stats {
            connections_open: self.connections_open.load(Ordering::Relaxed),
            connections_total: get(&self.connections_total),
            connections_refused: get(&self.connections_refused),
            subscribers_refused: get(&self.subscribers_refused),
            streams_open: self.streams_open.load(Ordering::Relaxed),
            events_published: get(&self.events_published),
            events_delivered: get(&self.events_delivered),
            bytes_written: get(&self.bytes_written),
            slow_consumer_drops: get(&self.slow_consumer_drops),
            write_timeouts: get(&self.write_timeouts),
            tls_handshakes_failed: get(&self.tls_handshakes_failed),
            channels,
            broker,
        }
    }
}

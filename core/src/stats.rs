//! Counters the engine keeps, and the snapshot [`Server::stats`](crate::Server::stats) returns.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

/// Live counters shared by the engine's tasks. Relaxed atomics: each is a
/// monotonic tally or a gauge read for reporting, never for synchronisation.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) connections_open: AtomicUsize,
    pub(crate) connections_total: AtomicU64,
    pub(crate) connections_refused: AtomicU64,
    /// Of `connections_refused`, those refused by `max_connections_per_ip`.
    pub(crate) connections_refused_per_client: AtomicU64,
    /// Requests whose head passed `max_head_bytes` (431).
    pub(crate) heads_too_large: AtomicU64,
    /// Connections closed because no head came within `head_timeout`.
    pub(crate) heads_timed_out: AtomicU64,
    pub(crate) subscribers_refused: AtomicU64,
    pub(crate) streams_open: AtomicUsize,
    pub(crate) events_published: AtomicU64,
    pub(crate) events_delivered: AtomicU64,
    pub(crate) bytes_written: AtomicU64,
    pub(crate) slow_consumer_drops: AtomicU64,
    pub(crate) write_timeouts: AtomicU64,
    pub(crate) tls_handshakes_failed: AtomicU64,
    /// Subscriptions refused for their token, by reason: none for a private
    /// channel, one that did not verify, one that did not grant the channel.
    pub(crate) auth_missing: AtomicU64,
    pub(crate) auth_invalid: AtomicU64,
    pub(crate) auth_forbidden: AtomicU64,
    /// Subscriptions a channel's authorize hook denied.
    pub(crate) auth_denied: AtomicU64,
    /// Kept only when the server serves metrics: it costs a clock read per
    /// publish and per write.
    pub(crate) latency: Option<Latency>,
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

/// Upper bounds of the delivery latency histogram's buckets, in
/// nanoseconds: 100 µs to 10 s.
pub(crate) const LATENCY_BOUNDS_NANOS: [u64; 16] = [
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// The time from an event joining its channel to a subscriber's writer
/// taking it, as a histogram: one observation per write, for the oldest
/// event it carries (the one that waited longest).
#[derive(Debug)]
pub(crate) struct Latency {
    epoch: Instant,
    /// Observations per bucket (not cumulative), the last one past every
    /// bound.
    buckets: [AtomicU64; LATENCY_BOUNDS_NANOS.len() + 1],
    sum_nanos: AtomicU64,
}

/// A stamp of "now" for [`Latency::observe`]; never 0, which marks an event
/// that was not stamped.
pub(crate) type Stamp = u64;

/// A copy of the histogram: its buckets (upper bound in seconds, the
/// observations in it and not in the one below), the observations' sum in
/// seconds, and their count.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct LatencySnapshot {
    pub(crate) buckets: Vec<(f64, u64)>,
    pub(crate) sum_seconds: f64,
    pub(crate) count: u64,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            epoch: Instant::now(),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

impl Latency {
    pub(crate) fn stamp(&self) -> Stamp {
        let nanos = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        nanos.saturating_add(1)
    }

    /// Records the time since `stamp` (ignored when 0: not stamped).
    pub(crate) fn observe(&self, stamp: Stamp) {
        if stamp == 0 {
            return;
        }
        let waited = self.stamp().saturating_sub(stamp);
        let bucket = LATENCY_BOUNDS_NANOS.partition_point(|&bound| bound < waited);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_nanos.fetch_add(waited, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> LatencySnapshot {
        let buckets: Vec<(f64, u64)> = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, bucket)| {
                let bound = LATENCY_BOUNDS_NANOS
                    .get(i)
                    .map_or(f64::INFINITY, |&nanos| nanos as f64 / 1e9);
                (bound, bucket.load(Ordering::Relaxed))
            })
            .collect();
        LatencySnapshot {
            count: buckets.iter().map(|&(_, count)| count).sum(),
            buckets,
            sum_seconds: self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

impl Counters {
    /// Counters for a server; `measure_latency` keeps the delivery latency
    /// histogram.
    pub(crate) fn new(measure_latency: bool) -> Self {
        Counters {
            latency: measure_latency.then(Latency::default),
            ..Counters::default()
        }
    }

    /// A stamp for an event joining a channel now, if latency is measured.
    pub(crate) fn stamp(&self) -> Stamp {
        self.latency.as_ref().map_or(0, Latency::stamp)
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_observations_fall_in_the_bucket_of_their_wait() {
        let latency = Latency {
            epoch: Instant::now()
                .checked_sub(std::time::Duration::from_secs(20))
                .expect("the clock has run 20 s"),
            ..Latency::default()
        };
        latency.observe(0);
        assert_eq!(
            latency.snapshot().count,
            0,
            "an unstamped event is not observed"
        );
        latency.observe(latency.stamp());
        // Stamped at the epoch, 20 s ago: past every bound.
        latency.observe(1);
        let snapshot = latency.snapshot();
        assert_eq!(snapshot.count, 2);
        assert_eq!(snapshot.buckets.len(), LATENCY_BOUNDS_NANOS.len() + 1);
        assert_eq!(snapshot.buckets[0], (0.0001, 1));
        let (last_bound, last_count) = *snapshot.buckets.last().unwrap();
        assert!(last_bound.is_infinite());
        assert_eq!(last_count, 1);
        assert!(snapshot.sum_seconds >= 20.0);
    }
}

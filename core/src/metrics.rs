//! The metrics route ([`Config::metrics_path`](crate::Config::metrics_path)):
//! the server's counters in the Prometheus text format, or in OpenMetrics
//! for a scraper whose `Accept` asks for it, encoded by `prometheus-client`.
//!
//! Nothing is registered ahead of time: each scrape takes a snapshot of the
//! counters and encodes it, so the hot paths pay only for their atomics.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::reply::{Reply, RouteHandler};
use crate::request::Request;
use crate::stats::{ChannelStats, Counters, LatencySnapshot, Stats};

/// Channels that get series of their own, the busiest first; the rest are
/// summed under `channel="(other)"`, so a server with many channels (one
/// per user, say) cannot grow a scrape without bound.
pub(crate) const MAX_CHANNEL_SERIES: usize = 100;

/// The label of the channels past [`MAX_CHANNEL_SERIES`].
const OTHER_CHANNELS: &str = "(other)";

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What a scrape reads: the server's snapshot (`None` once the server is
/// gone) and the counters the snapshot does not carry.
pub(crate) struct MetricsRoute {
    pub(crate) stats: Box<dyn Fn() -> Option<Stats> + Send + Sync>,
    pub(crate) counters: Arc<Counters>,
}

impl RouteHandler for MetricsRoute {
    fn handle(&self, request: Request, reply: Reply) {
        let Some(stats) = (self.stats)() else {
            let _ = reply.send(503, "text/plain; charset=utf-8", "server is stopping\n");
            return;
        };
        let openmetrics = request
            .header_joined("accept")
            .is_some_and(|accept| accept.contains("application/openmetrics-text"));
        let (content_type, text) = match render(stats, &self.counters, openmetrics) {
            Ok(text) if openmetrics => (OPENMETRICS, text),
            Ok(text) => (PROMETHEUS_TEXT, text),
            Err(fmt::Error) => {
                let _ = reply.send(500, "text/plain; charset=utf-8", "cannot encode metrics\n");
                return;
            }
        };
        let _ = reply.send(200, content_type, text);
    }
}

/// The exposition of one snapshot.
pub(crate) fn render(
    stats: Stats,
    counters: &Counters,
    openmetrics: bool,
) -> Result<String, fmt::Error> {
    let sample = Sample::new(stats, counters);
    let mut registry = Registry::with_prefix("tidings");
    registry.register_collector(Box::new(sample));
    let mut text = String::with_capacity(4096);
    if openmetrics {
        prometheus_client::encoding::text::encode(&mut text, &registry)?;
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut text, &registry)?;
    }
    Ok(text)
}

/// One scrape's numbers.
#[derive(Debug)]
struct Sample {
    stats: Stats,
    refused_per_client: u64,
    heads_too_large: u64,
    heads_timed_out: u64,
    auth_missing: u64,
    auth_invalid: u64,
    auth_forbidden: u64,
    auth_denied: u64,
    latency: Option<LatencySnapshot>,
    channels: Vec<ChannelStats>,
}

impl Sample {
    fn new(mut stats: Stats, counters: &Counters) -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        let channels = bounded_channels(std::mem::take(&mut stats.channels));
        Sample {
            refused_per_client: counters.connections_refused_per_client.load(Relaxed),
            heads_too_large: counters.heads_too_large.load(Relaxed),
            heads_timed_out: counters.heads_timed_out.load(Relaxed),
            auth_missing: counters.auth_missing.load(Relaxed),
            auth_invalid: counters.auth_invalid.load(Relaxed),
            auth_forbidden: counters.auth_forbidden.load(Relaxed),
            auth_denied: counters.auth_denied.load(Relaxed),
            latency: counters.latency.as_ref().map(|latency| latency.snapshot()),
            channels,
            stats,
        }
    }
}

/// The busiest [`MAX_CHANNEL_SERIES`] channels by path, then one entry
/// summing the rest.
fn bounded_channels(mut channels: Vec<ChannelStats>) -> Vec<ChannelStats> {
    if channels.len() <= MAX_CHANNEL_SERIES {
        return channels;
    }
    channels.sort_by(|a, b| b.subscribers.cmp(&a.subscribers).then(a.path.cmp(&b.path)));
    let rest = channels.split_off(MAX_CHANNEL_SERIES);
    channels.sort_by(|a, b| a.path.cmp(&b.path));
    let mut other = ChannelStats {
        path: OTHER_CHANNELS.to_owned(),
        ..ChannelStats::default()
    };
    for channel in rest {
        other.subscribers += channel.subscribers;
        other.events_published += channel.events_published;
        other.history_len += channel.history_len;
        if let Some(cluster) = channel.cluster_subscribers {
            *other.cluster_subscribers.get_or_insert(0) += cluster;
        }
    }
    channels.push(other);
    channels
}

/// Counters are `u64`, gauges `i64`: the text is the same, and the types
/// say which is which.
fn gauge(value: usize) -> ConstGauge<i64> {
    ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX))
}

fn counter(value: u64) -> ConstCounter<u64> {
    ConstCounter::new(value)
}

/// Writes one metric without labels.
fn single(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    metric: &impl EncodeMetric,
) -> fmt::Result {
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}

/// Writes one metric whose series differ by label values.
fn family<L: EncodeLabelSet, M: EncodeMetric>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric_type: MetricType,
    series: impl IntoIterator<Item = (L, M)>,
) -> fmt::Result {
    let mut metric_encoder = encoder.encode_descriptor(name, help, None, metric_type)?;
    for (labels, metric) in series {
        metric.encode(metric_encoder.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Sample {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let stats = &self.stats;
        let e = &mut encoder;
        single(
            e,
            "connections_open",
            "TCP connections open now (admitted ones).",
            None,
            &gauge(stats.connections_open),
        )?;
        single(
            e,
            "connections",
            "TCP connections accepted, refused ones included.",
            None,
            &counter(stats.connections_total),
        )?;
        let refused_total = stats
            .connections_refused
            .saturating_sub(self.refused_per_client);
        family(
            e,
            "connections_refused",
            "Connections turned away at once by a connection limit (429).",
            MetricType::Counter,
            [
                ([("limit", "max_connections")], counter(refused_total)),
                (
                    [("limit", "max_connections_per_ip")],
                    counter(self.refused_per_client),
                ),
            ],
        )?;
        family(
            e,
            "request_heads_refused",
            "Connections whose request head was too large (431) or did not arrive within the head timeout (closed).",
            MetricType::Counter,
            [
                ([("reason", "too_large")], counter(self.heads_too_large)),
                ([("reason", "timeout")], counter(self.heads_timed_out)),
            ],
        )?;
        single(
            e,
            "tls_handshakes_failed",
            "TLS handshakes that failed or did not finish within the head timeout.",
            None,
            &counter(stats.tls_handshakes_failed),
        )?;
        family(
            e,
            "subscriptions_refused",
            "Subscriptions refused: 503 when the channel is full; 401 without a token for a private channel, or with one that does not verify; 403 with one that does not grant the channel; the status an authorize hook chose when it denied.",
            MetricType::Counter,
            [
                ([("reason", "channel_full")], counter(stats.subscribers_refused)),
                ([("reason", "missing_token")], counter(self.auth_missing)),
                ([("reason", "invalid_token")], counter(self.auth_invalid)),
                ([("reason", "forbidden")], counter(self.auth_forbidden)),
                ([("reason", "denied")], counter(self.auth_denied)),
            ],
        )?;
        single(
            e,
            "streams_open",
            "Event streams open now (channel subscribers and per-connection streams).",
            None,
            &gauge(stats.streams_open),
        )?;
        single(
            e,
            "events_published",
            "Events published to channels.",
            None,
            &counter(stats.events_published),
        )?;
        single(
            e,
            "events_delivered",
            "Events handed to connections, one per event per subscriber.",
            None,
            &counter(stats.events_delivered),
        )?;
        single(
            e,
            "written",
            "Bytes written to sockets, heads included (over TLS, the encrypted bytes).",
            Some(&Unit::Bytes),
            &counter(stats.bytes_written),
        )?;
        single(
            e,
            "slow_consumer_drops",
            "Subscribers disconnected for falling too far behind.",
            None,
            &counter(stats.slow_consumer_drops),
        )?;
        single(
            e,
            "write_timeouts",
            "Connections (or HTTP/2 streams) closed because a write could not complete in time.",
            None,
            &counter(stats.write_timeouts),
        )?;
        family(
            e,
            "channel_subscribers",
            "Subscribers of a channel on this server now.",
            MetricType::Gauge,
            self.channels
                .iter()
                .map(|c| ([("channel", c.path.as_str())], gauge(c.subscribers))),
        )?;
        family(
            e,
            "channel_events_published",
            "Events published on a channel.",
            MetricType::Counter,
            self.channels
                .iter()
                .map(|c| ([("channel", c.path.as_str())], counter(c.events_published))),
        )?;
        family(
            e,
            "channel_history",
            "Events a channel offers for replay now.",
            MetricType::Gauge,
            self.channels
                .iter()
                .map(|c| ([("channel", c.path.as_str())], gauge(c.history_len))),
        )?;
        if let Some(latency) = &self.latency {
            let mut metric_encoder = e.encode_descriptor(
                "delivery_latency",
                "Time from an event joining its channel (its publish here, or its arrival from the broker) to a subscriber's writer taking it; one observation per write, for the oldest event it carries.",
                Some(&Unit::Seconds),
                MetricType::Histogram,
            )?;
            metric_encoder.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                latency.sum_seconds,
                latency.count,
                &latency.buckets,
                None,
            )?;
        }
        if let Some(broker) = &stats.broker {
            family(
                e,
                "channel_cluster_subscribers",
                "Subscribers of a channel on every server sharing the broker, as last counted.",
                MetricType::Gauge,
                self.channels.iter().filter_map(|c| {
                    c.cluster_subscribers
                        .map(|count| ([("channel", c.path.as_str())], gauge(count)))
                }),
            )?;
            single(
                e,
                "broker_connected",
                "1 while both broker connections are up, else 0.",
                None,
                &gauge(usize::from(broker.connected)),
            )?;
            single(
                e,
                "broker_faults",
                "Times a broker connection was lost or could not be made.",
                None,
                &counter(broker.faults),
            )?;
            single(
                e,
                "broker_reconnects",
                "Broker connections made again after a fault.",
                None,
                &counter(broker.reconnects),
            )?;
            single(
                e,
                "broker_queued",
                "Events waiting to be sent to the broker.",
                None,
                &gauge(broker.queued),
            )?;
            single(
                e,
                "broker_sent",
                "Events the broker stored for this server.",
                None,
                &counter(broker.sent),
            )?;
            single(
                e,
                "broker_refused",
                "Events the broker refused, or refused at once because the queue was full.",
                None,
                &counter(broker.refused),
            )?;
            single(
                e,
                "broker_received",
                "Events read from the broker into the channels here.",
                None,
                &counter(broker.received),
            )?;
            single(e, "broker_gaps", "Times subscribers were sent event: reset because the broker lost entries this server had not read.", None, &counter(broker.gaps))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(path: &str, subscribers: usize) -> ChannelStats {
        ChannelStats {
            path: path.to_owned(),
            subscribers,
            events_published: 1,
            ..ChannelStats::default()
        }
    }

    #[test]
    fn past_the_bound_the_quietest_channels_are_summed() {
        let many: Vec<ChannelStats> = (0..MAX_CHANNEL_SERIES + 5)
            .map(|i| channel(&format!("/c{i:03}"), i))
            .collect();
        let bounded = bounded_channels(many);
        assert_eq!(bounded.len(), MAX_CHANNEL_SERIES + 1);
        let other = bounded.last().unwrap();
        assert_eq!(other.path, OTHER_CHANNELS);
        // /c000 .. /c004 had the fewest subscribers: 0 + 1 + 2 + 3 + 4.
        assert_eq!(other.subscribers, 10);
        assert_eq!(other.events_published, 5);
        assert!(bounded[..MAX_CHANNEL_SERIES]
            .windows(2)
            .all(|w| w[0].path < w[1].path));
        assert_eq!(bounded[0].path, "/c005");
        let few = vec![channel("/a", 1), channel("/b", 2)];
        assert_eq!(bounded_channels(few.clone()), few);
    }
}

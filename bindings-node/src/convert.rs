//! JS values to core types and back: durations in seconds, events from
//! their fields, and the counters of `stats()`.

use std::collections::HashMap;
use std::time::Duration;

use napi::bindgen_prelude::{Either, Null, Result};
use napi_derive::napi;

use crate::errors::{js_error, Code};

pub(crate) fn millis(ms: u32) -> Duration {
    Duration::from_millis(ms.into())
}

/// Seconds from JS as a duration, checked by the core (range, NaN).
pub(crate) fn seconds(name: &str, value: f64) -> Result<Duration, Code> {
    tidings::duration_from_secs(name, value).map_err(js_error)
}

/// A keep-alive period in seconds, where 0 turns keep-alives off.
pub(crate) fn keepalive(name: &str, value: f64) -> Result<Option<Duration>, Code> {
    Ok(Some(seconds(name, value)?).filter(|period| !period.is_zero()))
}

/// An event's fields (data already a string).
#[napi(object)]
pub struct EventInit {
    pub data: Option<String>,
    pub event: Option<String>,
    pub id: Option<String>,
    pub retry: Option<u32>,
    pub comment: Option<String>,
}

pub(crate) fn to_event(init: EventInit) -> Result<tidings::Event, Code> {
    let mut event = match init.data {
        Some(data) => tidings::Event::data(data),
        None => tidings::Event::default(),
    };
    if let Some(name) = init.event {
        event = event.event(name).map_err(js_error)?;
    }
    if let Some(id) = init.id {
        event = event.id(id).map_err(js_error)?;
    }
    if let Some(retry) = init.retry {
        event = event.retry(millis(retry));
    }
    if let Some(comment) = init.comment {
        event = event.comment(comment);
    }
    Ok(event)
}

#[napi(object)]
pub struct ChannelStats {
    pub subscribers: u32,
    pub events_published: f64,
    pub history_length: u32,
    /// Subscribers on every server sharing the broker; null without one.
    pub cluster_subscribers: Either<u32, Null>,
}

#[napi(object)]
pub struct Stats {
    pub connections_open: u32,
    pub connections_total: f64,
    pub connections_refused: f64,
    pub subscribers_refused: f64,
    pub streams_open: u32,
    pub events_published: f64,
    pub events_delivered: f64,
    pub bytes_written: f64,
    pub slow_consumer_drops: f64,
    pub write_timeouts: f64,
    pub tls_handshakes_failed: f64,
    pub channels: HashMap<String, ChannelStats>,
    pub broker: Either<BrokerStats, Null>,
}

/// The broker connection's state, in `stats().broker`.
#[napi(object)]
pub struct BrokerStats {
    pub url: String,
    pub connected: bool,
    pub faults: f64,
    pub reconnects: f64,
    pub queued: f64,
    pub sent: f64,
    pub refused: f64,
    pub received: f64,
    pub gaps: f64,
    pub last_error: Either<String, Null>,
}

fn broker_stats(broker: tidings::BrokerStats) -> BrokerStats {
    BrokerStats {
        url: broker.url,
        connected: broker.connected,
        faults: broker.faults as f64,
        reconnects: broker.reconnects as f64,
        queued: broker.queued as f64,
        sent: broker.sent as f64,
        refused: broker.refused as f64,
        received: broker.received as f64,
        gaps: broker.gaps as f64,
        last_error: broker.last_error.map_or(Either::B(Null), Either::A),
    }
}

/// The server's counters as JS numbers (counts past 2^53 lose precision,
/// as every JS number does).
pub(crate) fn stats(stats: tidings::Stats) -> Stats {
    Stats {
        connections_open: stats.connections_open as u32,
        connections_total: stats.connections_total as f64,
        connections_refused: stats.connections_refused as f64,
        subscribers_refused: stats.subscribers_refused as f64,
        streams_open: stats.streams_open as u32,
        events_published: stats.events_published as f64,
        events_delivered: stats.events_delivered as f64,
        bytes_written: stats.bytes_written as f64,
        slow_consumer_drops: stats.slow_consumer_drops as f64,
        write_timeouts: stats.write_timeouts as f64,
        tls_handshakes_failed: stats.tls_handshakes_failed as f64,
        broker: stats
            .broker
            .map_or(Either::B(Null), |broker| Either::A(broker_stats(broker))),
        channels: stats
            .channels
            .into_iter()
            .map(|c| {
                let entry = ChannelStats {
                    subscribers: c.subscribers as u32,
                    events_published: c.events_published as f64,
                    history_length: c.history_len as u32,
                    cluster_subscribers: c
                        .cluster_subscribers
                        .map_or(Either::B(Null), |n| Either::A(n as u32)),
                };
                (c.path, entry)
            })
            .collect(),
    }
}

//! Resume: where a client that comes back with `Last-Event-ID` starts, and
//! the slack it has from there; ids that must be unique across servers; ids
//! that are not ASCII.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::*;
use tidings::{Channel, ChannelOptions, Config, Event};

/// A channel whose `on_subscribe` hook publishes `burst` events: the
/// subscriber is made (its cursor placed) before the hook runs and served
/// after, so the burst lands between the resume and the first write, as a
/// busy publisher's events would.
fn channel_publishing_on_subscribe(
    server: &tidings::Server,
    history: usize,
    max_lag: usize,
    burst: usize,
) -> Channel {
    let channel = server
        .channel(
            "/c",
            ChannelOptions {
                history,
                max_lag,
                ..ChannelOptions::default()
            },
        )
        .unwrap();
    let publisher = channel.clone();
    let bursts = Arc::new(AtomicUsize::new(0));
    channel.on_subscribe(move |_request| {
        let round = bursts.fetch_add(1, Ordering::Relaxed);
        for n in 0..burst {
            publisher
                .publish(Event::data(format!("burst {round} {n}")))
                .unwrap();
        }
    });
    channel
}

fn publish_numbered(channel: &Channel, count: usize) -> Vec<String> {
    (0..count)
        .map(|n| {
            channel
                .publish(Event::data(n.to_string()))
                .unwrap()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// Resumes `/c` with `last_event_id` and reads `expected` events (after the
/// reset, if `reset`); then checks nobody was dropped as too slow.
async fn resume_and_read_all(
    server: &tidings::Server,
    last_event_id: &str,
    reset: bool,
    expected: usize,
) {
    let addr = server.local_addr().unwrap();
    let mut events = get(addr, "/c", &[("last-event-id", last_event_id)])
        .await
        .events();
    if reset {
        assert_eq!(events.next().await.unwrap().event, "reset");
    }
    let received = events.take(expected).await;
    assert_eq!(received.len(), expected);
    assert_eq!(server.stats().slow_consumer_drops, 0);
}

#[tokio::test]
async fn a_client_resumed_from_the_oldest_event_keeps_max_lag_of_slack_when_history_exceeds_max_lag(
) {
    let server = server(Config::default());
    let channel = channel_publishing_on_subscribe(&server, 200, 10, 10);
    server.start().unwrap();
    let ids = publish_numbered(&channel, 200);
    // From the oldest offered event: 199 replayed, then the 10 of the burst.
    resume_and_read_all(&server, &ids[0], false, 199 + 10).await;
    // From an unknown id: reset, the whole history, then the burst.
    resume_and_read_all(&server, "unknown", true, 200 + 10).await;
    server.stop();
}

#[tokio::test]
async fn a_client_resumed_from_the_oldest_event_keeps_max_lag_of_slack_when_history_is_below_max_lag(
) {
    let server = server(Config::default());
    let channel = channel_publishing_on_subscribe(&server, 5, 50, 50);
    server.start().unwrap();
    publish_numbered(&channel, 60);
    resume_and_read_all(&server, "unknown", true, 5 + 50).await;
    server.stop();
}

#[tokio::test]
async fn a_resumed_client_is_dropped_only_once_it_lags_more_than_max_lag() {
    let server = server(Config::default());
    let channel = channel_publishing_on_subscribe(&server, 200, 10, 11);
    let addr = server.start().unwrap();
    publish_numbered(&channel, 200);
    let mut events = get(addr, "/c", &[("last-event-id", "unknown")])
        .await
        .events();
    assert_eq!(events.next().await.unwrap().event, "reset");
    // One event more than its slack was published before its first write.
    assert!(events.next().await.is_none(), "a lagging client was kept");
    eventually("the drop is counted", || {
        server.stats().slow_consumer_drops == 1
    })
    .await;
    assert_eq!(channel.subscribers(), 0);
    server.stop();
}

#[tokio::test]
async fn automatic_ids_from_another_server_in_the_same_process_read_as_unknown() {
    let first = server(Config::default());
    let old = first.channel("/c", ChannelOptions::default()).unwrap();
    first.start().unwrap();
    let old_ids = publish_numbered(&old, 10);
    first.stop();

    let second = server(Config::default());
    let new = second.channel("/c", ChannelOptions::default()).unwrap();
    let addr = second.start().unwrap();
    let new_ids = publish_numbered(&new, 20);
    assert!(
        new_ids.iter().all(|id| !old_ids.contains(id)),
        "two channel instances handed out the same id"
    );
    assert!(new_ids.iter().all(|id| id.len() <= 24), "{new_ids:?}");

    let mut events = get(addr, "/c", &[("last-event-id", &old_ids[9])])
        .await
        .events();
    assert_eq!(events.next().await.unwrap().event, "reset");
    let replay: Vec<String> = events.take(20).await.into_iter().map(|e| e.data).collect();
    assert_eq!(replay.first().map(String::as_str), Some("0"));
    second.stop();
}

#[tokio::test]
async fn a_non_ascii_last_event_id_resumes_after_that_event() {
    let server = server(Config::default());
    let channel = server.channel("/c", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();
    for n in 0..5 {
        channel
            .publish(Event::data(n.to_string()).id(format!("é{n}")).unwrap())
            .unwrap();
    }
    let mut request = b"GET /c HTTP/1.1\r\nhost: x\r\nlast-event-id: ".to_vec();
    request.extend_from_slice("é2".as_bytes());
    request.extend_from_slice(b"\r\n\r\n");
    let mut conn = RawConn::open(addr, &request).await;
    let text = conn.read_until("data: 4\n\n").await;
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    assert_eq!(body, "id: é3\ndata: 3\n\nid: é4\ndata: 4\n\n");
    server.stop();
}

#[tokio::test]
async fn a_last_event_id_that_is_not_utf8_is_unknown_and_resets() {
    let server = server(Config::default());
    let channel = server.channel("/c", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();
    publish_numbered(&channel, 3);
    let request = b"GET /c HTTP/1.1\r\nhost: x\r\nlast-event-id: \xff\xfe2\r\n\r\n";
    let mut conn = RawConn::open(addr, request).await;
    let text = conn.read_until("data: 2\n\n").await;
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    assert!(body.starts_with("event: reset\n"), "{body:?}");
    server.stop();
}

//! Stalled clients and memory. This test has a binary of its own because it
//! measures the process's resident memory, which other tests running in
//! parallel would disturb.

mod common;

use std::time::Duration;

use common::*;
use tidings::{ChannelOptions, Config, Event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_clients_are_dropped_while_fast_ones_get_everything() {
    const EVENTS: usize = 640;
    let server = server(Config {
        write_timeout: Duration::from_secs(2),
        ..Config::default()
    });
    let channel = server
        .channel(
            "/c",
            ChannelOptions {
                history: 0,
                auto_id: false,
                ..ChannelOptions::default()
            },
        )
        .unwrap();
    let addr = server.start().unwrap();

    let mut stalled = Vec::new();
    for _ in 0..20 {
        stalled.push(stalled_client(addr, "/c").await);
    }
    let mut fast = Vec::new();
    for _ in 0..20 {
        let response = get(addr, "/c", &[]).await;
        fast.push(tokio::spawn(async move {
            response.raw().count_events_until("data: last\n\n").await
        }));
    }
    eventually("all subscribed", || channel.subscribers() == 40).await;
    let rss_before = rss_kib();

    // 10 MB per client: more than loopback socket buffers absorb (~4 MB).
    let payload = "x".repeat(16 * 1024);
    for n in 0..EVENTS {
        channel
            .publish(Event::data(format!("{n} {payload}")))
            .unwrap();
        // Paced so that readers stay within the lag window (1024 events).
        if n % 2 == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    channel.publish(Event::data("last")).unwrap();

    for reader in fast {
        assert_eq!(
            reader.await.unwrap(),
            EVENTS + 1,
            "a fast reader missed events"
        );
    }
    // The fast readers leave once done; the stalled ones must be cut off.
    eventually("stalled clients dropped", || channel.subscribers() == 0).await;
    let stats = server.stats();
    assert_eq!(
        stats.write_timeouts + stats.slow_consumer_drops,
        20,
        "{stats:?}"
    );
    // 20 stalled clients × 10 MB would be ~200 MB if each had its own queue;
    // the ring holds one copy of each event, shared by all.
    let grown = rss_kib().saturating_sub(rss_before);
    assert!(grown < 64 * 1024, "memory grew by {grown} KiB");
    drop(stalled);
    server.stop();
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

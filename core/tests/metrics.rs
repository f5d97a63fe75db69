//! The metrics route: what it counts, in which format, and how it is
//! configured. (The Python tests read it with `prometheus_client`'s parsers.)

mod common;

use std::time::Duration;

use common::*;
use tidings::{ChannelOptions, Config, Error, Event, Limits, Server};

fn with_metrics(config: Config) -> Server {
    server(Config {
        metrics_path: Some("/metrics".into()),
        ..config
    })
}

/// The value of the series `name{labels}` (labels as written, without
/// braces; "" for none), from the Prometheus text.
fn sample(text: &str, name: &str, labels: &str) -> f64 {
    let series = if labels.is_empty() {
        name.to_owned()
    } else {
        format!("{name}{{{labels}}}")
    };
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            (key == series).then(|| value.parse().expect("a number"))
        })
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
}

async fn scrape(server: &Server) -> String {
    let response = get(server.local_addr().unwrap(), "/metrics", &[]).await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    response.text().await
}

#[tokio::test]
async fn there_is_no_metrics_route_unless_configured() {
    let server = server(Config::default());
    let addr = server.start().unwrap();
    assert_eq!(get(addr, "/metrics", &[]).await.status, 404);
    server.stop();
}

#[tokio::test]
async fn deliveries_subscribers_and_their_latency_are_counted() {
    let server = with_metrics(Config::default());
    let channel = server.channel("/c", ChannelOptions::default()).unwrap();
    server.channel("/quiet", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();
    let mut first = get(addr, "/c", &[]).await.events();
    let mut second = get(addr, "/c", &[]).await.events();
    eventually("two subscribers", || channel.subscribers() == 2).await;
    for n in 0..3 {
        channel.publish(Event::data(format!("{n}"))).unwrap();
    }
    first.take(3).await;
    second.take(3).await;

    let text = scrape(&server).await;
    assert_eq!(sample(&text, "tidings_events_published_total", ""), 3.0);
    assert_eq!(sample(&text, "tidings_events_delivered_total", ""), 6.0);
    assert_eq!(
        sample(&text, "tidings_channel_subscribers", r#"channel="/c""#),
        2.0
    );
    assert_eq!(
        sample(&text, "tidings_channel_subscribers", r#"channel="/quiet""#),
        0.0
    );
    assert_eq!(
        sample(
            &text,
            "tidings_channel_events_published_total",
            r#"channel="/c""#
        ),
        3.0
    );
    assert_eq!(sample(&text, "tidings_streams_open", ""), 2.0);
    assert_eq!(
        sample(&text, "tidings_connections_open", ""),
        3.0,
        "two subscribers and the scrape"
    );
    assert!(sample(&text, "tidings_written_bytes_total", "") > 0.0);
    // Each subscriber took the events in one to three writes.
    let writes = sample(&text, "tidings_delivery_latency_seconds_count", "");
    assert!((2.0..=6.0).contains(&writes), "{writes} writes");
    assert_eq!(
        sample(
            &text,
            "tidings_delivery_latency_seconds_bucket",
            r#"le="+Inf""#
        ),
        writes
    );
    assert!(sample(&text, "tidings_delivery_latency_seconds_sum", "") > 0.0);
    assert!(
        !text.contains("tidings_broker_"),
        "no broker, no broker series"
    );
    server.stop();
}

#[tokio::test]
async fn a_scraper_that_asks_for_openmetrics_gets_it() {
    let server = with_metrics(Config::default());
    let addr = server.start().unwrap();
    let accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    let response = get(addr, "/metrics", &[("accept", accept)]).await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let text = response.text().await;
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(
        text.contains("# TYPE tidings_connections counter\n"),
        "{text}"
    );
    assert!(
        text.contains("# UNIT tidings_written_bytes bytes\n"),
        "{text}"
    );
    server.stop();
}

#[tokio::test]
async fn refusals_are_counted_by_the_limit_or_reason_that_refused_them() {
    let server = with_metrics(Config {
        limits: Limits {
            max_connections_per_ip: Some(2),
            max_head_bytes: 8192,
            head_timeout: Duration::from_millis(300),
            ..Limits::default()
        },
        ..Config::default()
    });
    server
        .channel(
            "/full",
            ChannelOptions {
                max_subscribers: Some(0),
                ..ChannelOptions::default()
            },
        )
        .unwrap();
    let addr = server.start().unwrap();
    let all_closed = || server.stats().connections_open == 0;
    // A head over the limit: 431.
    let pad = "p".repeat(9000);
    let head = format!("GET / HTTP/1.1\r\nx-pad: {pad}\r\n\r\n");
    let mut large = RawConn::open(addr, head.as_bytes()).await;
    assert!(large.head().await.starts_with("http/1.1 431"));
    drop(large);
    eventually("the 431 closed", all_closed).await;
    // A full channel: 503.
    assert_eq!(get(addr, "/full", &[]).await.status, 503);
    eventually("the 503 closed", all_closed).await;
    // A head that never comes, closed by the server.
    let _silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    eventually("the silent connection admitted", || {
        server.stats().connections_open == 1
    })
    .await;
    eventually("the silent connection closed", all_closed).await;
    // Two connections held open, then a third from the same address: 429.
    let held = [
        tokio::net::TcpStream::connect(addr).await.unwrap(),
        tokio::net::TcpStream::connect(addr).await.unwrap(),
    ];
    eventually("two held", || server.stats().connections_open == 2).await;
    let mut refused = RawConn::open(addr, b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert!(refused.head().await.starts_with("http/1.1 429"));
    drop(held);
    eventually("the held connections closed", all_closed).await;

    let text = scrape(&server).await;
    let refused = |limit: &str| {
        sample(
            &text,
            "tidings_connections_refused_total",
            &format!(r#"limit="{limit}""#),
        )
    };
    assert_eq!(refused("max_connections_per_ip"), 1.0);
    assert_eq!(refused("max_connections"), 0.0);
    let heads = |reason: &str| {
        sample(
            &text,
            "tidings_request_heads_refused_total",
            &format!(r#"reason="{reason}""#),
        )
    };
    assert_eq!(heads("too_large"), 1.0);
    assert!(heads("timeout") >= 1.0);
    assert_eq!(
        sample(
            &text,
            "tidings_subscriptions_refused_total",
            r#"reason="channel_full""#
        ),
        1.0
    );
    server.stop();
}

#[tokio::test]
async fn the_metrics_path_is_taken_like_any_route() {
    let server = with_metrics(Config::default());
    match server.channel("/metrics", ChannelOptions::default()) {
        Err(Error::RouteExists(path)) => assert_eq!(path, "/metrics"),
        other => panic!("expected RouteExists, got {other:?}"),
    }
    for bad in ["metrics", "/metrics?x=1", "/me trics", ""] {
        let config = Config {
            metrics_path: Some(bad.into()),
            ..Config::default()
        };
        match Server::new(config) {
            Err(Error::InvalidConfig(reason)) => {
                assert!(reason.contains("metrics_path"), "{reason}")
            }
            other => panic!("{bad:?}: expected InvalidConfig, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_head_request_gets_the_length_without_the_body() {
    let server = with_metrics(Config::default());
    let addr = server.start().unwrap();
    let response = request(addr, "HEAD", "/metrics", &[]).await;
    assert_eq!(response.status, 200);
    let length: usize = response.header("content-length").unwrap().parse().unwrap();
    assert!(length > 100);
    assert_eq!(response.text().await, "");
    server.stop();
}

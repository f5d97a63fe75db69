//! The request head and the two paths that answer it: how heads are read
//! and limited, what the direct path and hyper send a subscriber, the
//! connection limits, and CORS preflights.

mod common;

use std::time::Duration;

use common::*;
use tidings::{ChannelOptions, Config, Cors, Event, Limits};

fn slow_heads_allowed() -> Config {
    Config {
        limits: Limits {
            head_timeout: Duration::from_secs(60),
            ..Limits::default()
        },
        ..Config::default()
    }
}

#[tokio::test]
async fn a_head_with_bare_lf_line_ends_is_served() {
    let server = server(slow_heads_allowed());
    let channel = server.channel("/c", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();
    let mut conn = RawConn::open(addr, b"GET /c HTTP/1.1\nhost: x\n\n").await;
    assert!(conn.head().await.starts_with("http/1.1 200"));
    channel.publish(Event::data("hello")).unwrap();
    conn.read_until("data: hello\n\n").await;
    server.stop();
}

#[tokio::test]
async fn a_head_over_the_limit_gets_431_even_when_it_arrives_complete_in_one_read() {
    let server = server(Config {
        limits: Limits {
            max_head_bytes: 10_000,
            ..Limits::default()
        },
        ..Config::default()
    });
    server.channel("/c", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();
    let limit = server.config().limits.max_head_bytes;
    // Half again the limit, complete: one read may bring most of it.
    let prefix = "GET /c HTTP/1.1\r\nhost: x\r\nx-pad: ";
    let pad = "p".repeat(limit * 3 / 2 - prefix.len() - 4);
    let head = format!("{prefix}{pad}\r\n\r\n");
    assert!(head.len() > limit);
    let mut conn = RawConn::open(addr, head.as_bytes()).await;
    assert!(conn.head().await.starts_with("http/1.1 431"));
    server.stop();
}

#[tokio::test]
async fn a_head_sent_a_byte_at_a_time_is_served() {
    let server = server(slow_heads_allowed());
    let channel = server.channel("/c", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();
    let head = format!(
        "GET /c HTTP/1.1\r\nhost: x\r\nx-pad: {}\r\n\r\n",
        "b".repeat(2000)
    );
    let mut conn = RawConn::open(addr, b"").await;
    for byte in head.as_bytes() {
        tokio::io::AsyncWriteExt::write_all(&mut conn.stream, &[*byte])
            .await
            .unwrap();
    }
    assert!(conn.head().await.starts_with("http/1.1 200"));
    channel.publish(Event::data("after a slow head")).unwrap();
    conn.read_until("after a slow head").await;
    server.stop();
}

/// The response head's header lines, lower-cased, without the status line.
fn header_lines(head: &str) -> Vec<String> {
    let mut lines: Vec<String> = head.lines().skip(1).map(str::to_owned).collect();
    lines.sort();
    lines
}

fn names(lines: &[String]) -> Vec<&str> {
    lines
        .iter()
        .filter_map(|line| line.split_once(':').map(|(name, _)| name))
        .collect()
}

#[tokio::test]
async fn both_paths_answer_a_subscriber_with_the_same_headers() {
    let server = server(Config {
        cors: Cors::AnyOrigin,
        ..Config::default()
    });
    server.channel("/c", ChannelOptions::default()).unwrap();
    server
        .route("/page", |_request, reply: tidings::Reply| {
            let _ = reply.send(200, "text/plain", "page");
        })
        .unwrap();
    let addr = server.start().unwrap();
    let subscribe = "GET /c HTTP/1.1\r\nhost: x\r\norigin: http://o.test\r\n\r\n";

    // Direct: the connection's first request.
    let mut direct = RawConn::open(addr, subscribe.as_bytes()).await;
    let direct_head = direct.head().await;
    // hyper: the same request behind a page on one connection (pipelined).
    let pipelined = format!("GET /page HTTP/1.1\r\nhost: x\r\n\r\n{subscribe}");
    let mut via_hyper = RawConn::open(addr, pipelined.as_bytes()).await;
    let text = via_hyper.read_until("text/event-stream").await;
    let second = &text[text.find("page").expect("the page first")..];
    let hyper_head = second[second.find("HTTP/1.1").unwrap()..].to_ascii_lowercase();
    let hyper_head = &hyper_head[..hyper_head.find("\r\n\r\n").unwrap_or(hyper_head.len())];

    for head in [direct_head.as_str(), hyper_head] {
        assert!(head.starts_with("http/1.1 200"), "{head}");
        let lines = header_lines(head);
        for expected in [
            "content-type: text/event-stream; charset=utf-8",
            "cache-control: no-cache",
            "x-accel-buffering: no",
            "access-control-allow-origin: *",
        ] {
            assert!(lines.iter().any(|l| l == expected), "{expected}: {head}");
        }
        assert!(names(&lines).contains(&"date"), "{head}");
    }
    // The direct path's body ends when the connection closes, and it says so
    // (RFC 9112 §9.6); hyper frames its body in chunks instead.
    assert!(header_lines(&direct_head).contains(&"connection: close".to_owned()));
    assert!(header_lines(hyper_head).contains(&"transfer-encoding: chunked".to_owned()));
    server.stop();
}

#[tokio::test]
async fn a_subscriber_on_a_reused_connection_resumes_with_cors_keepalives_and_the_farewell() {
    let server = server(Config {
        cors: Cors::Origins(vec!["http://app.test".into()]),
        keepalive: Some(Duration::from_millis(100)),
        ..Config::default()
    });
    let channel = server.channel("/c", ChannelOptions::default()).unwrap();
    server
        .route("/page", |_request, reply: tidings::Reply| {
            let _ = reply.send(200, "text/html", "<p>page</p>");
        })
        .unwrap();
    let addr = server.start().unwrap();
    let ids: Vec<String> = (0..3)
        .map(|n| {
            let id = channel.publish(Event::data(format!("old {n}"))).unwrap();
            id.unwrap().to_string()
        })
        .collect();

    // A browser fetches the page, then opens its EventSource on the same
    // keep-alive connection: that request reaches hyper, not the direct path.
    let mut conn = RawConn::open(addr, b"GET /page HTTP/1.1\r\nhost: x\r\n\r\n").await;
    conn.read_until("<p>page</p>").await;
    let subscribe = format!(
        "GET /c HTTP/1.1\r\nhost: x\r\norigin: http://app.test\r\nlast-event-id: {}\r\n\r\n",
        ids[0]
    );
    tokio::io::AsyncWriteExt::write_all(&mut conn.stream, subscribe.as_bytes())
        .await
        .unwrap();
    let text = conn.read_until("data: old 2\n\n").await;
    let stream = &text[text.find("<p>page</p>").unwrap()..].to_ascii_lowercase();
    assert!(stream.contains("transfer-encoding: chunked"), "{stream}");
    assert!(
        stream.contains("access-control-allow-origin: http://app.test"),
        "{stream}"
    );
    assert!(!stream.contains("old 0"), "{stream}");
    assert!(stream.contains("data: old 1\n\n"), "{stream}");
    // A keep-alive comment on the idle stream, then the farewell on stop.
    conn.read_until(":\n\n").await;
    let stopping = std::thread::spawn(move || {
        server.stop_with(Event::data("bye").event("farewell").unwrap());
    });
    let text = conn.read_to_close().await;
    assert!(text.contains("event: farewell\ndata: bye\n\n"), "{text}");
    stopping.join().unwrap();
}

#[tokio::test]
async fn a_refused_connection_gets_its_429_without_sending_a_head() {
    let server = server(Config {
        limits: Limits {
            max_connections: Some(1),
            head_timeout: Duration::from_secs(60),
            ..Limits::default()
        },
        ..Config::default()
    });
    let channel = server.channel("/c", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();
    let _held = get(addr, "/c", &[]).await;
    eventually("subscribed", || channel.subscribers() == 1).await;
    let mut refused = RawConn::open(addr, b"").await;
    let reply = refused.read_to_close().await;
    assert!(reply.starts_with("HTTP/1.1 429"), "{reply}");
    assert!(
        reply.to_ascii_lowercase().contains("retry-after: 2"),
        "{reply}"
    );
    let stats = server.stats();
    assert_eq!(stats.connections_refused, 1);
    // Refused connections are counted apart, never as open.
    assert_eq!(stats.connections_open, 1);
    server.stop();
}

#[tokio::test]
async fn a_full_channel_is_counted_as_refused_subscribers_not_connections() {
    let server = server(Config::default());
    server
        .channel(
            "/c",
            ChannelOptions {
                max_subscribers: Some(1),
                ..ChannelOptions::default()
            },
        )
        .unwrap();
    let addr = server.start().unwrap();
    let _first = get(addr, "/c", &[]).await;
    assert_eq!(get(addr, "/c", &[]).await.status, 503);
    let stats = server.stats();
    assert_eq!(stats.subscribers_refused, 1);
    assert_eq!(stats.connections_refused, 0);
    server.stop();
}

#[tokio::test]
async fn a_preflight_allows_only_the_listed_request_headers() {
    let server = server(Config {
        cors: Cors::AnyOrigin,
        cors_allow_headers: vec!["X-Session".into()],
        ..Config::default()
    });
    server.channel("/c", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();
    let preflight = request(
        addr,
        "OPTIONS",
        "/c",
        &[
            ("origin", "http://elsewhere.test"),
            ("access-control-request-method", "GET"),
            ("access-control-request-headers", "x-evil, last-event-id"),
        ],
    )
    .await;
    assert_eq!(preflight.status, 204);
    let allowed = preflight
        .header("access-control-allow-headers")
        .expect("allowed headers");
    let allowed: Vec<&str> = allowed.split(',').map(str::trim).collect();
    assert_eq!(allowed, ["last-event-id", "cache-control", "x-session"]);
    server.stop();
}

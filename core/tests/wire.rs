//! What goes over the wire: event encoding as an independent parser reads it,
//! response headers, CORS, routing, static files, limits and bad input.

mod common;

use std::time::Duration;

use common::*;
use tidings::{ChannelOptions, Config, Cors, Event, Limits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn no_auto_id() -> ChannelOptions {
    ChannelOptions {
        auto_id: false,
        ..ChannelOptions::default()
    }
}

#[tokio::test]
async fn encoding_round_trips_through_an_independent_parser() {
    let server = server(Config::default());
    let channel = server.channel("/c", no_auto_id()).unwrap();
    let addr = server.start().unwrap();
    let mut events = get(addr, "/c", &[]).await.events();

    // (data sent, data the parser must report)
    let cases = [
        ("plain", "plain"),
        ("two\nlines", "two\nlines"),
        ("carriage\rreturn", "carriage\nreturn"),
        ("crlf\r\nline", "crlf\nline"),
        ("trailing\n", "trailing\n"),
        ("  leading spaces kept", "  leading spaces kept"),
        ("unicode: é ✓ 🚀", "unicode: é ✓ 🚀"),
        ("data: looks like a field", "data: looks like a field"),
        (": looks like a comment", ": looks like a comment"),
    ];
    for (sent, _) in cases {
        channel
            .publish(Event::data(sent).comment("c1\nc2"))
            .unwrap();
    }
    channel
        .publish(
            Event::data("all fields")
                .event("named")
                .unwrap()
                .id("id-1")
                .unwrap()
                .retry(Duration::from_millis(2500)),
        )
        .unwrap();
    // One empty `data:` line is a dispatched event with empty data.
    channel.publish(Event::data("")).unwrap();
    channel.publish(Event::data("after empty")).unwrap();

    for (_, expected) in cases {
        let event = events.next().await.unwrap();
        assert_eq!(event.data, expected);
        assert_eq!(event.event, "message");
    }
    let named = events.next().await.unwrap();
    assert_eq!(
        (named.event.as_str(), named.data.as_str(), named.id.as_str()),
        ("named", "all fields", "id-1")
    );
    assert_eq!(named.retry, Some(Duration::from_millis(2500)));
    assert_eq!(events.next().await.unwrap().data, "");
    let after = events.next().await.unwrap();
    assert_eq!(after.data, "after empty");
    assert_eq!(
        after.id, "id-1",
        "the last id persists across id-less events"
    );
    server.stop();
}

#[tokio::test]
async fn comments_and_empty_data_are_framed_exactly() {
    let server = server(Config::default());
    let channel = server.channel("/c", no_auto_id()).unwrap();
    let addr = server.start().unwrap();
    let mut raw = get(addr, "/c", &[]).await.raw();
    channel
        .publish(Event::data("").comment("one\r\ntwo"))
        .unwrap();
    channel.publish(Event::comment_only("")).unwrap();
    channel.publish(Event::data("end")).unwrap();
    let wire = raw.read_until("data: end\n\n").await;
    assert_eq!(wire, ": one\n: two\ndata: \n\n:\n\ndata: end\n\n");
    server.stop();
}

#[test]
fn invalid_fields_are_rejected_before_anything_is_sent() {
    for (field, result) in [
        ("event", Event::data("x").event("a\nb")),
        ("event", Event::data("x").event("a\rb")),
        ("id", Event::data("x").id("a\r\nb")),
        ("id", Event::data("x").id("a\0b")),
    ] {
        let message = result.unwrap_err().to_string();
        assert!(message.contains(&format!("`{field}`")), "{message}");
    }
}

#[tokio::test]
async fn event_streams_carry_the_sse_headers() {
    let server = server(Config::default());
    server.channel("/c", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();
    let response = get(addr, "/c", &[]).await;
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    assert_eq!(response.header("cache-control"), Some("no-cache"));
    assert_eq!(response.header("x-accel-buffering"), Some("no"));
    // Served on the direct path, whose body ends with the connection.
    assert_eq!(response.header("connection"), Some("close"));
    assert!(response.header("date").is_some());
    assert_eq!(response.header("content-encoding"), None);
    assert_eq!(response.header("access-control-allow-origin"), None);
    drop(response);

    let head = request(addr, "HEAD", "/c", &[]).await;
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    server.stop();
}

#[tokio::test]
async fn cors_any_origin_and_preflight() {
    let server = server(Config {
        cors: Cors::AnyOrigin,
        ..Config::default()
    });
    server.channel("/c", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();
    let response = get(addr, "/c", &[("origin", "http://elsewhere.test")]).await;
    assert_eq!(response.header("access-control-allow-origin"), Some("*"));
    drop(response);

    let preflight = request(
        addr,
        "OPTIONS",
        "/c",
        &[
            ("origin", "http://elsewhere.test"),
            ("access-control-request-method", "GET"),
            ("access-control-request-headers", "last-event-id"),
        ],
    )
    .await;
    assert_eq!(preflight.status, 204);
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        preflight.header("access-control-allow-headers"),
        Some("last-event-id, cache-control")
    );
    assert!(preflight
        .header("access-control-allow-methods")
        .unwrap()
        .contains("GET"));
    server.stop();
}

#[tokio::test]
async fn cors_origin_list_admits_only_listed_origins() {
    let server = server(Config {
        cors: Cors::Origins(vec!["http://app.test".into()]),
        ..Config::default()
    });
    server.channel("/c", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();
    let listed = get(addr, "/c", &[("origin", "http://app.test")]).await;
    assert_eq!(
        listed.header("access-control-allow-origin"),
        Some("http://app.test")
    );
    assert_eq!(
        listed.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(listed.header("vary"), Some("origin"));
    drop(listed);
    let other = get(addr, "/c", &[("origin", "http://evil.test")]).await;
    assert_eq!(other.header("access-control-allow-origin"), None);
    server.stop();
}

#[tokio::test]
async fn unknown_paths_are_404_and_other_methods_405() {
    let server = server(Config::default());
    server.channel("/c", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();
    assert_eq!(get(addr, "/nope", &[]).await.status, 404);
    let post = request(addr, "POST", "/c", &[]).await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD, OPTIONS"));
    server.stop();
}

fn site() -> (tempdir::Dir, std::path::PathBuf) {
    let root = tempdir::Dir::new("site");
    let public = root.path().join("public");
    std::fs::create_dir_all(public.join("sub")).unwrap();
    std::fs::write(public.join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(public.join("app.js"), "console.log(1)").unwrap();
    std::fs::write(public.join("sub").join("index.html"), "sub").unwrap();
    std::fs::write(public.join(".secret"), "hidden").unwrap();
    std::fs::write(root.path().join("outside.txt"), "outside").unwrap();
    std::os::unix::fs::symlink(root.path().join("outside.txt"), public.join("escape.txt")).unwrap();
    (root, public)
}

#[tokio::test]
async fn pages_and_files_are_served_with_their_content_type() {
    let (_root, public) = site();
    let server = server(Config::default());
    server.page("/", public.join("index.html")).unwrap();
    server.files("/static", &public).unwrap();
    let addr = server.start().unwrap();

    let page = get(addr, "/", &[]).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.text().await, "<h1>home</h1>");
    let script = get(addr, "/static/app.js", &[]).await;
    assert_eq!(
        script.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(script.text().await, "console.log(1)");
    assert_eq!(get(addr, "/static/sub/", &[]).await.text().await, "sub");
    let head = request(addr, "HEAD", "/static/app.js", &[]).await;
    assert_eq!(head.header("content-length"), Some("14"));
    server.stop();
}

#[tokio::test]
async fn path_traversal_attempts_get_404() {
    let (_root, public) = site();
    let server = server(Config::default());
    server.files("/static", &public).unwrap();
    let addr = server.start().unwrap();
    for attempt in [
        "/static/../outside.txt",
        "/static/%2e%2e/outside.txt",
        "/static/%2E%2E%2Foutside.txt",
        "/static/..%2Foutside.txt",
        "/static/sub/..%5c..%5coutside.txt",
        "/static/escape.txt",
        "/static/.secret",
        "/static/missing.js",
    ] {
        let reply = raw_exchange(
            addr,
            format!("GET {attempt} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        assert!(reply.starts_with("HTTP/1.1 404"), "{attempt}: {reply}");
        assert!(
            !reply.contains("outside") && !reply.contains("hidden"),
            "{attempt}: {reply}"
        );
    }
    server.stop();
}

#[tokio::test]
async fn a_symlinked_index_html_that_leaves_the_directory_is_not_served() {
    let (root, public) = site();
    let linked = public.join("linked");
    std::fs::create_dir_all(&linked).unwrap();
    std::os::unix::fs::symlink(root.path().join("outside.txt"), linked.join("index.html")).unwrap();
    let server = server(Config::default());
    server.files("/static", &public).unwrap();
    let addr = server.start().unwrap();
    let reply = raw_exchange(
        addr,
        b"GET /static/linked/ HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 404"), "{reply}");
    assert!(!reply.contains("outside"), "{reply}");
    server.stop();
}

#[tokio::test]
async fn a_fifo_in_a_served_directory_is_refused_at_once() {
    let (_root, public) = site();
    let fifo = public.join("pipe.txt");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let server = server(Config::default());
    server.files("/static", &public).unwrap();
    let addr = server.start().unwrap();
    for method in ["GET", "HEAD"] {
        // Opening a FIFO for reading blocks until a writer comes: never.
        let reply = raw_exchange(
            addr,
            format!("{method} /static/pipe.txt HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await;
        assert!(reply.starts_with("HTTP/1.1 404"), "{method}: {reply:?}");
    }
    // The blocking threads are free: other files are still served.
    assert_eq!(get(addr, "/static/app.js", &[]).await.status, 200);
    server.stop();
}

#[tokio::test]
async fn a_large_file_is_streamed_whole_and_head_gives_its_length() {
    let (_root, public) = site();
    let contents: Vec<u8> = (0..8u32 << 20).map(|n| (n % 251) as u8).collect();
    std::fs::write(public.join("big.bin"), &contents).unwrap();
    let server = server(Config::default());
    server.files("/static", &public).unwrap();
    server.page("/big", public.join("big.bin")).unwrap();
    let addr = server.start().unwrap();
    for path in ["/static/big.bin", "/big"] {
        let head = request(addr, "HEAD", path, &[]).await;
        assert_eq!(head.status, 200);
        let length = contents.len().to_string();
        assert_eq!(head.header("content-length"), Some(length.as_str()));
        let body = get(addr, path, &[]).await.bytes().await;
        assert!(body == contents, "{path}: {} bytes differ", body.len());
    }
    server.stop();
}

#[test]
fn registering_missing_files_fails_with_the_path() {
    let server = server(Config::default());
    let err = server.page("/", "/no/such/file.html").unwrap_err();
    assert!(err.to_string().contains("/no/such/file.html"), "{err}");
    assert!(server.files("/s", "/no/such/dir").is_err());
}

#[tokio::test]
async fn a_huge_request_head_gets_431() {
    let server = server(Config::default());
    server.channel("/c", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();
    let huge = format!(
        "GET /c HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(64 * 1024)
    );
    let reply = raw_exchange(addr, huge.as_bytes()).await;
    assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    // The server is still there for others.
    assert_eq!(get(addr, "/c", &[]).await.status, 200);
    server.stop();
}

#[tokio::test]
async fn garbage_bytes_get_400_and_the_server_goes_on() {
    let server = server(Config::default());
    server.channel("/c", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();
    for garbage in [
        &b"\x00\x01\x02\xff\xfe garbage\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET /c HTTP/9.9\r\n\r\n",
        b"GET /c HTTP/1.1\r\nbad header line\r\n\r\n",
    ] {
        let reply = raw_exchange(addr, garbage).await;
        assert!(reply.starts_with("HTTP/1.1 400"), "{garbage:?}: {reply:?}");
    }
    assert_eq!(get(addr, "/c", &[]).await.status, 200);
    server.stop();
}

#[tokio::test]
async fn a_slowloris_client_is_closed_after_the_head_timeout() {
    let server = server(Config {
        limits: Limits {
            head_timeout: Duration::from_millis(300),
            ..Limits::default()
        },
        ..Config::default()
    });
    server.channel("/c", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /c HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    // Never finish the head: the server must hang up on its own.
    let mut reply = Vec::new();
    let read = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut reply)).await;
    assert!(read.is_ok(), "server kept a slow-loris connection open");
    let reply = String::from_utf8_lossy(&reply);
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 408"),
        "{reply}"
    );
    eventually("connection released", || {
        server.stats().connections_open == 0
    })
    .await;
    server.stop();
}

#[tokio::test]
async fn an_http10_client_gets_a_close_delimited_stream() {
    let server = server(Config::default());
    let channel = server.channel("/c", no_auto_id()).unwrap();
    let addr = server.start().unwrap();
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(b"GET /c HTTP/1.0\r\n\r\n").await.unwrap();
    eventually("subscribed", || channel.subscribers() == 1).await;
    channel.publish(Event::data("for an old client")).unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).contains("for an old client\n\n") {
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    let reply = String::from_utf8_lossy(&seen);
    assert!(reply.starts_with("HTTP/1.0 200"), "{reply}");
    assert!(
        !reply.to_ascii_lowercase().contains("transfer-encoding"),
        "{reply}"
    );
    assert!(
        reply.ends_with("\r\n\r\ndata: for an old client\n\n"),
        "{reply}"
    );
    server.stop();
}

#[tokio::test]
async fn connections_beyond_the_per_ip_limit_get_429() {
    let server = server(Config {
        limits: Limits {
            max_connections_per_ip: Some(3),
            ..Limits::default()
        },
        ..Config::default()
    });
    let channel = server.channel("/c", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(get(addr, "/c", &[]).await);
    }
    assert!(held.iter().all(|r| r.status == 200));
    let refused = get(addr, "/c", &[]).await;
    assert_eq!(refused.status, 429);
    assert_eq!(refused.header("retry-after"), Some("2"));
    assert_eq!(channel.subscribers(), 3);
    drop(refused);
    held.pop();
    eventually("slot freed", || channel.subscribers() == 2).await;
    eventually("admitted again", || server.stats().connections_open == 2).await;
    assert_eq!(get(addr, "/c", &[]).await.status, 200);
    assert!(server.stats().connections_refused >= 1);
    server.stop();
}

#[tokio::test]
async fn connections_beyond_the_total_limit_get_429() {
    let server = server(Config {
        limits: Limits {
            max_connections: Some(2),
            ..Limits::default()
        },
        ..Config::default()
    });
    server.channel("/c", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();
    let _a = get(addr, "/c", &[]).await;
    let _b = get(addr, "/c", &[]).await;
    assert_eq!(get(addr, "/c", &[]).await.status, 429);
    server.stop();
}

#[tokio::test]
async fn a_full_channel_answers_503() {
    let server = server(Config::default());
    let channel = server
        .channel(
            "/c",
            ChannelOptions {
                max_subscribers: Some(1),
                ..ChannelOptions::default()
            },
        )
        .unwrap();
    let addr = server.start().unwrap();
    let first = get(addr, "/c", &[]).await;
    assert_eq!(first.status, 200);
    let second = get(addr, "/c", &[]).await;
    assert_eq!(second.status, 503);
    assert!(second.header("retry-after").is_some());
    assert_eq!(channel.subscribers(), 1);
    server.stop();
}

/// A scratch directory removed on drop.
mod tempdir {
    pub struct Dir(std::path::PathBuf);

    impl Dir {
        pub fn new(name: &str) -> Self {
            static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let unique = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = std::env::temp_dir()
                .join(format!("tidings-{name}-{}-{unique}", std::process::id()));
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }

        pub fn path(&self) -> &std::path::Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

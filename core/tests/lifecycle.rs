//! Lifecycle: starting from any context, draining stop, no leaked threads,
//! and the errors of misuse. Tests here run one at a time, because they count
//! the process's engine threads.

// The serialising guard is held for a whole test by design; no task inside a
// test ever takes it, so holding it across awaits cannot deadlock.
#![allow(clippy::await_holding_lock)]

mod common;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::*;
use tidings::{ChannelOptions, Config, Error, Event, Limits, Server, StreamSender};

fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Every engine thread has ended. Joined threads may still be listed in
/// /proc for a moment after `join` returns (the kernel releases a thread
/// after waking its joiner), so a leak is one still there after PATIENCE.
fn assert_no_engine_threads() {
    let started = Instant::now();
    loop {
        let left = threads_named("tidings-");
        if left.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "threads left behind: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn starts_from_a_plain_thread_and_stops_without_leaking_threads() {
    let _serial = serial();
    let server = server(Config {
        worker_threads: 2,
        ..Config::default()
    });
    let channel = server.channel("/c", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();
    assert_eq!(server.local_addr(), Some(addr));
    let started = Instant::now();
    while threads_named("tidings-worker").len() < 2 {
        assert!(
            started.elapsed() < PATIENCE,
            "engine threads are named tidings-worker"
        );
        std::thread::sleep(Duration::from_millis(5));
    }

    let client = tokio::runtime::Runtime::new().unwrap();
    client.block_on(async {
        let mut events = get(addr, "/c", &[]).await.events();
        channel.publish(Event::data("hello")).unwrap();
        assert_eq!(events.next().await.unwrap().data, "hello");
    });
    server.stop();
    assert!(!server.is_running());
    assert_no_engine_threads();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_and_stops_from_inside_another_runtime() {
    let _serial = serial();
    let server = server(Config::default());
    server
        .stream("/s", |_request, tx: StreamSender| async move {
            tx.send(Event::data("from the engine's runtime")).await
        })
        .unwrap();
    let addr = server.start().unwrap();
    let events = get(addr, "/s", &[]).await.events().collect().await;
    assert_eq!(events[0].data, "from the engine's runtime");
    server.stop();
    assert_no_engine_threads();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_with_500_open_clients_sends_the_farewell_and_returns_within_the_drain_timeout() {
    let _serial = serial();
    let drain = Duration::from_secs(3);
    let server = Arc::new(server(Config {
        drain_timeout: drain,
        write_timeout: Duration::from_secs(60),
        ..Config::default()
    }));
    let channel = server.channel("/c", ChannelOptions::default()).unwrap();
    let stall = server.channel("/stall", ChannelOptions::default()).unwrap();
    server
        .stream("/s", |_request, tx: StreamSender| async move {
            tx.send(Event::data("started")).await?;
            tx.closed().await;
            Ok::<(), Error>(())
        })
        .unwrap();
    let addr = server.start().unwrap();

    let mut readers = Vec::new();
    for n in 0..500 {
        let path = if n % 2 == 0 { "/c" } else { "/s" };
        let events = get(addr, path, &[]).await.events();
        readers.push(tokio::spawn(events.collect()));
    }
    // One client that never reads and whose buffers are full: stop must not
    // wait for it beyond the drain timeout.
    let stalled = tokio::net::TcpSocket::new_v4().unwrap();
    stalled.set_recv_buffer_size(4096).unwrap();
    let mut stalled = stalled.connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stalled, b"GET /stall HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    eventually("all subscribed", || {
        channel.subscribers() == 250 && stall.subscribers() == 1
    })
    .await;
    let big = "b".repeat(64 * 1024);
    for _ in 0..200 {
        stall.publish(Event::data(big.clone())).unwrap();
    }
    // Published before stop: must still reach everyone, before the farewell.
    channel.publish(Event::data("last news")).unwrap();

    let stopping = Arc::clone(&server);
    let started = Instant::now();
    tokio::task::spawn_blocking(move || {
        stopping.stop_with(Event::data("goodbye").event("shutdown").unwrap());
    })
    .await
    .unwrap();
    let took = started.elapsed();
    assert!(took < drain + Duration::from_secs(3), "stop took {took:?}");

    for (n, reader) in readers.into_iter().enumerate() {
        let events = reader.await.unwrap();
        let tail: Vec<(&str, &str)> = events
            .iter()
            .rev()
            .take(2)
            .rev()
            .map(|e| (e.event.as_str(), e.data.as_str()))
            .collect();
        let before_farewell = if n % 2 == 0 {
            ("message", "last news")
        } else {
            ("message", "started")
        };
        assert_eq!(tail, [before_farewell, ("shutdown", "goodbye")]);
    }
    assert!(matches!(
        channel.publish(Event::data("late")),
        Err(Error::Stopped)
    ));
    drop(stalled);
    assert_no_engine_threads();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_returns_once_every_stream_has_drained_not_after_the_drain_timeout() {
    let _serial = serial();
    let server = Arc::new(server(Config {
        drain_timeout: Duration::from_secs(60),
        ..Config::default()
    }));
    let channel = server.channel("/c", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();
    let mut readers = Vec::new();
    for _ in 0..50 {
        let events = get(addr, "/c", &[]).await.events();
        readers.push(tokio::spawn(events.collect()));
    }
    eventually("all subscribed", || channel.subscribers() == 50).await;
    channel.publish(Event::data("last")).unwrap();
    let stopping = Arc::clone(&server);
    let started = Instant::now();
    tokio::task::spawn_blocking(move || stopping.stop())
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(
        took < PATIENCE,
        "stop waited {took:?} with nothing left to drain"
    );
    for reader in readers {
        let events = reader.await.unwrap();
        assert_eq!(events.last().map(|e| e.data.as_str()), Some("last"));
    }
}

#[test]
fn misuse_gets_clear_errors() {
    let _serial = serial();
    let server = server(Config::default());
    let channel = server.channel("/c", ChannelOptions::default()).unwrap();
    assert!(matches!(
        server.channel("/c", ChannelOptions::default()),
        Err(Error::RouteExists(_))
    ));
    let addr = server.start().unwrap();
    assert!(matches!(server.start(), Err(Error::AlreadyRunning(a)) if a == addr));

    let taken = Server::new(Config {
        port: addr.port(),
        ..Config::default()
    })
    .unwrap();
    let err = taken.start().unwrap_err();
    assert!(matches!(err, Error::Bind { .. }), "{err:?}");
    assert!(err.to_string().contains(&addr.to_string()), "{err}");

    server.stop();
    server.stop();
    assert!(matches!(server.start(), Err(Error::Stopped)));
    assert!(matches!(
        channel.publish(Event::data("x")),
        Err(Error::Stopped)
    ));
    assert!(matches!(
        server.channel("/d", ChannelOptions::default()),
        Err(Error::Stopped)
    ));
    assert_no_engine_threads();
}

#[test]
fn invalid_configuration_is_refused_up_front() {
    for (config, mentions) in [
        (
            Config {
                limits: Limits {
                    max_head_bytes: 100,
                    ..Limits::default()
                },
                ..Config::default()
            },
            "max_head_bytes",
        ),
        (
            Config {
                stream_queue: 0,
                ..Config::default()
            },
            "stream_queue",
        ),
        (
            Config {
                host: String::new(),
                ..Config::default()
            },
            "host",
        ),
    ] {
        let err = Server::new(config).unwrap_err();
        assert!(err.to_string().contains(mentions), "{err}");
    }
}

#[test]
fn durations_too_long_to_mean_anything_are_refused_naming_the_field() {
    let forever = Duration::MAX;
    let limits = |head_timeout| Limits {
        head_timeout,
        ..Limits::default()
    };
    for (config, field) in [
        (
            Config {
                write_timeout: forever,
                ..Config::default()
            },
            "write_timeout",
        ),
        (
            Config {
                keepalive: Some(forever),
                ..Config::default()
            },
            "keepalive",
        ),
        (
            Config {
                tcp_keepalive: Some(forever),
                ..Config::default()
            },
            "tcp_keepalive",
        ),
        (
            Config {
                drain_timeout: forever,
                ..Config::default()
            },
            "drain_timeout",
        ),
        (
            Config {
                limits: limits(forever),
                ..Config::default()
            },
            "head_timeout",
        ),
    ] {
        let err = Server::new(config).unwrap_err();
        assert_eq!(err.code(), "INVALID_CONFIG");
        assert!(err.to_string().contains(field), "{err}");
    }
    let server = Server::new(Config::default()).unwrap();
    let options = ChannelOptions {
        keepalive: Some(forever),
        ..ChannelOptions::default()
    };
    let err = server.channel("/c", options).unwrap_err();
    assert!(err.to_string().contains("keepalive"), "{err}");
    // A year is still a duration.
    let year = Duration::from_secs(365 * 24 * 3600);
    assert!(Server::new(Config {
        write_timeout: year,
        ..Config::default()
    })
    .is_ok());
}

#[test]
fn dropping_a_running_server_stops_it() {
    let _serial = serial();
    let server = server(Config::default());
    let addr = server.start().unwrap();
    drop(server);
    assert!(std::net::TcpStream::connect(addr).is_err());
    assert_no_engine_threads();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_called_from_a_stream_handler_does_not_deadlock() {
    let _serial = serial();
    let server = Arc::new(server(Config::default()));
    let handle = Arc::downgrade(&server);
    server
        .stream("/stop", move |_request, tx: StreamSender| {
            let handle = handle.clone();
            async move {
                tx.send(Event::data("stopping")).await?;
                if let Some(server) = handle.upgrade() {
                    server.stop();
                }
                Ok::<(), Error>(())
            }
        })
        .unwrap();
    let addr = server.start().unwrap();
    let events = get(addr, "/stop", &[]).await.events().collect().await;
    assert_eq!(events[0].data, "stopping");
    eventually("engine gone", || threads_named("tidings-").is_empty()).await;
    assert!(!server.is_running());
}

#[tokio::test]
async fn stats_count_what_happened() {
    let _serial = serial();
    let server = server(Config::default());
    let channel = server.channel("/c", ChannelOptions::default()).unwrap();
    server.channel("/b", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();
    let mut events = get(addr, "/c", &[]).await.events();
    for n in 0..3 {
        channel.publish(Event::data(n.to_string())).unwrap();
    }
    events.take(3).await;
    let stats = server.stats();
    assert_eq!(stats.connections_open, 1);
    assert_eq!(stats.streams_open, 1);
    assert_eq!(stats.events_published, 3);
    assert_eq!(stats.events_delivered, 3);
    assert!(stats.bytes_written > 0);
    let paths: Vec<_> = stats
        .channels
        .iter()
        .map(|c| (c.path.as_str(), c.subscribers, c.history_len))
        .collect();
    assert_eq!(paths, [("/b", 0, 0), ("/c", 1, 3)]);
    drop(events);
    server.stop();
}

#[test]
fn servers_that_reuse_the_port_share_it_and_each_gets_connections() {
    let _serial = serial();
    let answering = |name: &'static str, port: u16| {
        let server = Server::new(Config {
            port,
            reuse_port: true,
            ..Config::default()
        })
        .unwrap();
        server
            .route(
                "/who",
                move |_request: tidings::Request, reply: tidings::Reply| {
                    reply.send(200, "text/plain", name).unwrap();
                },
            )
            .unwrap();
        server
    };
    let first = answering("first", 0);
    let port = first.start().unwrap().port();
    let second = answering("second", port);
    assert_eq!(second.start().unwrap().port(), port);
    // A server that does not offer to share cannot take the port.
    let alone = Server::new(Config {
        port,
        ..Config::default()
    })
    .unwrap();
    assert!(matches!(alone.start(), Err(Error::Bind { .. })));

    // The kernel spreads new connections by their source port: both answer
    // well within a bounded number of fresh connections.
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        conn.set_read_timeout(Some(PATIENCE)).unwrap();
        use std::io::{Read, Write};
        conn.write_all(b"GET /who HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .unwrap();
        let mut reply = String::new();
        conn.read_to_string(&mut reply).unwrap();
        seen.insert(
            reply
                .rsplit("\r\n\r\n")
                .next()
                .unwrap_or_default()
                .to_owned(),
        );
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen, ["first".to_owned(), "second".to_owned()].into());
    first.stop();
    second.stop();
    assert_no_engine_threads();
}

//! A mounted application (`Server::mount`): what no route serves reaches it,
//! its request body streams in and its response out with backpressure, it
//! learns when the client leaves, and it can hand the connection to a
//! channel or a stream. Real sockets on 127.0.0.1, raw and hyper clients.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use tidings::{BodyRead, ChannelOptions, Config, Event, Exchange, WRITE_HIGH_WATER};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

/// Reads the whole request body the way a host on another thread would:
/// `try_read`, and `when_readable` when nothing has arrived.
async fn read_body(exchange: &Exchange) -> Result<Vec<u8>, &'static str> {
    let mut body = Vec::new();
    loop {
        match exchange.try_read() {
            BodyRead::Chunk { data, last } => {
                body.extend_from_slice(&data);
                if last {
                    return Ok(body);
                }
            }
            BodyRead::End => return Ok(body),
            BodyRead::Disconnected => return Err("disconnected"),
            BodyRead::Pending => {
                let (ready, readable) = oneshot::channel();
                exchange.when_readable(move || {
                    let _ = ready.send(());
                });
                readable.await.expect("when_readable calls back");
            }
        }
    }
}

/// Writes `data`, waiting whenever the exchange says so.
async fn write(exchange: &Exchange, data: &[u8], more: bool) -> tidings::Result<()> {
    if exchange.write(Bytes::copy_from_slice(data), more)? {
        let (ready, writable) = oneshot::channel();
        exchange.when_writable(move |open| {
            let _ = ready.send(open);
        });
        if !writable.await.unwrap_or(false) {
            return Err(tidings::Error::Disconnected);
        }
    }
    Ok(())
}

/// An application that answers every request with a task of its own.
fn mount<F, Fut>(server: &tidings::Server, app: F)
where
    F: Fn(Exchange) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    server
        .mount(move |exchange: Exchange| {
            tokio::spawn(app(exchange));
        })
        .unwrap();
}

#[tokio::test]
async fn routes_win_and_everything_else_reaches_the_application() {
    let server = server(Config::default());
    let news = server.channel("/news", ChannelOptions::default()).unwrap();
    mount(&server, |exchange| async move {
        let request = exchange.request();
        let text = format!(
            "{} {} {} {:?} {}",
            request.method(),
            request.decoded_path(),
            request.query_string(),
            request.header("x-tag"),
            request.http_version(),
        );
        exchange
            .start(200, [("content-type", "text/plain"), ("x-app", "1")])
            .unwrap();
        write(&exchange, text.as_bytes(), false).await.unwrap();
    });
    let addr = server.start().unwrap();

    let response = request(addr, "DELETE", "/caf%C3%A9/x?a=1", &[("x-tag", "t")]).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-app"), Some("1"));
    // One write that ends the response is sent with its length.
    assert_eq!(response.header("content-length"), Some("33"));
    assert_eq!(response.text().await, r#"DELETE /café/x a=1 Some("t") 1.1"#);

    let mut events = get(addr, "/news", &[]).await.events();
    news.publish(Event::data("hello")).unwrap();
    assert_eq!(events.next().await.unwrap().data, "hello");
    server.stop();
}

#[tokio::test]
async fn a_second_mount_is_refused() {
    let server = server(Config::default());
    server.mount(|_exchange: Exchange| {}).unwrap();
    let again = server.mount(|_exchange: Exchange| {});
    assert!(matches!(again, Err(tidings::Error::AlreadyMounted)));
}

#[tokio::test]
async fn a_chunked_request_body_streams_in_and_is_echoed() {
    let server = server(Config::default());
    mount(&server, |exchange| async move {
        let body = read_body(&exchange).await.unwrap();
        exchange
            .start(200, [("x-len", body.len().to_string())])
            .unwrap();
        write(&exchange, &body, true).await.unwrap();
        exchange.finish().unwrap();
    });
    let addr = server.start().unwrap();
    let mut conn = RawConn::open(
        addr,
        b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    conn.stream
        .write_all(b"6\r\n world\r\n0\r\n\r\n")
        .await
        .unwrap();
    let reply = conn.read_until("hello world").await;
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(reply.contains("x-len: 11\r\n"), "{reply}");
    server.stop();
}

#[tokio::test]
async fn continue_is_sent_only_once_the_application_reads_the_body() {
    let server = server(Config::default());
    let (go, wait) = mpsc::unbounded_channel::<()>();
    let wait = Arc::new(tokio::sync::Mutex::new(wait));
    mount(&server, move |exchange| {
        let wait = Arc::clone(&wait);
        async move {
            wait.lock().await.recv().await;
            let body = read_body(&exchange).await.unwrap();
            exchange.start(200, Vec::<(&str, &str)>::new()).unwrap();
            write(&exchange, &body, false).await.unwrap();
        }
    });
    let addr = server.start().unwrap();
    let mut conn = RawConn::open(
        addr,
        b"PUT /upload HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 3\r\n\r\n",
    )
    .await;
    let mut early = [0u8; 64];
    let nothing =
        tokio::time::timeout(Duration::from_millis(200), conn.stream.read(&mut early)).await;
    assert!(
        nothing.is_err(),
        "nothing is sent before the application reads"
    );
    go.send(()).unwrap();
    conn.read_until("HTTP/1.1 100 Continue\r\n\r\n").await;
    conn.stream.write_all(b"abc").await.unwrap();
    let reply = conn.read_until("abc").await;
    assert!(reply.contains("HTTP/1.1 200 OK"), "{reply}");
    server.stop();
}

#[tokio::test]
async fn a_slow_reader_makes_the_writer_wait_and_memory_stays_bounded() {
    const CHUNK: usize = WRITE_HIGH_WATER / 4;
    const CHUNKS: usize = 1024;
    let server = server(Config::default());
    let waits = Arc::new(AtomicUsize::new(0));
    let written = Arc::new(AtomicUsize::new(0));
    let (waits_seen, written_seen) = (Arc::clone(&waits), Arc::clone(&written));
    mount(&server, move |exchange| {
        let (waits, written) = (Arc::clone(&waits), Arc::clone(&written));
        async move {
            exchange
                .start(200, [("content-type", "application/octet-stream")])
                .unwrap();
            let chunk = vec![b'x'; CHUNK];
            for _ in 0..CHUNKS {
                // 16 MiB in all, far more than the socket buffers hold.
                if exchange.write(Bytes::from(chunk.clone()), true).unwrap() {
                    waits.fetch_add(1, Ordering::Relaxed);
                    let (ready, writable) = oneshot::channel();
                    exchange.when_writable(move |open| {
                        let _ = ready.send(open);
                    });
                    assert!(writable.await.unwrap());
                }
                written.fetch_add(chunk.len(), Ordering::Relaxed);
            }
            exchange.finish().unwrap();
        }
    });
    let addr = server.start().unwrap();
    let mut client = small_buffer_client(addr, "/big", 4096).await;
    // While nobody reads, the writer gets at most a high-water mark ahead
    // of what the sockets and hyper's buffer hold.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ahead = written_seen.load(Ordering::Relaxed);
    assert!(
        waits_seen.load(Ordering::Relaxed) > 0,
        "the writer was told to wait"
    );
    assert!(
        ahead < CHUNKS * CHUNK / 2,
        "the writer ran {ahead} bytes ahead"
    );
    // Then everything arrives: nothing was dropped to keep memory bounded.
    let mut body = 0;
    let mut buf = vec![0u8; 64 * 1024];
    while body < CHUNKS * CHUNK {
        let read = tokio::time::timeout(PATIENCE, client.read(&mut buf))
            .await
            .expect("the body keeps coming")
            .unwrap();
        assert!(read > 0, "the body ended early after {body} bytes");
        body += buf[..read].iter().filter(|&&b| b == b'x').count();
    }
    assert_eq!(body, CHUNKS * CHUNK);
    server.stop();
}

#[tokio::test]
async fn an_idle_application_learns_at_once_that_its_client_left() {
    let server = server(Config::default());
    let (closed, mut closes) = mpsc::unbounded_channel();
    mount(&server, move |exchange| {
        let closed = closed.clone();
        async move {
            exchange
                .start(200, [("content-type", "text/plain")])
                .unwrap();
            write(&exchange, b"first", true).await.unwrap();
            let (gone, left) = oneshot::channel();
            exchange.on_close(move || {
                let _ = gone.send(());
            });
            // Then idle: nothing more is written until the client leaves.
            left.await.unwrap();
            let _ = closed.send(exchange.write(Bytes::from("late"), true));
        }
    });
    let addr = server.start().unwrap();
    let mut conn = RawConn::open(addr, b"GET /idle HTTP/1.1\r\nhost: x\r\n\r\n").await;
    conn.read_until("first").await;
    drop(conn);
    let late = tokio::time::timeout(Duration::from_secs(1), closes.recv())
        .await
        .expect("on_close within a second of the client leaving");
    assert!(
        matches!(late, Some(Err(tidings::Error::Disconnected))),
        "{late:?}"
    );
    server.stop();
}

#[tokio::test]
async fn a_client_that_leaves_before_the_answer_is_noticed_and_a_late_start_fails() {
    let server = server(Config::default());
    let (report, mut reports) = mpsc::unbounded_channel();
    mount(&server, move |exchange| {
        let report = report.clone();
        async move {
            let (closed, on_close) = oneshot::channel();
            exchange.on_close(move || {
                let _ = closed.send(());
            });
            on_close.await.unwrap();
            let start = exchange.start(200, Vec::<(&str, &str)>::new());
            let _ = report.send((exchange.is_closed(), start));
        }
    });
    let addr = server.start().unwrap();
    let conn = RawConn::open(addr, b"GET /slow HTTP/1.1\r\nhost: x\r\n\r\n").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(conn);
    let (closed, start) = tokio::time::timeout(PATIENCE, reports.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(closed);
    assert!(
        matches!(start, Err(tidings::Error::Disconnected)),
        "{start:?}"
    );
    server.stop();
}

#[tokio::test]
async fn failures_answer_500_before_the_start_and_cut_the_connection_after() {
    let server = server(Config::default());
    mount(&server, |exchange| async move {
        match exchange.request().path() {
            "/before" => exchange.fail(),
            "/after" => {
                exchange.start(200, [("content-length", "100")]).unwrap();
                write(&exchange, b"partial", true).await.unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
                exchange.fail();
            }
            "/dropped" => drop(exchange),
            _ => panic!("unexpected path"),
        }
    });
    let addr = server.start().unwrap();
    for path in ["/before", "/dropped"] {
        let response = get(addr, path, &[]).await;
        assert_eq!(response.status, 500, "{path}");
    }
    let mut conn = RawConn::open(addr, b"GET /after HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let reply = conn.read_to_close().await;
    assert!(reply.contains("content-length: 100"), "{reply}");
    assert!(
        reply.ends_with("partial"),
        "cut short after the partial body: {reply}"
    );
    // The server goes on.
    assert_eq!(get(addr, "/before", &[]).await.status, 500);
    server.stop();
}

#[tokio::test]
async fn a_panicking_application_costs_its_client_a_500() {
    let server = server(Config::default());
    server
        .mount(|exchange: Exchange| {
            if exchange.request().path() == "/boom" {
                panic!("boom");
            }
            exchange.start(204, Vec::<(&str, &str)>::new()).unwrap();
            exchange.finish().unwrap();
        })
        .unwrap();
    let addr = server.start().unwrap();
    assert_eq!(get(addr, "/boom", &[]).await.status, 500);
    assert_eq!(get(addr, "/fine", &[]).await.status, 204);
    server.stop();
}

#[tokio::test]
async fn invalid_heads_are_refused_with_clear_errors() {
    let server = server(Config::default());
    let (report, mut reports) = mpsc::unbounded_channel();
    mount(&server, move |exchange| {
        let report = report.clone();
        async move {
            let mut errors = vec![
                exchange.write(Bytes::from("x"), false).map(drop),
                exchange.start(99, Vec::<(&str, &str)>::new()),
                exchange.start(200, [("bad name", "v")]),
                exchange.start(200, [("x-ok", "new\nline")]),
            ];
            exchange.start(200, Vec::<(&str, &str)>::new()).unwrap();
            errors.push(exchange.start(200, Vec::<(&str, &str)>::new()));
            exchange.finish().unwrap();
            errors.push(exchange.write(Bytes::from("x"), false).map(drop));
            let _ = report.send(
                errors
                    .into_iter()
                    .map(|e| e.unwrap_err().code())
                    .collect::<Vec<_>>(),
            );
        }
    });
    let addr = server.start().unwrap();
    assert_eq!(get(addr, "/", &[]).await.status, 200);
    let codes = reports.recv().await.unwrap();
    assert_eq!(
        codes,
        [
            "RESPONSE_NOT_STARTED",
            "INVALID_STATUS",
            "INVALID_HEADER",
            "INVALID_HEADER",
            "RESPONSE_STARTED",
            "ALREADY_ANSWERED"
        ]
    );
    server.stop();
}

#[tokio::test]
async fn a_head_request_gets_the_head_without_the_body() {
    let server = server(Config::default());
    mount(&server, |exchange| async move {
        exchange
            .start(200, [("content-type", "text/plain")])
            .unwrap();
        write(&exchange, b"twelve bytes", false).await.unwrap();
    });
    let addr = server.start().unwrap();
    let reply = raw_exchange(
        addr,
        b"HEAD / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(reply.contains("content-length: 12"), "{reply}");
    assert!(reply.ends_with("\r\n\r\n"), "no body: {reply}");
    server.stop();
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let server = server(Config::default());
    mount(&server, |exchange| async move {
        // The first answer is the slowest, yet answers stay in order.
        if exchange.request().path() == "/1" {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let body = exchange.request().path().to_owned();
        exchange.start(200, Vec::<(&str, &str)>::new()).unwrap();
        write(&exchange, body.as_bytes(), false).await.unwrap();
    });
    let addr = server.start().unwrap();
    let reply = raw_exchange(
        addr,
        b"GET /1 HTTP/1.1\r\nhost: x\r\n\r\nGET /2 HTTP/1.1\r\nhost: x\r\n\r\nGET /3 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    let order: Vec<usize> = ["\r\n\r\n/1", "\r\n\r\n/2", "\r\n\r\n/3"]
        .iter()
        .map(|body| {
            reply
                .find(body)
                .unwrap_or_else(|| panic!("{body:?} in {reply}"))
        })
        .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{reply}");
    server.stop();
}

#[tokio::test]
async fn a_connection_handed_to_a_channel_is_a_subscriber_that_resumes() {
    let server = server(Config::default());
    let scores = server
        .unrouted_channel("/internal/scores", ChannelOptions::default())
        .unwrap();
    let handed = scores.clone();
    server
        .mount(move |exchange: Exchange| {
            // The application's own check, then the hand-over.
            if exchange.request().header("authorization") != Some("Bearer ok") {
                exchange
                    .start(401, [("www-authenticate", "Bearer")])
                    .unwrap();
                exchange.finish().unwrap();
                return;
            }
            exchange
                .start(200, [("x-app", "kept"), ("content-length", "5")])
                .unwrap();
            exchange.subscribe(&handed).unwrap();
        })
        .unwrap();
    let addr = server.start().unwrap();
    assert_eq!(get(addr, "/scores", &[]).await.status, 401);
    // The channel's own name is no way around the application's check.
    assert_eq!(get(addr, "/internal/scores", &[]).await.status, 401);
    assert!(server
        .stats()
        .channels
        .iter()
        .any(|c| c.path == "/internal/scores"));

    let auth = [("authorization", "Bearer ok")];
    let response = get(addr, "/scores", &auth).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-app"), Some("kept"));
    assert_eq!(response.header("content-length"), None);
    assert_eq!(
        response.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    let mut events = response.events();
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(
            scores
                .publish(Event::data(format!("goal {n}")))
                .unwrap()
                .unwrap(),
        );
    }
    let first = events.take(3).await;
    assert_eq!(first[2].data, "goal 2");
    drop(events);

    let resumed = [
        ("authorization", "Bearer ok"),
        ("last-event-id", ids[0].as_str()),
    ];
    let mut events = get(addr, "/scores", &resumed).await.events();
    let missed = events.take(2).await;
    let data: Vec<&str> = missed.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(data, ["goal 1", "goal 2"]);
    server.stop();
}

#[tokio::test]
async fn a_connection_handed_to_a_stream_gets_the_hosts_events() {
    let server = server(Config::default());
    let senders = Arc::new(Mutex::new(Vec::new()));
    let kept = Arc::clone(&senders);
    server
        .mount(move |exchange: Exchange| {
            // From a host's own thread, not the engine's.
            let kept = Arc::clone(&kept);
            std::thread::spawn(move || {
                let sender = exchange.stream(8).unwrap();
                kept.lock().unwrap().push(sender);
            });
        })
        .unwrap();
    let addr = server.start().unwrap();
    let response = get(addr, "/mine", &[]).await;
    assert_eq!(response.status, 200);
    let mut events = response.events();
    // The head can reach the client before the host's thread stores the sender.
    eventually("the host holds its sender", || {
        !senders.lock().unwrap().is_empty()
    })
    .await;
    let sender = senders.lock().unwrap().pop().unwrap();
    assert!(!sender.is_closed());
    sender
        .try_send(Event::data("one").event("tick").unwrap())
        .unwrap();
    let event = events.next().await.unwrap();
    assert_eq!((event.event.as_str(), event.data.as_str()), ("tick", "one"));
    drop(events);
    eventually("the stream sees its client leave", || sender.is_closed()).await;
    server.stop();
}

#[tokio::test]
async fn answers_given_while_a_thread_holds_its_wakes_leave_when_it_releases() {
    let server = server(Config::default());
    let (exchanges, arrived) = std::sync::mpsc::channel::<Exchange>();
    let exchanges = Mutex::new(exchanges);
    server
        .mount(move |exchange: Exchange| exchanges.lock().unwrap().send(exchange).unwrap())
        .unwrap();
    let addr = server.start().unwrap();
    let (answered, was_answered) = oneshot::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    // The host's loop thread: two requests answered in one batch.
    let host = std::thread::spawn(move || {
        let batch: Vec<Exchange> = (0..2).map(|_| arrived.recv().unwrap()).collect();
        assert!(tidings::hold_wakes());
        for (n, exchange) in batch.iter().enumerate() {
            exchange
                .start(200, [("content-type", "text/plain")])
                .unwrap();
            exchange
                .write(Bytes::from(format!("answer {n}")), false)
                .unwrap();
        }
        answered.send(()).unwrap();
        released.recv().unwrap();
        tidings::release_wakes();
    });
    let first = tokio::spawn(get(addr, "/one", &[]));
    let second = tokio::spawn(get(addr, "/two", &[]));
    was_answered.await.unwrap();
    // Held: neither answer has left, however long the host takes.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!first.is_finished() && !second.is_finished());
    release.send(()).unwrap();
    let mut texts = vec![
        first.await.unwrap().text().await,
        second.await.unwrap().text().await,
    ];
    texts.sort();
    assert_eq!(texts, ["answer 0", "answer 1"]);
    host.join().unwrap();
    server.stop();
}

#[tokio::test]
async fn a_flushed_head_reaches_the_client_before_any_body() {
    let server = server(Config::default());
    let (go, wait) = oneshot::channel::<()>();
    let wait = Arc::new(Mutex::new(Some(wait)));
    mount(&server, move |exchange| {
        let wait = wait.lock().unwrap().take();
        async move {
            exchange
                .start(200, [("content-type", "text/event-stream")])
                .unwrap();
            exchange.flush_head().unwrap();
            exchange.flush_head().unwrap(); // a second flush does nothing
            if let Some(wait) = wait {
                let _ = wait.await;
            }
            write(&exchange, b"data: late\n\n", false).await.unwrap();
        }
    });
    let addr = server.start().unwrap();
    let mut conn = RawConn::open(addr, b"GET /events HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let head = conn.head().await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    go.send(()).unwrap();
    conn.read_until("data: late").await;
    server.stop();
}

#[tokio::test]
async fn the_local_address_is_the_connections_own_even_behind_a_wildcard_bind() {
    for host in ["127.0.0.1", "0.0.0.0"] {
        let server = tidings::Server::new(Config {
            host: host.into(),
            port: 0,
            ..Config::default()
        })
        .unwrap();
        mount(&server, |exchange| async move {
            let local = exchange.request().local_addr().to_string();
            exchange.start(200, Vec::<(&str, &str)>::new()).unwrap();
            write(&exchange, local.as_bytes(), false).await.unwrap();
        });
        let port = server.start().unwrap().port();
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        assert_eq!(
            get(addr, "/", &[]).await.text().await,
            addr.to_string(),
            "{host}"
        );
        server.stop();
    }
}

//! TLS and HTTP/2 with real clients (rustls, hyper's HTTP/1.1 and HTTP/2
//! clients) against a certificate authority made per test: the direct path,
//! hyper's routes and streams, several event streams multiplexed on one
//! connection, a reset ending one stream only, h2c by prior knowledge,
//! certificate reload, refusals and bad configurations.
//!
//! The tests run on a multi-threaded runtime: `stop` blocks its caller, and
//! an HTTP/2 client must go on answering the server's GOAWAY and PING.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

use common::tls::{get_over, peer_certificate, tls_connect, Pki, H2};
use common::*;
use tidings::{ChannelOptions, Config, Error, Event, Request, Server, StreamSender};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn tls_config(pki: &Pki) -> Config {
    Config {
        tls_cert: Some(pki.cert()),
        tls_key: Some(pki.key()),
        ..Config::default()
    }
}

/// A route that answers with the request's scheme, version and host.
fn add_echo(server: &Server) {
    server
        .route("/echo", |request: Request, reply: tidings::Reply| {
            let text = format!(
                "{} {} {}",
                request.scheme(),
                request.http_version(),
                request.header("host").unwrap_or("-")
            );
            reply.send(200, "text/plain", text).unwrap();
        })
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_over_tls_gets_its_events_on_the_direct_path() {
    let pki = Pki::new("direct");
    let server = server(tls_config(&pki));
    let channel = server.channel("/c", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();

    let connector = pki.connector(&[b"http/1.1"]);
    let tls = tls_connect(&connector, addr).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let response = get_over(tls, addr, "/c", &[]).await;
    assert_eq!(response.status, 200);
    // The direct path's own head: it closes the connection to end the body.
    assert_eq!(response.header("connection"), Some("close"));
    let mut events = response.events();
    eventually("subscribed", || channel.subscribers() == 1).await;
    for n in 0..3 {
        channel.publish(Event::data(format!("n{n}"))).unwrap();
    }
    let got: Vec<String> = events.take(3).await.into_iter().map(|e| e.data).collect();
    assert_eq!(got, ["n0", "n1", "n2"]);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_and_streams_over_tls_are_served_by_hyper_and_see_https() {
    let pki = Pki::new("hyper");
    let server = server(tls_config(&pki));
    add_echo(&server);
    server
        .stream("/s", |_request, tx: StreamSender| async move {
            for n in 0..3 {
                tx.send(Event::data(format!("s{n}"))).await?;
            }
            Ok::<(), Error>(())
        })
        .unwrap();
    let addr = server.start().unwrap();
    let connector = pki.connector(&[b"http/1.1"]);

    let echo = get_over(tls_connect(&connector, addr).await, addr, "/echo", &[]).await;
    assert_eq!(echo.text().await, format!("https 1.1 {addr}"));
    let stream = get_over(tls_connect(&connector, addr).await, addr, "/s", &[]).await;
    let got: Vec<String> = stream
        .events()
        .collect()
        .await
        .into_iter()
        .map(|e| e.data)
        .collect();
    assert_eq!(got, ["s0", "s1", "s2"]);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_requests_see_http() {
    let server = server(Config::default());
    add_echo(&server);
    let addr = server.start().unwrap();
    let echo = get(addr, "/echo", &[]).await;
    assert_eq!(echo.text().await, format!("http 1.1 {addr}"));
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_event_streams_share_one_h2_connection() {
    let pki = Pki::new("h2");
    let server = server(tls_config(&pki));
    let channel = server.channel("/c", ChannelOptions::default()).unwrap();
    add_echo(&server);
    let addr = server.start().unwrap();

    let tls = tls_connect(&pki.connector(&[b"h2", b"http/1.1"]), addr).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut h2 = H2::handshake(tls, addr, true).await;
    let mut readers = Vec::new();
    for _ in 0..3 {
        let response = h2.get("/c", &[]).await;
        assert_eq!(response.status, 200);
        assert_eq!(
            response.header("content-type"),
            Some("text/event-stream; charset=utf-8")
        );
        readers.push(response.events());
    }
    eventually("three subscribers", || channel.subscribers() == 3).await;
    assert_eq!(server.stats().connections_open, 1);
    assert_eq!(server.stats().streams_open, 3);
    channel
        .publish(Event::data("to all").id("7").unwrap())
        .unwrap();
    for reader in &mut readers {
        let event = reader.next().await.expect("an event");
        assert_eq!((event.data.as_str(), event.id.as_str()), ("to all", "7"));
    }
    // The host comes from `:authority`.
    let echo = h2.get("/echo", &[]).await;
    assert_eq!(echo.text().await, format!("https 2 {addr}"));
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resetting_one_h2_stream_ends_its_subscription_only() {
    let pki = Pki::new("reset");
    let server = server(tls_config(&pki));
    let channel = server.channel("/c", ChannelOptions::default()).unwrap();
    // The producer is dropped (cancelled) when its client leaves.
    struct Running(Arc<AtomicUsize>);
    impl Drop for Running {
        fn drop(&mut self) {
            self.0.fetch_sub(1, SeqCst);
        }
    }
    let running = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&running);
    server
        .stream("/s", move |_request, tx: StreamSender| {
            counter.fetch_add(1, SeqCst);
            let guard = Running(Arc::clone(&counter));
            async move {
                let _guard = guard;
                tx.closed().await;
                Ok::<(), Error>(())
            }
        })
        .unwrap();
    let addr = server.start().unwrap();

    let tls = tls_connect(&pki.connector(&[b"h2"]), addr).await;
    let mut h2 = H2::handshake(tls, addr, true).await;
    let kept = h2.get("/c", &[]).await.events();
    let reset = h2.get("/c", &[]).await.events();
    let producer = h2.get("/s", &[]).await;
    eventually("two subscribers", || channel.subscribers() == 2).await;
    eventually("the producer runs", || running.load(SeqCst) == 1).await;

    // Dropping a response body sends RST_STREAM(CANCEL) for that stream.
    drop(reset);
    eventually("one subscriber left", || channel.subscribers() == 1).await;
    drop(producer);
    eventually("the producer was cancelled", || running.load(SeqCst) == 0).await;

    let mut kept = kept;
    channel.publish(Event::data("still here")).unwrap();
    assert_eq!(kept.next().await.unwrap().data, "still here");
    assert!(!h2.is_closed());
    assert_eq!(server.stats().connections_open, 1);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_by_prior_knowledge_multiplexes_plain_connections() {
    let server = server(Config::default());
    let channel = server.channel("/c", ChannelOptions::default()).unwrap();
    add_echo(&server);
    let addr = server.start().unwrap();

    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut h2 = H2::handshake(tcp, addr, false).await;
    let mut first = h2.get("/c", &[]).await.events();
    let mut second = h2.get("/c", &[]).await.events();
    eventually("two subscribers", || channel.subscribers() == 2).await;
    channel.publish(Event::data("over h2c")).unwrap();
    assert_eq!(first.next().await.unwrap().data, "over h2c");
    assert_eq!(second.next().await.unwrap().data, "over h2c");
    assert_eq!(
        h2.get("/echo", &[]).await.text().await,
        format!("http 2 {addr}")
    );
    assert_eq!(server.stats().connections_open, 1);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_off_offers_http1_only_and_refuses_prior_knowledge() {
    let pki = Pki::new("h1only");
    let server = server(Config {
        http2: false,
        ..tls_config(&pki)
    });
    server.channel("/c", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();
    let tls = tls_connect(&pki.connector(&[b"h2", b"http/1.1"]), addr).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    drop(tls);
    server.stop();

    let plain = common::server(Config {
        http2: false,
        ..Config::default()
    });
    plain.channel("/c", ChannelOptions::default()).unwrap();
    let addr = plain.start().unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let outcome = tokio::time::timeout(
        PATIENCE,
        hyper::client::conn::http2::handshake::<_, _, http_body_util::Empty<bytes::Bytes>>(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tcp),
        ),
    )
    .await
    .expect("an answer in time");
    // The handshake itself is one-sided; the first request shows the refusal.
    if let Ok((mut sender, connection)) = outcome {
        tokio::spawn(connection);
        let request = http::Request::builder()
            .uri(format!("http://{addr}/c"))
            .body(http_body_util::Empty::new())
            .unwrap();
        let answer = tokio::time::timeout(PATIENCE, sender.send_request(request))
            .await
            .expect("an answer in time");
        assert!(answer.is_err(), "{answer:?}");
    }
    plain.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_farewell_reaches_every_h2_stream_before_the_connection_closes() {
    let pki = Pki::new("farewell");
    let server = server(tls_config(&pki));
    let channel = server.channel("/c", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();
    let tls = tls_connect(&pki.connector(&[b"h2"]), addr).await;
    let mut h2 = H2::handshake(tls, addr, true).await;
    let mut readers = Vec::new();
    for _ in 0..4 {
        readers.push(tokio::spawn(h2.get("/c", &[]).await.events().collect()));
    }
    eventually("four subscribers", || channel.subscribers() == 4).await;
    channel.publish(Event::data("last news")).unwrap();
    server.stop_with(Event::data("goodbye").event("shutdown").unwrap());
    for reader in readers {
        let events = reader.await.unwrap();
        let tail: Vec<(String, String)> = events.into_iter().map(|e| (e.event, e.data)).collect();
        assert_eq!(
            tail,
            [
                ("message".to_owned(), "last news".to_owned()),
                ("shutdown".to_owned(), "goodbye".to_owned())
            ]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_tls_serves_the_new_certificate_to_new_handshakes_only() {
    let pki = Pki::new("reload");
    let server = server(tls_config(&pki));
    let channel = server.channel("/c", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();
    let connector = pki.connector(&[b"http/1.1"]);

    let old = tls_connect(&connector, addr).await;
    let old_certificate = peer_certificate(&old);
    let mut events = get_over(old, addr, "/c", &[]).await.events();
    eventually("subscribed", || channel.subscribers() == 1).await;

    // A renewed certificate, written over the configured files.
    pki.issue("server");
    server.reload_tls().unwrap();
    let fresh = tls_connect(&pki.connector(&[b"http/1.1"]), addr).await;
    let new_certificate = peer_certificate(&fresh);
    assert_ne!(old_certificate, new_certificate);
    assert_eq!(
        new_certificate,
        rustls_pem_first(&std::fs::read(pki.cert()).unwrap())
    );
    channel.publish(Event::data("after the swap")).unwrap();
    assert_eq!(events.next().await.unwrap().data, "after the swap");

    // A broken pair is refused and the one in service stays.
    let served = std::fs::read(pki.cert()).unwrap();
    std::fs::write(pki.cert(), "not a certificate").unwrap();
    assert!(matches!(server.reload_tls(), Err(Error::InvalidConfig(_))));
    let other = Pki::new("reload-other");
    std::fs::write(pki.cert(), &served).unwrap();
    std::fs::copy(other.key(), pki.key()).unwrap();
    let err = server.reload_tls().unwrap_err();
    assert!(err.to_string().contains("does not serve"), "{err}");
    let again = tls_connect(&pki.connector(&[b"http/1.1"]), addr).await;
    assert_eq!(peer_certificate(&again), new_certificate);
    server.stop();

    let plain = common::server(Config::default());
    assert!(matches!(plain.reload_tls(), Err(Error::InvalidConfig(_))));
}

fn rustls_pem_first(pem: &[u8]) -> Vec<u8> {
    use rustls::pki_types::{pem::PemObject, CertificateDer};
    CertificateDer::pem_slice_iter(pem)
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}

#[test]
fn bad_tls_configurations_are_refused_when_the_server_is_made() {
    let pki = Pki::new("bad");
    let other = Pki::new("bad-other");
    let missing = pki.dir.join("missing.pem");
    let garbage = pki.dir.join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
    let cases = [
        (Some(pki.cert()), None, "go together"),
        (None, Some(pki.key()), "go together"),
        (Some(missing.clone()), Some(pki.key()), "missing.pem"),
        (Some(pki.cert()), Some(missing), "missing.pem"),
        (Some(garbage.clone()), Some(pki.key()), "not valid PEM"),
        (Some(pki.cert()), Some(garbage), "not valid PEM"),
        (Some(pki.key()), Some(pki.key()), "holds no PEM certificate"),
        (
            Some(pki.cert()),
            Some(pki.cert()),
            "holds no PEM private key",
        ),
        (Some(pki.cert()), Some(other.key()), "does not serve"),
    ];
    for (cert, key, expected) in cases {
        let err = Server::new(Config {
            tls_cert: cert.clone(),
            tls_key: key.clone(),
            ..Config::default()
        })
        .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidConfig(m) if m.contains(expected)),
            "{cert:?} {key:?}: {err}"
        );
    }
    let err = Server::new(Config {
        limits: tidings::Limits {
            max_streams_per_connection: 0,
            ..Default::default()
        },
        ..Config::default()
    })
    .unwrap_err();
    assert!(
        err.to_string().contains("max_streams_per_connection"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_and_silent_clients_on_the_tls_port_are_closed_and_counted() {
    let pki = Pki::new("plain");
    let server = server(Config {
        limits: tidings::Limits {
            head_timeout: Duration::from_millis(300),
            ..Default::default()
        },
        ..tls_config(&pki)
    });
    let channel = server.channel("/c", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();

    let mut plain = RawConn::open(addr, b"GET /c HTTP/1.1\r\nhost: x\r\n\r\n").await;
    let answer = plain.read_to_close().await;
    assert!(!answer.contains("200"), "{answer:?}");
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(PATIENCE, silent.read_to_end(&mut rest))
        .await
        .expect("closed after the head timeout")
        .ok();
    eventually("both counted", || server.stats().tls_handshakes_failed == 2).await;
    eventually("both released", || server.stats().connections_open == 0).await;

    // The server goes on.
    let tls = tls_connect(&pki.connector(&[b"http/1.1"]), addr).await;
    let mut events = get_over(tls, addr, "/c", &[]).await.events();
    eventually("subscribed", || channel.subscribers() == 1).await;
    channel.publish(Event::data("fine")).unwrap();
    assert_eq!(events.next().await.unwrap().data, "fine");
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_tls_client_reads_its_429_even_when_it_offers_h2() {
    let pki = Pki::new("refused");
    let server = server(Config {
        limits: tidings::Limits {
            max_connections: Some(1),
            ..Default::default()
        },
        ..tls_config(&pki)
    });
    server.channel("/c", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();
    let connector = pki.connector(&[b"h2", b"http/1.1"]);
    let first = tls_connect(&connector, addr).await;
    eventually("one open", || server.stats().connections_open == 1).await;

    let mut second = tls_connect(&connector, addr).await;
    assert_eq!(second.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    second
        .write_all(b"GET /c HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, second.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 429 "), "{answer:?}");
    drop(first);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_that_stops_reading_is_closed_by_the_write_timeout() {
    let pki = Pki::new("stall");
    let server = server(Config {
        write_timeout: Duration::from_millis(500),
        ..tls_config(&pki)
    });
    let channel = server
        .channel(
            "/c",
            ChannelOptions {
                // Lag never ends it first: only the write timeout can.
                max_lag: 1 << 20,
                ..ChannelOptions::default()
            },
        )
        .unwrap();
    let addr = server.start().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let mut tls = pki
        .connector(&[b"http/1.1"])
        .connect(name, tcp)
        .await
        .unwrap();
    tls.write_all(b"GET /c HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    eventually("subscribed", || channel.subscribers() == 1).await;
    // Never read again: the events pile up in rustls, then in the socket.
    let big = "x".repeat(16 * 1024);
    for _ in 0..200 {
        channel.publish(Event::data(big.as_str())).unwrap();
    }
    eventually("closed for the write timeout", || {
        channel.subscribers() == 0 && server.stats().write_timeouts >= 1
    })
    .await;
    drop(tls);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_connection_left_without_a_stream_is_closed_after_the_head_timeout() {
    let server = server(Config {
        limits: tidings::Limits {
            head_timeout: Duration::from_millis(300),
            ..Default::default()
        },
        ..Config::default()
    });
    let channel = server.channel("/c", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();

    // One connection opens nothing: it is closed.
    let idle = H2::handshake(
        tokio::net::TcpStream::connect(addr).await.unwrap(),
        addr,
        false,
    )
    .await;
    // Another holds a subscription: it stays, past several head timeouts.
    let mut busy = H2::handshake(
        tokio::net::TcpStream::connect(addr).await.unwrap(),
        addr,
        false,
    )
    .await;
    let mut events = busy.get("/c", &[]).await.events();
    eventually("the idle one closed", || idle.is_closed()).await;
    eventually("one connection left", || {
        server.stats().connections_open == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    channel.publish(Event::data("still open")).unwrap();
    assert_eq!(events.next().await.unwrap().data, "still open");
    assert!(!busy.is_closed());
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_stream_whose_client_withholds_credit_is_reset_after_the_write_timeout() {
    let server = server(Config {
        write_timeout: Duration::from_millis(500),
        ..Config::default()
    });
    let channel = server.channel("/c", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();

    // Small stream windows, a large connection window: one stream can stall
    // while the other flows.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(16 * 1024)
        .initial_connection_window_size(16 << 20)
        .handshake::<_, bytes::Bytes>(tcp)
        .await
        .unwrap();
    tokio::spawn(connection);
    let request = || {
        http::Request::get(format!("http://{addr}/c"))
            .body(())
            .unwrap()
    };
    let mut client = client.ready().await.unwrap();
    let (stalled, _) = client.send_request(request(), true).unwrap();
    let mut client = client.ready().await.unwrap();
    let (flowing, _) = client.send_request(request(), true).unwrap();
    let mut stalled = stalled.await.unwrap().into_body();
    let mut flowing = flowing.await.unwrap().into_body();
    // The flowing stream is read and its credit given back; the stalled
    // one's never is.
    let reader = tokio::spawn(async move {
        let mut seen = Vec::new();
        while let Some(Ok(data)) = flowing.data().await {
            let _ = flowing.flow_control().release_capacity(data.len());
            seen.extend_from_slice(&data);
            if String::from_utf8_lossy(&seen).contains("after the reset") {
                return true;
            }
        }
        false
    });
    eventually("two subscribers", || channel.subscribers() == 2).await;
    let big = "x".repeat(1024);
    for _ in 0..200 {
        channel.publish(Event::data(big.as_str())).unwrap();
    }
    eventually("the stalled stream is reset", || {
        channel.subscribers() == 1 && server.stats().write_timeouts == 1
    })
    .await;
    channel.publish(Event::data("after the reset")).unwrap();
    assert!(
        tokio::time::timeout(PATIENCE, reader)
            .await
            .unwrap()
            .unwrap(),
        "the flowing stream goes on"
    );
    // What was sent before the reset can still be read, then the reset.
    let ended = loop {
        match tokio::time::timeout(PATIENCE, stalled.data())
            .await
            .unwrap()
        {
            Some(Ok(_)) => continue,
            Some(Err(err)) => break err.reason(),
            None => break None,
        }
    };
    assert_eq!(ended, Some(h2::Reason::CANCEL));
    assert_eq!(server.stats().connections_open, 1);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_that_pauses_reading_gets_the_whole_event_once_it_reads_again() {
    let pki = Pki::new("pause");
    let server = server(Config {
        // Nothing is written after the event: what rustls holds must leave
        // anyway.
        keepalive: None,
        ..tls_config(&pki)
    });
    let channel = server.channel("/c", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let mut tls = pki
        .connector(&[b"http/1.1"])
        .connect(name, tcp)
        .await
        .unwrap();
    tls.write_all(b"GET /c HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    eventually("subscribed", || channel.subscribers() == 1).await;
    // One event, more than the socket buffers hold (the kernel grows a send
    // buffer up to 4 MiB), published while the client reads nothing.
    let event = format!("{}end", "x".repeat(8 << 20));
    channel.publish(Event::data(event.as_str())).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut seen = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !seen.ends_with(b"xend\n\n") {
        let read = tokio::time::timeout_at(deadline, tls.read(&mut buffer))
            .await
            .expect("the whole event arrives without another write")
            .unwrap();
        assert_ne!(read, 0, "the server closed the stream");
        seen.extend_from_slice(&buffer[..read]);
    }
    server.stop();
}

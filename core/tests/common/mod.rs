//! Test helpers: a real HTTP/1.1 client (hyper's) over real sockets on
//! 127.0.0.1, events parsed by an independent SSE parser (`eventsource-stream`).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use eventsource_stream::Eventsource;
use futures_util::{Stream, StreamExt};
use http_body_util::{BodyExt, BodyStream, Either, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tidings::{Config, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// Generous bound for anything that should happen "at once": tests fail
/// instead of hanging, and never assert on speed.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub mod tls;

pub type Event = eventsource_stream::Event;

/// A server on an ephemeral loopback port.
pub fn server(config: Config) -> Server {
    Server::new(Config {
        host: "127.0.0.1".into(),
        port: 0,
        ..config
    })
    .expect("valid config")
}

pub fn quiet_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// One HTTP/1.1 GET; the connection task is aborted when the response is dropped.
pub struct Response {
    pub status: http::StatusCode,
    pub headers: http::HeaderMap,
    body: Option<Incoming>,
    connection: JoinHandle<()>,
}

impl Drop for Response {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    request(addr, "GET", path, headers).await
}

pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Response {
    let stream = TcpStream::connect(addr).await.expect("connect");
    request_over(stream, addr, method, path, headers).await
}

/// One HTTP/1.1 request with a body.
pub async fn request_with_body(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Response {
    let stream = TcpStream::connect(addr).await.expect("connect");
    send_over(stream, addr, method, path, headers, body.into()).await
}

/// One HTTP/1.1 request over an established connection (TLS or not).
pub async fn request_over<T>(
    io: T,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Response
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    send_over(io, addr, method, path, headers, Bytes::new()).await
}

async fn send_over<T>(
    io: T,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
) -> Response
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .expect("handshake");
    let connection = tokio::spawn(async move {
        let _ = connection.await;
    });
    let mut builder = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    // An empty body stays a request without one (no `content-length: 0`).
    let body = if body.is_empty() {
        Either::Left(Empty::<Bytes>::new())
    } else {
        Either::Right(Full::new(body))
    };
    let request = builder.body(body).expect("request");
    let response = tokio::time::timeout(PATIENCE, sender.send_request(request))
        .await
        .expect("response head in time")
        .expect("response");
    let (parts, body) = response.into_parts();
    Response {
        status: parts.status,
        headers: parts.headers,
        body: Some(body),
        connection,
    }
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("text header"))
    }

    /// The whole body (for finite responses).
    pub async fn text(mut self) -> String {
        let body = self.body.take().expect("body");
        let collected = tokio::time::timeout(PATIENCE, body.collect())
            .await
            .expect("body in time")
            .expect("body");
        String::from_utf8(collected.to_bytes().to_vec()).expect("utf-8 body")
    }

    /// The whole body as bytes (for finite responses).
    pub async fn bytes(mut self) -> Vec<u8> {
        let body = self.body.take().expect("body");
        let collected = tokio::time::timeout(PATIENCE, body.collect())
            .await
            .expect("body in time")
            .expect("body");
        collected.to_bytes().to_vec()
    }

    /// The body as parsed SSE events.
    pub fn events(mut self) -> Events {
        let body = self.body.take().expect("body");
        let data = BodyStream::new(body).filter_map(|frame| async move {
            match frame {
                Ok(frame) => frame.into_data().ok().map(Ok::<Bytes, hyper::Error>),
                Err(err) => Some(Err(err)),
            }
        });
        Events {
            events: Box::pin(data.eventsource()),
            _response: self,
        }
    }

    /// The body as raw bytes, frame by frame.
    pub fn raw(mut self) -> Raw {
        let body = self.body.take().expect("body");
        Raw {
            body,
            _response: self,
        }
    }
}

type EventStream = Pin<
    Box<
        dyn Stream<Item = Result<Event, eventsource_stream::EventStreamError<hyper::Error>>> + Send,
    >,
>;

pub struct Events {
    events: EventStream,
    _response: Response,
}

impl Events {
    /// The next event; `None` when the stream ends or breaks.
    pub async fn next(&mut self) -> Option<Event> {
        match tokio::time::timeout(PATIENCE, self.events.next()).await {
            Ok(Some(Ok(event))) => Some(event),
            Ok(_) => None,
            Err(_) => panic!("no event within {PATIENCE:?}"),
        }
    }

    /// Exactly `n` events.
    pub async fn take(&mut self, n: usize) -> Vec<Event> {
        let mut events = Vec::with_capacity(n);
        while events.len() < n {
            match self.next().await {
                Some(event) => events.push(event),
                None => panic!("stream ended after {} of {n} events", events.len()),
            }
        }
        events
    }

    /// Every event until the stream ends.
    pub async fn collect(mut self) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some(event) = self.next().await {
            events.push(event);
        }
        events
    }
}

pub struct Raw {
    body: Incoming,
    _response: Response,
}

impl Raw {
    /// Reads until `needle` has been seen (or panics after PATIENCE).
    pub async fn read_until(&mut self, needle: &str) -> String {
        let mut seen = String::new();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !seen.contains(needle) {
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .unwrap_or_else(|_| panic!("{needle:?} not seen in time; got {:?}", tail(&seen)));
            match frame {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        seen.push_str(&String::from_utf8_lossy(&data));
                    }
                }
                _ => panic!("stream ended before {needle:?}; got {:?}", tail(&seen)),
            }
        }
        seen
    }

    /// Counts complete events (blank-line terminators) until one ends with
    /// `last`, holding only a small tail in memory.
    pub async fn count_events_until(&mut self, last: &str) -> usize {
        let mut count = 0;
        let mut carry = String::new();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .unwrap_or_else(|_| panic!("{last:?} not seen in time after {count} events"));
            let Some(Ok(frame)) = frame else {
                panic!("stream ended after {count} events, before {last:?}");
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            carry.push_str(&String::from_utf8_lossy(&data));
            while let Some(end) = carry.find("\n\n") {
                count += 1;
                let event = &carry[..end + 2];
                let done = event.ends_with(last);
                carry.drain(..end + 2);
                if done {
                    return count;
                }
            }
        }
    }

    /// Reads until the body ends; returns everything.
    pub async fn read_to_end(&mut self) -> String {
        let mut seen = String::new();
        loop {
            let frame = tokio::time::timeout(PATIENCE, self.body.frame())
                .await
                .expect("body ends in time");
            match frame {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        seen.push_str(&String::from_utf8_lossy(&data));
                    }
                }
                _ => return seen,
            }
        }
    }
}

fn tail(text: &str) -> &str {
    let mut start = text.len().saturating_sub(300);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Writes `bytes` on a fresh connection and returns whatever comes back
/// until the server closes it.
pub async fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut reply)).await;
    String::from_utf8_lossy(&reply).into_owned()
}

/// Connects with a receive buffer of `receive_buffer` bytes and sends a GET
/// for `path`; what the test reads from it, and when, is up to the test.
pub async fn small_buffer_client(
    addr: std::net::SocketAddr,
    path: &str,
    receive_buffer: u32,
) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(receive_buffer).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    stream
}

/// Connects, subscribes and then never reads; a tiny receive buffer makes the
/// server's writes stall quickly.
pub async fn stalled_client(addr: std::net::SocketAddr, path: &str) -> tokio::net::TcpStream {
    small_buffer_client(addr, path, 4096).await
}

/// Polls `condition` until it holds, for at most PATIENCE.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Names of this process's threads that start with `prefix`.
pub fn threads_named(prefix: &str) -> Vec<String> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .filter(|name| name.starts_with(prefix))
        .collect()
}

/// A raw TCP connection for requests that a well-behaved client would not
/// send, or bytes that a client library would normalise.
pub struct RawConn {
    pub stream: TcpStream,
    pub seen: Vec<u8>,
}

impl RawConn {
    pub async fn open(addr: SocketAddr, bytes: &[u8]) -> RawConn {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(bytes).await.expect("write");
        RawConn {
            stream,
            seen: Vec::new(),
        }
    }

    /// Reads until `needle` has been seen; returns everything so far.
    /// Panics if the connection ends or PATIENCE passes first.
    pub async fn read_until(&mut self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let mut buf = [0u8; 16 * 1024];
        while !String::from_utf8_lossy(&self.seen).contains(needle) {
            let read = tokio::time::timeout_at(deadline, self.stream.read(&mut buf))
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "{needle:?} not seen in time; got {:?}",
                        String::from_utf8_lossy(&self.seen)
                    )
                });
            match read {
                Ok(0) | Err(_) => panic!(
                    "connection ended before {needle:?}; got {:?}",
                    String::from_utf8_lossy(&self.seen)
                ),
                Ok(n) => self.seen.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&self.seen).into_owned()
    }

    /// Reads until the server closes the connection (or PATIENCE passes,
    /// which panics); returns everything.
    pub async fn read_to_close(&mut self) -> String {
        let mut rest = Vec::new();
        tokio::time::timeout(PATIENCE, self.stream.read_to_end(&mut rest))
            .await
            .expect("the server closes the connection in time")
            .ok();
        self.seen.extend_from_slice(&rest);
        String::from_utf8_lossy(&self.seen).into_owned()
    }

    /// The response head (up to the blank line), lower-cased for matching.
    pub async fn head(&mut self) -> String {
        let text = self.read_until("\r\n\r\n").await;
        let end = text.find("\r\n\r\n").expect("a head");
        text[..end].to_ascii_lowercase()
    }
}

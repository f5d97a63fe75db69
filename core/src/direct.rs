//! The direct path for channel subscribers: the request head is read into a
//! small buffer and parsed here; a `GET` to a channel whose subscription
//! succeeds gets its response head written at once and then its events
//! written straight to the socket, without an HTTP/1 connection state behind
//! it. A subscriber then costs its socket, its cursor and this task, not
//! hyper's two 8 KiB buffers, which is what lets one machine hold hundreds of
//! thousands of idle subscribers.
//!
//! Everything else (pages, streams, routes, preflights, errors, anything
//! unusual) is handed to hyper with the bytes already read replayed in front,
//! so there is one implementation of HTTP for all of it.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, BufMut, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::body::{Source, SseBody};
use crate::http::{event_stream_headers, Route};
use crate::request::Request;
use crate::server::Shared;
use crate::socket::Socket;

/// Most headers a request on the direct path may carry.
const MAX_HEADERS: usize = 64;

/// What the head sniffer decided.
pub(crate) enum Sniffed {
    /// Served here; the connection is finished.
    Served,
    /// Not for the direct path: serve with hyper, replaying `prefix`.
    Hyper { socket: Socket, prefix: BytesMut },
}

/// Reads the request head and serves it directly if it subscribes to a
/// channel; otherwise returns the socket and what was read for hyper.
pub(crate) async fn sniff(
    mut socket: Socket,
    peer: std::net::SocketAddr,
    shared: &Arc<Shared>,
) -> Sniffed {
    let limits = &shared.config.limits;
    let mut head = BytesMut::with_capacity(1024);
    let complete = tokio::time::timeout(limits.head_timeout, async {
        loop {
            if head.windows(4).any(|w| w == b"\r\n\r\n") {
                return true;
            }
            if head.len() >= limits.max_head_bytes {
                return false;
            }
            head.reserve(1024);
            match poll_fn(|cx| read_some(&mut socket, cx, &mut head)).await {
                Ok(0) | Err(_) => return false,
                Ok(_) => {}
            }
        }
    })
    .await
    .unwrap_or(false);
    if !complete {
        if head.len() >= limits.max_head_bytes {
            // Too large: hyper answers 431.
            return Sniffed::Hyper {
                socket,
                prefix: head,
            };
        }
        // Too slow (slow-loris), closed or broken: nothing to answer.
        return Sniffed::Served;
    }
    let Some((request, version)) = parse(&head, peer) else {
        return Sniffed::Hyper {
            socket,
            prefix: head,
        };
    };
    let channel = match shared.routes().exact(request.path()) {
        Some(Route::Channel(channel)) => channel,
        _ => {
            return Sniffed::Hyper {
                socket,
                prefix: head,
            }
        }
    };
    let origin = request
        .header("origin")
        .and_then(|o| HeaderValue::from_str(o).ok());
    let Ok(subscription) = channel.subscribe(request) else {
        // Full or stopping: hyper routes it again and answers the refusal.
        return Sniffed::Hyper {
            socket,
            prefix: head,
        };
    };
    let mut headers = event_stream_headers();
    shared.config.cors.apply(origin.as_ref(), &mut headers);
    let body = SseBody::new(Source::Channel(subscription), Arc::clone(shared));
    if write_head(&mut socket, version, &headers).await.is_ok() {
        stream_events(socket, body).await;
    }
    Sniffed::Served
}

fn read_some(
    socket: &mut Socket,
    cx: &mut Context<'_>,
    head: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    let spare = head.spare_capacity_mut();
    let mut buf = ReadBuf::uninit(spare);
    match Pin::new(socket).poll_read(cx, &mut buf) {
        Poll::Ready(Ok(())) => {
            let filled = buf.filled().len();
            // SAFETY: poll_read initialised `filled` bytes of the spare capacity.
            unsafe { head.set_len(head.len() + filled) };
            Poll::Ready(Ok(filled))
        }
        Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
        Poll::Pending => Poll::Pending,
    }
}

/// A plain `GET` head with nothing unusual, as a request; `None` sends it to
/// hyper (other methods, bodies, upgrades, HTTP/0.9, malformed heads).
fn parse(head: &[u8], peer: std::net::SocketAddr) -> Option<(Request, u8)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(length) = parsed.parse(head).ok()? else {
        return None;
    };
    // Pipelined bytes after the head would be lost here: let hyper have them.
    if length != head.len() || parsed.method? != "GET" {
        return None;
    }
    let version = parsed.version?;
    let uri: http::Uri = parsed.path?.parse().ok()?;
    let mut map = HeaderMap::with_capacity(parsed.headers.len());
    for header in parsed.headers.iter() {
        let name = HeaderName::from_bytes(header.name.as_bytes()).ok()?;
        if name == http::header::CONTENT_LENGTH
            || name == http::header::TRANSFER_ENCODING
            || name == http::header::UPGRADE
        {
            return None;
        }
        map.append(name, HeaderValue::from_bytes(header.value).ok()?);
    }
    Some((Request::new(http::Method::GET, &uri, map, peer), version))
}

async fn write_head(socket: &mut Socket, version: u8, headers: &HeaderMap) -> io::Result<()> {
    let mut head = BytesMut::with_capacity(256);
    head.put_slice(if version == 0 {
        b"HTTP/1.0 200 OK\r\n"
    } else {
        b"HTTP/1.1 200 OK\r\n"
    });
    for (name, value) in headers {
        head.put_slice(name.as_str().as_bytes());
        head.put_slice(b": ");
        head.put_slice(value.as_bytes());
        head.put_slice(b"\r\n");
    }
    // No length and no chunking: the body ends when the connection closes,
    // which is how every event stream ends anyway.
    head.put_slice(b"\r\n");
    write_all(socket, &mut head).await
}

/// Writes the body's frames until it ends, the client goes away, or a write
/// fails (including the write timeout of `Socket`).
async fn stream_events(mut socket: Socket, mut body: SseBody) {
    loop {
        let next = poll_fn(|cx| {
            if client_gone(&mut socket, cx) {
                return Poll::Ready(None);
            }
            Pin::new(&mut body).poll_frame(cx)
        })
        .await;
        let Some(Ok(frame)) = next else { break };
        let Ok(mut data) = frame.into_data() else {
            continue;
        };
        if write_all(&mut socket, &mut data).await.is_err() {
            break;
        }
    }
    let _ = poll_fn(|cx| Pin::new(&mut socket).poll_shutdown(cx)).await;
}

/// Whether the client closed its side (or sent something, which an event
/// stream's client never does): checked without blocking.
fn client_gone(socket: &mut Socket, cx: &mut Context<'_>) -> bool {
    let mut probe = [0u8; 64];
    let mut buf = ReadBuf::new(&mut probe);
    match Pin::new(socket).poll_read(cx, &mut buf) {
        Poll::Ready(Ok(())) => true,
        Poll::Ready(Err(_)) => true,
        Poll::Pending => false,
    }
}

async fn write_all(socket: &mut Socket, data: &mut impl Buf) -> io::Result<()> {
    while data.has_remaining() {
        let written = poll_fn(|cx| {
            let mut slices = [IoSlice::new(&[]); 64];
            let count = data.chunks_vectored(&mut slices);
            Pin::new(&mut *socket).poll_write_vectored(cx, &slices[..count])
        })
        .await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        data.advance(written);
    }
    Ok(())
}

/// The socket for hyper: `prefix` (the head already read) first, then the
/// socket itself.
pub(crate) struct Replay {
    prefix: BytesMut,
    socket: Socket,
}

impl Replay {
    pub(crate) fn new(prefix: BytesMut, socket: Socket) -> Self {
        Replay { prefix, socket }
    }
}

impl AsyncRead for Replay {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.prefix.has_remaining() {
            let count = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..count]);
            this.prefix.advance(count);
            if !this.prefix.has_remaining() {
                // Give the memory back: the connection may live for hours.
                this.prefix = BytesMut::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.socket).poll_read(cx, buf)
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().socket).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().socket).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().socket).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().socket).poll_shutdown(cx)
    }
}

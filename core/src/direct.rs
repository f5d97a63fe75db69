//! The direct path for channel subscribers: a `GET` head to a channel (or
//! to the Mercure hub) whose subscription succeeds gets its response head written at once and then its
//! events written straight to the socket, without an HTTP/1 connection state
//! behind it. A subscriber then costs its socket, its cursor and this task, not
//! hyper's two 8 KiB buffers, which is what lets one machine hold hundreds of
//! thousands of idle subscribers.
//!
//! Everything else (pages, streams, routes, preflights, errors, anything
//! unusual) is handed to hyper with the bytes already read replayed in front,
//! so there is one implementation of HTTP for all of it.

use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::SystemTime;

use bytes::{Buf, BufMut, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http_body::Body;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::body::{Source, SseBody};
use crate::http::{event_stream_headers, Site};
use crate::request::{Endpoints, Request};
use crate::routes::Route;
use crate::socket::Io;

/// Most headers a request on the direct path may carry.
const MAX_HEADERS: usize = 64;

/// A channel subscription made from a request head, ready to be served.
pub(crate) struct DirectStream {
    head: BytesMut,
    body: SseBody,
}

/// Subscribes the request in `head` to its channel (or to the hub's
/// topics), if it is a plain `GET` that the channel accepts; `None` leaves
/// the request to hyper.
pub(crate) fn subscribe(head: &[u8], ends: Endpoints, site: &Site) -> Option<DirectStream> {
    let (request, version) = parse(head, ends)?;
    let route = site.routes().exact(request.path());
    let origin = request
        .header("origin")
        .and_then(|o| HeaderValue::from_str(o).ok());
    let mut headers = event_stream_headers();
    let (subscription, until) = match route? {
        Route::Channel(channel) => {
            // A host's authorize hook answers asynchronously: hyper's path
            // waits for it. Refused, full or stopping: hyper routes it again
            // and answers.
            if channel.authorizer().is_some() {
                return None;
            }
            let admitted = site.access(&request, &channel).ok()?;
            (channel.subscribe(request).ok()?, admitted.until)
        }
        Route::Hub(hub) => {
            let subscribed = hub.subscribe(request).ok()?;
            if let Some(id) = subscribed.last_event_id {
                headers.insert("last-event-id", id);
            }
            (subscribed.subscription, subscribed.until)
        }
        _ => return None,
    };
    site.config.cors.apply(origin.as_ref(), &mut headers);
    Some(DirectStream {
        head: response_head(version, &headers),
        body: SseBody::new(Source::Channel(subscription), &site.bodies).ending_at(until),
    })
}

/// Writes the response head, then the events until the stream ends, the
/// client goes away, or a write fails (the write timeout included).
pub(crate) async fn serve(mut socket: Io, stream: DirectStream) {
    let DirectStream { mut head, body } = stream;
    let written = write_all(&mut socket, &mut head).await;
    // Not kept for the stream's life: idle subscribers are most of a server.
    drop(head);
    if written.is_ok() {
        stream_events(socket, body).await;
    }
}

/// A plain `GET` head with nothing unusual, as a request; `None` sends it to
/// hyper (other methods, bodies, upgrades, HTTP/0.9, malformed heads).
pub(crate) fn parse(head: &[u8], ends: Endpoints) -> Option<(Request, u8)> {
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
    let http_version = if version == 0 {
        http::Version::HTTP_10
    } else {
        http::Version::HTTP_11
    };
    let request = Request::new(http::Method::GET, &uri, http_version, map, ends);
    Some((request, version))
}

fn response_head(version: u8, headers: &HeaderMap) -> BytesMut {
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
    head.put_slice(b"date: ");
    head.put_slice(httpdate::fmt_http_date(SystemTime::now()).as_bytes());
    // No length and no chunking: the body ends when the connection closes,
    // which is how every event stream ends anyway, and the head says so
    // (RFC 9112 section 9.6).
    head.put_slice(b"\r\nconnection: close\r\n\r\n");
    head
}

/// Writes the body's frames until it ends, the client goes away, a write
/// fails (the write timeout included), or the subscriber falls too far
/// behind while a frame is still being written.
async fn stream_events(mut socket: Io, mut body: SseBody) {
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
        let written = poll_fn(
            |cx| match poll_write_and_flush(&mut socket, cx, &mut data) {
                Poll::Pending if body.poll_lagged(cx).is_ready() => {
                    Poll::Ready(Err(io::ErrorKind::TimedOut.into()))
                }
                done => done,
            },
        )
        .await;
        if written.is_err() {
            break;
        }
    }
    let _ = poll_fn(|cx| Pin::new(&mut socket).poll_shutdown(cx)).await;
}

/// Whether the client closed its side (or sent something, which an event
/// stream's client never does): checked without blocking.
fn client_gone(socket: &mut Io, cx: &mut Context<'_>) -> bool {
    let mut probe = [0u8; 64];
    let mut buf = ReadBuf::new(&mut probe);
    match Pin::new(socket).poll_read(cx, &mut buf) {
        Poll::Ready(Ok(())) => true,
        Poll::Ready(Err(_)) => true,
        Poll::Pending => false,
    }
}

/// Writes all of `data` and flushes it onto the socket.
pub(crate) async fn write_all(socket: &mut Io, data: &mut impl Buf) -> io::Result<()> {
    poll_fn(|cx| poll_write_and_flush(socket, cx, data)).await
}

/// Writes `data`, then flushes: over TLS the bytes only leave (and the
/// write timeout only runs) once flushed. Written bytes are consumed from
/// `data`, so polling again after `Pending` resumes where it stopped.
fn poll_write_and_flush(
    socket: &mut Io,
    cx: &mut Context<'_>,
    data: &mut impl Buf,
) -> Poll<io::Result<()>> {
    ready!(poll_write_all(socket, cx, data))?;
    Pin::new(socket).poll_flush(cx)
}

/// Writes until `data` is empty or the connection is not ready.
fn poll_write_all(
    socket: &mut Io,
    cx: &mut Context<'_>,
    data: &mut impl Buf,
) -> Poll<io::Result<()>> {
    while data.has_remaining() {
        let mut slices = [IoSlice::new(&[]); 64];
        let count = data.chunks_vectored(&mut slices);
        let written = ready!(Pin::new(&mut *socket).poll_write_vectored(cx, &slices[..count]))?;
        if written == 0 {
            return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
        }
        data.advance(written);
    }
    Poll::Ready(Ok(()))
}

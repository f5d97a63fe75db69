//! The accepted TCP socket: [`Socket`] counts bytes written and fails a write
//! that cannot make progress within the write timeout, which is how a
//! half-open client (one that vanished without a FIN) is found and freed;
//! [`Io`] is the connection as the server reads and writes it (plain, or TLS
//! over the socket); [`Replay`] is the connection hyper reads, with the head
//! already read in front.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;

use crate::stats::Counters;

/// An accepted connection's socket, with its write timeout.
///
/// The timeout is a deadline per write, not per byte: it starts when a write
/// cannot take everything it is offered, and ends only once every byte that
/// was then owed has been written. A client that reads a few bytes now and
/// then cannot keep a frame (and the events it pins) waiting longer than the
/// timeout; one that keeps taking data is never cut, even if the writer
/// (hyper, appending its next chunk) always offers more than fits.
pub(crate) struct Socket {
    stream: TcpStream,
    write_timeout: Duration,
    /// Created on the first stalled write only, then reused.
    deadline: Option<Pin<Box<Sleep>>>,
    /// Bytes owed since a write stalled; the deadline runs while non-zero.
    owed: usize,
    counters: Arc<Counters>,
}

impl Socket {
    pub(crate) fn new(stream: TcpStream, write_timeout: Duration, counters: Arc<Counters>) -> Self {
        Socket {
            stream,
            write_timeout,
            deadline: None,
            owed: 0,
            counters,
        }
    }

    fn account(
        &mut self,
        cx: &mut Context<'_>,
        offered: usize,
        result: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match result {
            Poll::Ready(Ok(written)) => {
                self.counters
                    .bytes_written
                    .fetch_add(written as u64, Ordering::Relaxed);
                if self.owed > 0 {
                    self.owed = self.owed.saturating_sub(written);
                } else if written < offered {
                    self.start_deadline(offered - written);
                }
                Poll::Ready(Ok(written))
            }
            Poll::Ready(Err(err)) => Poll::Ready(Err(self.note_error(err))),
            Poll::Pending => {
                if self.owed == 0 {
                    self.start_deadline(offered);
                }
                let timer = self.deadline.as_mut().map(Pin::as_mut);
                if timer.is_some_and(|timer| timer.poll(cx).is_ready()) {
                    self.counters.write_timeouts.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!("closing a connection whose write did not complete in time");
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "write timed out: the client is not reading",
                    )));
                }
                Poll::Pending
            }
        }
    }

    /// Counts the kernel giving up on the peer (`TCP_USER_TIMEOUT`, set to
    /// the write timeout) as a write timeout: same cause, same outcome.
    fn note_error(&self, err: io::Error) -> io::Error {
        if err.kind() == io::ErrorKind::TimedOut {
            self.counters.write_timeouts.fetch_add(1, Ordering::Relaxed);
        }
        err
    }

    /// Starts the write deadline for `owed` unwritten bytes.
    fn start_deadline(&mut self, owed: usize) {
        self.owed = owed.max(1);
        let deadline = Instant::now() + self.write_timeout;
        match &mut self.deadline {
            Some(timer) => timer.as_mut().reset(deadline),
            None => self.deadline = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
    }
}

/// A vectored write that never raises `SIGPIPE`: `writev` has no flag to
/// suppress it, and a C or Node host that keeps the default disposition
/// would die the first time a client resets its connection mid-write
/// (plain writes are `send` with `MSG_NOSIGNAL` already, in std).
#[cfg(any(target_os = "linux", target_os = "android"))]
fn poll_send_vectored(
    stream: &mut TcpStream,
    cx: &mut Context<'_>,
    bufs: &[IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    let stream = &*stream;
    loop {
        std::task::ready!(stream.poll_write_ready(cx))?;
        let sent = stream.try_io(tokio::io::Interest::WRITABLE, || {
            socket2::SockRef::from(stream).send_vectored_with_flags(bufs, libc::MSG_NOSIGNAL)
        });
        match sent {
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
            other => return Poll::Ready(other),
        }
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn poll_send_vectored(
    stream: &mut TcpStream,
    cx: &mut Context<'_>,
    bufs: &[IoSlice<'_>],
) -> Poll<io::Result<usize>> {
    Pin::new(stream).poll_write_vectored(cx, bufs)
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(Err(err)) => Poll::Ready(Err(this.note_error(err))),
            other => other,
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.account(cx, buf.len(), result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = poll_send_vectored(&mut this.stream, cx, bufs);
        let offered = bufs.iter().map(|buf| buf.len()).sum();
        this.account(cx, offered, result)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// A connection: the socket itself, or TLS over it (boxed: a subscriber's
/// task stays small either way).
///
/// Over TLS a write is done once rustls has taken the bytes, before they
/// reach the socket: whoever writes must flush for them to leave, and for
/// the socket's write timeout to see a client that stopped reading.
pub(crate) enum Io {
    Plain(Socket),
    Tls(Box<TlsStream<Socket>>),
}

impl Io {
    /// Whether the connection is encrypted.
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, Io::Tls(_))
    }

    /// The stream to read and write, whichever it is.
    fn stream(self: Pin<&mut Self>) -> Pin<&mut dyn Stream> {
        match self.get_mut() {
            Io::Plain(socket) => Pin::new(socket),
            Io::Tls(tls) => Pin::new(tls.as_mut()),
        }
    }
}

/// What [`Io`] reads and writes through.
trait Stream: AsyncRead + AsyncWrite + Unpin {}

impl<T: AsyncRead + AsyncWrite + Unpin> Stream for T {}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.stream().poll_read(cx, buf)
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.stream().poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.stream().poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.stream().poll_shutdown(cx)
    }
}

/// The connection for hyper: `prefix` (the head already read) first, then
/// the connection itself.
pub(crate) struct Replay {
    prefix: BytesMut,
    io: Io,
}

impl Replay {
    pub(crate) fn new(prefix: BytesMut, io: Io) -> Self {
        Replay { prefix, io }
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
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    /// Writing twice to a connection its peer reset: the first write gets
    /// `ECONNRESET`, the second `EPIPE`, and with `writev` the kernel would
    /// also raise `SIGPIPE`, which kills a host that kept its default.
    #[tokio::test]
    async fn a_vectored_write_to_a_reset_connection_fails_without_sigpipe() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        socket2::SockRef::from(&client)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(client); // a reset, not a FIN
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut socket = Socket::new(accepted, Duration::from_secs(5), Arc::default());
        // SAFETY: `signal` only swaps this signal's disposition; the previous
        // one is put back below, and no other test in this binary writes to
        // a reset socket.
        let previous = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        let slices = [IoSlice::new(b"event: a\n"), IoSlice::new(b"data: b\n\n")];
        let first = socket.write_vectored(&slices).await;
        let second = socket.write_vectored(&slices).await;
        // SAFETY: as above; restores what was there before.
        unsafe { libc::signal(libc::SIGPIPE, previous) };
        assert!(first.is_err() || second.is_err(), "{first:?} {second:?}");
        assert_eq!(second.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    }
}

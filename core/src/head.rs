//! Reading a connection's first request head into a small buffer, within the
//! head size and time limits, before deciding who serves it.
//!
//! Each read is scanned once, from where the last scan stopped, for the blank
//! line that ends a head (`\r\n\r\n`, or bare `\n` line ends as httparse and
//! hyper accept them), so a head sent a byte at a time costs linear work. The
//! buffer never grows past the size limit: a head that does not end within
//! it is too large however it arrives.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, ReadBuf};

use crate::config::Limits;
use crate::shutdown::Shutdown;
use crate::socket::Io;

/// What the client sent before its head was complete, or why it stopped.
pub(crate) enum Head {
    /// A complete head, perhaps followed by more bytes (pipelining).
    Complete(BytesMut),
    /// The head passed the size limit: it gets 431.
    TooLarge,
    /// The head did not arrive within the head timeout (an idle
    /// pre-connected socket, or a slow-loris): closed without an answer.
    TimedOut,
    /// The client closed or broke the connection, or the server is
    /// stopping: nothing to answer.
    Abandoned,
}

/// Reads until the head is complete, too large, or abandoned. A server that
/// is stopping abandons it at once: browsers keep pre-connected sockets
/// open, and `stop` must not wait for them.
pub(crate) async fn read_head(socket: &mut Io, limits: &Limits, shutdown: &Shutdown) -> Head {
    let reading = tokio::time::timeout(limits.head_timeout, read_until_end(socket, limits));
    tokio::select! {
        head = reading => head.unwrap_or(Head::TimedOut),
        () = shutdown.stopping() => Head::Abandoned,
    }
}

async fn read_until_end(socket: &mut Io, limits: &Limits) -> Head {
    let limit = limits.max_head_bytes;
    let mut bytes = BytesMut::with_capacity(1024);
    let mut scanned = 0;
    loop {
        // Grow a little at a time (most heads fit the first 1 KiB), and stop
        // one byte past the limit, which proves the head too large.
        let room = (limit + 1 - bytes.len()).min(1024);
        bytes.reserve(room);
        let read = poll_fn(|cx| read_some(socket, cx, &mut bytes, room)).await;
        if !matches!(read, Ok(1..)) {
            return Head::Abandoned;
        }
        if let Some(head_len) = find_head_end(&bytes, scanned) {
            if head_len > limit {
                return Head::TooLarge;
            }
            return Head::Complete(bytes);
        }
        if bytes.len() > limit {
            return Head::TooLarge;
        }
        // A line end may straddle two reads: rescan its first bytes.
        scanned = bytes.len().saturating_sub(3);
    }
}

/// The length of the head in `bytes` if its blank line lies at or after
/// `from`: an LF followed by LF or CR LF.
fn find_head_end(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(offset) = memchr::memchr(b'\n', &bytes[at..]) {
        let lf = at + offset;
        match &bytes[lf + 1..] {
            [b'\n', ..] => return Some(lf + 2),
            [b'\r', b'\n', ..] => return Some(lf + 3),
            _ => at = lf + 1,
        }
    }
    None
}

/// Reads at most `max` bytes into the spare capacity of `bytes`.
fn read_some(
    socket: &mut Io,
    cx: &mut Context<'_>,
    bytes: &mut BytesMut,
    max: usize,
) -> Poll<io::Result<usize>> {
    let spare = bytes.spare_capacity_mut();
    let len = spare.len().min(max);
    let mut buf = ReadBuf::uninit(&mut spare[..len]);
    match Pin::new(socket).poll_read(cx, &mut buf) {
        Poll::Ready(Ok(())) => {
            let filled = buf.filled().len();
            // SAFETY: poll_read initialised the first `filled` bytes of the
            // spare capacity it was given, which directly follow `len()`.
            unsafe { bytes.set_len(bytes.len() + filled) };
            Poll::Ready(Ok(filled))
        }
        Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
        Poll::Pending => Poll::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_blank_line_with_either_line_end() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\n", 0), Some(18));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\n\n", 0), Some(16));
        assert_eq!(
            find_head_end(b"GET / HTTP/1.1\nh: v\r\n\r\nrest", 0),
            Some(23)
        );
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nh: v\r\n", 0), None);
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r", 0), None);
    }

    #[test]
    fn a_rescan_from_three_bytes_back_finds_a_straddling_end() {
        let head = b"GET / HTTP/1.1\r\nh: v\r\n\r\n";
        for split in 1..head.len() {
            let from = split.saturating_sub(3);
            assert_eq!(find_head_end(&head[..split], 0), None, "{split}");
            assert_eq!(find_head_end(head, from), Some(head.len()), "{split}");
        }
    }
}

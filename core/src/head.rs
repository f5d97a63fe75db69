//! Reading a connection's first request head into a small buffer, within the
//! head size and time limits, before deciding who serves it.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, ReadBuf};

use crate::config::Limits;
use crate::shutdown::Shutdown;
use crate::socket::Socket;

/// What the client sent before its head was complete, or why it stopped.
pub(crate) enum Head {
    /// A complete head, perhaps followed by more bytes (pipelining).
    Complete(BytesMut),
    /// The head passed the size limit: hyper answers 431.
    TooLarge(BytesMut),
    /// The client closed, broke the connection or was too slow: nothing to answer.
    Abandoned,
}

/// Reads until the head is complete, too large, or abandoned. A server that
/// is stopping abandons it at once: browsers keep pre-connected sockets
/// open, and `stop` must not wait for them.
pub(crate) async fn read_head(socket: &mut Socket, limits: &Limits, shutdown: &Shutdown) -> Head {
    let mut head = BytesMut::with_capacity(1024);
    let reading = tokio::time::timeout(limits.head_timeout, async {
        loop {
            if head.windows(4).any(|w| w == b"\r\n\r\n") {
                return true;
            }
            if head.len() >= limits.max_head_bytes {
                return false;
            }
            head.reserve(1024);
            match poll_fn(|cx| read_some(socket, cx, &mut head)).await {
                Ok(0) | Err(_) => return false,
                Ok(_) => {}
            }
        }
    });
    let complete = tokio::select! {
        read = reading => read.unwrap_or(false),
        () = shutdown.stopping() => return Head::Abandoned,
    };
    if complete {
        Head::Complete(head)
    } else if head.len() >= limits.max_head_bytes {
        Head::TooLarge(head)
    } else {
        Head::Abandoned
    }
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

//! [`EventBuf`]: what one write carries to a client, one or many encoded
//! events, either joined into one buffer or kept as the shared `Bytes` they
//! were published as.

use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

/// Batches up to this many bytes are copied into one buffer (see `gather`).
const GATHER_LIMIT: usize = 16 * 1024;

/// One or more encoded events handed to hyper (or the direct path) as a
/// single body frame, written with one write.
#[derive(Debug)]
pub(crate) enum EventBuf {
    /// Contiguous bytes holding `events` events (one, or a small batch
    /// joined by `gather`).
    Joined { bytes: Bytes, events: u64 },
    /// The events' shared `Bytes`, for a vectored write without a copy.
    Vectored {
        parts: Vec<Bytes>,
        at: usize,
        remaining: usize,
    },
}

impl EventBuf {
    /// One event, or any bytes that are not events (a comment, a prelude).
    pub(crate) fn one(bytes: Bytes) -> Self {
        EventBuf::Joined { bytes, events: 1 }
    }

    /// Several events for one write. Small events are copied into one
    /// buffer: the kernel's per-segment cost of a vectored write is higher
    /// than a user-space copy of a few hundred bytes. Large ones stay shared.
    pub(crate) fn gather(parts: Vec<Bytes>) -> Self {
        let total: usize = parts.iter().map(Bytes::len).sum();
        if total > GATHER_LIMIT {
            return Self::vectored(parts);
        }
        let mut joined = BytesMut::with_capacity(total);
        for part in &parts {
            joined.extend_from_slice(part);
        }
        EventBuf::Joined {
            bytes: joined.freeze(),
            events: parts.len() as u64,
        }
    }

    pub(crate) fn vectored(parts: Vec<Bytes>) -> Self {
        let remaining = parts.iter().map(Bytes::len).sum();
        EventBuf::Vectored {
            parts,
            at: 0,
            remaining,
        }
    }

    /// How many events the buffer holds.
    pub(crate) fn events(&self) -> u64 {
        match self {
            EventBuf::Joined { events, .. } => *events,
            EventBuf::Vectored { parts, .. } => parts.len() as u64,
        }
    }
}

impl Buf for EventBuf {
    fn remaining(&self) -> usize {
        match self {
            EventBuf::Joined { bytes, .. } => bytes.len(),
            EventBuf::Vectored { remaining, .. } => *remaining,
        }
    }

    fn chunk(&self) -> &[u8] {
        match self {
            EventBuf::Joined { bytes, .. } => bytes,
            EventBuf::Vectored { parts, at, .. } => parts.get(*at).map_or(&[], |part| part),
        }
    }

    fn advance(&mut self, mut count: usize) {
        match self {
            EventBuf::Joined { bytes, .. } => bytes.advance(count),
            EventBuf::Vectored {
                parts,
                at,
                remaining,
            } => {
                assert!(count <= *remaining, "advance past the end of an EventBuf");
                *remaining -= count;
                while count > 0 {
                    let part = &mut parts[*at];
                    let step = count.min(part.len());
                    part.advance(step);
                    count -= step;
                    if part.is_empty() {
                        *at += 1;
                    }
                }
                while parts.get(*at).is_some_and(Bytes::is_empty) {
                    *at += 1;
                }
            }
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        match self {
            EventBuf::Joined { bytes, .. } if !bytes.is_empty() && !dst.is_empty() => {
                dst[0] = IoSlice::new(bytes);
                1
            }
            EventBuf::Joined { .. } => 0,
            EventBuf::Vectored { parts, at, .. } => {
                let mut filled = 0;
                for part in parts[*at..].iter().filter(|part| !part.is_empty()) {
                    if filled == dst.len() {
                        break;
                    }
                    dst[filled] = IoSlice::new(part);
                    filled += 1;
                }
                filled
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectored_buf_advances_across_parts() {
        let mut buf = EventBuf::vectored(vec![
            Bytes::from_static(b"ab"),
            Bytes::from_static(b""),
            Bytes::from_static(b"cde"),
        ]);
        assert_eq!(buf.remaining(), 5);
        let mut slices = [IoSlice::new(&[]); 4];
        assert_eq!(buf.chunks_vectored(&mut slices), 2);
        buf.advance(3);
        assert_eq!(buf.chunk(), b"de");
        assert_eq!(buf.remaining(), 2);
        buf.advance(2);
        assert_eq!(buf.remaining(), 0);
        assert_eq!(buf.chunk(), b"");
    }

    #[test]
    fn small_batches_are_joined_and_still_count_their_events() {
        let parts = vec![
            Bytes::from_static(b"data: a\n\n"),
            Bytes::from_static(b"data: b\n\n"),
        ];
        let buf = EventBuf::gather(parts);
        assert_eq!(buf.chunk(), b"data: a\n\ndata: b\n\n");
        assert_eq!(buf.events(), 2);
    }

    #[test]
    fn large_batches_stay_shared() {
        let big = Bytes::from(vec![b'x'; GATHER_LIMIT]);
        let buf = EventBuf::gather(vec![big.clone(), Bytes::from_static(b"y")]);
        assert_eq!(buf.events(), 2);
        assert_eq!(buf.remaining(), GATHER_LIMIT + 1);
        // The first part is the published buffer itself, not a copy.
        assert_eq!(buf.chunk().as_ptr(), big.as_ptr());
    }
}

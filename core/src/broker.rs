//! What a channel needs of a broker that carries its events between servers,
//! and the position of an event in the broker's global order.
//!
//! Without a broker (the default) a channel's ring is its log: a publish
//! lands in it at once. With one, a publish is handed to the broker, and the
//! event reaches the ring (of this server and every other) when the broker
//! delivers it back, in the one order all servers share.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::error::Result;
use crate::event::{Event, EventId};
use crate::topic::Topics;

/// Where the answer to a publish goes: the id the broker gave the event.
pub(crate) type Receipt = oneshot::Sender<Result<EventId>>;

/// A broker that orders and carries the events of channels across servers.
pub(crate) trait Broker: Send + Sync + 'static {
    /// Queues `event` for the channel named `channel`, whose ring holds
    /// `retain` events (its history and how far a subscriber may lag), as
    /// many as the broker should keep; never waits on the network. Fails at
    /// once if the queue is full. `receipt`, if given, gets the event's id
    /// once the broker has stored it. `topics` are a hub update's, carried
    /// with it.
    fn publish(
        &self,
        channel: &str,
        retain: usize,
        event: Event,
        topics: Option<Arc<Topics>>,
        receipt: Option<Receipt>,
    ) -> Result<()>;
}

/// An event's place in the broker's order: a Redis stream entry id
/// (`<milliseconds>-<sequence>`), or, for the `event: reset` a server
/// inserts after a gap it could not fill, the place just after the last
/// entry it had.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct StreamPos {
    pub(crate) millis: u64,
    pub(crate) sequence: u64,
    /// A gap marker sorts after the entry it follows and before the next.
    pub(crate) gap: bool,
}

impl StreamPos {
    /// Before every entry: a stream read from here returns all of it.
    pub(crate) const START: StreamPos = StreamPos {
        millis: 0,
        sequence: 0,
        gap: false,
    };

    /// Parses an entry id such as `1733060000000-3`; `None` for anything else.
    pub(crate) fn parse(id: &str) -> Option<StreamPos> {
        let (millis, sequence) = id.split_once('-')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(millis) || !digits(sequence) {
            return None;
        }
        Some(StreamPos {
            millis: millis.parse().ok()?,
            sequence: sequence.parse().ok()?,
            gap: false,
        })
    }

    /// The marker of a gap right after this entry.
    pub(crate) fn gap_after(self) -> StreamPos {
        StreamPos { gap: true, ..self }
    }
}

impl Ord for StreamPos {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.millis, self.sequence, self.gap).cmp(&(other.millis, other.sequence, other.gap))
    }
}

impl PartialOrd for StreamPos {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for StreamPos {
    /// The entry id, as Redis writes it (a gap marker shows its entry's).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.millis, self.sequence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_parse_and_print_back() {
        let pos = StreamPos::parse("1733060000000-3").unwrap();
        assert_eq!((pos.millis, pos.sequence), (1_733_060_000_000, 3));
        assert_eq!(pos.to_string(), "1733060000000-3");
        for bad in [
            "",
            "7",
            "-1",
            "1-",
            "a-1",
            "1-2-3",
            "+1-2",
            "99999999999999999999-0",
        ] {
            assert_eq!(StreamPos::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn positions_sort_by_time_then_sequence_and_a_gap_follows_its_entry() {
        let a = StreamPos::parse("5-9").unwrap();
        let b = StreamPos::parse("6-0").unwrap();
        assert!(a < b);
        assert!(a < a.gap_after() && a.gap_after() < b);
        assert!(StreamPos::START < a);
    }
}

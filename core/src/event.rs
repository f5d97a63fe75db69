//! Events and their wire encoding (WHATWG HTML, "Server-sent events").
//!
//! An [`Event`] is validated when it is built and encoded once into shared
//! [`Bytes`]; every subscriber then writes those same bytes.

use std::fmt;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::Error;

/// One server-sent event: `data` plus the optional `event`, `id`, `retry` and
/// `comment` fields.
///
/// Fields that would break the framing are rejected when set, never sent:
/// `event` and `id` may not contain CR or LF, and `id` may not contain NUL.
///
/// ```
/// use tidings::Event;
///
/// let event = Event::data("line one\nline two").event("greeting")?.id("7")?;
/// assert_eq!(
///     &event.encode()[..],
///     b"event: greeting\nid: 7\ndata: line one\ndata: line two\n\n"
/// );
/// assert!(Event::data("x").event("bad\nname").is_err());
/// # Ok::<(), tidings::Error>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    data: Option<String>,
    event: Option<String>,
    id: Option<String>,
    retry: Option<u64>,
    comment: Option<String>,
}

impl Event {
    /// An event carrying `data`. Data may span lines; each line becomes one
    /// `data:` line, and an empty string is sent as one empty `data:` line.
    pub fn data(data: impl Into<String>) -> Self {
        Event {
            data: Some(data.into()),
            ..Event::default()
        }
    }

    /// A comment-only message: it keeps a connection alive or annotates the
    /// stream, and browsers dispatch nothing for it.
    pub fn comment_only(comment: impl Into<String>) -> Self {
        Event {
            comment: Some(comment.into()),
            ..Event::default()
        }
    }

    /// Sets the event type (`event:` field). Fails if `name` contains CR or LF.
    pub fn event(mut self, name: impl Into<String>) -> Result<Self, Error> {
        let name = name.into();
        check_no_line_breaks("event", &name)?;
        self.event = Some(name);
        Ok(self)
    }

    /// Sets the event id (`id:` field). Fails if `id` contains CR, LF or NUL.
    pub fn id(mut self, id: impl Into<String>) -> Result<Self, Error> {
        let id = id.into();
        check_id(&id)?;
        self.id = Some(id);
        Ok(self)
    }

    /// Sets an id that was already checked (one an event was sent with).
    pub(crate) fn with_checked_id(mut self, id: &str) -> Self {
        self.id = Some(id.to_owned());
        self
    }

    /// Sets the client's reconnection delay (`retry:` field), sent in whole
    /// milliseconds.
    pub fn retry(mut self, retry: Duration) -> Self {
        self.retry = Some(u64::try_from(retry.as_millis()).unwrap_or(u64::MAX));
        self
    }

    /// Sets a comment, sent as `:` lines before the fields (split on line
    /// breaks like data).
    pub fn comment(mut self, comment: impl Into<String>) -> Self {
        self.comment = Some(comment.into());
        self
    }

    /// The data, if any.
    pub fn data_str(&self) -> Option<&str> {
        self.data.as_deref()
    }

    /// The event type, if set.
    pub fn event_name(&self) -> Option<&str> {
        self.event.as_deref()
    }

    /// The id, if set.
    pub fn id_str(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The retry delay in milliseconds, if set.
    pub fn retry_ms(&self) -> Option<u64> {
        self.retry
    }

    /// The comment, if set.
    pub fn comment_str(&self) -> Option<&str> {
        self.comment.as_deref()
    }

    /// Encodes the event into its wire form, ending with the blank line that
    /// dispatches it.
    pub fn encode(&self) -> Bytes {
        self.encode_with_id(self.id.as_deref()).0
    }

    /// Encodes with `id` in place of the event's own id, returning the bytes
    /// and the id's position inside them (so a channel can keep the id as a
    /// zero-copy slice).
    pub(crate) fn encode_with_id(
        &self,
        id: Option<&str>,
    ) -> (Bytes, Option<std::ops::Range<usize>>) {
        let mut buf = BytesMut::with_capacity(self.encoded_len_hint(id));
        if let Some(comment) = &self.comment {
            for line in split_lines(comment) {
                buf.put_u8(b':');
                if !line.is_empty() {
                    buf.put_u8(b' ');
                    buf.put_slice(line.as_bytes());
                }
                buf.put_u8(b'\n');
            }
        }
        if let Some(event) = &self.event {
            put_field(&mut buf, b"event: ", event);
        }
        let mut id_range = None;
        if let Some(id) = id {
            buf.put_slice(b"id: ");
            let start = buf.len();
            buf.put_slice(id.as_bytes());
            id_range = Some(start..buf.len());
            buf.put_u8(b'\n');
        }
        if let Some(retry) = self.retry {
            buf.put_slice(b"retry: ");
            buf.put_slice(itoa_u64(retry, &mut [0u8; 20]));
            buf.put_u8(b'\n');
        }
        if let Some(data) = &self.data {
            for line in split_lines(data) {
                put_field(&mut buf, b"data: ", line);
            }
        }
        buf.put_u8(b'\n');
        (buf.freeze(), id_range)
    }

    fn encoded_len_hint(&self, id: Option<&str>) -> usize {
        // Field names plus a few line breaks; exact enough to avoid regrowth
        // for typical events, and multi-line data grows the buffer at most once.
        let text = |s: &Option<String>| s.as_ref().map_or(0, |s| s.len() + 8);
        text(&self.data)
            + text(&self.event)
            + text(&self.comment)
            + id.map_or(0, |s| s.len() + 5)
            + 28
    }
}

impl fmt::Display for Event {
    /// Shows the encoded form, as a client would receive it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.encode()))
    }
}

/// An event id as it was sent, returned by
/// [`Channel::publish`](crate::Channel::publish).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct EventId(pub(crate) Bytes);

impl EventId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        // The bytes are a slice of an id that was a `str` when encoded.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl EventId {
    /// An id known to be text (e.g. a Redis stream entry id).
    pub(crate) fn from_text(id: &str) -> Self {
        EventId(Bytes::copy_from_slice(id.as_bytes()))
    }
}

fn put_field(buf: &mut BytesMut, name: &[u8], value: &str) {
    buf.put_slice(name);
    buf.put_slice(value.as_bytes());
    buf.put_u8(b'\n');
}

/// Splits on CR LF, CR or LF, as the SSE parser does; "" is one empty line and a
/// trailing break yields a final empty line.
pub(crate) fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        match current.find(['\r', '\n']) {
            None => {
                rest = None;
                Some(current)
            }
            Some(at) => {
                let skip = if current[at..].starts_with("\r\n") {
                    2
                } else {
                    1
                };
                rest = Some(&current[at + skip..]);
                Some(&current[..at])
            }
        }
    })
}

pub(crate) fn check_no_line_breaks(field: &'static str, value: &str) -> Result<(), Error> {
    if value.contains(['\r', '\n']) {
        return Err(Error::InvalidEvent {
            field,
            reason: "must not contain CR or LF",
        });
    }
    Ok(())
}

pub(crate) fn check_id(id: &str) -> Result<(), Error> {
    check_no_line_breaks("id", id)?;
    if id.contains('\0') {
        return Err(Error::InvalidEvent {
            field: "id",
            reason: "must not contain NUL",
        });
    }
    Ok(())
}

fn itoa_u64(mut value: u64, scratch: &mut [u8; 20]) -> &[u8] {
    let mut at = scratch.len();
    loop {
        at -= 1;
        scratch[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            return &scratch[at..];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(event: &Event) -> String {
        String::from_utf8(event.encode().to_vec()).unwrap()
    }

    #[test]
    fn splits_data_on_every_line_break_kind() {
        let lines: Vec<_> = split_lines("a\nb\r\nc\rd").collect();
        assert_eq!(lines, ["a", "b", "c", "d"]);
        assert_eq!(split_lines("").collect::<Vec<_>>(), [""]);
        assert_eq!(split_lines("x\n").collect::<Vec<_>>(), ["x", ""]);
        assert_eq!(split_lines("\r\n\r\n").collect::<Vec<_>>(), ["", "", ""]);
    }

    #[test]
    fn encodes_all_fields_in_a_stable_order() {
        let event = Event::data("hello")
            .event("greet")
            .unwrap()
            .id("42")
            .unwrap()
            .retry(Duration::from_millis(15000))
            .comment("note");
        assert_eq!(
            wire(&event),
            ": note\nevent: greet\nid: 42\nretry: 15000\ndata: hello\n\n"
        );
    }

    #[test]
    fn empty_data_is_one_empty_data_line() {
        assert_eq!(wire(&Event::data("")), "data: \n\n");
    }

    #[test]
    fn comment_only_sends_no_data_line() {
        assert_eq!(wire(&Event::comment_only("ping")), ": ping\n\n");
        assert_eq!(wire(&Event::comment_only("")), ":\n\n");
    }

    #[test]
    fn rejects_framing_characters_naming_the_field() {
        for bad in ["a\nb", "a\rb", "\r\n"] {
            let err = Event::data("x").event(bad).unwrap_err();
            assert!(err.to_string().contains("`event`"), "{err}");
            let err = Event::data("x").id(bad).unwrap_err();
            assert!(err.to_string().contains("`id`"), "{err}");
        }
        let err = Event::data("x").id("a\0b").unwrap_err();
        assert!(err.to_string().contains("NUL"), "{err}");
        assert!(
            Event::data("x").event("a\0b").is_ok(),
            "NUL is legal in event names"
        );
    }

    #[test]
    fn retry_formats_large_values() {
        assert_eq!(itoa_u64(0, &mut [0; 20]), b"0");
        assert_eq!(
            itoa_u64(u64::MAX, &mut [0; 20]),
            u64::MAX.to_string().as_bytes()
        );
    }
}

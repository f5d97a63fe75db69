//! What the encoder writes decodes, by an independent parser written from
//! the WHATWG "interpret an event stream" algorithm, to what was published:
//! for any data, event name, id, retry and comment the builders accept.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tidings::Event;

#[derive(Arbitrary, Debug)]
struct Fields {
    data: Option<String>,
    event: Option<String>,
    id: Option<String>,
    retry: Option<u32>,
    comment: Option<String>,
}

/// What a browser's EventSource makes of a stream.
#[derive(Debug, Default, PartialEq)]
struct Seen {
    /// Dispatched messages: (type, data, last event id).
    messages: Vec<(String, String, String)>,
    retry: Option<u64>,
    last_event_id: String,
}

fn interpret(stream: &str) -> Seen {
    let mut seen = Seen::default();
    let (mut data, mut kind) = (String::new(), String::new());
    // Lines end at CRLF, LF or CR; the stream's last line is unterminated
    // and ignored.
    let mut lines = Vec::new();
    let mut rest = stream;
    while let Some(at) = rest.find(['\r', '\n']) {
        lines.push(&rest[..at]);
        let skip = if rest[at..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[at + skip..];
    }
    for line in lines {
        if line.is_empty() {
            if data.is_empty() {
                kind.clear();
                continue;
            }
            if data.ends_with('\n') {
                data.pop();
            }
            let name = if kind.is_empty() {
                "message".to_owned()
            } else {
                std::mem::take(&mut kind)
            };
            seen.messages
                .push((name, std::mem::take(&mut data), seen.last_event_id.clone()));
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.find(':') {
            Some(at) => {
                let value = &line[at + 1..];
                (&line[..at], value.strip_prefix(' ').unwrap_or(value))
            }
            None => (line, ""),
        };
        match field {
            "event" => kind = value.to_owned(),
            "data" => {
                data.push_str(value);
                data.push('\n');
            }
            "id" if !value.contains('\0') => seen.last_event_id = value.to_owned(),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                seen.retry = value.parse().ok();
            }
            _ => {}
        }
    }
    seen
}

fuzz_target!(|fields: Fields| {
    let mut event = match &fields.data {
        Some(data) => Event::data(data.clone()),
        None => Event::default(),
    };
    if let Some(comment) = &fields.comment {
        event = event.comment(comment.clone());
    }
    if let Some(name) = &fields.event {
        match event.event(name.clone()) {
            Ok(with) => event = with,
            Err(_) => {
                assert!(name.contains(['\r', '\n']), "{name:?} refused");
                return;
            }
        }
    }
    if let Some(id) = &fields.id {
        match event.id(id.clone()) {
            Ok(with) => event = with,
            Err(_) => {
                assert!(id.contains(['\r', '\n', '\0']), "{id:?} refused");
                return;
            }
        }
    }
    if let Some(retry) = fields.retry {
        event = event.retry(std::time::Duration::from_millis(retry.into()));
    }
    let wire = event.encode();
    let text = std::str::from_utf8(&wire).expect("the encoding is UTF-8");
    assert!(
        text.ends_with("\n\n") || text == "\n",
        "{text:?} ends its message"
    );
    let seen = interpret(text);
    let id = fields.id.clone().unwrap_or_default();
    let expected = match &fields.data {
        // Every line break kind in the data reads back as LF.
        Some(data) => {
            let data = data.replace("\r\n", "\n").replace('\r', "\n");
            let name = fields
                .event
                .clone()
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "message".into());
            vec![(name, data, id.clone())]
        }
        None => Vec::new(),
    };
    assert_eq!(seen.messages, expected, "{text:?}");
    assert_eq!(seen.last_event_id, id, "{text:?}");
    assert_eq!(seen.retry, fields.retry.map(u64::from), "{text:?}");
});

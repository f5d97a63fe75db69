//! `tidings_event`: an event described by C strings.
#![allow(non_camel_case_types)]

use std::ffi::c_char;
use std::time::Duration;

use crate::boundary::{fail, fail_with, optional_str};
use crate::status::tidings_status;

/// An event to publish or send. Every field is optional: NULL (or 0 for
/// `retry_ms`) leaves it out, so `{ .data = "hello" }` is a complete event.
/// The strings are UTF-8 and only read during the call; all but `data` are
/// NUL-terminated.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct tidings_event {
    /// The data; may span lines (each becomes one `data:` line).
    pub data: *const c_char,
    /// The length of `data` in bytes, which may then hold NUL bytes and need
    /// no terminator; 0 means `data` is NUL-terminated (or NULL).
    pub data_len: usize,
    /// The event type; must not contain CR or LF.
    pub event: *const c_char,
    /// The event id; must not contain CR or LF.
    pub id: *const c_char,
    /// The client's reconnection delay in milliseconds; 0 leaves it out.
    pub retry_ms: u32,
    /// A comment, sent before the fields.
    pub comment: *const c_char,
}

/// Converts and validates a C event.
///
/// # Safety
/// Each string field is NULL or points to a NUL-terminated string that stays
/// valid and unmodified during the call, except `data` when `data_len` is not
/// 0: then it points to `data_len` readable bytes (what tidings.h asks of a
/// `tidings_event`).
pub(crate) unsafe fn to_event(event: &tidings_event) -> Result<tidings::Event, tidings_status> {
    // SAFETY: `text` is only given fields of `event`, each NULL or a
    // NUL-terminated string valid during this call (this function's contract);
    // the borrowed `&str`s are copied into `built` and do not outlive the call.
    let text = |ptr, name| unsafe { optional_str(ptr, name) };
    let data = if event.data_len > 0 {
        // SAFETY: with a length, `data` is readable for `data_len` bytes during
        // the call (this function's contract); the slice is checked as UTF-8 and
        // copied into the event before the call returns.
        Some(unsafe { sized_str(event.data, event.data_len, "event.data") }?)
    } else {
        text(event.data, "event.data")?
    };
    let mut built = match data {
        Some(data) => tidings::Event::data(data),
        None => tidings::Event::default(),
    };
    if let Some(name) = text(event.event, "event.event")? {
        built = built.event(name).map_err(fail_with)?;
    }
    if let Some(id) = text(event.id, "event.id")? {
        built = built.id(id).map_err(fail_with)?;
    }
    if event.retry_ms > 0 {
        built = built.retry(Duration::from_millis(event.retry_ms.into()));
    }
    if let Some(comment) = text(event.comment, "event.comment")? {
        built = built.comment(comment);
    }
    Ok(built)
}

/// `len` bytes at `ptr` as text.
///
/// # Safety
/// `ptr` is NULL or readable for `len` bytes, unmodified during the call.
unsafe fn sized_str<'a>(
    ptr: *const c_char,
    len: usize,
    name: &str,
) -> Result<&'a str, tidings_status> {
    if ptr.is_null() {
        return Err(fail(
            tidings_status::TIDINGS_ERR_NULL_ARGUMENT,
            format!("`{name}` must not be NULL when its length is not 0"),
        ));
    }
    // SAFETY: `ptr` is non-NULL (checked above) and readable for `len` bytes
    // (this function's contract); `c_char` and `u8` share size and alignment.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
    std::str::from_utf8(bytes).map_err(|err| {
        fail(
            tidings_status::TIDINGS_ERR_INVALID_UTF8,
            format!("`{name}` is not valid UTF-8: {err}"),
        )
    })
}

//! `tidings_event`: an event described by C strings.
#![allow(non_camel_case_types)]

use std::ffi::c_char;
use std::time::Duration;

use crate::boundary::{fail_with, optional_str};
use crate::status::tidings_status;

/// An event to publish or send. Every field is optional: NULL (or 0 for
/// `retry_ms`) leaves it out, so `{ .data = "hello" }` is a complete event.
/// The strings are NUL-terminated UTF-8 and only read during the call.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct tidings_event {
    /// The data; may span lines (each becomes one `data:` line).
    pub data: *const c_char,
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
/// valid and unmodified during the call (what tidings.h asks of a
/// `tidings_event`).
pub(crate) unsafe fn to_event(event: &tidings_event) -> Result<tidings::Event, tidings_status> {
    // SAFETY: `text` is only given fields of `event`, each NULL or a
    // NUL-terminated string valid during this call (this function's contract);
    // the borrowed `&str`s are copied into `built` and do not outlive the call.
    let text = |ptr, name| unsafe { optional_str(ptr, name) };
    let mut built = match text(event.data, "event.data")? {
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

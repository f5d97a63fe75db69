//! Status codes. Their numbers are part of the ABI: never reuse or renumber
//! one; add new codes at the end of their range.
#![allow(non_camel_case_types)]

use std::ffi::{c_char, CStr};

/// The result of every fallible call. On anything but `TIDINGS_OK`,
/// `tidings_last_error()` has the details.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(clippy::enum_variant_names)]
pub enum tidings_status {
    /// Success.
    TIDINGS_OK = 0,
    /// A required pointer argument was NULL.
    TIDINGS_ERR_NULL_ARGUMENT = 1,
    /// A string argument was not valid UTF-8.
    TIDINGS_ERR_INVALID_UTF8 = 2,
    /// An event field would break the SSE framing (CR or LF in `event` or
    /// `id`, NUL in `id`). Nothing was sent.
    TIDINGS_ERR_INVALID_EVENT = 3,
    /// A configuration value is out of range.
    TIDINGS_ERR_INVALID_CONFIG = 4,
    /// A route path is not an absolute URL path.
    TIDINGS_ERR_INVALID_PATH = 5,
    /// A route is already registered at that path.
    TIDINGS_ERR_ROUTE_EXISTS = 6,
    /// A file or directory to serve does not exist or cannot be read.
    TIDINGS_ERR_FILE = 7,
    /// The listening socket could not be bound (address in use, no permission).
    TIDINGS_ERR_BIND = 8,
    /// The engine's threads could not be started.
    TIDINGS_ERR_RUNTIME = 9,
    /// The server is already running.
    TIDINGS_ERR_ALREADY_RUNNING = 10,
    /// The server was stopped; it cannot be restarted and its channels accept
    /// no more events.
    TIDINGS_ERR_STOPPED = 11,
    /// The client of the stream has gone, or the stream was closed.
    TIDINGS_ERR_DISCONNECTED = 12,
    /// The stream's queue is full (from `tidings_stream_try_send`).
    TIDINGS_ERR_QUEUE_FULL = 13,
    /// The stream was already accepted (by `tidings_stream_accept` or a send).
    TIDINGS_ERR_ALREADY_ACCEPTED = 14,
    /// An HTTP status outside the range allowed for the call.
    TIDINGS_ERR_INVALID_STATUS = 15,
    /// The caller's buffer is too small; the needed length was written.
    TIDINGS_ERR_BUFFER_TOO_SMALL = 16,
    /// The value asked for is not there (e.g. an absent query parameter).
    TIDINGS_ERR_NOT_FOUND = 17,
    /// The call would block an engine thread (e.g. `tidings_stream_send`
    /// inside a callback); use the non-blocking form there.
    TIDINGS_ERR_WOULD_BLOCK = 18,
    /// The route's reply was already sent; a request is answered once.
    TIDINGS_ERR_ALREADY_ANSWERED = 19,
    /// The broker has been unreachable long enough to fill the publish
    /// queue (`broker_queue`); publish again once it is back.
    TIDINGS_ERR_BROKER_UNAVAILABLE = 20,
    /// The broker refused the event (a Redis error reply such as OOM).
    TIDINGS_ERR_BROKER_REFUSED = 21,
    /// A wait ended before its answer came (the event may still be delivered).
    TIDINGS_ERR_TIMED_OUT = 22,
    /// A bug in tidings was caught at the boundary; please report it.
    TIDINGS_ERR_PANIC = 99,
}

impl From<&tidings::Error> for tidings_status {
    fn from(err: &tidings::Error) -> Self {
        use tidings::Error as E;
        match err {
            E::InvalidEvent { .. } => Self::TIDINGS_ERR_INVALID_EVENT,
            E::InvalidConfig(_) | E::InvalidContentType(_) => Self::TIDINGS_ERR_INVALID_CONFIG,
            E::InvalidPath { .. } => Self::TIDINGS_ERR_INVALID_PATH,
            E::RouteExists(_) => Self::TIDINGS_ERR_ROUTE_EXISTS,
            E::File { .. } => Self::TIDINGS_ERR_FILE,
            E::Bind { .. } => Self::TIDINGS_ERR_BIND,
            E::Runtime(_) => Self::TIDINGS_ERR_RUNTIME,
            E::AlreadyRunning(_) => Self::TIDINGS_ERR_ALREADY_RUNNING,
            E::Stopped => Self::TIDINGS_ERR_STOPPED,
            E::Disconnected => Self::TIDINGS_ERR_DISCONNECTED,
            E::QueueFull => Self::TIDINGS_ERR_QUEUE_FULL,
            E::AlreadyAccepted => Self::TIDINGS_ERR_ALREADY_ACCEPTED,
            E::InvalidStatus(_) => Self::TIDINGS_ERR_INVALID_STATUS,
            E::BlockingInAsync => Self::TIDINGS_ERR_WOULD_BLOCK,
            E::AlreadyAnswered => Self::TIDINGS_ERR_ALREADY_ANSWERED,
            E::BrokerUnavailable { .. } => Self::TIDINGS_ERR_BROKER_UNAVAILABLE,
            E::BrokerRefused(_) => Self::TIDINGS_ERR_BROKER_REFUSED,
            E::TimedOut => Self::TIDINGS_ERR_TIMED_OUT,
            _ => Self::TIDINGS_ERR_RUNTIME,
        }
    }
}

impl tidings_status {
    const ALL: [tidings_status; 24] = [
        Self::TIDINGS_OK,
        Self::TIDINGS_ERR_NULL_ARGUMENT,
        Self::TIDINGS_ERR_INVALID_UTF8,
        Self::TIDINGS_ERR_INVALID_EVENT,
        Self::TIDINGS_ERR_INVALID_CONFIG,
        Self::TIDINGS_ERR_INVALID_PATH,
        Self::TIDINGS_ERR_ROUTE_EXISTS,
        Self::TIDINGS_ERR_FILE,
        Self::TIDINGS_ERR_BIND,
        Self::TIDINGS_ERR_RUNTIME,
        Self::TIDINGS_ERR_ALREADY_RUNNING,
        Self::TIDINGS_ERR_STOPPED,
        Self::TIDINGS_ERR_DISCONNECTED,
        Self::TIDINGS_ERR_QUEUE_FULL,
        Self::TIDINGS_ERR_ALREADY_ACCEPTED,
        Self::TIDINGS_ERR_INVALID_STATUS,
        Self::TIDINGS_ERR_BUFFER_TOO_SMALL,
        Self::TIDINGS_ERR_NOT_FOUND,
        Self::TIDINGS_ERR_WOULD_BLOCK,
        Self::TIDINGS_ERR_ALREADY_ANSWERED,
        Self::TIDINGS_ERR_BROKER_UNAVAILABLE,
        Self::TIDINGS_ERR_BROKER_REFUSED,
        Self::TIDINGS_ERR_TIMED_OUT,
        Self::TIDINGS_ERR_PANIC,
    ];
}

/// The name of a status code as a static string (e.g. "TIDINGS_ERR_BIND"),
/// or "TIDINGS_UNKNOWN_STATUS" for a number that is not one. Never NULL;
/// never free it.
#[no_mangle]
pub extern "C" fn tidings_status_name(status: u32) -> *const c_char {
    // Taken as a number: a value from C that is no variant must not become
    // an invalid Rust enum.
    let Some(status) = tidings_status::ALL
        .into_iter()
        .find(|s| *s as u32 == status)
    else {
        return c"TIDINGS_UNKNOWN_STATUS".as_ptr();
    };
    let name: &'static CStr = match status {
        tidings_status::TIDINGS_OK => c"TIDINGS_OK",
        tidings_status::TIDINGS_ERR_NULL_ARGUMENT => c"TIDINGS_ERR_NULL_ARGUMENT",
        tidings_status::TIDINGS_ERR_INVALID_UTF8 => c"TIDINGS_ERR_INVALID_UTF8",
        tidings_status::TIDINGS_ERR_INVALID_EVENT => c"TIDINGS_ERR_INVALID_EVENT",
        tidings_status::TIDINGS_ERR_INVALID_CONFIG => c"TIDINGS_ERR_INVALID_CONFIG",
        tidings_status::TIDINGS_ERR_INVALID_PATH => c"TIDINGS_ERR_INVALID_PATH",
        tidings_status::TIDINGS_ERR_ROUTE_EXISTS => c"TIDINGS_ERR_ROUTE_EXISTS",
        tidings_status::TIDINGS_ERR_FILE => c"TIDINGS_ERR_FILE",
        tidings_status::TIDINGS_ERR_BIND => c"TIDINGS_ERR_BIND",
        tidings_status::TIDINGS_ERR_RUNTIME => c"TIDINGS_ERR_RUNTIME",
        tidings_status::TIDINGS_ERR_ALREADY_RUNNING => c"TIDINGS_ERR_ALREADY_RUNNING",
        tidings_status::TIDINGS_ERR_STOPPED => c"TIDINGS_ERR_STOPPED",
        tidings_status::TIDINGS_ERR_DISCONNECTED => c"TIDINGS_ERR_DISCONNECTED",
        tidings_status::TIDINGS_ERR_QUEUE_FULL => c"TIDINGS_ERR_QUEUE_FULL",
        tidings_status::TIDINGS_ERR_ALREADY_ACCEPTED => c"TIDINGS_ERR_ALREADY_ACCEPTED",
        tidings_status::TIDINGS_ERR_INVALID_STATUS => c"TIDINGS_ERR_INVALID_STATUS",
        tidings_status::TIDINGS_ERR_BUFFER_TOO_SMALL => c"TIDINGS_ERR_BUFFER_TOO_SMALL",
        tidings_status::TIDINGS_ERR_NOT_FOUND => c"TIDINGS_ERR_NOT_FOUND",
        tidings_status::TIDINGS_ERR_WOULD_BLOCK => c"TIDINGS_ERR_WOULD_BLOCK",
        tidings_status::TIDINGS_ERR_ALREADY_ANSWERED => c"TIDINGS_ERR_ALREADY_ANSWERED",
        tidings_status::TIDINGS_ERR_BROKER_UNAVAILABLE => c"TIDINGS_ERR_BROKER_UNAVAILABLE",
        tidings_status::TIDINGS_ERR_BROKER_REFUSED => c"TIDINGS_ERR_BROKER_REFUSED",
        tidings_status::TIDINGS_ERR_TIMED_OUT => c"TIDINGS_ERR_TIMED_OUT",
        tidings_status::TIDINGS_ERR_PANIC => c"TIDINGS_ERR_PANIC",
    };
    name.as_ptr()
}

//! `tidings_request`: what a callback learns about the client's request
//! (stream opens, route requests, presence hooks), borrowed during the call.
#![allow(non_camel_case_types)]

use std::ffi::{c_char, CString};

use crate::boundary::{arg_ref, arg_str, copy_out, fail, guard};
use crate::status::tidings_status;

/// The request behind a callback (a stream's `on_open`, a route's
/// `on_request`, a presence hook); valid only during that call.
pub struct tidings_request {
    path: CString,
    query: CString,
    last_event_id: Option<CString>,
    peer: CString,
    headers: Vec<(String, CString)>,
    request: tidings::Request,
}

impl tidings_request {
    /// The C view of `request`: every string made NUL-terminated once.
    pub(crate) fn new(request: tidings::Request) -> Self {
        tidings_request {
            path: c_string(request.path()),
            query: c_string(request.query_string()),
            last_event_id: request.last_event_id().map(c_string),
            peer: c_string(&request.peer_addr().to_string()),
            headers: request
                .headers_joined()
                .into_iter()
                .map(|(name, value)| (name.to_owned(), c_string(&value)))
                .collect(),
            request,
        }
    }
}

fn c_string(text: &str) -> CString {
    CString::new(text.replace('\0', "")).unwrap_or_default()
}

/// The request's path (e.g. "/stream"), as sent. Never NULL for a valid
/// request; borrowed from it.
#[no_mangle]
pub unsafe extern "C" fn tidings_request_path(request: *const tidings_request) -> *const c_char {
    guard(std::ptr::null(), || {
        // SAFETY: NULL becomes `None` (NULL back); a non-NULL `request` is the
        // pointer given to the callback, used during that call (tidings.h), so the
        // `tidings_request` on the engine's stack is live; it is never mutated.
        unsafe { request.as_ref() }.map_or(std::ptr::null(), |r| r.path.as_ptr())
    })
}

/// The raw query string without '?' ("" if none); borrowed from the request.
#[no_mangle]
pub unsafe extern "C" fn tidings_request_query_string(
    request: *const tidings_request,
) -> *const c_char {
    guard(std::ptr::null(), || {
        // SAFETY: NULL becomes `None` (NULL back); a non-NULL `request` is the
        // pointer given to the callback, used during that call (tidings.h), so the
        // `tidings_request` on the engine's stack is live; it is never mutated.
        unsafe { request.as_ref() }.map_or(std::ptr::null(), |r| r.query.as_ptr())
    })
}

/// The id the client last saw (Last-Event-ID header, else the lastEventId
/// query parameter), or NULL; borrowed from the request.
#[no_mangle]
pub unsafe extern "C" fn tidings_request_last_event_id(
    request: *const tidings_request,
) -> *const c_char {
    guard(std::ptr::null(), || {
        // SAFETY: NULL becomes `None` (NULL back); a non-NULL `request` is the
        // pointer given to the callback, used during that call (tidings.h), so the
        // `tidings_request` on the engine's stack is live; it is never mutated.
        unsafe { request.as_ref() }
            .and_then(|r| r.last_event_id.as_ref())
            .map_or(std::ptr::null(), |id| id.as_ptr())
    })
}

/// The client's address as "ip:port"; borrowed from the request.
#[no_mangle]
pub unsafe extern "C" fn tidings_request_peer(request: *const tidings_request) -> *const c_char {
    guard(std::ptr::null(), || {
        // SAFETY: NULL becomes `None` (NULL back); a non-NULL `request` is the
        // pointer given to the callback, used during that call (tidings.h), so the
        // `tidings_request` on the engine's stack is live; it is never mutated.
        unsafe { request.as_ref() }.map_or(std::ptr::null(), |r| r.peer.as_ptr())
    })
}

/// The value of header `name` (case-insensitive), repeated headers joined
/// with ", ", or NULL if absent;
/// borrowed from the request.
#[no_mangle]
pub unsafe extern "C" fn tidings_request_header(
    request: *const tidings_request,
    name: *const c_char,
) -> *const c_char {
    guard(std::ptr::null(), || {
        // SAFETY (`request.as_ref()`): NULL becomes `None` (NULL back); a non-NULL
        // `request` is the pointer given to a callback, used during that call
        // (tidings.h), so the `tidings_request` is live and never mutated.
        // SAFETY (`optional_str`): `name` is NULL (NULL back) or, per tidings.h, a
        // NUL-terminated string valid during this call; it is only compared here.
        let (Some(request), Ok(Some(name))) = (unsafe { request.as_ref() }, unsafe {
            crate::boundary::optional_str(name, "name")
        }) else {
            return std::ptr::null();
        };
        request
            .headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map_or(std::ptr::null(), |(_, value)| value.as_ptr())
    })
}

/// Copies the first value of query parameter `name`, decoded, into `buffer`
/// (NUL-terminated) and its length without the NUL into `*length`.
///
/// Returns TIDINGS_ERR_NOT_FOUND if absent, and TIDINGS_ERR_BUFFER_TOO_SMALL
/// if `capacity` cannot hold it and its NUL: then `*length` is still set, to
/// the length needed (so call again with `*length + 1`). `buffer` may be NULL
/// when `capacity` is 0.
#[no_mangle]
pub unsafe extern "C" fn tidings_request_query(
    request: *const tidings_request,
    name: *const c_char,
    buffer: *mut c_char,
    capacity: usize,
    length: *mut usize,
) -> tidings_status {
    guard(tidings_status::TIDINGS_ERR_PANIC, || {
        let request = arg_ref!(request, "request");
        let name = arg_str!(name, "name");
        if length.is_null() {
            return fail(
                tidings_status::TIDINGS_ERR_NULL_ARGUMENT,
                "`length` must not be NULL",
            );
        }
        let Some(value) = request.request.query(name) else {
            return fail(
                tidings_status::TIDINGS_ERR_NOT_FOUND,
                format!("no query parameter `{name}`"),
            );
        };
        // SAFETY: `length` was checked non-NULL above and the caller passes it
        // aligned and writable (tidings.h: the length goes into `*length`);
        // `buffer` is NULL (allowed with capacity 0; `copy_out` never writes
        // through NULL) or writable for `capacity` bytes, as the caller promises;
        // it cannot overlap `value`, a `String` just allocated by `query`.
        let status = unsafe { copy_out(value.as_bytes(), buffer, capacity, length) };
        if status != tidings_status::TIDINGS_OK {
            return fail(
                status,
                format!(
                    "the buffer holds {capacity} bytes; {} are needed",
                    value.len() + 1
                ),
            );
        }
        status
    })
}

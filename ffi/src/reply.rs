//! The one-time answers: `tidings_reply`, to a request on a route whose
//! response the host computes (`tidings_server_route`), and
//! `tidings_verdict`, to whether a client may subscribe to a channel
//! (`tidings_channel_authorize`).
#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_void};

use crate::boundary::{arg_ref, fail, fail_with, guard, UserData};
use crate::request::tidings_request;
use crate::status::tidings_status;

/// Called on an engine thread for every request to a route; see
/// `tidings_server_route`.
pub type tidings_route_cb = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        request: *const tidings_request,
        reply: *mut tidings_reply,
    ),
>;

/// The answer to one request, owned by the host from `on_request` until
/// `tidings_reply_free`. Send it once, from any thread.
pub struct tidings_reply {
    inner: tidings::Reply,
}

/// Registers `on_request` as the handler of every request registered at
/// `path`.
pub(crate) fn register_route(
    server: &tidings::Server,
    path: &str,
    on_request: unsafe extern "C" fn(*mut c_void, *const tidings_request, *mut tidings_reply),
    user_data: *mut c_void,
) -> Result<(), tidings::Error> {
    let user_data = UserData(user_data);
    server.route(
        path,
        move |request: tidings::Request, reply: tidings::Reply| {
            let user = user_data;
            let described = tidings_request::new(request);
            let reply = Box::into_raw(Box::new(tidings_reply { inner: reply }));
            // SAFETY: `on_request` is the host's callback (non-NULL, checked in
            // tidings_server_route) with the C signature of tidings_route_cb;
            // `user.0` is its thread-safe `user_data`; `&described` lives until this
            // closure returns, covering "valid only during that call"; `reply` is a
            // fresh `Box::into_raw` whose ownership passes to the host.
            unsafe { on_request(user.0, &described, reply) };
        },
    )
}

/// Sends the response: `status` (200-599), `content_type` (e.g.
/// "text/html; charset=utf-8"; NULL for that default) and `body_len` bytes of
/// `body` (NULL only when `body_len` is 0). Copies what it needs; safe from
/// any thread.
///
/// Returns TIDINGS_ERR_INVALID_STATUS or TIDINGS_ERR_INVALID_CONFIG (a bad
/// content type) without answering, so a second try may still succeed;
/// TIDINGS_ERR_ALREADY_ANSWERED after a successful send; and
/// TIDINGS_ERR_DISCONNECTED if the client has gone.
#[no_mangle]
pub unsafe extern "C" fn tidings_reply_send(
    reply: *const tidings_reply,
    status: u16,
    content_type: *const c_char,
    body: *const u8,
    body_len: usize,
) -> tidings_status {
    guard(tidings_status::TIDINGS_ERR_PANIC, || {
        let reply = arg_ref!(reply, "reply");
        // SAFETY: `content_type` is NULL (the default, as documented) or, per
        // tidings.h, a NUL-terminated string valid during this call; it is
        // copied by `send` before this call returns.
        let content_type =
            match unsafe { crate::boundary::optional_str(content_type, "content_type") } {
                Ok(content_type) => content_type.unwrap_or("text/html; charset=utf-8"),
                Err(status) => return status,
            };
        let body = if body_len == 0 {
            &[][..]
        } else if body.is_null() {
            return fail(
                tidings_status::TIDINGS_ERR_NULL_ARGUMENT,
                "`body` must not be NULL when `body_len` is not 0",
            );
        } else {
            // SAFETY: `body` is non-NULL (checked above) and tidings.h makes it
            // readable for `body_len` bytes during this call; the slice is copied
            // into `Bytes` below before the call returns, and u8 has alignment 1.
            unsafe { std::slice::from_raw_parts(body, body_len) }
        };
        match reply.inner.send(status, content_type, body.to_vec()) {
            Ok(()) => tidings_status::TIDINGS_OK,
            Err(err) => fail_with(err),
        }
    })
}

/// Frees a reply handle. A request never answered gets `500`. NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn tidings_reply_free(reply: *mut tidings_reply) {
    guard((), || {
        if !reply.is_null() {
            // SAFETY: a non-NULL `reply` is the `Box::into_raw` pointer handed to
            // `on_request`, and tidings.h says it is freed once, after the last
            // call on it, so this thread owns it now.
            drop(unsafe { Box::from_raw(reply) });
        }
    })
}

/// Called on an engine thread for every client that subscribes at a
/// channel's path; see `tidings_channel_authorize`.
pub type tidings_authorize_cb = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        request: *const tidings_request,
        verdict: *mut tidings_verdict,
    ),
>;

/// The decision on one subscriber, owned by the host from `on_subscribe`
/// until `tidings_verdict_free`. Give it once, from any thread.
pub struct tidings_verdict {
    inner: tidings::Verdict,
}

/// Makes `on_subscribe` the authorize hook of `channel`.
pub(crate) fn register_authorizer(
    channel: &tidings::Channel,
    on_subscribe: unsafe extern "C" fn(*mut c_void, *const tidings_request, *mut tidings_verdict),
    user_data: *mut c_void,
) {
    let user_data = UserData(user_data);
    channel.authorize(
        move |request: tidings::Request, verdict: tidings::Verdict| {
            let user = user_data;
            let described = tidings_request::new(request);
            let verdict = Box::into_raw(Box::new(tidings_verdict { inner: verdict }));
            // SAFETY: `on_subscribe` is the host's callback (non-NULL, checked in
            // tidings_channel_authorize) with the C signature of
            // tidings_authorize_cb; `user.0` is its thread-safe `user_data`;
            // `&described` lives until this closure returns, covering "valid
            // only during that call"; `verdict` is a fresh `Box::into_raw` whose
            // ownership passes to the host.
            unsafe { on_subscribe(user.0, &described, verdict) };
        },
    );
}

/// Lets the subscriber in. Safe from any thread.
///
/// Returns TIDINGS_ERR_ALREADY_ANSWERED after an earlier answer and
/// TIDINGS_ERR_DISCONNECTED if the client has gone.
#[no_mangle]
pub unsafe extern "C" fn tidings_verdict_allow(verdict: *const tidings_verdict) -> tidings_status {
    guard(tidings_status::TIDINGS_ERR_PANIC, || {
        let verdict = arg_ref!(verdict, "verdict");
        match verdict.inner.allow() {
            Ok(()) => tidings_status::TIDINGS_OK,
            Err(err) => fail_with(err),
        }
    })
}

/// Turns the subscriber away with `status` (400-599) and `message` (a line
/// of plain text; NULL for none). Copies what it needs; safe from any
/// thread.
///
/// Returns TIDINGS_ERR_INVALID_STATUS without answering, so a second try
/// may still succeed; otherwise as `tidings_verdict_allow`.
#[no_mangle]
pub unsafe extern "C" fn tidings_verdict_deny(
    verdict: *const tidings_verdict,
    status: u16,
    message: *const c_char,
) -> tidings_status {
    guard(tidings_status::TIDINGS_ERR_PANIC, || {
        let verdict = arg_ref!(verdict, "verdict");
        // SAFETY: `message` is NULL (none, as documented) or, per tidings.h,
        // a NUL-terminated string valid during this call; it is copied by
        // `deny` before this call returns.
        let message = match unsafe { crate::boundary::optional_str(message, "message") } {
            Ok(message) => message.unwrap_or(""),
            Err(status) => return status,
        };
        match verdict.inner.deny(status, message) {
            Ok(()) => tidings_status::TIDINGS_OK,
            Err(err) => fail_with(err),
        }
    })
}

/// Frees a verdict handle. A subscriber never answered gets `500`. NULL is
/// ignored.
#[no_mangle]
pub unsafe extern "C" fn tidings_verdict_free(verdict: *mut tidings_verdict) {
    guard((), || {
        if !verdict.is_null() {
            // SAFETY: a non-NULL `verdict` is the `Box::into_raw` pointer
            // handed to `on_subscribe`, and tidings.h says it is freed once,
            // after the last call on it, so this thread owns it now.
            drop(unsafe { Box::from_raw(verdict) });
        }
    })
}

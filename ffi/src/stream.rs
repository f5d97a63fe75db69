//! Streams and their requests: `tidings_stream`, `tidings_request`, and the
//! callbacks a C host registers.
#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_void};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::boundary::{arg_ref, fail, fail_with, guard, UserData};
use crate::event::{tidings_event, to_event};
use crate::request::tidings_request;
use crate::status::tidings_status;

/// Called on an engine thread when a client opens a stream; see
/// `tidings_server_stream`.
pub type tidings_stream_open_cb = Option<
    unsafe extern "C" fn(
        user_data: *mut c_void,
        request: *const tidings_request,
        stream: *mut tidings_stream,
    ),
>;

/// Called on an engine thread, once per stream, when its connection ends.
pub type tidings_stream_close_cb =
    Option<unsafe extern "C" fn(user_data: *mut c_void, stream_id: u64)>;

/// One client's stream, owned by the host from `on_open` until
/// `tidings_stream_free`. Safe to use from any thread.
pub struct tidings_stream {
    id: u64,
    inner: tidings::StreamSender,
}

static NEXT_STREAM_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) fn register_stream(
    server: &tidings::Server,
    path: &str,
    on_open: unsafe extern "C" fn(*mut c_void, *const tidings_request, *mut tidings_stream),
    on_close: tidings_stream_close_cb,
    user_data: *mut c_void,
) -> Result<(), tidings::Error> {
    let user_data = UserData(user_data);
    server.stream_handler(
        path,
        move |request: tidings::Request, sender: tidings::StreamSender| {
            let user = user_data;
            let id = NEXT_STREAM_ID.fetch_add(1, Ordering::Relaxed);
            if let Some(on_close) = on_close {
                sender.on_close(move || {
                    let user = user;
                    // SAFETY: `on_close` is the host's `Some` callback with the C
                    // signature of tidings_stream_close_cb; `user.0` is its
                    // thread-safe `user_data`, valid until the server is freed
                    // (tidings_server_stream), and the id is a plain integer. The
                    // callback must return normally (a C function does not unwind).
                    // Not guaranteed: if the server was stopped or freed from a
                    // callback, `tidings_server_free` does not wait for the engine
                    // (core `Server::shutdown`), so this hook may run after it.
                    unsafe { on_close(user.0, id) };
                });
            }
            let described = tidings_request::new(request);
            let stream = Box::into_raw(Box::new(tidings_stream { id, inner: sender }));
            // SAFETY: `on_open` is the host's callback (non-NULL, checked in
            // tidings_server_stream) with the C signature of
            // tidings_stream_open_cb; `user.0` is its thread-safe `user_data`;
            // `&described` lives until this closure returns, covering the
            // documented "valid only during that call"; `stream` is a fresh
            // `Box::into_raw` whose ownership passes to the host.
            unsafe { on_open(user.0, &described, stream) };
        },
    )
}

fn send_with(
    stream: &tidings_stream,
    event: &tidings_event,
    send: impl FnOnce(&tidings::StreamSender, tidings::Event) -> Result<(), tidings::Error>,
) -> tidings_status {
    // SAFETY: both callers (`tidings_stream_send`, `tidings_stream_try_send`)
    // pass the C caller's `event`, checked non-NULL by `arg_ref!`, whose string
    // fields tidings.h makes NULL or NUL-terminated and valid during the call:
    // `to_event`'s contract (it copies them).
    let event = match unsafe { to_event(event) } {
        Ok(event) => event,
        Err(status) => return status,
    };
    send(&stream.inner, event).map_or_else(fail_with, |()| tidings_status::TIDINGS_OK)
}

/// Sends `event`, blocking the calling thread while the stream's queue is
/// full. Returns TIDINGS_ERR_DISCONNECTED once the client has gone (stop
/// producing then), and TIDINGS_ERR_WOULD_BLOCK if called on an engine thread
/// (inside a callback): use `tidings_stream_try_send` there.
#[no_mangle]
pub unsafe extern "C" fn tidings_stream_send(
    stream: *const tidings_stream,
    event: *const tidings_event,
) -> tidings_status {
    guard(tidings_status::TIDINGS_ERR_PANIC, || {
        let stream = arg_ref!(stream, "stream");
        let event = arg_ref!(event, "event");
        send_with(stream, event, tidings::StreamSender::blocking_send)
    })
}

/// Sends `event` if the queue has room: TIDINGS_ERR_QUEUE_FULL if not,
/// TIDINGS_ERR_DISCONNECTED if the client has gone. Never blocks.
#[no_mangle]
pub unsafe extern "C" fn tidings_stream_try_send(
    stream: *const tidings_stream,
    event: *const tidings_event,
) -> tidings_status {
    guard(tidings_status::TIDINGS_ERR_PANIC, || {
        let stream = arg_ref!(stream, "stream");
        let event = arg_ref!(event, "event");
        send_with(stream, event, tidings::StreamSender::try_send)
    })
}

/// Answers the request with 200 and the event stream now, before any event.
/// (Sending accepts too; accepting twice does nothing.)
#[no_mangle]
pub unsafe extern "C" fn tidings_stream_accept(stream: *const tidings_stream) -> tidings_status {
    guard(tidings_status::TIDINGS_ERR_PANIC, || {
        let stream = arg_ref!(stream, "stream");
        if stream.inner.is_closed() {
            return fail(
                tidings_status::TIDINGS_ERR_DISCONNECTED,
                "the stream was closed, or its client has gone",
            );
        }
        stream.inner.accept();
        tidings_status::TIDINGS_OK
    })
}

/// Answers the request with `status` (400-599) and `message` (NULL for
/// none) as plain text instead of a stream; the stream is closed. Only before
/// it was accepted: TIDINGS_ERR_ALREADY_ACCEPTED after.
#[no_mangle]
pub unsafe extern "C" fn tidings_stream_reject(
    stream: *const tidings_stream,
    status: u16,
    message: *const c_char,
) -> tidings_status {
    guard(tidings_status::TIDINGS_ERR_PANIC, || {
        let stream = arg_ref!(stream, "stream");
        // SAFETY: `message` is NULL (no message, as documented) or, per
        // tidings.h, a NUL-terminated string valid during this call; the `&str`
        // is copied with `to_owned` at once.
        let message = match unsafe { crate::boundary::optional_str(message, "message") } {
            Ok(message) => message.unwrap_or("").to_owned(),
            Err(status) => return status,
        };
        // An invalid status leaves the stream usable (the core checks it first).
        match stream.inner.reject(status, message) {
            Ok(()) => tidings_status::TIDINGS_OK,
            Err(err) => fail_with(err),
        }
    })
}

/// Ends the response normally, after the events already queued. Further
/// sends return TIDINGS_ERR_DISCONNECTED. The handle stays valid until
/// `tidings_stream_free`.
#[no_mangle]
pub unsafe extern "C" fn tidings_stream_close(stream: *const tidings_stream) -> tidings_status {
    guard(tidings_status::TIDINGS_ERR_PANIC, || {
        let stream = arg_ref!(stream, "stream");
        stream.inner.close();
        tidings_status::TIDINGS_OK
    })
}

/// Ends the response with `event: error` after the events already queued:
/// for a producer that failed (log the cause yourself; it is not sent).
#[no_mangle]
pub unsafe extern "C" fn tidings_stream_fail(stream: *const tidings_stream) -> tidings_status {
    guard(tidings_status::TIDINGS_ERR_PANIC, || {
        let stream = arg_ref!(stream, "stream");
        stream.inner.fail();
        tidings_status::TIDINGS_OK
    })
}

/// Whether the client has gone or the stream was closed (true for NULL).
#[no_mangle]
pub unsafe extern "C" fn tidings_stream_is_closed(stream: *const tidings_stream) -> bool {
    guard(true, || {
        // SAFETY: NULL becomes `None` (true, as documented); a non-NULL `stream` is
        // the handle given to `on_open`, not yet freed (caller's contract), so it
        // is live for this call; `tidings_stream` is `Sync` (its `StreamSender` is),
        // so other threads may use it meanwhile.
        unsafe { stream.as_ref() }.is_none_or(|stream| stream.inner.is_closed())
    })
}

/// The stream's id, unique in this process; `on_close` reports the same id.
/// 0 for NULL.
#[no_mangle]
pub unsafe extern "C" fn tidings_stream_id(stream: *const tidings_stream) -> u64 {
    guard(0, || {
        // SAFETY: NULL becomes `None` (0, as documented); a non-NULL `stream` is
        // the handle given to `on_open`, not yet freed (caller's contract), so it
        // is live for this call; `id` is never written after construction.
        unsafe { stream.as_ref() }.map_or(0, |stream| stream.id)
    })
}

/// Frees a stream handle; if the stream is still open, it ends normally (or
/// with 204 if it was never accepted). NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn tidings_stream_free(stream: *mut tidings_stream) {
    guard((), || {
        if !stream.is_null() {
            // SAFETY: non-NULL checked above; the handle came from
            // `register_stream` (`Box::into_raw` of this type, global allocator)
            // via `on_open`, and tidings.h says it is freed at most once, so we
            // own it here. That no other thread is still inside a call on it (a
            // blocked `tidings_stream_send`, say) is implied, not stated.
            drop(unsafe { Box::from_raw(stream) });
        }
    })
}

//! `tidings_channel`: publish from any thread.
#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_void};
use std::time::Duration;

use crate::boundary::{arg_ref, copy_out, fail, fail_with, guard, UserData};
use crate::event::{tidings_event, to_event};
use crate::reply::{register_authorizer, tidings_authorize_cb};
use crate::request::tidings_request;
use crate::status::tidings_status;

/// A broadcast channel. Get one from `tidings_server_channel`, free it with
/// `tidings_channel_free`. Safe to use from any thread.
pub struct tidings_channel {
    pub(crate) inner: tidings::Channel,
}

/// Publishes `event` to every current subscriber and into the history. Never
/// waits for the network. Fails with TIDINGS_ERR_INVALID_EVENT (nothing sent)
/// or TIDINGS_ERR_STOPPED once the server stopped.
#[no_mangle]
pub unsafe extern "C" fn tidings_channel_publish(
    channel: *const tidings_channel,
    event: *const tidings_event,
) -> tidings_status {
    guard(tidings_status::TIDINGS_ERR_PANIC, || {
        let channel = arg_ref!(channel, "channel");
        let event = arg_ref!(event, "event");
        // SAFETY: `event` is the caller's `tidings_event` (non-NULL checked by
        // `arg_ref!`); tidings.h makes each string field NULL or NUL-terminated
        // and valid during this call, which is `to_event`'s contract (it copies).
        let event = match unsafe { to_event(event) } {
            Ok(event) => event,
            Err(status) => return status,
        };
        channel
            .inner
            .publish(event)
            .map_or_else(fail_with, |_| tidings_status::TIDINGS_OK)
    })
}

/// Publishes `event` like `tidings_channel_publish`, then blocks until it is
/// stored: at once without a broker; with one, once the broker stored it and
/// it is in this server's history. Copies the id it is sent with (the
/// broker's automatic id included; empty if it has none) into `id_buffer`,
/// NUL-terminated, and its length into `*id_length`.
///
/// `timeout_ms` 0 waits as long as it takes; past a non-zero one it fails
/// with TIDINGS_ERR_TIMED_OUT (the event may still be delivered). Fails with
/// TIDINGS_ERR_BROKER_UNAVAILABLE when the broker's queue is full,
/// TIDINGS_ERR_WOULD_BLOCK on an engine thread (a callback), and
/// TIDINGS_ERR_BUFFER_TOO_SMALL if the id does not fit (it was published;
/// `*id_length` says what is needed). `id_buffer` may be NULL with
/// `id_capacity` 0; `id_length` must not be NULL.
#[no_mangle]
pub unsafe extern "C" fn tidings_channel_publish_confirmed(
    channel: *const tidings_channel,
    event: *const tidings_event,
    timeout_ms: u32,
    id_buffer: *mut c_char,
    id_capacity: usize,
    id_length: *mut usize,
) -> tidings_status {
    guard(tidings_status::TIDINGS_ERR_PANIC, || {
        let channel = arg_ref!(channel, "channel");
        let event = arg_ref!(event, "event");
        if id_length.is_null() {
            return fail(
                tidings_status::TIDINGS_ERR_NULL_ARGUMENT,
                "`id_length` must not be NULL",
            );
        }
        // SAFETY: as in `tidings_channel_publish`: `event` is the caller's
        // non-NULL `tidings_event`, its strings NULL or NUL-terminated and valid
        // during this call (tidings.h), which is `to_event`'s contract.
        let event = match unsafe { to_event(event) } {
            Ok(event) => event,
            Err(status) => return status,
        };
        let timeout = (timeout_ms > 0).then(|| Duration::from_millis(timeout_ms.into()));
        let id = match channel.inner.publish_confirmed(event).wait(timeout) {
            Ok(id) => id,
            Err(err) => return fail_with(err),
        };
        let id = id.as_ref().map_or("", |id| id.as_str());
        // SAFETY: `id_length` was checked non-NULL above and the caller passes
        // it aligned and writable (tidings.h); `id_buffer` is NULL (allowed,
        // never written through) or writable for `id_capacity` bytes as the
        // caller promises, and cannot overlap `id`, which the engine owns.
        let status = unsafe { copy_out(id.as_bytes(), id_buffer, id_capacity, id_length) };
        if status != tidings_status::TIDINGS_OK {
            return fail(
                status,
                "the event was published, but its id does not fit `id_buffer`",
            );
        }
        status
    })
}

/// Asks `on_subscribe(user_data, request, verdict)` (not NULL), on an engine
/// thread, about every client that subscribes at the channel's path (after
/// the token check of a private channel). `request` is valid only during
/// that call. The host owns `verdict` from then on: answer it with
/// `tidings_verdict_allow` or `tidings_verdict_deny`, at once or later from
/// any thread, within the server's `head_timeout_ms` (else the client gets
/// 503), then free it with `tidings_verdict_free` (a verdict freed
/// unanswered answers 500). Clients an application hands over are not
/// asked. Replaces an earlier hook.
///
/// `user_data` is passed as is; it must stay valid until the server is
/// freed, and be safe to use from several threads.
#[no_mangle]
pub unsafe extern "C" fn tidings_channel_authorize(
    channel: *const tidings_channel,
    on_subscribe: tidings_authorize_cb,
    user_data: *mut c_void,
) -> tidings_status {
    guard(tidings_status::TIDINGS_ERR_PANIC, || {
        let channel = arg_ref!(channel, "channel");
        let Some(on_subscribe) = on_subscribe else {
            return fail(
                tidings_status::TIDINGS_ERR_NULL_ARGUMENT,
                "`on_subscribe` must not be NULL",
            );
        };
        register_authorizer(&channel.inner, on_subscribe, user_data);
        tidings_status::TIDINGS_OK
    })
}

/// Called on an engine thread with the request of a subscriber that joined
/// or left a channel; see `tidings_channel_on_subscribe`.
pub type tidings_presence_cb =
    Option<unsafe extern "C" fn(user_data: *mut c_void, request: *const tidings_request)>;

/// Calls `hook(user_data, request)` (not NULL) on an engine thread once for
/// every new subscriber; `request` is valid only during the call. Replaces
/// an earlier hook. Return quickly: the subscriber's response waits for it.
///
/// `user_data` is passed as is; it must stay valid until the server is
/// freed, and be safe to use from several threads.
#[no_mangle]
pub unsafe extern "C" fn tidings_channel_on_subscribe(
    channel: *const tidings_channel,
    hook: tidings_presence_cb,
    user_data: *mut c_void,
) -> tidings_status {
    guard(tidings_status::TIDINGS_ERR_PANIC, || {
        let channel = arg_ref!(channel, "channel");
        set_presence_hook(hook, user_data, |hook| channel.inner.on_subscribe(hook))
    })
}

/// Calls `hook(user_data, request)` (not NULL) on an engine thread once for
/// every subscriber that leaves, however its connection ended. Replaces an
/// earlier hook. Register it before clients connect: a subscriber keeps its
/// request only while the channel has this hook, so one that joined before
/// is not reported. Same rules for `request` and `user_data` as
/// `tidings_channel_on_subscribe`.
#[no_mangle]
pub unsafe extern "C" fn tidings_channel_on_unsubscribe(
    channel: *const tidings_channel,
    hook: tidings_presence_cb,
    user_data: *mut c_void,
) -> tidings_status {
    guard(tidings_status::TIDINGS_ERR_PANIC, || {
        let channel = arg_ref!(channel, "channel");
        set_presence_hook(hook, user_data, |hook| channel.inner.on_unsubscribe(hook))
    })
}

/// Installs, with `install`, a core hook that calls the host's C one.
fn set_presence_hook(
    hook: tidings_presence_cb,
    user_data: *mut c_void,
    install: impl FnOnce(Box<dyn Fn(&tidings::Request) + Send + Sync>),
) -> tidings_status {
    let Some(hook) = hook else {
        return fail(
            tidings_status::TIDINGS_ERR_NULL_ARGUMENT,
            "`hook` must not be NULL",
        );
    };
    let user_data = UserData(user_data);
    install(Box::new(move |request: &tidings::Request| {
        let user = user_data;
        let described = tidings_request::new(request.clone());
        // SAFETY: `hook` is the host's callback (non-NULL, checked above) with
        // the C signature of tidings_presence_cb; `user.0` is its thread-safe
        // `user_data`; `&described` lives until this closure returns, covering
        // "valid only during the call".
        unsafe { hook(user.0, &described) };
    }));
    tidings_status::TIDINGS_OK
}

/// The current number of subscribers (0 for NULL).
#[no_mangle]
pub unsafe extern "C" fn tidings_channel_subscribers(channel: *const tidings_channel) -> usize {
    guard(0, || {
        // SAFETY: NULL becomes `None` (0, as documented); a non-NULL `channel` is,
        // per tidings.h, a handle from `tidings_server_channel` not yet freed, so
        // it is aligned and live for this call; `tidings::Channel` is `Sync`, so
        // other threads may use the handle at the same time.
        unsafe { channel.as_ref() }.map_or(0, |channel| channel.inner.subscribers())
    })
}

/// Frees a channel handle (the channel itself lives on with its server).
/// NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn tidings_channel_free(channel: *mut tidings_channel) {
    guard((), || {
        if !channel.is_null() {
            // SAFETY: non-NULL checked above; per tidings.h `channel` came from
            // `tidings_server_channel` (`Box::into_raw` of this type, global
            // allocator) and is freed at most once, so we own it here. That no
            // other thread is still inside a call on it is implied, not stated.
            drop(unsafe { Box::from_raw(channel) });
        }
    })
}

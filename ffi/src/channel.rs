//! `tidings_channel`: publish from any thread.
#![allow(non_camel_case_types)]

use std::ffi::c_void;

use crate::boundary::{arg_ref, fail, fail_with, guard, UserData};
use crate::event::{tidings_event, to_event};
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

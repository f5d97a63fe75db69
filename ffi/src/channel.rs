//! `tidings_channel`: publish from any thread.
#![allow(non_camel_case_types)]

use crate::boundary::{arg_ref, fail_with, guard};
use crate::event::{tidings_event, to_event};
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

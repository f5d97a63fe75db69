//! `tidings_server`: create, register routes, start, stop, free.
#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_void};

use crate::boundary::{arg_ref, arg_str, fail_with, guard};
use crate::channel::tidings_channel;
use crate::config::{tidings_channel_options, tidings_config, to_channel_options, to_config};
use crate::event::{tidings_event, to_event};
use crate::reply::{register_route, tidings_route_cb};
use crate::status::tidings_status;
use crate::stream::{register_stream, tidings_stream_close_cb, tidings_stream_open_cb};

/// A server. Create with `tidings_server_new`, free with `tidings_server_free`.
pub struct tidings_server {
    pub(crate) inner: tidings::Server,
}

/// Creates a server from `config` (NULL for the defaults) and writes it to
/// `*out`. Nothing listens until `tidings_server_start`.
///
/// Ownership: the caller owns `*out` and frees it with `tidings_server_free`.
#[no_mangle]
pub unsafe extern "C" fn tidings_server_new(
    config: *const tidings_config,
    out: *mut *mut tidings_server,
) -> tidings_status {
    guard(tidings_status::TIDINGS_ERR_PANIC, || {
        if out.is_null() {
            return crate::boundary::fail(
                tidings_status::TIDINGS_ERR_NULL_ARGUMENT,
                "`out` must not be NULL",
            );
        }
        // SAFETY: NULL becomes `None` (the defaults, as documented); a non-NULL
        // `config` is the caller's `tidings_config`, aligned and initialized, read
        // only during this call. Every field is an integer or a raw pointer (`cors`
        // is a `u32` for this reason), so any initialized value is a valid one.
        let config = match unsafe { config.as_ref() } {
            // SAFETY: tidings.h makes `host` NULL or a string and `cors_origins` an
            // array of `cors_origins_len` strings, all read during this call only:
            // exactly `to_config`'s contract.
            Some(config) => match unsafe { to_config(config) } {
                Ok(config) => config,
                Err(status) => return status,
            },
            None => tidings::Config::default(),
        };
        match tidings::Server::new(config) {
            Ok(inner) => {
                // SAFETY: `out` was checked non-NULL at the top; the caller passes
                // it aligned and writable (tidings.h: the server is written to
                // `*out`). The old value is a raw pointer, so nothing is dropped.
                unsafe { *out = Box::into_raw(Box::new(tidings_server { inner })) };
                tidings_status::TIDINGS_OK
            }
            Err(err) => fail_with(err),
        }
    })
}

/// Registers a broadcast channel at `path` (e.g. "/livescore") with
/// `options` (NULL for the defaults) and writes its handle to `*out`.
///
/// Ownership: the caller owns `*out` and frees it with
/// `tidings_channel_free`; the channel keeps working while the server runs,
/// whether or not its handle was freed.
#[no_mangle]
pub unsafe extern "C" fn tidings_server_channel(
    server: *const tidings_server,
    path: *const c_char,
    options: *const tidings_channel_options,
    out: *mut *mut tidings_channel,
) -> tidings_status {
    guard(tidings_status::TIDINGS_ERR_PANIC, || {
        let server = arg_ref!(server, "server");
        let path = arg_str!(path, "path");
        if out.is_null() {
            return crate::boundary::fail(
                tidings_status::TIDINGS_ERR_NULL_ARGUMENT,
                "`out` must not be NULL",
            );
        }
        // SAFETY: NULL becomes `None` (the defaults, as documented); a non-NULL
        // `options` is the caller's aligned, initialized struct, read only here.
        // Its `auto_id` is a C `bool`, which holds only 0 or 1: a valid Rust bool.
        let options = unsafe { options.as_ref() }
            .map(to_channel_options)
            .unwrap_or_default();
        match server.inner.channel(path, options) {
            Ok(inner) => {
                // SAFETY: `out` was checked non-NULL above; the caller passes it
                // aligned and writable (tidings.h: the handle is written to
                // `*out`). The old value is a raw pointer, so nothing is dropped.
                unsafe { *out = Box::into_raw(Box::new(tidings_channel { inner })) };
                tidings_status::TIDINGS_OK
            }
            Err(err) => fail_with(err),
        }
    })
}

/// Registers a per-connection stream at `path`.
///
/// For every client, `on_open(user_data, request, stream)` is called on an
/// engine thread. `request` is valid only during that call. `stream` belongs
/// to the caller, who sends events to it from any thread and must free it
/// with `tidings_stream_free`. The response head waits for the caller's
/// decision: `tidings_stream_accept` or the first send answers 200,
/// `tidings_stream_reject` answers an error status, and freeing the stream
/// undecided answers 204.
///
/// `on_close(user_data, stream_id)` (may be NULL) is called exactly once per
/// stream, on an engine thread, when its connection ends for any reason; the
/// id is that of `tidings_stream_id`. The stream handle may already be freed
/// by then: use the id, not the handle.
///
/// `user_data` is passed to both callbacks as is; it must stay valid until
/// the server is freed, and be safe to use from several threads.
#[no_mangle]
pub unsafe extern "C" fn tidings_server_stream(
    server: *const tidings_server,
    path: *const c_char,
    on_open: tidings_stream_open_cb,
    on_close: tidings_stream_close_cb,
    user_data: *mut c_void,
) -> tidings_status {
    guard(tidings_status::TIDINGS_ERR_PANIC, || {
        let server = arg_ref!(server, "server");
        let path = arg_str!(path, "path");
        let Some(on_open) = on_open else {
            return crate::boundary::fail(
                tidings_status::TIDINGS_ERR_NULL_ARGUMENT,
                "`on_open` must not be NULL",
            );
        };
        match register_stream(&server.inner, path, on_open, on_close, user_data) {
            Ok(()) => tidings_status::TIDINGS_OK,
            Err(err) => fail_with(err),
        }
    })
}

/// Registers a route at `path` whose response the host computes per request
/// (GET and HEAD): a rendered page, a small JSON answer.
///
/// `on_request(user_data, request, reply)` (not NULL) is called on an engine
/// thread for every request. `request` is valid only during that call. The
/// host owns `reply` from then on: answer it with `tidings_reply_send`, at
/// once or later from any thread, then free it with `tidings_reply_free` (a
/// reply freed unanswered answers 500). Return quickly: the callback holds up
/// that engine thread.
///
/// `user_data` is passed as is; it must stay valid until the server is
/// freed, and be safe to use from several threads.
#[no_mangle]
pub unsafe extern "C" fn tidings_server_route(
    server: *const tidings_server,
    path: *const c_char,
    on_request: tidings_route_cb,
    user_data: *mut c_void,
) -> tidings_status {
    guard(tidings_status::TIDINGS_ERR_PANIC, || {
        let server = arg_ref!(server, "server");
        let path = arg_str!(path, "path");
        let Some(on_request) = on_request else {
            return crate::boundary::fail(
                tidings_status::TIDINGS_ERR_NULL_ARGUMENT,
                "`on_request` must not be NULL",
            );
        };
        match register_route(&server.inner, path, on_request, user_data) {
            Ok(()) => tidings_status::TIDINGS_OK,
            Err(err) => fail_with(err),
        }
    })
}

/// Serves the file `file` at `path` (GET and HEAD), read on each request.
/// Fails with TIDINGS_ERR_FILE if it does not exist.
#[no_mangle]
pub unsafe extern "C" fn tidings_server_page(
    server: *const tidings_server,
    path: *const c_char,
    file: *const c_char,
) -> tidings_status {
    guard(tidings_status::TIDINGS_ERR_PANIC, || {
        let server = arg_ref!(server, "server");
        let path = arg_str!(path, "path");
        let file = arg_str!(file, "file");
        server
            .inner
            .page(path, file)
            .map_or_else(fail_with, |()| tidings_status::TIDINGS_OK)
    })
}

/// Serves the files under `directory` below `prefix` (a directory serves its
/// index.html). Nothing outside `directory` is reachable.
#[no_mangle]
pub unsafe extern "C" fn tidings_server_files(
    server: *const tidings_server,
    prefix: *const c_char,
    directory: *const c_char,
) -> tidings_status {
    guard(tidings_status::TIDINGS_ERR_PANIC, || {
        let server = arg_ref!(server, "server");
        let prefix = arg_str!(prefix, "prefix");
        let directory = arg_str!(directory, "directory");
        server
            .inner
            .files(prefix, directory)
            .map_or_else(fail_with, |()| tidings_status::TIDINGS_OK)
    })
}

/// Reads the configured `tls_cert` and `tls_key` files again (a renewed
/// certificate): new connections get the new pair, open ones keep theirs.
/// Returns TIDINGS_ERR_INVALID_CONFIG, keeping the pair in service, if the
/// files do not hold a matching pair or the server has no TLS.
#[no_mangle]
pub unsafe extern "C" fn tidings_server_reload_tls(
    server: *const tidings_server,
) -> tidings_status {
    guard(tidings_status::TIDINGS_ERR_PANIC, || {
        let server = arg_ref!(server, "server");
        server
            .inner
            .reload_tls()
            .map_or_else(fail_with, |()| tidings_status::TIDINGS_OK)
    })
}

/// Binds and starts serving on the engine's own threads. If `port_out` is not
/// NULL, the bound port is written there (useful with port 0).
#[no_mangle]
pub unsafe extern "C" fn tidings_server_start(
    server: *const tidings_server,
    port_out: *mut u16,
) -> tidings_status {
    guard(tidings_status::TIDINGS_ERR_PANIC, || {
        let server = arg_ref!(server, "server");
        match server.inner.start() {
            Ok(addr) => {
                // SAFETY: NULL becomes `None` (optional, as documented); a non-NULL
                // `port_out` is the caller's aligned, writable `uint16_t`. The
                // `&mut` lives for one write and cannot alias `server`, an opaque
                // Rust allocation the caller never sees inside.
                if let Some(port) = unsafe { port_out.as_mut() } {
                    *port = addr.port();
                }
                tidings_status::TIDINGS_OK
            }
            Err(err) => fail_with(err),
        }
    })
}

/// Stops the server: stops accepting, sends open streams what was already
/// queued, then `farewell` (NULL for none), then ends them; waits up to the
/// drain timeout and joins the engine's threads. Idempotent.
///
/// Do not call it from a callback (it would wait for the thread it runs on);
/// from there it only starts the shutdown.
#[no_mangle]
pub unsafe extern "C" fn tidings_server_stop(
    server: *const tidings_server,
    farewell: *const tidings_event,
) -> tidings_status {
    guard(tidings_status::TIDINGS_ERR_PANIC, || {
        let server = arg_ref!(server, "server");
        // SAFETY: NULL becomes `None` (no farewell, as documented); a non-NULL
        // `farewell` is the caller's aligned `tidings_event`, read only during
        // this call (tidings.h); its fields are integers and raw pointers.
        match unsafe { farewell.as_ref() } {
            // SAFETY: tidings.h makes each string field of the event NULL or
            // NUL-terminated and valid during the call: `to_event`'s contract.
            Some(event) => match unsafe { to_event(event) } {
                Ok(event) => server.inner.stop_with(event),
                Err(status) => return status,
            },
            None => server.inner.stop(),
        }
        tidings_status::TIDINGS_OK
    })
}

/// The bound port while the server runs, else 0.
#[no_mangle]
pub unsafe extern "C" fn tidings_server_port(server: *const tidings_server) -> u16 {
    guard(0, || {
        // SAFETY: NULL becomes `None` (0); a non-NULL `server` is, per tidings.h,
        // a handle from `tidings_server_new` not yet freed, live for this call;
        // `tidings::Server` is `Sync`, so other threads may use it meanwhile.
        unsafe { server.as_ref() }
            .and_then(|server| server.inner.local_addr())
            .map_or(0, |addr| addr.port())
    })
}

/// Stops the server if it runs, then frees it. NULL is ignored.
#[no_mangle]
pub unsafe extern "C" fn tidings_server_free(server: *mut tidings_server) {
    guard((), || {
        if !server.is_null() {
            // SAFETY: non-NULL checked above; per tidings.h `server` came from
            // `tidings_server_new` (`Box::into_raw` of this type, global
            // allocator) and is freed at most once, so we own it here. That no
            // other thread is still inside a call on it is implied, not stated.
            drop(unsafe { Box::from_raw(server) });
        }
    })
}

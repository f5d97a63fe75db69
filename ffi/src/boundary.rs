//! The boundary every `extern "C"` function goes through: panics are caught
//! and turned into a status, NULL and invalid UTF-8 are checked before any
//! use, and the reason for a failure is kept for `tidings_last_error`.

use std::cell::RefCell;
use std::ffi::{c_char, c_void, CStr, CString};

use crate::status::tidings_status;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records `message` as this thread's last error and returns `status`.
pub(crate) fn fail(status: tidings_status, message: impl Into<String>) -> tidings_status {
    let mut message = message.into();
    message.retain(|c| c != '\0');
    let message = CString::new(message).unwrap_or_default();
    LAST_ERROR.with(|last| *last.borrow_mut() = message);
    status
}

/// Records a core error and returns its status.
pub(crate) fn fail_with(err: tidings::Error) -> tidings_status {
    fail(tidings_status::from(&err), err.to_string())
}

/// Runs `f` with the last error's text.
pub(crate) fn with_last_error<R>(f: impl FnOnce(&CStr) -> R) -> R {
    LAST_ERROR.with(|last| f(&last.borrow()))
}

/// Runs `body`, turning a panic into `on_panic` (with the panic recorded as
/// the last error): unwinding into C is undefined behaviour.
pub(crate) fn guard<R>(on_panic: R, body: impl FnOnce() -> R) -> R {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(result) => result,
        Err(panic) => {
            let detail = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            fail(
                tidings_status::TIDINGS_ERR_PANIC,
                format!("internal error (a bug in tidings, please report it): {detail}"),
            );
            on_panic
        }
    }
}

/// Borrows a required pointer argument, or returns NULL_ARGUMENT naming it.
///
/// # Safety
/// The expansion dereferences `$ptr` unchecked: use it only on a pointer
/// parameter of an `extern "C"` function whose contract (tidings.h) makes a
/// non-NULL value point to a live, aligned object not mutated during the call
/// (a handle not yet freed, or a caller-owned struct), and keep the borrow
/// within that call.
macro_rules! arg_ref {
    ($ptr:expr, $name:literal) => {
        // SAFETY: every invocation passes a pointer parameter of a `#[no_mangle]`
        // function and keeps the borrow inside that call. NULL becomes `None`
        // (handled below); a non-NULL value is, by the caller's contract in
        // tidings.h, a handle not yet freed (a `tidings_request` only during its
        // `on_open`) or a caller-owned `tidings_event` read only during the call:
        // aligned, initialized, and not mutated while borrowed (handles change
        // only through thread-safe interior mutability).
        match unsafe { $ptr.as_ref() } {
            Some(value) => value,
            None => {
                return $crate::boundary::fail(
                    $crate::status::tidings_status::TIDINGS_ERR_NULL_ARGUMENT,
                    concat!("`", $name, "` must not be NULL"),
                )
            }
        }
    };
}

/// Reads a required NUL-terminated UTF-8 string argument.
///
/// # Safety
/// As for `optional_str`: `$ptr` is NULL or a NUL-terminated string that
/// stays valid and unmodified while the returned `&str` is used.
macro_rules! arg_str {
    ($ptr:expr, $name:literal) => {
        // SAFETY: every invocation passes a `*const c_char` parameter of a
        // `#[no_mangle]` function, which tidings.h makes NULL (the `Ok(None)`
        // arm below) or a NUL-terminated string the caller keeps valid for the
        // call; the `&str` is only used (and copied) within that call.
        match unsafe { $crate::boundary::optional_str($ptr, $name) } {
            Ok(Some(text)) => text,
            Ok(None) => {
                return $crate::boundary::fail(
                    $crate::status::tidings_status::TIDINGS_ERR_NULL_ARGUMENT,
                    concat!("`", $name, "` must not be NULL"),
                )
            }
            Err(status) => return status,
        }
    };
}

pub(crate) use {arg_ref, arg_str};

/// Reads an optional NUL-terminated UTF-8 string: NULL is `None`.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that stays valid and
/// unmodified for `'a`. `'a` is unbounded: callers must use the result only
/// during the current FFI call (every caller copies what it keeps).
pub(crate) unsafe fn optional_str<'a>(
    ptr: *const c_char,
    name: &str,
) -> Result<Option<&'a str>, tidings_status> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: `ptr` is non-NULL (checked just above) and, by this function's
    // contract, points to a NUL-terminated string valid and unmodified for `'a`.
    let text = unsafe { CStr::from_ptr(ptr) };
    text.to_str().map(Some).map_err(|err| {
        fail(
            tidings_status::TIDINGS_ERR_INVALID_UTF8,
            format!("`{name}` is not valid UTF-8: {err}"),
        )
    })
}

/// The host's `user_data`: the host promises it may be used from any thread.
#[derive(Clone, Copy)]
pub(crate) struct UserData(pub(crate) *mut c_void);
// SAFETY: ffi never dereferences the pointer; it only hands it back to the
// host's callbacks on engine threads, and every function that takes one
// (tidings_server_stream, tidings_server_route, the presence hooks) says
// `user_data` must be safe to use from several threads, so sending it is sound.
unsafe impl Send for UserData {}
// SAFETY: a shared `&UserData` only lets threads copy the pointer out and pass it
// to the callbacks concurrently, which the same contract explicitly allows.
unsafe impl Sync for UserData {}

/// Copies `bytes` and a NUL into `buffer` if they fit; sets `*length` either
/// way. Records no error (the caller decides).
///
/// # Safety
/// `length` is non-NULL, aligned and writable. `buffer` is NULL (then nothing
/// is written to it, whatever `capacity`) or writable for `capacity` bytes, and
/// it does not overlap `bytes`.
pub(crate) unsafe fn copy_out(
    bytes: &[u8],
    buffer: *mut c_char,
    capacity: usize,
    length: *mut usize,
) -> tidings_status {
    // SAFETY: this function's contract makes `length` non-NULL, aligned and
    // writable (both callers check it for NULL first).
    unsafe { *length = bytes.len() };
    if buffer.is_null() || capacity < bytes.len() + 1 {
        return tidings_status::TIDINGS_ERR_BUFFER_TOO_SMALL;
    }
    // SAFETY: `buffer` is non-NULL and `capacity >= bytes.len() + 1` (checked
    // just above), and the contract makes it writable for `capacity` bytes, so
    // the copy and the NUL at `bytes.len()` stay in bounds; `u8` and `c_char`
    // have the same size and alignment 1, and the contract rules out overlap.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), buffer.cast::<u8>(), bytes.len());
        *buffer.add(bytes.len()) = 0;
    }
    tidings_status::TIDINGS_OK
}

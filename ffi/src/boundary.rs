//! The boundary every `extern "C"` function goes through: panics are caught
//! and turned into a status, NULL and invalid UTF-8 are checked before any
//! use, and the reason for a failure is kept for `tidings_last_error`.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};

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
macro_rules! arg_ref {
    ($ptr:expr, $name:literal) => {
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
macro_rules! arg_str {
    ($ptr:expr, $name:literal) => {
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
/// `ptr` is NULL or points to a NUL-terminated string.
pub(crate) unsafe fn optional_str<'a>(
    ptr: *const c_char,
    name: &str,
) -> Result<Option<&'a str>, tidings_status> {
    if ptr.is_null() {
        return Ok(None);
    }
    let text = unsafe { CStr::from_ptr(ptr) };
    text.to_str().map(Some).map_err(|err| {
        fail(
            tidings_status::TIDINGS_ERR_INVALID_UTF8,
            format!("`{name}` is not valid UTF-8: {err}"),
        )
    })
}

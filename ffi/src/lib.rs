//! The C ABI of tidings (`libtidings`, `include/tidings.h`).
//!
//! Translation only: C strings and structs to core types, core errors to
//! status codes. Every function runs inside the panic boundary of
//! [`boundary`], checks pointers before using them, and writes outputs only on
//! success. The header is generated from these doc comments by cbindgen.
#![allow(clippy::missing_safety_doc)] // each function's contract is its doc, in the header

mod boundary;
mod channel;
mod config;
mod event;
mod reply;
mod request;
mod server;
mod status;
mod stream;

use std::ffi::c_char;

pub use channel::*;
pub use config::*;
pub use event::*;
pub use reply::*;
pub use request::*;
pub use server::*;
pub use status::*;
pub use stream::*;

/// The library's version, e.g. "0.1.0" (compare with TIDINGS_VERSION).
/// Static; never free it.
#[no_mangle]
pub extern "C" fn tidings_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// The message of the most recent failure on the calling thread ("" if
/// none). Valid until the next tidings call on this thread; never free it.
#[no_mangle]
pub extern "C" fn tidings_last_error() -> *const c_char {
    // The thread-local outlives this call; the pointer stays valid until the
    // next failure on this thread replaces the message.
    boundary::with_last_error(|message| message.as_ptr())
}

/// Copies the most recent failure's message on this thread into `buffer`
/// (NUL-terminated) and its length without the NUL into `*length`. Returns
/// TIDINGS_ERR_BUFFER_TOO_SMALL (with `*length` set to what is needed) if it
/// does not fit.
#[no_mangle]
pub unsafe extern "C" fn tidings_last_error_copy(
    buffer: *mut c_char,
    capacity: usize,
    length: *mut usize,
) -> tidings_status {
    boundary::guard(tidings_status::TIDINGS_ERR_PANIC, || {
        if length.is_null() {
            return tidings_status::TIDINGS_ERR_NULL_ARGUMENT;
        }
        let message = boundary::with_last_error(|message| message.to_bytes().to_vec());
        // SAFETY: `length` was checked non-NULL above and the caller passes it
        // aligned and writable (tidings.h: the length goes into `*length`);
        // `buffer` is NULL (then `copy_out` never writes to it) or, as `capacity`
        // promises, writable for `capacity` bytes; it cannot overlap `message`,
        // a Vec allocated just above.
        unsafe { boundary::copy_out(&message, buffer, capacity, length) }
    })
}

//! The native half of the `tidings` npm package: JS values to core types and
//! back, core errors to JS errors with stable codes, and engine callbacks to
//! the JS thread through threadsafe functions. Every behaviour is in the core.
//!
//! The files mirror the Python binding's and the C ABI's (see
//! docs/architecture.md, "Bindings").

use napi_derive::napi;

mod channel;
mod convert;
mod dispatch;
mod errors;
mod reply;
mod request;
mod server;
mod stream;

/// The version of the native module.
#[napi]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}

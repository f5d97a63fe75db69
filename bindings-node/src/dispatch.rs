//! Engine callbacks to the JS thread, through threadsafe functions.
//!
//! Every threadsafe function is weak (it never keeps the process alive: the
//! JS layer holds a handle while the server runs), and JS callbacks are
//! wrapped by the JS layer so that none can throw into a threadsafe call,
//! which would be fatal to the process.

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, UnknownReturnValue};

use crate::errors::{napi_error, Code};

/// A JS callback the engine may call from any thread, weakly held.
pub(crate) type Callback<T, Args> =
    ThreadsafeFunction<T, UnknownReturnValue, Args, Status, false, true>;

/// `callback` made callable from engine threads: the value an engine thread
/// passes becomes the JS arguments `to_js(value)` on the JS thread.
pub(crate) fn engine_callback<T, Args>(
    callback: &Function<'_, Args, UnknownReturnValue>,
    mut to_js: impl FnMut(T) -> Args + 'static,
) -> Result<Callback<T, Args>, Code>
where
    T: 'static,
    Args: JsValuesTupleIntoVec + 'static,
{
    callback
        .build_threadsafe_function::<T>()
        .callee_handled::<false>()
        .weak::<true>()
        .build_callback(move |ctx| Ok(to_js(ctx.value)))
        .map_err(napi_error)
}

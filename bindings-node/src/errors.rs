//! Core errors as JS errors, each with a stable `code`
//! (`ERR_TIDINGS_<CORE CODE>`) the JS layer and users can match on.

use napi::bindgen_prelude::*;

/// A JS error code such as `ERR_TIDINGS_INVALID_EVENT`.
pub struct Code(String);

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<Status> for Code {
    fn from(status: Status) -> Self {
        Code(status.as_ref().to_owned())
    }
}

pub(crate) fn js_error(err: tidings::Error) -> Error<Code> {
    Error::new(Code(format!("ERR_TIDINGS_{}", err.code())), err.to_string())
}

pub(crate) fn config_error(message: String) -> Error<Code> {
    Error::new(Code("ERR_TIDINGS_INVALID_CONFIG".into()), message)
}

pub(crate) fn napi_error(err: Error) -> Error<Code> {
    Error::new(Code(err.status.as_ref().to_owned()), err.reason.clone())
}

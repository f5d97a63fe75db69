//! Core errors as Python exceptions. The exception classes are defined in
//! `tidings/_errors.py` so that they can subclass both `TidingsError` and the
//! matching built-in (`ValueError`, `RuntimeError`, `ConnectionError`).

use pyo3::exceptions::{PyOSError, PyRuntimeError};
use pyo3::prelude::*;

pyo3::import_exception!(tidings._errors, InvalidEventError);
pyo3::import_exception!(tidings._errors, ConfigError);
pyo3::import_exception!(tidings._errors, ServerStateError);
pyo3::import_exception!(tidings._errors, ServerStoppedError);
pyo3::import_exception!(tidings._errors, ClientDisconnected);
pyo3::import_exception!(tidings._errors, BrokerError);

/// Converts a core error into the Python exception a user would expect.
pub(crate) fn to_py(err: tidings::Error) -> PyErr {
    use tidings::Error as E;
    let message = err.to_string();
    match err {
        E::InvalidEvent { .. } => InvalidEventError::new_err(message),
        E::InvalidConfig(_)
        | E::InvalidPath { .. }
        | E::RouteExists(_)
        | E::InvalidStatus(_)
        | E::InvalidContentType(_)
        | E::InvalidHeader(_) => ConfigError::new_err(message),
        E::File { path, source } => {
            let errno = source.raw_os_error().unwrap_or(0);
            PyOSError::new_err((errno, message, path.display().to_string()))
        }
        E::Bind { source, .. } | E::Runtime(source) => {
            PyOSError::new_err((source.raw_os_error().unwrap_or(0), message))
        }
        E::AlreadyRunning(_)
        | E::AlreadyAccepted
        | E::AlreadyAnswered
        | E::ResponseStarted
        | E::ResponseNotStarted
        | E::AlreadyMounted => ServerStateError::new_err(message),
        E::Stopped => ServerStoppedError::new_err(message),
        E::ChannelFull => ServerStateError::new_err(message),
        E::Disconnected => ClientDisconnected::new_err(message),
        E::BrokerUnavailable { .. } | E::BrokerRefused(_) | E::TimedOut => {
            BrokerError::new_err(message)
        }
        _ => PyRuntimeError::new_err(message),
    }
}

/// `?`-friendly conversion for core results.
pub(crate) trait IntoPyResult<T> {
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for Result<T, tidings::Error> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

//! `tidings._tidings`: the native half of the Python package. It converts
//! Python values to the core's types and back, maps errors, and bridges the
//! engine's threads to the interpreter; every behaviour lives in the core.

use pyo3::prelude::*;

mod app;
mod channel;
mod convert;
mod dispatch;
mod errors;
mod listen;
mod logging;
mod reply;
mod request;
mod server;
mod stream;
mod wakeup;

#[pymodule]
fn _tidings(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<server::Server>()?;
    m.add_class::<channel::Channel>()?;
    m.add_class::<convert::Event>()?;
    m.add_class::<request::Request>()?;
    m.add_class::<stream::StreamSink>()?;
    m.add_class::<reply::Reply>()?;
    m.add_class::<reply::Verdict>()?;
    m.add_class::<app::AppBridge>()?;
    m.add_class::<app::Exchange>()?;
    m.add_class::<app::ScopeConfig>()?;
    m.add_class::<app::AppStream>()?;
    m.add_class::<listen::Listener>()?;
    m.add_function(wrap_pyfunction!(logging::install_log_bridge, m)?)?;
    Ok(())
}

//! The engine's `tracing` events, forwarded to Python's `logging` (logger
//! `tidings`). Only levels the logger has enabled cross the boundary; the
//! level is read when the bridge is installed and on every `start()`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, Ordering};

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use tracing::field::{Field, Visit};
use tracing::{Level, Metadata, Subscriber};
use tracing_core::subscriber::Interest;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

/// The most verbose level forwarded: 0 none, 1 error … 5 trace.
static VERBOSITY: AtomicU8 = AtomicU8::new(2);

fn verbosity(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 1,
        Level::WARN => 2,
        Level::INFO => 3,
        Level::DEBUG => 4,
        Level::TRACE => 5,
    }
}

fn logger(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    LOGGER
        .get_or_try_init(py, || -> PyResult<_> {
            Ok(py
                .import("logging")?
                .call_method1("getLogger", ("tidings",))?
                .unbind())
        })
        .map(|logger| logger.bind(py))
}

/// Reads the `tidings` logger's effective level.
pub(crate) fn refresh_level(py: Python<'_>) {
    let Ok(level) = logger(py).and_then(|l| l.call_method0("getEffectiveLevel")?.extract::<u32>())
    else {
        return;
    };
    let verbosity = match level {
        0..=5 => 5,
        6..=10 => 4,
        11..=20 => 3,
        21..=30 => 2,
        _ => 1,
    };
    VERBOSITY.store(verbosity, Ordering::Relaxed);
}

/// Installs the bridge as the process's tracing subscriber, unless one is
/// already set (an embedding Rust program keeps its own).
#[pyfunction]
pub(crate) fn install_log_bridge(py: Python<'_>) {
    refresh_level(py);
    let _ = tracing_subscriber::registry()
        .with(PythonLogging)
        .try_init();
}

struct PythonLogging;

impl<S: Subscriber> Layer<S> for PythonLogging {
    fn register_callsite(&self, _metadata: &'static Metadata<'static>) -> Interest {
        // Decided per event, since the Python level may change.
        Interest::sometimes()
    }

    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        verbosity(metadata.level()) <= VERBOSITY.load(Ordering::Relaxed)
    }

    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let mut text = Message::default();
        event.record(&mut text);
        let level = match *event.metadata().level() {
            Level::ERROR => 40,
            Level::WARN => 30,
            Level::INFO => 20,
            _ => 10,
        };
        Python::attach(|py| {
            if let Ok(logger) = logger(py) {
                let _ = logger.call_method1("log", (level, text.0));
            }
        });
    }
}

/// "message key=value …", in the order the fields were recorded.
#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, "{}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }
}

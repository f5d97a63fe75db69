//! Python values to core events: `str` as is, `bytes` as UTF-8, `dict` and
//! `list` as compact JSON, and `tidings.Event` objects.

use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use crate::errors::IntoPyResult;

/// A server-sent event, validated when created.
///
/// `data` may be `str`, UTF-8 `bytes`, or a `dict`/`list` (sent as compact
/// JSON); `retry` is in milliseconds. A bad field raises `InvalidEventError`
/// (a `ValueError`) naming it.
#[pyclass(module = "tidings._tidings", frozen, eq)]
#[derive(Clone, PartialEq)]
pub(crate) struct Event {
    pub(crate) inner: tidings::Event,
}

#[pymethods]
impl Event {
    #[new]
    #[pyo3(signature = (data=None, *, event=None, id=None, retry=None, comment=None))]
    fn new(
        data: Option<&Bound<'_, PyAny>>,
        event: Option<String>,
        id: Option<String>,
        retry: Option<&Bound<'_, PyAny>>,
        comment: Option<String>,
    ) -> PyResult<Self> {
        Ok(Event {
            inner: build(data, event, id, retry, comment)?,
        })
    }

    /// The data as sent (JSON for a dict or list), or None.
    #[getter]
    fn data(&self) -> Option<&str> {
        self.inner.data_str()
    }

    /// The event type, or None.
    #[getter]
    fn event(&self) -> Option<&str> {
        self.inner.event_name()
    }

    /// The id, or None.
    #[getter]
    fn id(&self) -> Option<&str> {
        self.inner.id_str()
    }

    /// The reconnection delay in milliseconds, or None.
    #[getter]
    fn retry(&self) -> Option<u64> {
        self.inner.retry_ms()
    }

    /// The comment, or None.
    #[getter]
    fn comment(&self) -> Option<&str> {
        self.inner.comment_str()
    }

    /// The event in its wire form.
    fn encode<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.encode())
    }

    fn __repr__(&self) -> String {
        let mut parts = Vec::new();
        if let Some(data) = self.inner.data_str() {
            parts.push(format!("data={data:?}"));
        }
        for (name, value) in [
            ("event", self.inner.event_name()),
            ("id", self.inner.id_str()),
            ("comment", self.inner.comment_str()),
        ] {
            if let Some(value) = value {
                parts.push(format!("{name}={value:?}"));
            }
        }
        if let Some(retry) = self.inner.retry_ms() {
            parts.push(format!("retry={retry}"));
        }
        format!("Event({})", parts.join(", "))
    }
}

/// Builds a core event from publish-style arguments.
pub(crate) fn build(
    data: Option<&Bound<'_, PyAny>>,
    event: Option<String>,
    id: Option<String>,
    retry: Option<&Bound<'_, PyAny>>,
    comment: Option<String>,
) -> PyResult<tidings::Event> {
    let mut built = match data {
        Some(data) if !data.is_none() => tidings::Event::data(data_text(data)?),
        _ => tidings::Event::default(),
    };
    if let Some(name) = event {
        built = built.event(name).py_err()?;
    }
    if let Some(id) = id {
        built = built.id(id).py_err()?;
    }
    if let Some(retry) = retry.filter(|r| !r.is_none()) {
        built = built.retry(Duration::from_millis(retry_ms(retry)?));
    }
    if let Some(comment) = comment {
        built = built.comment(comment);
    }
    Ok(built)
}

/// Converts one item a stream produced: an `Event`, a `str`/`bytes` of
/// data, or a dict of event fields (`data`, `event`, `id`, `retry`,
/// `comment`) as sse-starlette accepts.
pub(crate) fn stream_item(item: &Bound<'_, PyAny>) -> PyResult<tidings::Event> {
    if let Ok(event) = item.cast::<Event>() {
        return Ok(event.get().inner.clone());
    }
    if let Ok(fields) = item.cast::<PyDict>() {
        const FIELDS: [&str; 5] = ["data", "event", "id", "retry", "comment"];
        for key in fields.keys() {
            let known = key
                .cast::<PyString>()
                .is_ok_and(|k| k.to_cow().is_ok_and(|k| FIELDS.contains(&k.as_ref())));
            if !known {
                return Err(PyTypeError::new_err(format!(
                    "a dict yielded by a stream holds event fields ({}), not {}; \
                     to send JSON, yield {{\"data\": {{...}}}}",
                    FIELDS.join(", "),
                    key.repr()?
                )));
            }
        }
        let text = |name: &str| -> PyResult<Option<String>> {
            match fields.get_item(name)? {
                Some(value) if !value.is_none() => Ok(Some(field_text(name, &value)?)),
                _ => Ok(None),
            }
        };
        let data = fields.get_item("data")?;
        let retry = fields.get_item("retry")?;
        return build(
            data.as_ref(),
            text("event")?,
            text("id")?,
            retry.as_ref(),
            text("comment")?,
        );
    }
    if item.is_instance_of::<PyString>() || item.is_instance_of::<PyBytes>() {
        return Ok(tidings::Event::data(data_text(item)?));
    }
    Err(PyTypeError::new_err(format!(
        "a stream can yield str, bytes, dict or tidings.Event, not {}",
        item.get_type().name()?
    )))
}

fn field_text(name: &str, value: &Bound<'_, PyAny>) -> PyResult<String> {
    value.extract::<String>().map_err(|_| {
        PyTypeError::new_err(format!(
            "event field `{name}` must be str, not {}",
            type_name(value)
        ))
    })
}

/// Event data from a host value.
pub(crate) fn data_text(data: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(text) = data.cast::<PyString>() {
        return Ok(text.to_cow()?.into_owned());
    }
    if let Ok(bytes) = data.cast::<PyBytes>() {
        return std::str::from_utf8(bytes.as_bytes())
            .map(str::to_owned)
            .map_err(|err| {
                PyValueError::new_err(format!("event data bytes are not valid UTF-8: {err}"))
            });
    }
    if data.is_instance_of::<PyDict>()
        || data.is_instance_of::<PyList>()
        || data.is_instance_of::<PyTuple>()
    {
        return compact_json(data);
    }
    Err(PyTypeError::new_err(format!(
        "event data must be str, bytes, dict or list, not {}",
        type_name(data)
    )))
}

fn compact_json(value: &Bound<'_, PyAny>) -> PyResult<String> {
    static DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let py = value.py();
    let dumps = DUMPS.get_or_try_init(py, || -> PyResult<_> {
        Ok(py.import("json")?.getattr("dumps")?.unbind())
    })?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("separators", (",", ":"))?;
    kwargs.set_item("ensure_ascii", false)?;
    dumps.bind(py).call((value,), Some(&kwargs))?.extract()
}

fn retry_ms(retry: &Bound<'_, PyAny>) -> PyResult<u64> {
    if retry.is_instance_of::<pyo3::types::PyBool>() {
        return Err(PyTypeError::new_err(
            "retry must be an int of milliseconds, not bool",
        ));
    }
    let value: i64 = retry.extract().map_err(|_| {
        PyTypeError::new_err(format!(
            "retry must be an int of milliseconds, not {}",
            type_name(retry)
        ))
    })?;
    u64::try_from(value).map_err(|_| PyValueError::new_err("retry must not be negative"))
}

fn type_name(value: &Bound<'_, PyAny>) -> String {
    value
        .get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |name| name.to_string())
}

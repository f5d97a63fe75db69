//! A wake-up an asyncio loop can watch. Any thread writes one byte to one
//! end of a socket pair (never blocking, never needing the interpreter);
//! the loop watches the other end (`loop.add_reader`) and clears it before
//! it looks at what woke it, so that a wake-up after the look is never lost.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;

pub(crate) struct Wakeup {
    signal: UnixStream,
    watched: UnixStream,
}

impl Wakeup {
    pub(crate) fn new() -> PyResult<Self> {
        let os_error = |err: std::io::Error| PyOSError::new_err(err.to_string());
        let (signal, watched) = UnixStream::pair().map_err(os_error)?;
        signal.set_nonblocking(true).map_err(os_error)?;
        watched.set_nonblocking(true).map_err(os_error)?;
        Ok(Wakeup { signal, watched })
    }

    /// Makes the watched end readable.
    pub(crate) fn wake(&self) {
        // A full buffer means a wake-up is pending already.
        let _ = (&self.signal).write(&[1]);
    }

    /// Reads away every pending wake-up.
    pub(crate) fn clear(&self) {
        let mut sink = [0u8; 256];
        while matches!((&self.watched).read(&mut sink), Ok(n) if n > 0) {}
    }

    /// The end for the loop to watch.
    pub(crate) fn fileno(&self) -> i32 {
        self.watched.as_raw_fd()
    }
}

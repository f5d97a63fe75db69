//! The one error type of the crate.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything that can go wrong in tidings. Messages name the offending value
/// and, where there is one, the fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An event field holds a character that would break the SSE framing.
    #[error("invalid event field `{field}`: {reason}")]
    InvalidEvent {
        /// The field: `event` or `id`.
        field: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),

    /// A route path is not an absolute URL path.
    #[error("invalid route path {path:?}: {reason}")]
    InvalidPath {
        /// The path given.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A route is already registered at this path.
    #[error("a route is already registered at {0:?}")]
    RouteExists(String),

    /// A file or directory given to `page` or `files` cannot be used.
    #[error("cannot serve {path:?}: {source}")]
    File {
        /// The path given.
        path: PathBuf,
        /// Why it cannot be served.
        #[source]
        source: io::Error,
    },

    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The operating system's reason (e.g. address in use).
        #[source]
        source: io::Error,
    },

    /// The engine's runtime or threads could not be created.
    #[error("cannot start the engine: {0}")]
    Runtime(#[source] io::Error),

    /// `start` was called on a server that is running.
    #[error("the server is already running on {0}")]
    AlreadyRunning(SocketAddr),

    /// The server was stopped; a stopped server cannot be started again, and
    /// its channels accept no more events.
    #[error("the server has been stopped")]
    Stopped,

    /// The client of a stream has gone away (or the stream was closed), so
    /// nothing more can be sent to it.
    #[error("the client has disconnected")]
    Disconnected,

    /// A stream's send queue is full; wait (`send().await`) or retry later.
    #[error("the stream's send queue is full")]
    QueueFull,

    /// `reject` was called on a stream that was already accepted (by
    /// `accept` or a send).
    #[error("the stream was already accepted; reject it before sending anything")]
    AlreadyAccepted,

    /// A route's reply was already sent; a request is answered once.
    #[error("this request was already answered")]
    AlreadyAnswered,

    /// An HTTP status outside the range allowed for the call.
    #[error("invalid HTTP status {0} for this response")]
    InvalidStatus(u16),

    /// A response header's name or value is not valid HTTP.
    #[error("invalid response header {0:?}")]
    InvalidHeader(String),

    /// A response body was sent before the response's status and headers.
    #[error("the response has not started: send its status and headers first")]
    ResponseNotStarted,

    /// The status and headers were already sent, or the response was
    /// already handed to a channel or a stream.
    #[error("the response has already started")]
    ResponseStarted,

    /// The channel already has its `max_subscribers`.
    #[error("the channel is full: it has its max_subscribers")]
    ChannelFull,

    /// [`Server::mount`](crate::Server::mount) was called twice.
    #[error("an application is already mounted on this server")]
    AlreadyMounted,

    /// A reply's content type is not a valid header value.
    #[error("invalid content type {0:?}")]
    InvalidContentType(String),

    /// A blocking call was made on an async runtime's thread, where it would
    /// stall other tasks.
    #[error("blocking call made from an async context; use the async form (`send().await`)")]
    BlockingInAsync,

    /// The broker cannot take the event: it has been unreachable long
    /// enough to fill its publish queue (`Config::broker_queue`).
    #[error("the broker at {broker} is unreachable and {queued} events wait for it; publish again once it is back")]
    BrokerUnavailable {
        /// The broker's address, without credentials.
        broker: String,
        /// Events waiting in the queue.
        queued: usize,
    },

    /// A wait for a confirmation ended before the answer came; what was
    /// waited for may still happen.
    #[error("timed out waiting for the broker to confirm the event; it stays queued and may still be delivered")]
    TimedOut,

    /// The broker refused an event (a Redis error reply such as `OOM`).
    #[error("the broker refused the event: {0}")]
    BrokerRefused(String),
}

impl Error {
    /// A stable, machine-readable name of the kind of error, e.g.
    /// `"INVALID_EVENT"`; bindings build their error codes from it.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidEvent { .. } => "INVALID_EVENT",
            Error::InvalidConfig(_) => "INVALID_CONFIG",
            Error::InvalidPath { .. } => "INVALID_PATH",
            Error::RouteExists(_) => "ROUTE_EXISTS",
            Error::File { .. } => "FILE",
            Error::Bind { .. } => "BIND",
            Error::Runtime(_) => "RUNTIME",
            Error::AlreadyRunning(_) => "ALREADY_RUNNING",
            Error::Stopped => "STOPPED",
            Error::Disconnected => "DISCONNECTED",
            Error::QueueFull => "QUEUE_FULL",
            Error::AlreadyAccepted => "ALREADY_ACCEPTED",
            Error::AlreadyAnswered => "ALREADY_ANSWERED",
            Error::InvalidStatus(_) => "INVALID_STATUS",
            Error::InvalidContentType(_) => "INVALID_CONTENT_TYPE",
            Error::InvalidHeader(_) => "INVALID_HEADER",
            Error::ResponseNotStarted => "RESPONSE_NOT_STARTED",
            Error::ResponseStarted => "RESPONSE_STARTED",
            Error::AlreadyMounted => "ALREADY_MOUNTED",
            Error::ChannelFull => "CHANNEL_FULL",
            Error::BlockingInAsync => "WOULD_BLOCK",
            Error::BrokerUnavailable { .. } => "BROKER_UNAVAILABLE",
            Error::BrokerRefused(_) => "BROKER_REFUSED",
            Error::TimedOut => "TIMED_OUT",
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

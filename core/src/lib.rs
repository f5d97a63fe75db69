//! # tidings
//!
//! An embeddable Server-Sent Events engine. A [`Server`] runs hyper on its own
//! tokio runtime and threads; the host registers routes and pushes events:
//!
//! - **channels** ([`Server::channel`]): broadcast. Each [`Channel::publish`]
//!   encodes the event once and every subscriber writes the same bytes. The
//!   channel keeps a history, so a client that reconnects with
//!   `Last-Event-ID` gets what it missed, then live events, with no gap and
//!   no duplicate.
//! - **streams** ([`Server::stream`], [`Server::stream_handler`]): one
//!   producer per client connection, cancelled the moment the client leaves.
//! - **pages and files** ([`Server::page`], [`Server::files`]) for the front
//!   end, and **routes** ([`Server::route`]) whose response the host computes.
//!
//! Keep-alive comments, dead-client detection, slow-consumer eviction,
//! connection limits, CORS and a draining shutdown are handled by the engine.
//! See [`Server`] for a complete example.

#![warn(missing_docs)]

// Layers, lowest first; a module imports only from the layers below it.
// Leaves:
mod answer;
mod batch;
mod broker;
mod config;
mod error;
mod event;
mod frame;
mod request;
mod shutdown;
mod stats;
mod tls;
mod topic;
mod verdict;
// Who may subscribe (tokens read from requests, by the config's rules):
mod auth;
// Delivery (produces frames, knows no HTTP):
mod channel;
mod reply;
mod stream;
// The Mercure hub: topics and tokens decide what a channel of updates
// delivers to whom:
mod hub;
// In-process subscribers of channels, and the broker that fills channels
// from other servers:
mod cluster;
mod listener;
// The exchange with a mounted application hands connections to channels and
// streams, so it sits above them:
mod app;
// Responses:
mod body;
mod metrics;
mod routes;
// Connections:
mod direct;
mod files;
mod head;
mod http;
mod multiplex;
mod socket;
// The accept loop, then the public lifecycle:
mod conn;
mod server;
// Entry points for the fuzz targets, above everything they reach.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

pub use app::{AppHandler, BodyRead, Exchange, WRITE_HIGH_WATER};
pub use batch::{after_ready_tasks, hold_wakes, release_wakes};
pub use channel::{Channel, ChannelOptions, PresenceHook, Published};
pub use config::{
    duration_from_secs, Config, Cors, HubConfig, JwtConfig, JwtKey, Limits, MAX_DURATION,
};
pub use error::{Error, Result};
pub use event::{Event, EventId};
pub use listener::{Listener, Received};
pub use reply::{Reply, RouteHandler};
pub use request::Request;
pub use server::{Server, StartOptions};
pub use stats::{BrokerStats, ChannelStats, Stats};
pub use stream::{StreamHandler, StreamSender};
pub use verdict::{AuthorizeHook, Verdict};

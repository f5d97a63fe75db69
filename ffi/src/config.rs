//! Configuration structs and their defaults.
#![allow(non_camel_case_types)]

use std::ffi::c_char;
use std::time::Duration;

use crate::boundary::{fail, fail_with, optional_str};
use crate::status::tidings_status;

/// Which cross-origin pages may read the server's responses.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum tidings_cors {
    /// No CORS headers: only same-origin pages can read responses.
    TIDINGS_CORS_DISABLED = 0,
    /// `Access-Control-Allow-Origin: *`.
    TIDINGS_CORS_ANY_ORIGIN = 1,
    /// Only the origins listed in `cors_origins`.
    TIDINGS_CORS_ORIGINS = 2,
}

/// Server configuration. Start from `tidings_config_default()` and change
/// what you need. Durations are in milliseconds.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct tidings_config {
    /// Address to listen on; NULL means "127.0.0.1". Read during
    /// `tidings_server_new` only.
    pub host: *const c_char,
    /// Port to listen on; 0 picks a free one (see `tidings_server_start`).
    pub port: u16,
    /// Engine threads; 0 means one per CPU core.
    pub worker_threads: u32,
    /// Cross-origin policy: a `tidings_cors` value (a plain integer here so
    /// that an out-of-range value is an error, not undefined behaviour).
    pub cors: u32,
    /// With `TIDINGS_CORS_ORIGINS`: `cors_origins_len` origin strings
    /// (e.g. "https://app.example"). Read during `tidings_server_new` only.
    pub cors_origins: *const *const c_char,
    /// Number of entries in `cors_origins`.
    pub cors_origins_len: usize,
    /// A comment is sent on streams idle this long; 0 disables. Default 15000.
    pub keepalive_ms: u32,
    /// A write that cannot complete this long closes the connection. Default 30000.
    pub write_timeout_ms: u32,
    /// TCP keep-alive probes after this much silence; 0 disables. Default 60000.
    pub tcp_keepalive_ms: u32,
    /// How long `tidings_server_stop` lets streams finish. Default 5000.
    pub drain_timeout_ms: u32,
    /// Events queued per stream before `tidings_stream_send` waits. Default 32.
    pub stream_queue: u32,
    /// Most open connections (429 beyond); 0 means no limit.
    pub max_connections: u32,
    /// Most open connections per client IP (429 beyond); 0 means no limit.
    pub max_connections_per_ip: u32,
    /// Largest request head in bytes (431 beyond); at least 8192. Default 16384.
    pub max_head_bytes: u32,
    /// Time a client has to finish its TLS handshake, then to send its
    /// request head. Default 10000.
    pub head_timeout_ms: u32,
    /// Let other sockets listen on the same host and port (SO_REUSEPORT):
    /// several processes started so share the port, the kernel spreading
    /// connections among them; each keeps its own channels unless they
    /// share a `broker`. Default false.
    pub reuse_port: bool,
    /// A Redis URL (`redis://[:password@]host[:port][/db]`, or `rediss://`
    /// for Redis over TLS) joining this server's channels with every server
    /// on it: a publish on any reaches the subscribers of all, in one order,
    /// and a client resumes on any. NULL (the default) keeps channels in
    /// this process. Read during `tidings_server_new` only.
    pub broker: *const c_char,
    /// Most publishes waiting for the broker; beyond it publishing fails
    /// with TIDINGS_ERR_BROKER_UNAVAILABLE. Default 10000.
    pub broker_queue: u32,
    /// Path of a PEM file of the certificate authorities a `rediss://`
    /// broker's certificate must chain to; NULL (the default): the system's.
    /// Read during `tidings_server_new` only.
    pub broker_ca: *const c_char,
    /// Path of a PEM file with the server's certificate chain (its own
    /// certificate first): with `tls_key`, the server speaks HTTPS only.
    /// NULL (the default): plain HTTP. The string is read during
    /// `tidings_server_new` only; `tidings_server_reload_tls` reads the file
    /// it names again.
    pub tls_cert: *const c_char,
    /// Path of a PEM file with the private key of `tls_cert`. Default NULL.
    pub tls_key: *const c_char,
    /// Whether clients may speak HTTP/2 (over TLS via ALPN, over plain TCP
    /// by prior knowledge). Default true.
    pub http2: bool,
    /// Most HTTP/2 streams open at once on one connection (a browser puts
    /// every EventSource of an origin on one). 1 to 10000. Default 100.
    pub max_streams_per_connection: u32,
    /// A path that serves the server's metrics in the Prometheus text
    /// format (OpenMetrics to a scraper that asks for it), e.g. "/metrics".
    /// Open to every client that reaches the port. NULL (the default): no
    /// metrics route. Read during `tidings_server_new` only.
    pub metrics_path: *const c_char,
    /// Tokens for private channels (`tidings_channel_options.private_channel`),
    /// from exactly one key: `jwt_secret` (an HMAC secret: its UTF-8 bytes),
    /// `jwt_key_file` (a PEM public key) or `jwt_jwks_file` (a JSON Web Key
    /// Set). All NULL (the default): no channel may be private. The strings
    /// below are read during `tidings_server_new` only.
    pub jwt_secret: *const c_char,
    /// See `jwt_secret`.
    pub jwt_key_file: *const c_char,
    /// See `jwt_secret`.
    pub jwt_jwks_file: *const c_char,
    /// The one algorithm accepted ("HS256", "RS256", "ES256", ...); NULL
    /// means "HS256".
    pub jwt_algorithm: *const c_char,
    /// Clock skew allowed on `exp` and `nbf`, at most 300000. Default 5000.
    pub jwt_leeway_ms: u32,
    /// The cookie that may carry the token; NULL means "tidings_token", ""
    /// reads none.
    pub jwt_cookie: *const c_char,
    /// The query parameter that may carry the token; NULL means
    /// "access_token", "" reads none.
    pub jwt_query: *const c_char,
    /// The claim whose `subscribe` list names the granted channels; NULL
    /// means "tidings".
    pub jwt_claim: *const c_char,
    /// When not NULL, tokens must carry this `aud`.
    pub jwt_audience: *const c_char,
    /// When not NULL, tokens must carry this `iss`.
    pub jwt_issuer: *const c_char,
    /// Whether a private subscription ends when its token expires. Default
    /// true.
    pub jwt_end_at_expiry: bool,
    /// A Mercure hub at this path (e.g. "/.well-known/mercure"): clients
    /// subscribe with `GET <path>?topic=...`, publishers `POST` forms, and
    /// each channel is the topic named by its path. NULL (the default): no
    /// hub. The `hub_*` strings are read during `tidings_server_new` only.
    pub hub_path: *const c_char,
    /// The publishers' key: an HMAC secret (its UTF-8 bytes), or the text
    /// of a PEM public key for the RS*, ES* and EdDSA algorithms. NULL:
    /// nothing is published over HTTP.
    pub hub_publisher_key: *const c_char,
    /// The subscribers' key (as `hub_publisher_key`): a token whose
    /// `mercure.subscribe` selectors select a private update's topic
    /// receives it. NULL: subscribers see public updates only.
    pub hub_subscriber_key: *const c_char,
    /// The hub tokens' algorithm; NULL means "HS256".
    pub hub_jwt_algorithm: *const c_char,
    /// Whether subscribers without a token receive public updates. Default
    /// true; false needs a `hub_subscriber_key`.
    pub hub_anonymous: bool,
    /// What a channel's topic starts with (e.g. "https://example.com");
    /// NULL: the topic is the channel's path.
    pub hub_topic_base: *const c_char,
    /// Updates the hub keeps for subscribers that resume. Default 1000.
    pub hub_history: usize,
}

/// Options of a broadcast channel. Start from `tidings_channel_options_default()`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct tidings_channel_options {
    /// Events kept for clients that resume with Last-Event-ID; 0 keeps none.
    /// Default 1000.
    pub history: usize,
    /// Give events without an id an automatic, increasing one. Default true.
    pub auto_id: bool,
    /// Events a subscriber may fall behind before it is disconnected (its
    /// client then resumes from history). Default 1024.
    pub max_lag: usize,
    /// Keep-alive period for this channel: TIDINGS_KEEPALIVE_SERVER (the
    /// default) uses the server's, 0 sends none on this channel.
    pub keepalive_ms: u32,
    /// Most subscribers at once (503 beyond); 0 means no limit.
    pub max_subscribers: usize,
    /// Subscribers at the channel's path must bring a token that grants it
    /// (the `jwt_*` settings): 401 without a valid one, 403 with one for
    /// other channels. Default false.
    pub private_channel: bool,
}

/// `tidings_channel_options.keepalive_ms`: use the server's period.
pub const TIDINGS_KEEPALIVE_SERVER: u32 = u32::MAX;

fn millis(ms: u32) -> Duration {
    Duration::from_millis(ms.into())
}

fn optional_millis(ms: u32) -> Option<Duration> {
    (ms > 0).then(|| millis(ms))
}

fn limit(value: u32) -> Option<usize> {
    (value > 0).then_some(value as usize)
}

/// The default configuration: 127.0.0.1:8000, keep-alive 15 s, write
/// timeout 30 s, TCP keep-alive 60 s, drain 5 s, queue 32, head 16 KiB / 10 s.
#[no_mangle]
pub extern "C" fn tidings_config_default() -> tidings_config {
    let defaults = tidings::Config::default();
    let ms = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
    tidings_config {
        host: c"127.0.0.1".as_ptr(),
        port: defaults.port,
        worker_threads: 0,
        cors: tidings_cors::TIDINGS_CORS_DISABLED as u32,
        cors_origins: std::ptr::null(),
        cors_origins_len: 0,
        keepalive_ms: defaults.keepalive.map_or(0, ms),
        write_timeout_ms: ms(defaults.write_timeout),
        tcp_keepalive_ms: defaults.tcp_keepalive.map_or(0, ms),
        drain_timeout_ms: ms(defaults.drain_timeout),
        stream_queue: defaults.stream_queue as u32,
        max_connections: 0,
        max_connections_per_ip: 0,
        max_head_bytes: defaults.limits.max_head_bytes as u32,
        head_timeout_ms: ms(defaults.limits.head_timeout),
        reuse_port: defaults.reuse_port,
        broker: std::ptr::null(),
        broker_queue: u32::try_from(defaults.broker_queue).unwrap_or(u32::MAX),
        broker_ca: std::ptr::null(),
        tls_cert: std::ptr::null(),
        tls_key: std::ptr::null(),
        http2: defaults.http2,
        max_streams_per_connection: defaults.limits.max_streams_per_connection,
        metrics_path: std::ptr::null(),
        jwt_secret: std::ptr::null(),
        jwt_key_file: std::ptr::null(),
        jwt_jwks_file: std::ptr::null(),
        jwt_algorithm: std::ptr::null(),
        jwt_leeway_ms: 5000,
        jwt_cookie: std::ptr::null(),
        jwt_query: std::ptr::null(),
        jwt_claim: std::ptr::null(),
        jwt_audience: std::ptr::null(),
        jwt_issuer: std::ptr::null(),
        jwt_end_at_expiry: true,
        hub_path: std::ptr::null(),
        hub_publisher_key: std::ptr::null(),
        hub_subscriber_key: std::ptr::null(),
        hub_jwt_algorithm: std::ptr::null(),
        hub_anonymous: true,
        hub_topic_base: std::ptr::null(),
        hub_history: 1000,
    }
}

/// The default channel options: history 1000, automatic ids, max lag 1024,
/// the server's keep-alive period.
#[no_mangle]
pub extern "C" fn tidings_channel_options_default() -> tidings_channel_options {
    let defaults = tidings::ChannelOptions::default();
    tidings_channel_options {
        history: defaults.history,
        auto_id: defaults.auto_id,
        max_lag: defaults.max_lag,
        keepalive_ms: TIDINGS_KEEPALIVE_SERVER,
        max_subscribers: 0,
        private_channel: false,
    }
}

/// Converts a C configuration.
///
/// # Safety
/// `config.host`, `config.broker`, `config.broker_ca`, `config.tls_cert`, `config.tls_key`,
/// `config.metrics_path` and the `config.jwt_*` and `config.hub_*` strings
/// are NULL or NUL-terminated strings. If `config.cors` is
/// TIDINGS_CORS_ORIGINS and `cors_origins` is not NULL, it points to
/// `cors_origins_len` aligned, readable `const char *` entries, each NULL or
/// NUL-terminated. All of it stays valid and unmodified during the call.
pub(crate) unsafe fn to_config(config: &tidings_config) -> Result<tidings::Config, tidings_status> {
    // SAFETY: by this function's contract (tidings.h: `host` is NULL or a
    // string read during `tidings_server_new` only) `config.host` is NULL or
    // NUL-terminated and valid for this call; the `&str` is copied below.
    let host = unsafe { optional_str(config.host, "config.host") }?.unwrap_or("127.0.0.1");
    // SAFETY: as for `host`: by this function's contract `config.broker` is
    // NULL or NUL-terminated and valid for this call; it is copied below.
    let broker = unsafe { optional_str(config.broker, "config.broker") }?;
    // SAFETY: as for `host`: by this function's contract `config.broker_ca`
    // is NULL or NUL-terminated and valid for this call; it is copied below.
    let broker_ca = unsafe { optional_str(config.broker_ca, "config.broker_ca") }?;
    // SAFETY: as for `host`: by this function's contract `config.tls_cert`
    // is NULL or NUL-terminated and valid for this call; it is copied below.
    let tls_cert = unsafe { optional_str(config.tls_cert, "config.tls_cert") }?;
    // SAFETY: as for `host`: by this function's contract `config.tls_key` is
    // NULL or NUL-terminated and valid for this call; it is copied below.
    let tls_key = unsafe { optional_str(config.tls_key, "config.tls_key") }?;
    // SAFETY: as for `host`: by this function's contract
    // `config.metrics_path` is NULL or NUL-terminated and valid for this
    // call; it is copied below.
    let metrics_path = unsafe { optional_str(config.metrics_path, "config.metrics_path") }?;
    const DISABLED: u32 = tidings_cors::TIDINGS_CORS_DISABLED as u32;
    const ANY_ORIGIN: u32 = tidings_cors::TIDINGS_CORS_ANY_ORIGIN as u32;
    const ORIGINS: u32 = tidings_cors::TIDINGS_CORS_ORIGINS as u32;
    let cors = match config.cors {
        DISABLED => tidings::Cors::Disabled,
        ANY_ORIGIN => tidings::Cors::AnyOrigin,
        ORIGINS => {
            if config.cors_origins.is_null() && config.cors_origins_len > 0 {
                return Err(fail(
                    tidings_status::TIDINGS_ERR_NULL_ARGUMENT,
                    "`config.cors_origins` is NULL but `cors_origins_len` is not 0",
                ));
            }
            let mut origins = Vec::with_capacity(config.cors_origins_len);
            for index in 0..config.cors_origins_len {
                // SAFETY: `cors_origins` is not NULL here (NULL with a non-zero
                // length returned above; with length 0 the loop does not run),
                // `index < cors_origins_len`, and the caller guarantees an array
                // of `cors_origins_len` aligned, readable entries (tidings.h), so
                // `add(index)` stays inside it and the read is valid.
                let origin = unsafe { *config.cors_origins.add(index) };
                // SAFETY: `origin` is NULL (rejected in the `None` arm) or one of
                // the caller's NUL-terminated origin strings, valid for this call
                // (this function's contract); it is copied with `to_owned`.
                match unsafe { optional_str(origin, "config.cors_origins[i]") }? {
                    Some(origin) => origins.push(origin.to_owned()),
                    None => {
                        return Err(fail(
                            tidings_status::TIDINGS_ERR_NULL_ARGUMENT,
                            format!("`config.cors_origins[{index}]` is NULL"),
                        ))
                    }
                }
            }
            tidings::Cors::Origins(origins)
        }
        other => {
            return Err(fail(
                tidings_status::TIDINGS_ERR_INVALID_CONFIG,
                format!("`config.cors` is {other}, not a tidings_cors value"),
            ))
        }
    };
    Ok(tidings::Config {
        host: host.to_owned(),
        port: config.port,
        worker_threads: config.worker_threads as usize,
        cors,
        cors_allow_headers: Vec::new(),
        keepalive: optional_millis(config.keepalive_ms),
        write_timeout: millis(config.write_timeout_ms),
        tcp_keepalive: optional_millis(config.tcp_keepalive_ms),
        drain_timeout: millis(config.drain_timeout_ms),
        stream_queue: config.stream_queue as usize,
        limits: tidings::Limits {
            max_connections: limit(config.max_connections),
            max_connections_per_ip: limit(config.max_connections_per_ip),
            max_head_bytes: config.max_head_bytes as usize,
            head_timeout: millis(config.head_timeout_ms),
            max_streams_per_connection: config.max_streams_per_connection,
        },
        reuse_port: config.reuse_port,
        broker: broker.map(str::to_owned),
        broker_queue: config.broker_queue as usize,
        broker_ca: broker_ca.map(std::path::PathBuf::from),
        tls_cert: tls_cert.map(std::path::PathBuf::from),
        tls_key: tls_key.map(std::path::PathBuf::from),
        http2: config.http2,
        metrics_path: metrics_path.map(str::to_owned),
        // SAFETY: by this function's contract the `jwt_*` strings are NULL
        // or NUL-terminated and valid for this call.
        jwt: unsafe { jwt_config(config) }?,
        // SAFETY: likewise for the `hub_*` strings.
        hub: unsafe { hub_config(config) }?,
    })
}

/// Copies of the C strings of a configuration's settings (pointer, name);
/// NULL is `None`, text that is not UTF-8 fails naming its setting.
///
/// # Safety
/// Each pointer is NULL or a NUL-terminated string, valid and unmodified
/// during the call.
unsafe fn copied<const N: usize>(
    strings: [(*const c_char, &str); N],
) -> Result<[Option<String>; N], tidings_status> {
    let mut read: [Option<String>; N] = std::array::from_fn(|_| None);
    for (slot, (ptr, name)) in read.iter_mut().zip(strings) {
        // SAFETY: by this function's contract `ptr` is NULL or a
        // NUL-terminated string valid for this call; it is copied.
        *slot = unsafe { optional_str(ptr, name) }?.map(str::to_owned);
    }
    Ok(read)
}

/// The Mercure hub settings of a C configuration.
///
/// # Safety
/// The `config.hub_*` strings are NULL or NUL-terminated, valid and
/// unmodified during the call.
unsafe fn hub_config(
    config: &tidings_config,
) -> Result<Option<tidings::HubConfig>, tidings_status> {
    let strings = [
        (config.hub_path, "config.hub_path"),
        (config.hub_publisher_key, "config.hub_publisher_key"),
        (config.hub_subscriber_key, "config.hub_subscriber_key"),
        (config.hub_jwt_algorithm, "config.hub_jwt_algorithm"),
        (config.hub_topic_base, "config.hub_topic_base"),
    ];
    // SAFETY: by this function's contract each pointer is NULL or a
    // NUL-terminated string valid for this call.
    let [path, publisher, subscriber, algorithm, topic_base] = unsafe { copied(strings) }?;
    let Some(path) = path else {
        return Ok(None);
    };
    let algorithm = algorithm.as_deref().unwrap_or("HS256");
    let key = |key: Option<String>| {
        key.map(|key| tidings::JwtConfig::mercure_with(algorithm, key.into_bytes()))
    };
    Ok(Some(tidings::HubConfig {
        path,
        publisher_jwt: key(publisher),
        subscriber_jwt: key(subscriber),
        anonymous: config.hub_anonymous,
        topic_base,
        history: config.hub_history,
        ..tidings::HubConfig::default()
    }))
}

/// The token settings of a C configuration.
///
/// # Safety
/// The `config.jwt_*` strings are NULL or NUL-terminated, valid and
/// unmodified during the call.
unsafe fn jwt_config(
    config: &tidings_config,
) -> Result<Option<tidings::JwtConfig>, tidings_status> {
    let strings = [
        (config.jwt_secret, "config.jwt_secret"),
        (config.jwt_key_file, "config.jwt_key_file"),
        (config.jwt_jwks_file, "config.jwt_jwks_file"),
        (config.jwt_algorithm, "config.jwt_algorithm"),
        (config.jwt_cookie, "config.jwt_cookie"),
        (config.jwt_query, "config.jwt_query"),
        (config.jwt_claim, "config.jwt_claim"),
        (config.jwt_audience, "config.jwt_audience"),
        (config.jwt_issuer, "config.jwt_issuer"),
    ];
    // SAFETY: by this function's contract each pointer is NULL or a
    // NUL-terminated string valid for this call.
    let [secret, key_file, jwks_file, algorithm, cookie, query, claim, audience, issuer] =
        unsafe { copied(strings) }?;
    let key = tidings::JwtKey::one_of(
        secret.map(String::into_bytes),
        key_file.map(std::path::PathBuf::from),
        jwks_file.map(std::path::PathBuf::from),
    )
    .map_err(fail_with)?;
    let Some(key) = key else {
        return Ok(None);
    };
    let mut jwt = tidings::JwtConfig::new(key);
    if let Some(algorithm) = algorithm {
        jwt.algorithm = algorithm;
    }
    jwt.leeway = millis(config.jwt_leeway_ms);
    // NULL keeps the default name; "" reads none.
    jwt.name_carriers(cookie, query);
    if let Some(claim) = claim {
        jwt.claim = claim;
    }
    jwt.audience = audience;
    jwt.issuer = issuer;
    jwt.end_at_expiry = config.jwt_end_at_expiry;
    Ok(Some(jwt))
}

pub(crate) fn to_channel_options(options: &tidings_channel_options) -> tidings::ChannelOptions {
    tidings::ChannelOptions {
        history: options.history,
        auto_id: options.auto_id,
        max_lag: options.max_lag,
        // 0 is "none on this channel", as in every binding.
        keepalive: (options.keepalive_ms != TIDINGS_KEEPALIVE_SERVER)
            .then(|| millis(options.keepalive_ms)),
        max_subscribers: (options.max_subscribers > 0).then_some(options.max_subscribers),
        private: options.private_channel,
    }
}

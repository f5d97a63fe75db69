//! What a host configures: the server's [`Config`], its connection [`Limits`]
//! and its cross-origin policy ([`Cors`]). Checked once, in
//! [`Config::validate`], so that nothing later has to.

use std::path::PathBuf;
use std::time::Duration;

use http::header::{self, HeaderMap, HeaderValue};

use crate::error::{Error, Result};

/// Which cross-origin pages may read the server's responses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Cors {
    /// No CORS headers: only same-origin pages can read responses.
    #[default]
    Disabled,
    /// `Access-Control-Allow-Origin: *` for every response.
    AnyOrigin,
    /// Only these origins (e.g. `https://app.example`), with credentials.
    Origins(Vec<String>),
}

impl Cors {
    /// The policy for a host's list of origins: none is [`Cors::Disabled`],
    /// one that is `*` is [`Cors::AnyOrigin`], others are allowed as listed.
    pub fn from_origins<I, S>(origins: I) -> Cors
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let origins: Vec<String> = origins.into_iter().map(Into::into).collect();
        if origins.is_empty() {
            Cors::Disabled
        } else if origins.iter().any(|origin| origin == "*") {
            Cors::AnyOrigin
        } else {
            Cors::Origins(origins)
        }
    }

    /// Whether `origin` is one of [`Cors::Origins`] (whose pages may send
    /// credentials).
    pub(crate) fn lists(&self, origin: &str) -> bool {
        match self {
            Cors::Origins(allowed) => allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)),
            Cors::Disabled | Cors::AnyOrigin => false,
        }
    }

    /// Adds the CORS headers this policy grants to `origin`.
    pub(crate) fn apply(&self, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
        match self {
            Cors::Disabled => {}
            Cors::AnyOrigin => {
                headers.insert(
                    header::ACCESS_CONTROL_ALLOW_ORIGIN,
                    HeaderValue::from_static("*"),
                );
            }
            Cors::Origins(_) => {
                headers.append(header::VARY, HeaderValue::from_static("origin"));
                let Some(origin) = origin else { return };
                if origin.to_str().is_ok_and(|origin| self.lists(origin)) {
                    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
                    headers.insert(
                        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                        HeaderValue::from_static("true"),
                    );
                }
            }
        }
    }
}

/// Limits that keep one client, or many, from taking the server down.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Most open connections; beyond it new ones get 429. Default none.
    pub max_connections: Option<usize>,
    /// Most open connections from one IP address; beyond it 429. Default none
    /// (many users may share an address behind NAT).
    pub max_connections_per_ip: Option<usize>,
    /// Largest request head in bytes; beyond it 431. At least 8192. Default 16 KiB.
    pub max_head_bytes: usize,
    /// Time a client has to finish its TLS handshake, and then to send its
    /// request head (slow-loris defence). Default 10 s.
    pub head_timeout: Duration,
    /// Most HTTP/2 streams (event streams and requests) one connection may
    /// have open at once; a browser multiplexes every `EventSource` of an
    /// origin onto one connection. Between 1 and 10,000. Default 100.
    pub max_streams_per_connection: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: None,
            max_connections_per_ip: None,
            max_head_bytes: 16 * 1024,
            head_timeout: Duration::from_secs(10),
            max_streams_per_connection: 100,
        }
    }
}

/// Server configuration. Start from `Config::default()` and set what you need.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on. Default `127.0.0.1`.
    pub host: String,
    /// Port to listen on; 0 picks a free one (see [`Server::start`](crate::Server::start)). Default 8000.
    pub port: u16,
    /// Engine threads; 0 means one per CPU core. Default 0.
    pub worker_threads: usize,
    /// Cross-origin policy. Default [`Cors::Disabled`].
    pub cors: Cors,
    /// Request headers a cross-origin page may send, beyond `Last-Event-ID`
    /// and `Cache-Control` (which `EventSource` polyfills send): named in
    /// preflight answers, never copied from the request. Default none.
    pub cors_allow_headers: Vec<String>,
    /// A comment is sent on a stream idle this long, so proxies and clients
    /// keep it open; `None` disables. Default 15 s.
    pub keepalive: Option<Duration>,
    /// A write that cannot complete this long closes the connection (a
    /// client that stopped reading, reads a trickle, or vanished); also the
    /// socket's `TCP_USER_TIMEOUT` on Linux. Default 30 s.
    pub write_timeout: Duration,
    /// TCP keep-alive probes after this much silence, to find peers that
    /// vanished; `None` disables. Default 60 s.
    pub tcp_keepalive: Option<Duration>,
    /// How long [`Server::stop`](crate::Server::stop) lets streams finish before closing them. Default 5 s.
    pub drain_timeout: Duration,
    /// Events queued per stream-route connection before `send` waits. Default 32.
    pub stream_queue: usize,
    /// Connection and request limits.
    pub limits: Limits,
    /// Whether other sockets may listen on the same host and port
    /// (`SO_REUSEPORT`): several processes started this way share the port,
    /// and the kernel spreads new connections among them. Each process has
    /// its own channels, unless they share a [`broker`](Self::broker).
    /// Default false.
    pub reuse_port: bool,
    /// A broker that joins servers into one: `redis://[[user]:password@]host[:port][/db]`,
    /// or `rediss://…` for Redis over TLS. A publish on any server sharing
    /// it reaches the subscribers of every one, in one order, and a client
    /// resumes on any of them. `None` (the default) keeps channels in this
    /// process.
    pub broker: Option<String>,
    /// A PEM file of the certificate authorities a `rediss://` broker's
    /// certificate must chain to, instead of the system's (for a Redis
    /// with a private CA). Default `None`: the system's roots.
    pub broker_ca: Option<std::path::PathBuf>,
    /// Most publishes waiting for the broker (while it is slow or
    /// unreachable); beyond it `publish` fails with
    /// [`Error::BrokerUnavailable`]. Default 10,000.
    pub broker_queue: usize,
    /// A PEM file with the server's certificate chain (its own certificate
    /// first): with [`tls_key`](Self::tls_key), the server speaks HTTPS
    /// only. Both or neither. Default `None`: plain HTTP.
    pub tls_cert: Option<std::path::PathBuf>,
    /// A PEM file with the private key of [`tls_cert`](Self::tls_cert)
    /// (PKCS#8, PKCS#1 or SEC1). Default `None`.
    pub tls_key: Option<std::path::PathBuf>,
    /// Whether clients may speak HTTP/2: over TLS when they offer `h2`
    /// (every browser does), and over plain TCP by prior knowledge (h2c).
    /// Default true.
    pub http2: bool,
    /// A path that serves the server's metrics in the Prometheus text
    /// format (OpenMetrics to a scraper that asks for it), e.g.
    /// `/metrics`. Like any route, it is open to every client that reaches
    /// the port: keep it behind the proxy or firewall that guards your
    /// dashboards. Default `None`: no metrics route, and no clock read per
    /// publish for the delivery latency histogram.
    pub metrics_path: Option<String>,
    /// How tokens are verified for [private](crate::ChannelOptions::private)
    /// channels. Default `None`: no channel may be private.
    pub jwt: Option<JwtConfig>,
    /// A Mercure hub: subscribers select topics at its path, publishers
    /// `POST` updates to it, and every channel's events are updates of
    /// the channel's topic. Default `None`: no hub.
    pub hub: Option<HubConfig>,
}

/// A Mercure hub ([`Config::hub`]), speaking the protocol's widely deployed
/// form: `GET <path>?topic=<selector>` subscribes (exact topics, URI
/// templates, `*`), a form-encoded `POST <path>` publishes (`topic`,
/// `data`, `id`, `type`, `retry`, `private`), tokens carry a `mercure`
/// claim with `publish` and `subscribe` lists of topic selectors. Build
/// one with [`HubConfig::default`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubConfig {
    /// The hub's path. Default `/.well-known/mercure`.
    pub path: String,
    /// How publishers' tokens are verified: a publish needs one whose
    /// `mercure.publish` selectors select every topic of the update. `None`
    /// (the default): nothing is published over HTTP, only the host's own
    /// channels reach the hub. [`JwtConfig::mercure`] reads tokens where
    /// Mercure clients send them.
    pub publisher_jwt: Option<JwtConfig>,
    /// How subscribers' tokens are verified: one whose `mercure.subscribe`
    /// selectors select a private update's topic receives it. `None` (the
    /// default): subscribers see public updates only.
    pub subscriber_jwt: Option<JwtConfig>,
    /// Whether a subscriber without a token is let in (for public updates).
    /// Off, it gets 401; that needs a [`subscriber_jwt`](Self::subscriber_jwt).
    /// Default true.
    pub anonymous: bool,
    /// What a channel's topic starts with: with `https://example.com`, the
    /// channel `/news` is the topic `https://example.com/news`, both ways
    /// (an update of that topic is published on the channel too). Default
    /// `None`: the topic is the channel's path.
    pub topic_base: Option<String>,
    /// How many updates are kept for subscribers that resume. Default 1000.
    pub history: usize,
    /// How many updates a subscriber may fall behind before it is
    /// disconnected to resume, as a channel's `max_lag`. Default 1024.
    pub max_lag: usize,
    /// Most `topic` selectors one subscription may ask for. Default 64.
    pub max_topics: usize,
    /// Largest publish request body, in bytes. Default 1 MiB.
    pub max_publish_bytes: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            path: "/.well-known/mercure".to_owned(),
            publisher_jwt: None,
            subscriber_jwt: None,
            anonymous: true,
            topic_base: None,
            history: 1000,
            max_lag: 1024,
            max_topics: 64,
            max_publish_bytes: 1 << 20,
        }
    }
}

impl HubConfig {
    /// The topic of the channel at `path`.
    pub(crate) fn topic_of(&self, path: &str) -> String {
        match &self.topic_base {
            Some(base) => format!("{base}{path}"),
            None => path.to_owned(),
        }
    }

    /// The path of the channel whose topic is `topic`, if it names one.
    pub(crate) fn path_of<'t>(&self, topic: &'t str) -> Option<&'t str> {
        let path = match &self.topic_base {
            Some(base) => topic.strip_prefix(base.as_str())?,
            None => topic,
        };
        path.starts_with('/').then_some(path)
    }

    fn validate(&self) -> Result<()> {
        let invalid = |message: String| Err(Error::InvalidConfig(format!("hub: {message}")));
        if check_path(&self.path).is_err() {
            return invalid(format!(
                "path must be a path such as /.well-known/mercure, not {:?}",
                self.path
            ));
        }
        if !self.anonymous && self.subscriber_jwt.is_none() {
            return invalid(
                "turning anonymous subscribers off needs a subscriber key to let anyone in"
                    .to_owned(),
            );
        }
        if let Some(base) = &self.topic_base {
            if base.is_empty() || base.chars().any(char::is_control) || base.ends_with('/') {
                return invalid(format!(
                    "topic_base must be a prefix such as https://example.com (no trailing /), not {base:?}"
                ));
            }
        }
        if !(1..=1024).contains(&self.max_topics) {
            return invalid("max_topics must be between 1 and 1024".to_owned());
        }
        if !(1..=MAX_PUBLISH_BYTES).contains(&self.max_publish_bytes) {
            return invalid("max_publish_bytes must be between 1 and 67108864".to_owned());
        }
        Ok(())
    }
}

/// The largest publish body a hub may be configured to accept (64 MiB).
const MAX_PUBLISH_BYTES: usize = 64 << 20;

impl Default for Config {
    fn default() -> Self {
        Config {
            host: "127.0.0.1".to_owned(),
            port: 8000,
            worker_threads: 0,
            cors: Cors::Disabled,
            cors_allow_headers: Vec::new(),
            keepalive: Some(Duration::from_secs(15)),
            write_timeout: Duration::from_secs(30),
            tcp_keepalive: Some(Duration::from_secs(60)),
            drain_timeout: Duration::from_secs(5),
            stream_queue: 32,
            limits: Limits::default(),
            reuse_port: false,
            broker: None,
            broker_ca: None,
            broker_queue: 10_000,
            tls_cert: None,
            tls_key: None,
            http2: true,
            metrics_path: None,
            jwt: None,
            hub: None,
        }
    }
}

/// How tokens are verified and where they are found. Build one with
/// [`JwtConfig::new`] and change what you need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtConfig {
    /// The key that verifies signatures.
    pub key: JwtKey,
    /// The one algorithm tokens must be signed with: `HS256`, `HS384`,
    /// `HS512` (with a [`JwtKey::Secret`]), `RS256`, `RS384`, `RS512`,
    /// `PS256`, `PS384`, `PS512`, `ES256`, `ES384` or `EdDSA`. Default
    /// `HS256`. A token whose header names another is refused, so a public
    /// key can never be used as an HMAC secret.
    pub algorithm: String,
    /// Clock skew allowed on `exp` and `nbf`. Default 5 s; at most 5 min.
    pub leeway: Duration,
    /// The cookie that may carry the token (after the header). Default
    /// `tidings_token`; `None` reads no cookie.
    pub cookie: Option<String>,
    /// The query parameter that may carry the token (after the header and
    /// the cookie). Default `access_token` (RFC 6750 §2.3); `None` reads
    /// none.
    pub query: Option<String>,
    /// The claim whose `subscribe` list names the channels a token grants,
    /// as in `{"tidings": {"subscribe": ["/news", "/chat/*"]}}`. A `*`
    /// matches any run of characters. Default `tidings`.
    pub claim: String,
    /// When set, tokens must carry this `aud`.
    pub audience: Option<String>,
    /// When set, tokens must carry this `iss`.
    pub issuer: Option<String>,
    /// Whether a private channel's subscription ends when its token
    /// expires (plus the leeway). Default true. The client then reconnects
    /// and must bring a fresh token.
    pub end_at_expiry: bool,
}

/// The key of [`JwtConfig::key`].
#[derive(Clone, PartialEq, Eq)]
pub enum JwtKey {
    /// A shared secret, for the HMAC algorithms.
    Secret(Vec<u8>),
    /// A PEM file with the public key (or a certificate's) for the RSA,
    /// ECDSA or EdDSA algorithms.
    PemFile(PathBuf),
    /// The text of such a PEM file (as Mercure's hubs take their keys).
    Pem(Vec<u8>),
    /// A JSON Web Key Set file (`{"keys": [...]}`): a token's `kid` picks
    /// its key; a token without one needs a set of exactly one key.
    JwksFile(PathBuf),
}

impl std::fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwtKey::Secret(_) => f.write_str("Secret(..)"),
            JwtKey::PemFile(path) => f.debug_tuple("PemFile").field(path).finish(),
            JwtKey::Pem(_) => f.write_str("Pem(..)"),
            JwtKey::JwksFile(path) => f.debug_tuple("JwksFile").field(path).finish(),
        }
    }
}

impl JwtKey {
    /// A key given as text for `algorithm`: the secret of an HMAC
    /// algorithm (`HS*`), else a public key in PEM.
    pub fn for_algorithm(algorithm: &str, key: Vec<u8>) -> JwtKey {
        if algorithm.starts_with("HS") {
            JwtKey::Secret(key)
        } else {
            JwtKey::Pem(key)
        }
    }

    /// The key given in one of the three forms a binding offers (a
    /// secret, a PEM file, a JWKS file), `None` when none is: more than one
    /// is an [`Error::InvalidConfig`].
    pub fn one_of(
        secret: Option<Vec<u8>>,
        pem_file: Option<PathBuf>,
        jwks_file: Option<PathBuf>,
    ) -> Result<Option<JwtKey>> {
        let given = [
            secret.map(JwtKey::Secret),
            pem_file.map(JwtKey::PemFile),
            jwks_file.map(JwtKey::JwksFile),
        ];
        let mut keys = given.into_iter().flatten();
        let first = keys.next();
        if keys.next().is_some() {
            return Err(Error::InvalidConfig(
                "jwt: give one key: a secret, a PEM key file or a JWKS file".to_owned(),
            ));
        }
        Ok(first)
    }
}

impl JwtConfig {
    /// Tokens verified with `key`, and every other setting at its default.
    pub fn new(key: JwtKey) -> Self {
        JwtConfig {
            key,
            algorithm: "HS256".to_owned(),
            leeway: Duration::from_secs(5),
            cookie: Some("tidings_token".to_owned()),
            query: Some("access_token".to_owned()),
            claim: "tidings".to_owned(),
            audience: None,
            issuer: None,
            end_at_expiry: true,
        }
    }

    /// Tokens verified with `key` and found where Mercure's clients send
    /// them: the `Authorization: Bearer` header, the `mercureAuthorization`
    /// cookie, the `authorization` query parameter; their grants in the
    /// `mercure` claim.
    pub fn mercure(key: JwtKey) -> Self {
        JwtConfig {
            cookie: Some("mercureAuthorization".to_owned()),
            query: Some("authorization".to_owned()),
            claim: "mercure".to_owned(),
            ..JwtConfig::new(key)
        }
    }

    /// [`mercure`](Self::mercure) tokens signed with `algorithm`, verified
    /// with `key` given as text: the secret of an `HS*` algorithm, else a
    /// public key in PEM (the form a hub's key takes on a command line).
    pub fn mercure_with(algorithm: &str, key: Vec<u8>) -> Self {
        JwtConfig {
            algorithm: algorithm.to_owned(),
            ..JwtConfig::mercure(JwtKey::for_algorithm(algorithm, key))
        }
    }

    /// Names the cookie and the query parameter the way a binding receives
    /// them: `None` keeps the current name, an empty name reads none there.
    pub fn name_carriers(&mut self, cookie: Option<String>, query: Option<String>) {
        let named = |given: Option<String>, current: &mut Option<String>| match given {
            Some(name) if name.is_empty() => *current = None,
            Some(name) => *current = Some(name),
            None => {}
        };
        named(cookie, &mut self.cookie);
        named(query, &mut self.query);
    }
}

/// Checks a path a route may take: it starts with `/`, and has no query,
/// fragment, whitespace or control character.
pub(crate) fn check_path(path: &str) -> Result<()> {
    let reason = if !path.starts_with('/') {
        "must start with '/'"
    } else if path.contains(['?', '#']) {
        "must not contain a query or fragment"
    } else if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        "must not contain whitespace or control characters"
    } else {
        return Ok(());
    };
    Err(Error::InvalidPath {
        path: path.to_owned(),
        reason,
    })
}

/// The largest request head a server may be configured to accept (1 MiB).
const MAX_HEAD_BYTES: usize = 1 << 20;

/// The most events a stream route's queue may be configured to hold.
const MAX_STREAM_QUEUE: usize = 1 << 16;

/// The most publishes the broker's queue may be configured to hold.
const MAX_BROKER_QUEUE: usize = 1 << 24;

/// The most HTTP/2 streams a connection may be configured to carry at once.
const MAX_STREAMS_PER_CONNECTION: u32 = 10_000;

/// The longest duration any setting takes (365 days): longer ones are
/// mistakes (or unit mix-ups), and would overflow the clock's arithmetic.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// `seconds` as a [`Duration`] for the setting `field`, or a clear error if it
/// is negative, not a number, or longer than [`MAX_DURATION`]. For hosts whose
/// durations arrive as numbers of seconds.
pub fn duration_from_secs(field: &str, seconds: f64) -> Result<Duration> {
    if !(0.0..=MAX_DURATION.as_secs_f64()).contains(&seconds) {
        return Err(Error::InvalidConfig(format!(
            "{field} must be between 0 and {} seconds, not {seconds}",
            MAX_DURATION.as_secs()
        )));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Refuses a duration longer than [`MAX_DURATION`], naming the setting.
pub(crate) fn check_duration(field: &str, duration: Duration) -> Result<()> {
    if duration > MAX_DURATION {
        return Err(Error::InvalidConfig(format!(
            "{field} must be at most {} days, not {duration:?}",
            MAX_DURATION.as_secs() / 86_400
        )));
    }
    Ok(())
}

impl Config {
    pub(crate) fn validate(&self) -> Result<()> {
        check_duration("write_timeout", self.write_timeout)?;
        check_duration("drain_timeout", self.drain_timeout)?;
        check_duration("limits.head_timeout", self.limits.head_timeout)?;
        if let Some(keepalive) = self.keepalive {
            check_duration("keepalive", keepalive)?;
        }
        if let Some(idle) = self.tcp_keepalive {
            check_duration("tcp_keepalive", idle)?;
        }
        let invalid = |message: &str| Err(Error::InvalidConfig(message.to_owned()));
        if self.host.is_empty() {
            return invalid("host must not be empty");
        }
        if !(8192..=MAX_HEAD_BYTES).contains(&self.limits.max_head_bytes) {
            return invalid("limits.max_head_bytes must be between 8192 and 1048576");
        }
        if !(1..=MAX_STREAM_QUEUE).contains(&self.stream_queue) {
            return invalid("stream_queue must be between 1 and 65536");
        }
        if !(1..=MAX_BROKER_QUEUE).contains(&self.broker_queue) {
            return invalid("broker_queue must be between 1 and 16777216");
        }
        if let Some(url) = &self.broker {
            if !url.starts_with("redis://") && !url.starts_with("rediss://") {
                return Err(Error::InvalidConfig(format!(
                    "broker must be a redis:// or rediss:// URL, not {:?}",
                    url.split_once('@').map_or(url.as_str(), |(_, host)| host)
                )));
            }
        }
        let over_tls = self
            .broker
            .as_ref()
            .is_some_and(|url| url.starts_with("rediss://"));
        if self.broker_ca.is_some() && !over_tls {
            return invalid("broker_ca applies to a rediss:// broker only");
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return invalid("tls_cert and tls_key go together: set both, or neither");
        }
        if !(1..=MAX_STREAMS_PER_CONNECTION).contains(&self.limits.max_streams_per_connection) {
            return invalid("limits.max_streams_per_connection must be between 1 and 10000");
        }
        if let Some(path) = &self.metrics_path {
            if check_path(path).is_err() {
                return Err(Error::InvalidConfig(format!(
                    "metrics_path must be a path such as /metrics, not {path:?}"
                )));
            }
        }
        if let Some(hub) = &self.hub {
            hub.validate()?;
        }
        if self.write_timeout.is_zero() {
            return invalid("write_timeout must be greater than zero");
        }
        if self.limits.head_timeout.is_zero() {
            return invalid("limits.head_timeout must be greater than zero");
        }
        if let Some(name) = self
            .cors_allow_headers
            .iter()
            .find(|name| http::HeaderName::from_bytes(name.as_bytes()).is_err())
        {
            return Err(Error::InvalidConfig(format!(
                "cors_allow_headers: {name:?} is not a header name"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binding_keeps_renames_or_turns_off_where_tokens_are_read() {
        let mut jwt = JwtConfig::new(JwtKey::Secret(vec![1; 32]));
        jwt.name_carriers(None, Some("token".into()));
        assert_eq!(jwt.cookie.as_deref(), Some("tidings_token"));
        assert_eq!(jwt.query.as_deref(), Some("token"));
        jwt.name_carriers(Some(String::new()), Some(String::new()));
        assert_eq!((jwt.cookie, jwt.query), (None, None));
    }

    #[test]
    fn a_star_among_the_origins_means_any_origin() {
        assert_eq!(Cors::from_origins(Vec::<String>::new()), Cors::Disabled);
        assert_eq!(Cors::from_origins(["*"]), Cors::AnyOrigin);
        assert_eq!(Cors::from_origins(["http://a.test", "*"]), Cors::AnyOrigin);
        assert_eq!(
            Cors::from_origins(["http://a.test"]),
            Cors::Origins(vec!["http://a.test".into()])
        );
    }

    #[test]
    fn seconds_from_hosts_are_checked_before_they_become_durations() {
        assert_eq!(
            duration_from_secs("keepalive", 1.5).unwrap(),
            Duration::from_millis(1500)
        );
        assert_eq!(
            duration_from_secs("keepalive", 0.0).unwrap(),
            Duration::ZERO
        );
        for bad in [-1.0, f64::NAN, f64::INFINITY, 1e19, 1e300] {
            let err = duration_from_secs("write_timeout", bad).unwrap_err();
            assert!(err.to_string().contains("write_timeout"), "{err}");
        }
    }
}

//! What a handler or hook learns about the client's request.

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;

use http::HeaderMap;
use percent_encoding::percent_decode_str;

/// A request that opened an event stream. Cheap to clone (shared).
#[derive(Clone, Debug)]
pub struct Request {
    inner: Arc<Parts>,
}

#[derive(Debug)]
struct Parts {
    method: http::Method,
    version: http::Version,
    path: String,
    query: String,
    headers: HeaderMap,
    ends: Endpoints,
    /// As text; bytes that are not UTF-8 are shown lossily, and the id then
    /// matches nothing (`last_event_id_is_text` is false).
    last_event_id: Option<String>,
    last_event_id_is_text: bool,
}

/// Where a subscriber asked to start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ResumeFrom<'a> {
    /// No id (or an empty one): live events only.
    Start,
    /// After the event with this id.
    After(&'a str),
    /// An id that no event can have (not UTF-8): treated as unknown.
    Unknown,
    /// From the oldest event offered, without a reset (Mercure's
    /// `earliest`).
    Earliest,
}

/// The two ends of the connection a request arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Endpoints {
    pub(crate) peer: SocketAddr,
    pub(crate) local: SocketAddr,
    /// Whether the connection is TLS.
    pub(crate) tls: bool,
}

impl Request {
    pub(crate) fn new(
        method: http::Method,
        uri: &http::Uri,
        version: http::Version,
        mut headers: HeaderMap,
        ends: Endpoints,
    ) -> Self {
        let query = uri.query().unwrap_or("").to_owned();
        // HTTP/2 names the host in `:authority`, which hyper puts in the URI:
        // hosts and applications read it as the `host` header either way.
        if let Some(authority) = uri.authority() {
            if !headers.contains_key(http::header::HOST) {
                if let Ok(host) = http::HeaderValue::from_str(authority.as_str()) {
                    headers.insert(http::header::HOST, host);
                }
            }
        }
        // The header wins; the query form exists for clients (polyfills,
        // proxies) that cannot set headers on EventSource. Either is read as
        // UTF-8, which is what browsers send.
        let raw_id = match headers.get("last-event-id") {
            Some(value) => Some(Cow::Borrowed(value.as_bytes())),
            // Mercure spells it `lastEventID`.
            None => first_raw_query_value(&query, "lastEventId")
                .or_else(|| first_raw_query_value(&query, "lastEventID")),
        };
        let last_event_id_is_text = raw_id
            .as_deref()
            .is_none_or(|id| std::str::from_utf8(id).is_ok());
        let last_event_id = raw_id.map(|id| String::from_utf8_lossy(&id).into_owned());
        Request {
            inner: Arc::new(Parts {
                method,
                version,
                path: uri.path().to_owned(),
                query,
                headers,
                ends,
                last_event_id,
                last_event_id_is_text,
            }),
        }
    }

    /// The HTTP method, e.g. `GET`.
    pub fn method(&self) -> &str {
        self.inner.method.as_str()
    }

    /// The HTTP version as ASGI and CGI name it: `"1.0"`, `"1.1"` or `"2"`.
    pub fn http_version(&self) -> &'static str {
        match self.inner.version {
            http::Version::HTTP_09 => "0.9",
            http::Version::HTTP_10 => "1.0",
            http::Version::HTTP_2 => "2",
            http::Version::HTTP_3 => "3",
            _ => "1.1",
        }
    }

    /// The path, as sent (not percent-decoded).
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// The path percent-decoded, as frameworks route on it; bytes that do
    /// not decode to UTF-8 are replaced (U+FFFD). `+` stays `+`.
    pub fn decoded_path(&self) -> Cow<'_, str> {
        percent_decode_str(&self.inner.path).decode_utf8_lossy()
    }

    /// The raw query string without `?`, empty if none.
    pub fn query_string(&self) -> &str {
        &self.inner.query
    }

    /// The first value of query parameter `name`, decoded (`+` and `%XX`).
    pub fn query(&self, name: &str) -> Option<String> {
        first_query_value(&self.inner.query, name)
    }

    /// Every query parameter in order, decoded.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        query_pairs(&self.inner.query)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// The first value of header `name` (case-insensitive), if it is text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.inner.headers.get(name)?.to_str().ok()
    }

    /// Every header as (lower-case name, value); values that are not valid
    /// text are given lossily.
    pub fn headers(&self) -> impl Iterator<Item = (&str, Cow<'_, str>)> {
        self.inner
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), String::from_utf8_lossy(value.as_bytes())))
    }

    /// Every header as (lower-case name, value bytes), repeated names once
    /// per value: in the order each name was first seen, a name's values in
    /// the order sent.
    pub fn header_bytes(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.inner
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes()))
    }

    /// Every header once, lower-case names in the order first seen, with
    /// repeated ones joined by `", "` (RFC 9110 section 5.3); values that are
    /// not valid text are given lossily. The one view of headers every
    /// binding hands its host.
    pub fn headers_joined(&self) -> Vec<(&str, String)> {
        let headers = &self.inner.headers;
        headers
            .keys()
            .map(|name| {
                let values: Vec<Cow<'_, str>> = headers
                    .get_all(name)
                    .iter()
                    .map(|value| String::from_utf8_lossy(value.as_bytes()))
                    .collect();
                (name.as_str(), values.join(", "))
            })
            .collect()
    }

    /// The value of header `name` (case-insensitive) as [`headers_joined`](Self::headers_joined)
    /// gives it: repeated headers joined by `", "`.
    pub fn header_joined(&self, name: &str) -> Option<String> {
        let mut values = self.inner.headers.get_all(name).iter().peekable();
        values.peek()?;
        let values: Vec<Cow<'_, str>> = values
            .map(|value| String::from_utf8_lossy(value.as_bytes()))
            .collect();
        Some(values.join(", "))
    }

    /// The first value of each query parameter, decoded, in the order the
    /// names first appear: the one map of the query every binding hands its
    /// host.
    pub fn query_first_values(&self) -> Vec<(String, String)> {
        let mut seen = std::collections::HashSet::new();
        query_pairs(&self.inner.query)
            .filter(|(name, _)| seen.insert(name.clone()))
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .collect()
    }

    /// The id the client last saw: the `Last-Event-ID` header, else the
    /// `lastEventId` query parameter. Bytes that are not UTF-8 are replaced
    /// (U+FFFD); such an id matches no event.
    pub fn last_event_id(&self) -> Option<&str> {
        self.inner.last_event_id.as_deref()
    }

    pub(crate) fn resume_from(&self) -> ResumeFrom<'_> {
        match self.inner.last_event_id.as_deref() {
            None | Some("") => ResumeFrom::Start,
            Some(_) if !self.inner.last_event_id_is_text => ResumeFrom::Unknown,
            Some(id) => ResumeFrom::After(id),
        }
    }

    /// The client's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.inner.ends.peer
    }

    /// The server's address the request arrived on.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.ends.local
    }

    /// `"https"` if the request arrived over TLS, else `"http"` (a proxy's
    /// `X-Forwarded-Proto` is the host's to trust or not).
    pub fn scheme(&self) -> &'static str {
        if self.inner.ends.tls {
            "https"
        } else {
            "http"
        }
    }
}

fn first_query_value(query: &str, name: &str) -> Option<String> {
    query_pairs(query)
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// The first value of `name`, percent-decoded to bytes (not yet text).
fn first_raw_query_value<'q>(query: &'q str, name: &str) -> Option<Cow<'q, [u8]>> {
    raw_pairs(query)
        .find(|(key, _)| form_decode(key) == name)
        .map(|(_, value)| form_decode_bytes(value))
}

fn query_pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    raw_pairs(query).map(|(key, value)| (form_decode(key), form_decode(value)))
}

/// The query's `name=value` pairs, not yet decoded.
fn raw_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// Decodes one `application/x-www-form-urlencoded` component to bytes.
fn form_decode_bytes(text: &str) -> Cow<'_, [u8]> {
    if !text.contains(['+', '%']) {
        return Cow::Borrowed(text.as_bytes());
    }
    let spaced = text.replace('+', " ");
    Cow::Owned(percent_decode_str(&spaced).collect())
}

/// Decodes one `application/x-www-form-urlencoded` component, lossily.
fn form_decode(text: &str) -> Cow<'_, str> {
    match form_decode_bytes(text) {
        Cow::Borrowed(_) => Cow::Borrowed(text),
        Cow::Owned(bytes) => Cow::Owned(String::from_utf8_lossy(&bytes).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ends() -> Endpoints {
        Endpoints {
            peer: "127.0.0.1:9".parse().unwrap(),
            local: "127.0.0.1:80".parse().unwrap(),
            tls: false,
        }
    }

    fn request(uri: &str, headers: &[(&str, &str)]) -> Request {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        Request::new(
            http::Method::GET,
            &uri.parse().unwrap(),
            http::Version::HTTP_11,
            map,
            ends(),
        )
    }

    #[test]
    fn decodes_query_parameters() {
        let req = request("/p?session_id=7&name=a+b%21&flag&x=1&x=2", &[]);
        assert_eq!(req.query("session_id").as_deref(), Some("7"));
        assert_eq!(req.query("name").as_deref(), Some("a b!"));
        assert_eq!(req.query("flag").as_deref(), Some(""));
        assert_eq!(req.query("x").as_deref(), Some("1"));
        assert_eq!(req.query("missing"), None);
        assert_eq!(req.query_pairs().len(), 5);
        assert_eq!(req.path(), "/p");
    }

    #[test]
    fn repeated_headers_are_joined_and_query_names_keep_their_first_value() {
        let mut map = HeaderMap::new();
        map.append("accept", "text/html".parse().unwrap());
        map.append("x-tag", "a".parse().unwrap());
        map.append("accept", "text/event-stream".parse().unwrap());
        let req = Request::new(
            http::Method::GET,
            &"/p?b=2&a=1&b=3".parse().unwrap(),
            http::Version::HTTP_11,
            map,
            ends(),
        );
        assert_eq!(
            req.headers_joined(),
            [
                ("accept", "text/html, text/event-stream".to_owned()),
                ("x-tag", "a".to_owned())
            ]
        );
        assert_eq!(
            req.header_joined("Accept").as_deref(),
            Some("text/html, text/event-stream")
        );
        assert_eq!(req.header_joined("missing"), None);
        let query = req.query_first_values();
        assert_eq!(query, [("b".into(), "2".into()), ("a".into(), "1".into())]);
    }

    #[test]
    fn the_decoded_path_is_utf8_and_keeps_plus_signs() {
        let req = request("/caf%C3%A9/a+b/%2F/%FF", &[]);
        assert_eq!(req.path(), "/caf%C3%A9/a+b/%2F/%FF");
        assert_eq!(req.decoded_path(), "/café/a+b///\u{FFFD}");
        assert_eq!(req.http_version(), "1.1");
    }

    #[test]
    fn last_event_id_prefers_the_header() {
        assert_eq!(request("/s?lastEventId=q", &[]).last_event_id(), Some("q"));
        let both = request("/s?lastEventId=q", &[("Last-Event-ID", "h")]);
        assert_eq!(both.last_event_id(), Some("h"));
        assert_eq!(request("/s", &[]).last_event_id(), None);
    }
}

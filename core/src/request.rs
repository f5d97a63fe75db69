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
    path: String,
    query: String,
    headers: HeaderMap,
    peer: SocketAddr,
    last_event_id: Option<String>,
}

impl Request {
    pub(crate) fn new(
        method: http::Method,
        uri: &http::Uri,
        headers: HeaderMap,
        peer: SocketAddr,
    ) -> Self {
        let query = uri.query().unwrap_or("").to_owned();
        // The header wins; the query form exists for clients (polyfills,
        // proxies) that cannot set headers on EventSource.
        let last_event_id = headers
            .get("last-event-id")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
            .or_else(|| first_query_value(&query, "lastEventId"));
        Request {
            inner: Arc::new(Parts {
                method,
                path: uri.path().to_owned(),
                query,
                headers,
                peer,
                last_event_id,
            }),
        }
    }

    /// The HTTP method, e.g. `GET`.
    pub fn method(&self) -> &str {
        self.inner.method.as_str()
    }

    /// The path, as sent (not percent-decoded).
    pub fn path(&self) -> &str {
        &self.inner.path
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

    /// The id the client last saw: the `Last-Event-ID` header, else the
    /// `lastEventId` query parameter.
    pub fn last_event_id(&self) -> Option<&str> {
        self.inner.last_event_id.as_deref()
    }

    /// The client's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.inner.peer
    }
}

fn first_query_value(query: &str, name: &str) -> Option<String> {
    query_pairs(query)
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

fn query_pairs(query: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (form_decode(key), form_decode(value))
        })
}

/// Decodes one `application/x-www-form-urlencoded` component, lossily.
fn form_decode(text: &str) -> Cow<'_, str> {
    if !text.contains(['+', '%']) {
        return Cow::Borrowed(text);
    }
    let spaced = text.replace('+', " ");
    Cow::Owned(percent_decode_str(&spaced).decode_utf8_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

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
            map,
            "127.0.0.1:9".parse().unwrap(),
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
    fn last_event_id_prefers_the_header() {
        assert_eq!(request("/s?lastEventId=q", &[]).last_event_id(), Some("q"));
        let both = request("/s?lastEventId=q", &[("Last-Event-ID", "h")]);
        assert_eq!(both.last_event_id(), Some("h"));
        assert_eq!(request("/s", &[]).last_event_id(), None);
    }
}

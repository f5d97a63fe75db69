//! What a JS handler sees of the request that opened a stream, reached a
//! route or subscribed to a channel.

use std::collections::HashMap;

use napi_derive::napi;

#[napi(object)]
pub struct ClientAddress {
    pub address: String,
    pub port: u32,
}

/// The request that opened a stream or reached a route.
#[napi(object, use_nullable = true)]
pub struct RequestInfo {
    pub method: String,
    pub path: String,
    pub query_string: String,
    pub query: HashMap<String, String>,
    pub headers: HashMap<String, String>,
    pub last_event_id: Option<String>,
    pub client: ClientAddress,
    /// `"https"` over TLS, else `"http"`.
    pub scheme: String,
}

pub(crate) fn request_info(request: &tidings::Request) -> RequestInfo {
    let query: HashMap<String, String> = request.query_first_values().into_iter().collect();
    let headers: HashMap<String, String> = request
        .headers_joined()
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect();
    let peer = request.peer_addr();
    RequestInfo {
        method: request.method().to_owned(),
        path: request.path().to_owned(),
        query_string: request.query_string().to_owned(),
        query,
        headers,
        last_event_id: request.last_event_id().map(str::to_owned),
        client: ClientAddress {
            address: peer.ip().to_string(),
            port: peer.port().into(),
        },
        scheme: request.scheme().to_owned(),
    }
}

//! Request handling: routing, methods, CORS, and the responses themselves.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};

use crate::body::{ResponseBody, Source, SseBody};
use crate::channel::{Channel, SubscribeError};
use crate::error::{Error, Result};
use crate::files;
use crate::reply::{reply_pair, RouteHandler};
use crate::request::Request;
use crate::server::{Cors, Shared};
use crate::stream::{stream_pair, Decision, StreamHandler};

/// What a path serves.
#[derive(Clone)]
pub(crate) enum Route {
    Channel(Channel),
    Stream(Arc<dyn StreamHandler>),
    Handler(Arc<dyn RouteHandler>),
    Page(PathBuf),
}

/// The routing table: exact paths, then directory prefixes (longest first).
#[derive(Default)]
pub(crate) struct Routes {
    exact: HashMap<String, Route>,
    directories: Vec<(String, PathBuf)>,
}

enum Target {
    Route(Route),
    File { dir: PathBuf, relative: String },
}

impl Routes {
    pub(crate) fn insert(&mut self, path: &str, route: Route) -> Result<()> {
        check_path(path)?;
        if self.exact.contains_key(path) {
            return Err(Error::RouteExists(path.to_owned()));
        }
        self.exact.insert(path.to_owned(), route);
        Ok(())
    }

    pub(crate) fn insert_directory(&mut self, prefix: &str, dir: PathBuf) -> Result<()> {
        check_path(prefix)?;
        let prefix = if prefix.ends_with('/') {
            prefix.to_owned()
        } else {
            format!("{prefix}/")
        };
        if self
            .directories
            .iter()
            .any(|(existing, _)| *existing == prefix)
        {
            return Err(Error::RouteExists(prefix));
        }
        self.directories.push((prefix, dir));
        self.directories
            .sort_by(|(a, _), (b, _)| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        Ok(())
    }

    /// The route registered at exactly `path`.
    pub(crate) fn exact(&self, path: &str) -> Option<Route> {
        self.exact.get(path).cloned()
    }

    pub(crate) fn channels(&self) -> impl Iterator<Item = &Channel> {
        self.exact.values().filter_map(|route| match route {
            Route::Channel(channel) => Some(channel),
            _ => None,
        })
    }

    fn find(&self, path: &str) -> Option<Target> {
        if let Some(route) = self.exact.get(path) {
            return Some(Target::Route(route.clone()));
        }
        self.directories.iter().find_map(|(prefix, dir)| {
            path.strip_prefix(prefix.as_str())
                .map(|relative| Target::File {
                    dir: dir.clone(),
                    relative: relative.to_owned(),
                })
        })
    }
}

fn check_path(path: &str) -> Result<()> {
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

const ALLOWED_METHODS: &str = "GET, HEAD, OPTIONS";

/// Answers one request.
pub(crate) async fn handle(
    shared: Arc<Shared>,
    peer: SocketAddr,
    request: http::Request<hyper::body::Incoming>,
) -> Response<ResponseBody> {
    let (parts, _body) = request.into_parts();
    let origin = parts.headers.get(header::ORIGIN).cloned();
    let mut response = route(&shared, peer, parts).await;
    shared
        .config
        .cors
        .apply(origin.as_ref(), response.headers_mut());
    response
}

async fn route(
    shared: &Arc<Shared>,
    peer: SocketAddr,
    parts: http::request::Parts,
) -> Response<ResponseBody> {
    let target = shared.routes().find(parts.uri.path());
    let Some(target) = target else {
        return text(StatusCode::NOT_FOUND, "not found\n");
    };
    match parts.method {
        Method::OPTIONS => return preflight(&parts.headers),
        Method::GET | Method::HEAD => {}
        _ => {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(ALLOWED_METHODS));
            return response;
        }
    }
    let head_only = parts.method == Method::HEAD;
    match target {
        Target::Route(Route::Page(file)) => serve_file(&file, head_only).await,
        Target::File { dir, relative } => match files::resolve(&dir, &relative).await {
            Some(file) => serve_file(&file, head_only).await,
            None => text(StatusCode::NOT_FOUND, "not found\n"),
        },
        Target::Route(Route::Handler(handler)) => {
            let request = Request::new(parts.method, &parts.uri, parts.headers, peer);
            let (reply, answer) = reply_pair();
            let handled = catch_unwind(AssertUnwindSafe(|| handler.handle(request, reply)));
            if handled.is_err() {
                tracing::error!(path = %parts.uri.path(), "route handler panicked");
                return text(StatusCode::INTERNAL_SERVER_ERROR, "route handler failed\n");
            }
            let Ok(page) = answer.await else {
                return text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "route handler sent no reply\n",
                );
            };
            let length = page.body.len();
            let mut response = Response::new(if head_only {
                ResponseBody::empty()
            } else {
                ResponseBody::full(page.body)
            });
            *response.status_mut() = page.status;
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, page.content_type);
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            if head_only {
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
            }
            response
        }
        Target::Route(_) if head_only => event_stream(ResponseBody::empty()),
        Target::Route(Route::Channel(channel)) => {
            let request = Request::new(parts.method, &parts.uri, parts.headers, peer);
            match channel.subscribe(request) {
                Ok(subscription) => {
                    let body = SseBody::new(Source::Channel(subscription), Arc::clone(shared));
                    event_stream(ResponseBody::Events(body))
                }
                Err(SubscribeError::Full) => {
                    shared
                        .counters
                        .connections_rejected
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    retry_later(StatusCode::SERVICE_UNAVAILABLE, "channel is full\n")
                }
                Err(SubscribeError::Stopped) => {
                    text(StatusCode::SERVICE_UNAVAILABLE, "server is stopping\n")
                }
            }
        }
        Target::Route(Route::Stream(handler)) => {
            let request = Request::new(parts.method, &parts.uri, parts.headers, peer);
            let (sender, receiver, decision) = stream_pair(shared.config.stream_queue);
            // A panicking handler costs this client a 500, nothing more.
            let opened = catch_unwind(AssertUnwindSafe(|| handler.open(request, sender)));
            if opened.is_err() {
                tracing::error!(path = %parts.uri.path(), "stream handler panicked");
                return text(StatusCode::INTERNAL_SERVER_ERROR, "stream handler failed\n");
            }
            match decision.await {
                Ok(Decision::Accept) => {
                    let body = SseBody::new(Source::Stream(receiver), Arc::clone(shared));
                    event_stream(ResponseBody::Events(body))
                }
                Ok(Decision::Reject { status, message }) => text(status, message),
                // Every sender dropped undecided: nothing to stream, and
                // 204 tells EventSource not to reconnect.
                Err(_) => {
                    let mut response = Response::new(ResponseBody::empty());
                    *response.status_mut() = StatusCode::NO_CONTENT;
                    response
                }
            }
        }
    }
}

fn event_stream(body: ResponseBody) -> Response<ResponseBody> {
    let mut response = Response::new(body);
    *response.headers_mut() = event_stream_headers();
    response
}

/// The headers of every event-stream response (before CORS).
pub(crate) fn event_stream_headers() -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(4);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Tells nginx-style proxies not to buffer the stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    headers
}

async fn serve_file(file: &std::path::Path, head_only: bool) -> Response<ResponseBody> {
    let contents = match tokio::fs::read(file).await {
        Ok(contents) => contents,
        Err(err) => {
            tracing::warn!(file = %file.display(), error = %err, "cannot read file");
            return text(StatusCode::NOT_FOUND, "not found\n");
        }
    };
    let length = contents.len();
    let mut response = Response::new(if head_only {
        ResponseBody::empty()
    } else {
        ResponseBody::full(contents)
    });
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(files::content_type(file)),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if head_only {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    response
}

fn preflight(request_headers: &HeaderMap) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(header::ALLOW, HeaderValue::from_static(ALLOWED_METHODS));
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOWED_METHODS),
    );
    if let Some(asked) = request_headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked.clone());
    }
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    response
}

/// A plain-text response.
pub(crate) fn text(status: StatusCode, message: impl Into<bytes::Bytes>) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::full(message));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// A refusal the client may retry after a short wait.
pub(crate) fn retry_later(status: StatusCode, message: &'static str) -> Response<ResponseBody> {
    let mut response = text(status, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    response
}

impl Cors {
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
            Cors::Origins(allowed) => {
                headers.append(header::VARY, HeaderValue::from_static("origin"));
                let Some(origin) = origin else { return };
                let permitted = origin
                    .to_str()
                    .is_ok_and(|origin| allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)));
                if permitted {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_paths_are_checked() {
        let mut routes = Routes::default();
        for bad in ["", "stream", "/a?b", "/a b", "/a\nb"] {
            assert!(matches!(
                routes.insert(bad, Route::Page(PathBuf::new())),
                Err(Error::InvalidPath { .. })
            ));
        }
        routes.insert("/a", Route::Page(PathBuf::new())).unwrap();
        assert!(matches!(
            routes.insert("/a", Route::Page(PathBuf::new())),
            Err(Error::RouteExists(_))
        ));
    }

    #[test]
    fn longest_directory_prefix_wins() {
        let mut routes = Routes::default();
        routes
            .insert_directory("/", PathBuf::from("/root"))
            .unwrap();
        routes
            .insert_directory("/static", PathBuf::from("/static"))
            .unwrap();
        let Some(Target::File { dir, relative }) = routes.find("/static/app.js") else {
            panic!("no match");
        };
        assert_eq!(
            (dir, relative.as_str()),
            (PathBuf::from("/static"), "app.js")
        );
        let Some(Target::File { dir, .. }) = routes.find("/other.js") else {
            panic!("no match");
        };
        assert_eq!(dir, PathBuf::from("/root"));
    }
}

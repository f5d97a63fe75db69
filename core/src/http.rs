//! The hyper service: every request that the direct path does not serve is
//! routed and answered here (methods, CORS, preflights, pages, stream heads).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use hyper::body::Incoming;

use crate::app::{self, Answer, AppHandler, ResponseHead};
use crate::auth::{Admitted, Denial, Verifier};
use crate::body::{BodyContext, ResponseBody, Source, SseBody};
use crate::channel::{Channel, SubscribeError};
use crate::config::Config;
use crate::files;
use crate::hub::{self, Hub, Refusal};
use crate::reply::reply_pair;
use crate::request::{Endpoints, Request};
use crate::routes::{Route, Routes, Target};
use crate::stream::{stream_pair, Decision as StreamDecision};
use crate::tls::Tls;
use crate::verdict::{verdict_pair, AuthorizeHook, Decision};

/// What answering a request needs: the configuration, the routing table and
/// the context every event-stream body is built from.
pub(crate) struct Site {
    pub(crate) config: Config,
    pub(crate) routes: RwLock<Routes>,
    pub(crate) bodies: BodyContext,
    /// The certificate and acceptors, when the server speaks TLS.
    pub(crate) tls: Option<Tls>,
    /// The token verifier of private channels, when [`Config::jwt`] is set.
    auth: Option<Verifier>,
    /// `Access-Control-Allow-Headers` for preflights: a fixed list, never
    /// the request's own.
    cors_allow_headers: HeaderValue,
    /// The same for the hub's, with what publishers send: their token and
    /// their form's type.
    hub_allow_headers: HeaderValue,
}

impl Site {
    pub(crate) fn new(
        config: Config,
        bodies: BodyContext,
        tls: Option<Tls>,
        auth: Option<Verifier>,
    ) -> Self {
        let names: Vec<String> = ["last-event-id", "cache-control"]
            .into_iter()
            .map(str::to_owned)
            .chain(
                config
                    .cors_allow_headers
                    .iter()
                    .map(|h| h.to_ascii_lowercase()),
            )
            .collect();
        // `Config::validate` checked the names, so the lists are valid values.
        let cors_allow_headers = HeaderValue::from_str(&names.join(", "))
            .unwrap_or_else(|_| HeaderValue::from_static("last-event-id, cache-control"));
        let hub_allow_headers = HeaderValue::from_str(&format!(
            "{}, authorization, content-type",
            names.join(", ")
        ))
        .unwrap_or_else(|_| cors_allow_headers.clone());
        Site {
            config,
            routes: RwLock::default(),
            bodies,
            tls,
            auth,
            cors_allow_headers,
            hub_allow_headers,
        }
    }

    /// Whether `request` may subscribe to `channel` at its path, and until
    /// when. The direct path asks first, and leaves a refusal to hyper's
    /// path, which answers and counts it ([`admit`](Self::admit)).
    pub(crate) fn access(&self, request: &Request, channel: &Channel) -> Result<Admitted, Denial> {
        match &self.auth {
            Some(verifier) => verifier.admit(request, channel.path(), channel.options().private),
            None => Ok(Admitted { until: None }),
        }
    }

    /// [`access`](Self::access), with a refusal counted.
    fn admit(&self, request: &Request, channel: &Channel) -> Result<Admitted, Denial> {
        let admitted = self.access(request, channel);
        if let Err(denial) = &admitted {
            self.count_refused(denial);
        }
        admitted
    }

    /// Counts a subscription its token did not let in.
    fn count_refused(&self, denial: &Denial) {
        let counters = &self.bodies.counters;
        let counter = match denial {
            Denial::Missing => &counters.auth_missing,
            Denial::Invalid(_) => &counters.auth_invalid,
            Denial::Forbidden => &counters.auth_forbidden,
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn routes(&self) -> RwLockReadGuard<'_, Routes> {
        self.routes.read().unwrap_or_else(PoisonError::into_inner)
    }
}

const ALLOWED_METHODS: &str = "GET, HEAD, OPTIONS";

/// The application failed after its response started: hyper closes the
/// connection without finishing the response.
#[derive(Debug, thiserror::Error)]
#[error("the application failed after its response started")]
pub(crate) struct Aborted;

/// Answers one request.
pub(crate) async fn handle(
    site: &Site,
    ends: Endpoints,
    request: http::Request<Incoming>,
) -> Result<Response<ResponseBody>, Aborted> {
    let (parts, body) = request.into_parts();
    let target = site.routes().find(parts.uri.path());
    let target = match target {
        // A file that is not there is the application's to answer.
        Some(Target::File { dir, relative }) => match files::resolve(&dir, &relative).await {
            Some(file) => Some(Target::Route(Route::Page(file))),
            None => site.routes().app().map(Target::App),
        },
        target => target,
    };
    if let Some(Target::App(app)) = target {
        // The application owns its headers, CORS included.
        return answer_app(site, app, parts, body, ends).await;
    }
    let origin = parts.headers.get(header::ORIGIN).cloned();
    let mut response = match target {
        Some(Target::Route(Route::Hub(hub))) => answer_hub(site, &hub, parts, body, ends).await,
        Some(target) => route(site, ends, parts, target).await,
        None => not_found(),
    };
    site.config
        .cors
        .apply(origin.as_ref(), response.headers_mut());
    Ok(response)
}

async fn route(
    site: &Site,
    ends: Endpoints,
    parts: http::request::Parts,
    target: Target,
) -> Response<ResponseBody> {
    match parts.method {
        Method::OPTIONS => return preflight(ALLOWED_METHODS, &site.cors_allow_headers),
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
        Target::Route(Route::Page(file)) => files::respond(&file, head_only)
            .await
            .unwrap_or_else(not_found),
        Target::File { .. } | Target::App(_) | Target::Route(Route::Hub(_)) => not_found(),
        Target::Route(Route::Handler(handler)) => {
            let request =
                Request::new(parts.method, &parts.uri, parts.version, parts.headers, ends);
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
        Target::Route(Route::Channel(channel)) if head_only => {
            let request =
                Request::new(parts.method, &parts.uri, parts.version, parts.headers, ends);
            match authorize(site, &channel, &request).await {
                Ok(_) => event_stream(ResponseBody::empty()),
                Err(refusal) => refusal,
            }
        }
        Target::Route(_) if head_only => event_stream(ResponseBody::empty()),
        Target::Route(Route::Channel(channel)) => {
            let request =
                Request::new(parts.method, &parts.uri, parts.version, parts.headers, ends);
            subscribe_or_refuse(site, &channel, request, Via::Route, event_stream).await
        }
        Target::Route(Route::Stream(handler)) => {
            let request =
                Request::new(parts.method, &parts.uri, parts.version, parts.headers, ends);
            let (sender, receiver, decision) =
                stream_pair(site.config.stream_queue, tokio::runtime::Handle::current());
            // A panicking handler costs this client a 500, nothing more.
            let opened = catch_unwind(AssertUnwindSafe(|| handler.open(request, sender)));
            if opened.is_err() {
                tracing::error!(path = %parts.uri.path(), "stream handler panicked");
                return text(StatusCode::INTERNAL_SERVER_ERROR, "stream handler failed\n");
            }
            match decision.await {
                Ok(StreamDecision::Accept) => {
                    let body = SseBody::new(Source::Stream(receiver), &site.bodies);
                    event_stream(ResponseBody::Events(body))
                }
                Ok(StreamDecision::Reject { status, message }) => text(status, message),
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

const HUB_METHODS: &str = "GET, HEAD, POST, OPTIONS";

/// Answers a request at the Mercure hub's path: a subscription (`GET`), a
/// publish (`POST`) or a preflight.
async fn answer_hub(
    site: &Site,
    hub: &Hub,
    parts: http::request::Parts,
    body: Incoming,
    ends: Endpoints,
) -> Response<ResponseBody> {
    let method = parts.method.clone();
    if method == Method::OPTIONS {
        return preflight(HUB_METHODS, &site.hub_allow_headers);
    }
    let request = Request::new(parts.method, &parts.uri, parts.version, parts.headers, ends);
    match method {
        Method::GET | Method::HEAD => match hub.subscribe(request) {
            Ok(subscribed) => {
                let body = if method == Method::HEAD {
                    ResponseBody::empty()
                } else {
                    let source = Source::Channel(subscribed.subscription);
                    ResponseBody::Events(
                        SseBody::new(source, &site.bodies).ending_at(subscribed.until),
                    )
                };
                let mut response = event_stream(body);
                if let Some(id) = subscribed.last_event_id {
                    response.headers_mut().insert("last-event-id", id);
                }
                response
            }
            Err(refusal) => hub_refused(site, refusal, true),
        },
        Method::POST => publish(site, hub, &request, body).await,
        _ => {
            let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(HUB_METHODS));
            response
        }
    }
}

/// Reads a publish request's form (within the hub's size limit and the
/// write timeout), publishes it, and answers the update's id once stored.
async fn publish(
    site: &Site,
    hub: &Hub,
    request: &Request,
    body: Incoming,
) -> Response<ResponseBody> {
    use http_body_util::BodyExt;
    let is_form = request.header("content-type").is_some_and(|value| {
        let essence = value.split(';').next().unwrap_or_default().trim();
        essence.eq_ignore_ascii_case("application/x-www-form-urlencoded")
    });
    if !is_form {
        return text(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "a publish is an application/x-www-form-urlencoded form\n",
        );
    }
    let deadline = site.config.write_timeout;
    let limited = http_body_util::Limited::new(body, hub.config().max_publish_bytes);
    let form = match tokio::time::timeout(deadline, limited.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(err)) if err.is::<http_body_util::LengthLimitError>() => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!(
                    "a publish may be at most {} bytes\n",
                    hub.config().max_publish_bytes
                ),
            );
        }
        Ok(Err(_)) => return text(StatusCode::BAD_REQUEST, "the form could not be read\n"),
        Err(_) => return text(StatusCode::REQUEST_TIMEOUT, "the form took too long\n"),
    };
    let trusted = trusted_origin(request, &site.config.cors);
    let publication = match hub.publish(request, trusted, &form, |path| {
        site.routes().channel_at(path)
    }) {
        Ok(publication) => publication,
        Err(refusal) => return hub_refused(site, refusal, false),
    };
    match tokio::time::timeout(deadline, publication.published).await {
        Ok(Ok(_)) => text(StatusCode::OK, publication.id),
        Ok(Err(err)) => retry_later(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{}\n", hub::publish_failed(&err)),
        ),
        Err(_) => retry_later(
            StatusCode::SERVICE_UNAVAILABLE,
            "the broker did not store the update in time\n",
        ),
    }
}

/// Whether the request comes from a page of the server's own origin or of
/// one the CORS policy names, or from no page at all (no `Origin`: not a
/// browser's cross-site request).
fn trusted_origin(request: &Request, cors: &crate::config::Cors) -> bool {
    let Some(origin) = request.header("origin") else {
        return true;
    };
    let own = origin
        .split_once("://")
        .is_some_and(|(_, authority)| Some(authority) == request.header("host"));
    own || cors.lists(origin)
}

/// The answer to a request the hub turned away; a subscriber's token
/// refusals are counted with the channels'.
fn hub_refused(site: &Site, refusal: Refusal, subscribing: bool) -> Response<ResponseBody> {
    match refusal {
        Refusal::Token(denial) => {
            if subscribing {
                site.count_refused(&denial);
            }
            refused(&denial)
        }
        Refusal::Status(503, message) => {
            retry_later(StatusCode::SERVICE_UNAVAILABLE, format!("{message}\n"))
        }
        Refusal::Status(status, message) => text(
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            format!("{message}\n"),
        ),
    }
}

/// Hands the request to the mounted application and turns its answer into
/// the response.
async fn answer_app(
    site: &Site,
    app: Arc<dyn AppHandler>,
    parts: http::request::Parts,
    body: Incoming,
    ends: Endpoints,
) -> Result<Response<ResponseBody>, Aborted> {
    let path = parts.uri.path().to_owned();
    if parts.headers.contains_key(header::UPGRADE) {
        // An exchange has no way to take over the connection (yet).
        tracing::warn!(%path, "refused a protocol upgrade (WebSocket?): applications cannot take one over yet");
        return Ok(text(
            StatusCode::FORBIDDEN,
            "protocol upgrades (WebSocket) are not supported\n",
        ));
    }
    let request = Request::new(parts.method, &parts.uri, parts.version, parts.headers, ends);
    let (exchange, answer, guard) =
        app::exchange(request.clone(), body, tokio::runtime::Handle::current());
    if catch_unwind(AssertUnwindSafe(|| app.call(exchange))).is_err() {
        tracing::error!(%path, "application handler panicked");
        return Ok(text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "application failed\n",
        ));
    }
    // Dropped with this future if the client leaves first: the
    // application then learns it has gone.
    let answer = answer.await;
    Ok(match answer {
        Ok(Answer::Respond { head, body }) => {
            let mut response = Response::new(ResponseBody::App {
                body,
                _closes: guard,
            });
            *response.status_mut() = head.status;
            *response.headers_mut() = head.headers;
            response
        }
        Ok(Answer::Subscribe { head, channel }) => {
            drop(guard); // the application is done with this request
            subscribe_or_refuse(site, &channel, request, Via::HandOver, |body| {
                handed_over(head, body)
            })
            .await
        }
        Ok(Answer::Stream { head, receiver }) => {
            drop(guard);
            let body = SseBody::new(Source::Stream(receiver), &site.bodies);
            handed_over(head, ResponseBody::Events(body))
        }
        Ok(Answer::Abort) => return Err(Aborted),
        Ok(Answer::Failed) | Err(_) => {
            text(StatusCode::INTERNAL_SERVER_ERROR, "application failed\n")
        }
    })
}

/// How a subscriber reached its channel.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Via {
    /// At the channel's path: its token and its authorize hook decide.
    Route,
    /// Handed over by a mounted application, which decided.
    HandOver,
}

/// The response of a new subscriber of `channel`, made by `respond` from
/// its event-stream body, or the refusal to answer instead (its token or
/// the channel's authorize hook refused it, the channel is full, or the
/// server is stopping).
async fn subscribe_or_refuse(
    site: &Site,
    channel: &Channel,
    request: Request,
    via: Via,
    respond: impl FnOnce(ResponseBody) -> Response<ResponseBody>,
) -> Response<ResponseBody> {
    let admitted = match via {
        Via::Route => match authorize(site, channel, &request).await {
            Ok(admitted) => admitted,
            Err(refusal) => return refusal,
        },
        Via::HandOver => Admitted { until: None },
    };
    match channel.subscribe(request) {
        Ok(subscription) => respond(ResponseBody::Events(
            SseBody::new(Source::Channel(subscription), &site.bodies).ending_at(admitted.until),
        )),
        Err(SubscribeError::Full) => {
            site.bodies
                .counters
                .subscribers_refused
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            retry_later(StatusCode::SERVICE_UNAVAILABLE, "channel is full\n")
        }
        Err(SubscribeError::Stopped) => {
            text(StatusCode::SERVICE_UNAVAILABLE, "server is stopping\n")
        }
    }
}

/// Whether a subscriber at `channel`'s path gets in, and until when: its
/// token first (for a private channel), then the channel's authorize hook.
/// `Err` is the answer that turns it away.
async fn authorize(
    site: &Site,
    channel: &Channel,
    request: &Request,
) -> Result<Admitted, Response<ResponseBody>> {
    let admitted = site
        .admit(request, channel)
        .map_err(|denial| refused(&denial))?;
    if let Some(hook) = channel.authorizer() {
        if let Some(refusal) = ask(site, channel, &hook, request).await {
            return Err(refusal);
        }
    }
    Ok(admitted)
}

/// Asks a channel's authorize hook about `request`; `None` lets it in,
/// else the answer that turns it away.
async fn ask(
    site: &Site,
    channel: &Channel,
    hook: &AuthorizeHook,
    request: &Request,
) -> Option<Response<ResponseBody>> {
    let (verdict, decision) = verdict_pair();
    let asked = catch_unwind(AssertUnwindSafe(|| hook(request.clone(), verdict)));
    if asked.is_err() {
        tracing::error!(path = %channel.path(), "authorize hook panicked");
        return Some(text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "authorization failed\n",
        ));
    }
    match tokio::time::timeout(site.config.limits.head_timeout, decision).await {
        Ok(Ok(Decision::Allow)) => None,
        Ok(Ok(Decision::Deny { status, message })) => {
            site.bodies
                .counters
                .auth_denied
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let body = if message.is_empty() {
                String::new()
            } else {
                format!("{}\n", message.trim_end())
            };
            Some(text(status, body))
        }
        Ok(Err(_)) => Some(text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the authorize hook gave no answer\n",
        )),
        Err(_) => {
            tracing::warn!(path = %channel.path(), "authorize hook did not answer within head_timeout");
            Some(retry_later(
                StatusCode::SERVICE_UNAVAILABLE,
                "authorization took too long\n",
            ))
        }
    }
}

/// The answer to a subscription its token does not admit (RFC 6750 §3).
fn refused(denial: &Denial) -> Response<ResponseBody> {
    let (status, challenge, body) = denial.answer();
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::UNAUTHORIZED);
    let mut response = text(status, body);
    // The description is one of a fixed set, so the value is valid.
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// The response of a connection handed to a channel or a stream: the event
/// stream's headers, with the application's status and headers (but not
/// its framing headers) over them.
fn handed_over(head: Option<ResponseHead>, body: ResponseBody) -> Response<ResponseBody> {
    let mut response = event_stream(body);
    let Some(head) = head else {
        return response;
    };
    *response.status_mut() = head.status;
    let headers = response.headers_mut();
    let mut replaced = std::collections::HashSet::new();
    for (name, value) in &head.headers {
        if name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING {
            continue;
        }
        // The application's values replace the engine's for the same name.
        if replaced.insert(name.clone()) {
            headers.remove(name);
        }
        headers.append(name.clone(), value.clone());
    }
    response
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

fn preflight(methods: &'static str, allowed_headers: &HeaderValue) -> Response<ResponseBody> {
    let mut response = Response::new(ResponseBody::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    let headers = response.headers_mut();
    headers.insert(header::ALLOW, HeaderValue::from_static(methods));
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        allowed_headers.clone(),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    response
}

fn not_found() -> Response<ResponseBody> {
    text(StatusCode::NOT_FOUND, "not found\n")
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
pub(crate) fn retry_later(
    status: StatusCode,
    message: impl Into<bytes::Bytes>,
) -> Response<ResponseBody> {
    let mut response = text(status, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    response
}

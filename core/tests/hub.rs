//! The Mercure hub, tested from the protocol (dunglas/mercure, spec/mercure.md,
//! in its widely deployed form): subscriptions by topic selectors (exact,
//! URI templates, `*`), form publishes authorised by `mercure.publish`,
//! private updates for `mercure.subscribe`, `Last-Event-ID` as a header or
//! `lastEventID` in the query, and the bridge between topics and the host's
//! channels.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};
use tidings::{ChannelOptions, Config, HubConfig, JwtConfig, JwtKey, Server};

const PUBLISHER_KEY: &[u8] = b"the publishers' key, at least 32 bytes long";
const SUBSCRIBER_KEY: &[u8] = b"the subscribers' key, at least 32 bytes long";
const HUB: &str = "/.well-known/mercure";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn sign(key: &[u8], mercure: Value) -> String {
    let claims = json!({"exp": now() + 600, "mercure": mercure});
    encode(&Header::default(), &claims, &EncodingKey::from_secret(key)).unwrap()
}

fn publisher(topics: &[&str]) -> String {
    sign(PUBLISHER_KEY, json!({ "publish": topics }))
}

fn subscriber(topics: &[&str]) -> String {
    sign(SUBSCRIBER_KEY, json!({ "subscribe": topics }))
}

fn hub_config() -> HubConfig {
    HubConfig {
        publisher_jwt: Some(JwtConfig::mercure(JwtKey::Secret(PUBLISHER_KEY.to_vec()))),
        subscriber_jwt: Some(JwtConfig::mercure(JwtKey::Secret(SUBSCRIBER_KEY.to_vec()))),
        ..HubConfig::default()
    }
}

fn hub_server(hub: HubConfig) -> Server {
    server(Config {
        hub: Some(hub),
        jwt: Some(JwtConfig::new(JwtKey::Secret(SUBSCRIBER_KEY.to_vec()))),
        ..Config::default()
    })
}

fn encode_form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(name, value)| {
            let value: String =
                percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC)
                    .collect();
            format!("{name}={value}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// POSTs an update with `token`; the response.
async fn post(
    addr: std::net::SocketAddr,
    token: Option<&str>,
    fields: &[(&str, &str)],
) -> Response {
    let bearer = token.map(|token| format!("Bearer {token}"));
    let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
    if let Some(bearer) = &bearer {
        headers.push(("authorization", bearer));
    }
    request_with_body(addr, "POST", HUB, &headers, encode_form(fields)).await
}

/// Publishes an update that must be accepted; its id.
async fn publish(addr: std::net::SocketAddr, fields: &[(&str, &str)]) -> String {
    let response = post(addr, Some(&publisher(&["*"])), fields).await;
    assert_eq!(response.status, 200, "publish {fields:?}");
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    response.text().await
}

/// The hub URL selecting `topics`, with more query pairs.
fn hub_url(topics: &[&str], extra: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(&str, &str)> = topics.iter().map(|topic| ("topic", *topic)).collect();
    pairs.extend_from_slice(extra);
    format!("{HUB}?{}", encode_form(&pairs))
}

async fn subscribe(
    addr: std::net::SocketAddr,
    topics: &[&str],
    headers: &[(&str, &str)],
) -> Response {
    get(addr, &hub_url(topics, &[]), headers).await
}

#[tokio::test]
async fn selectors_pick_topics_exactly_by_template_or_all() {
    let server = hub_server(hub_config());
    let addr = server.start().unwrap();
    let hub = server.stats().channels;
    assert!(
        hub.iter().any(|c| c.path == HUB),
        "the hub's ring is in the stats"
    );
    let mut exact = subscribe(addr, &["https://example.com/books/1"], &[])
        .await
        .events();
    let mut template = subscribe(addr, &["https://example.com/books/{id}"], &[])
        .await
        .events();
    let mut everything = subscribe(addr, &["*"], &[]).await.events();
    let mut two = subscribe(addr, &["/a", "/b"], &[]).await.events();
    let topics = [
        "https://example.com/books/1",
        "https://example.com/books/2",
        "https://example.com/books/2/reviews",
        "/a",
        "/b",
        "/c",
    ];
    for topic in topics {
        publish(addr, &[("topic", topic), ("data", topic)]).await;
    }
    let data = |events: Vec<Event>| events.into_iter().map(|e| e.data).collect::<Vec<_>>();
    assert_eq!(data(exact.take(1).await), ["https://example.com/books/1"]);
    assert_eq!(
        data(template.take(2).await),
        ["https://example.com/books/1", "https://example.com/books/2"]
    );
    assert_eq!(data(everything.take(6).await), topics);
    assert_eq!(data(two.take(2).await), ["/a", "/b"]);
    // Nothing else was sent to the narrower ones: the next update is next.
    publish(
        addr,
        &[("topic", "https://example.com/books/1"), ("data", "again")],
    )
    .await;
    assert_eq!(data(exact.take(1).await), ["again"]);
    assert_eq!(data(template.take(1).await), ["again"]);
    server.stop();
}

#[tokio::test]
async fn an_update_carries_its_id_type_retry_and_alternate_topics() {
    let server = hub_server(hub_config());
    let addr = server.start().unwrap();
    let subscribed = subscribe(addr, &["/alternate"], &[]).await;
    assert_eq!(subscribed.status, 200);
    assert_eq!(
        subscribed.header("content-type"),
        Some("text/event-stream; charset=utf-8")
    );
    let mut events = subscribed.raw();
    let id = publish(
        addr,
        &[
            ("topic", "/canonical"),
            ("topic", "/alternate"),
            ("data", "line one\nline two"),
            ("id", "urn:uuid:0f2f3e0c-3c58-4e46-9d74-2c2f7c9b1a01"),
            ("type", "book.updated"),
            ("retry", "2500"),
        ],
    )
    .await;
    assert_eq!(id, "urn:uuid:0f2f3e0c-3c58-4e46-9d74-2c2f7c9b1a01");
    let wire = events.read_until("\n\n").await;
    for line in [
        "id: urn:uuid:0f2f3e0c-3c58-4e46-9d74-2c2f7c9b1a01\n",
        "event: book.updated\n",
        "retry: 2500\n",
        "data: line one\ndata: line two\n",
    ] {
        assert!(wire.contains(line), "{line:?} in {wire:?}");
    }
    // Without an id the hub gives one: a URN of a random UUID.
    let generated = publish(addr, &[("topic", "/alternate"), ("data", "x")]).await;
    assert!(generated.starts_with("urn:uuid:"), "{generated}");
    let wire = events.read_until("\n\n").await;
    assert!(wire.contains(&format!("id: {generated}\n")), "{wire}");
    server.stop();
}

#[tokio::test]
async fn publishing_takes_a_token_whose_claim_selects_every_topic() {
    let server = hub_server(hub_config());
    let addr = server.start().unwrap();
    let mut watcher = subscribe(addr, &["*"], &[]).await.events();
    let fields = [("topic", "/books/1"), ("topic", "/secret/1"), ("data", "x")];

    let missing = post(addr, None, &fields).await;
    assert_eq!(missing.status, 401);
    assert_eq!(
        missing.header("www-authenticate"),
        Some(r#"Bearer realm="tidings""#)
    );
    let forged = sign(
        b"not the publishers' key, but just as long",
        json!({"publish": ["*"]}),
    );
    let forged = post(addr, Some(&forged), &fields).await;
    assert_eq!(forged.status, 401);
    assert!(forged
        .header("www-authenticate")
        .unwrap()
        .contains("invalid_token"));
    // A subscriber's token does not publish.
    let wrong_key = post(addr, Some(&subscriber(&["*"])), &fields).await;
    assert_eq!(wrong_key.status, 401);
    let no_claim = sign(PUBLISHER_KEY, json!({"subscribe": ["*"]}));
    assert_eq!(post(addr, Some(&no_claim), &fields).await.status, 403);
    // Granted one topic of two: the whole update is refused.
    let partial = post(addr, Some(&publisher(&["/books/{id}"])), &fields).await;
    assert_eq!(partial.status, 403);
    assert!(partial.text().await.contains("/secret/1"));

    let granted = post(
        addr,
        Some(&publisher(&["/books/{id}", "/secret/1"])),
        &fields,
    )
    .await;
    assert_eq!(granted.status, 200);
    let id = granted.text().await;
    let event = watcher.next().await.unwrap();
    assert_eq!((event.id.as_str(), event.data.as_str()), (id.as_str(), "x"));
    // The cookie carries a publisher's token too.
    let cookie = format!("mercureAuthorization={}", publisher(&["*"]));
    let headers = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("cookie", cookie.as_str()),
    ];
    let by_cookie = request_with_body(addr, "POST", HUB, &headers, "topic=%2Fc&data=cookie").await;
    assert_eq!(by_cookie.status, 200);
    assert_eq!(watcher.next().await.unwrap().data, "cookie");
    server.stop();
}

#[tokio::test]
async fn private_updates_reach_only_subscribers_whose_token_grants_the_topic() {
    let server = hub_server(hub_config());
    let addr = server.start().unwrap();
    let topics = ["/users/{id}/inbox"];
    let mut anonymous = subscribe(addr, &topics, &[]).await.events();
    let bearer = format!("Bearer {}", subscriber(&["/users/1/inbox"]));
    let mut by_header = subscribe(addr, &topics, &[("authorization", &bearer)])
        .await
        .events();
    let cookie = format!(
        "mercureAuthorization={}",
        subscriber(&["/users/{id}/inbox"])
    );
    let mut by_cookie = subscribe(addr, &topics, &[("cookie", &cookie)])
        .await
        .events();
    let query_token = subscriber(&["*"]);
    let url = hub_url(&topics, &[("authorization", &query_token)]);
    let mut by_query = get(addr, &url, &[]).await.events();
    let mut other_user = {
        let bearer = format!("Bearer {}", subscriber(&["/users/2/inbox"]));
        subscribe(addr, &topics, &[("authorization", &bearer)])
            .await
            .events()
    };

    publish(
        addr,
        &[
            ("topic", "/users/1/inbox"),
            ("data", "secret"),
            ("private", "on"),
        ],
    )
    .await;
    publish(addr, &[("topic", "/users/1/inbox"), ("data", "public")]).await;
    for (who, events) in [
        ("header", &mut by_header),
        ("cookie", &mut by_cookie),
        ("query", &mut by_query),
    ] {
        let data: Vec<String> = events.take(2).await.into_iter().map(|e| e.data).collect();
        assert_eq!(data, ["secret", "public"], "{who}");
    }
    assert_eq!(anonymous.next().await.unwrap().data, "public");
    assert_eq!(other_user.next().await.unwrap().data, "public");
    // A token that does not verify is refused, not taken as anonymous.
    let forged = format!(
        "Bearer {}",
        sign(
            b"forged forged forged forged forged!!",
            json!({"subscribe": ["*"]})
        )
    );
    let refused = subscribe(addr, &topics, &[("authorization", &forged)]).await;
    assert_eq!(refused.status, 401);
    server.stop();
}

#[tokio::test]
async fn without_anonymous_subscribers_a_token_is_required() {
    let server = hub_server(HubConfig {
        anonymous: false,
        ..hub_config()
    });
    let addr = server.start().unwrap();
    let refused = subscribe(addr, &["/a"], &[]).await;
    assert_eq!(refused.status, 401);
    assert!(refused.header("www-authenticate").is_some());
    let bearer = format!("Bearer {}", subscriber(&[]));
    assert_eq!(
        subscribe(addr, &["/a"], &[("authorization", &bearer)])
            .await
            .status,
        200
    );
    server.stop();

    let invalid = Server::new(Config {
        hub: Some(HubConfig {
            anonymous: false,
            subscriber_jwt: None,
            ..HubConfig::default()
        }),
        ..Config::default()
    });
    assert!(invalid.unwrap_err().to_string().contains("anonymous"));
}

#[tokio::test]
async fn last_event_id_resumes_from_the_header_or_the_query() {
    let server = hub_server(hub_config());
    let addr = server.start().unwrap();
    let mut ids = Vec::new();
    for n in 0..5 {
        let topic = if n % 2 == 0 { "/even" } else { "/odd" };
        ids.push(publish(addr, &[("topic", topic), ("data", &n.to_string())]).await);
    }
    let data = |events: Vec<Event>| events.into_iter().map(|e| e.data).collect::<Vec<_>>();

    // The response names the newest update before the first one sent that
    // the subscriber may see: here the one it resumed after.
    let by_header = subscribe(addr, &["/even"], &[("last-event-id", &ids[0])]).await;
    assert_eq!(by_header.header("last-event-id"), Some(ids[0].as_str()));
    assert_eq!(data(by_header.events().take(2).await), ["2", "4"]);

    let url = hub_url(&["/even"], &[("lastEventID", &ids[2])]);
    let by_query = get(addr, &url, &[]).await;
    assert_eq!(by_query.header("last-event-id"), Some(ids[2].as_str()));
    let mut by_query = by_query.events();
    assert_eq!(data(by_query.take(1).await), ["4"]);

    // The header wins over the query.
    let both = get(addr, &url, &[("last-event-id", &ids[1])]).await;
    assert_eq!(data(both.events().take(2).await), ["2", "4"]);

    // Resuming after an update of another topic: the response names the
    // newest one the subscriber may see before it.
    let after_odd = subscribe(addr, &["/even"], &[("last-event-id", &ids[1])]).await;
    assert_eq!(after_odd.header("last-event-id"), Some(ids[0].as_str()));

    let earliest = subscribe(addr, &["/odd"], &[("last-event-id", "earliest")]).await;
    assert_eq!(earliest.header("last-event-id"), Some("earliest"));
    assert_eq!(data(earliest.events().take(2).await), ["1", "3"]);

    // An unknown id: what is kept is sent after a reset, and the header
    // says the client may have missed something.
    let unknown = subscribe(addr, &["/odd"], &[("last-event-id", "urn:uuid:unknown")]).await;
    assert_eq!(unknown.header("last-event-id"), Some("earliest"));
    let mut unknown = unknown.events();
    assert_eq!(unknown.next().await.unwrap().event, "reset");
    assert_eq!(data(unknown.take(2).await), ["1", "3"]);

    // Live subscribers get no such header.
    assert_eq!(
        subscribe(addr, &["/odd"], &[])
            .await
            .header("last-event-id"),
        None
    );
    publish(addr, &[("topic", "/even"), ("data", "live")]).await;
    assert_eq!(data(by_query.take(1).await), ["live"]);
    server.stop();
}

#[tokio::test]
async fn the_host_channels_are_topics_both_ways() {
    let server = hub_server(HubConfig {
        topic_base: Some("https://example.com".into()),
        ..hub_config()
    });
    let books = server.channel("/books", ChannelOptions::default()).unwrap();
    let members = server
        .channel(
            "/members",
            ChannelOptions {
                private: true,
                ..ChannelOptions::default()
            },
        )
        .unwrap();
    let addr = server.start().unwrap();

    // The host publishes on a channel: hub subscribers of its topic get it.
    let mut hub_books = subscribe(addr, &["https://example.com/books"], &[])
        .await
        .events();
    let mut hub_anonymous = subscribe(addr, &["https://example.com/{name}"], &[])
        .await
        .events();
    let bearer = format!("Bearer {}", subscriber(&["https://example.com/members"]));
    let mut hub_member = subscribe(
        addr,
        &["https://example.com/members"],
        &[("authorization", &bearer)],
    )
    .await
    .events();
    let id = books
        .publish(tidings::Event::data("from the host"))
        .unwrap()
        .unwrap();
    members
        .publish(tidings::Event::data("members only"))
        .unwrap();
    books.publish(tidings::Event::data("public again")).unwrap();
    let event = hub_books.next().await.unwrap();
    assert_eq!(
        (event.data.as_str(), event.id.as_str()),
        ("from the host", id.as_str())
    );
    let data: Vec<String> = hub_anonymous
        .take(2)
        .await
        .into_iter()
        .map(|e| e.data)
        .collect();
    assert_eq!(
        data,
        ["from the host", "public again"],
        "a private channel's events are private updates"
    );
    assert_eq!(hub_member.next().await.unwrap().data, "members only");

    // A hub update of a channel's topic reaches the channel's subscribers.
    let mut channel_books = get(addr, "/books", &[]).await.events();
    let channel_bearer = format!("Bearer {}", {
        let claims = json!({"exp": now() + 600, "tidings": {"subscribe": ["/members"]}});
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SUBSCRIBER_KEY),
        )
        .unwrap()
    });
    let mut channel_members = get(addr, "/members", &[("authorization", &channel_bearer)])
        .await
        .events();
    eventually("channel subscribers", || {
        books.subscribers() == 1 && members.subscribers() == 1
    })
    .await;
    let id = publish(
        addr,
        &[
            ("topic", "https://example.com/books"),
            ("data", "from the hub"),
        ],
    )
    .await;
    let event = channel_books.next().await.unwrap();
    assert_eq!(
        (event.data.as_str(), event.id.as_str()),
        ("from the hub", id.as_str())
    );
    // A private update reaches a private channel, never a public one.
    publish(
        addr,
        &[
            ("topic", "https://example.com/books"),
            ("data", "private"),
            ("private", "on"),
        ],
    )
    .await;
    publish(
        addr,
        &[
            ("topic", "https://example.com/members"),
            ("data", "to members"),
            ("private", "on"),
        ],
    )
    .await;
    publish(
        addr,
        &[("topic", "https://example.com/books"), ("data", "next")],
    )
    .await;
    assert_eq!(channel_books.next().await.unwrap().data, "next");
    assert_eq!(channel_members.next().await.unwrap().data, "to members");
    // Copies do not come back: the hub saw each update once.
    assert_eq!(hub_books.next().await.unwrap().data, "public again");
    assert_eq!(hub_books.next().await.unwrap().data, "from the hub");
    assert_eq!(hub_books.next().await.unwrap().data, "next");
    server.stop();
}

#[tokio::test]
async fn bad_requests_get_clear_answers() {
    let server = hub_server(HubConfig {
        max_topics: 3,
        max_publish_bytes: 1024,
        ..hub_config()
    });
    let addr = server.start().unwrap();
    let status = |response: &Response| response.status.as_u16();

    let no_topic = get(addr, HUB, &[]).await;
    assert_eq!(status(&no_topic), 400);
    assert!(no_topic.text().await.contains("topic"));
    assert_eq!(status(&subscribe(addr, &["/a/{"], &[]).await), 400);
    assert_eq!(
        status(&subscribe(addr, &["/a", "/b", "/c", "/d"], &[]).await),
        400
    );
    assert_eq!(
        status(&get(addr, &format!("{HUB}?topic=%0A"), &[]).await),
        400
    );

    let token = format!("Bearer {}", publisher(&["*"]));
    let as_json = request_with_body(
        addr,
        "POST",
        HUB,
        &[
            ("content-type", "application/json"),
            ("authorization", &token),
        ],
        r#"{"topic":"/a"}"#,
    )
    .await;
    assert_eq!(status(&as_json), 415);
    let huge = format!("topic=%2Fa&data={}", "x".repeat(2048));
    let too_large = request_with_body(
        addr,
        "POST",
        HUB,
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("authorization", &token),
        ],
        huge,
    )
    .await;
    assert_eq!(status(&too_large), 413);
    for fields in [
        &[("data", "no topic")][..],
        &[("topic", "/a"), ("type", "bad\nname")],
        &[("topic", "/a"), ("retry", "soon")],
        &[("topic", "/a"), ("id", "#fragment")],
    ] {
        let response = post(addr, Some(&publisher(&["*"])), fields).await;
        assert_eq!(status(&response), 400, "{fields:?}");
    }
    let deleted = request(addr, "DELETE", HUB, &[]).await;
    assert_eq!(status(&deleted), 405);
    assert_eq!(deleted.header("allow"), Some("GET, HEAD, POST, OPTIONS"));
    let preflight = request(addr, "OPTIONS", HUB, &[("origin", "http://app.test")]).await;
    assert_eq!(status(&preflight), 204);
    let allowed = preflight.header("access-control-allow-headers").unwrap();
    assert!(
        allowed.contains("authorization") && allowed.contains("last-event-id"),
        "{allowed}"
    );
    // After all that, the hub still serves.
    let mut events = subscribe(addr, &["/a"], &[]).await.events();
    publish(addr, &[("topic", "/a"), ("data", "fine")]).await;
    assert_eq!(events.next().await.unwrap().data, "fine");
    server.stop();
}

#[tokio::test]
async fn publishing_is_off_without_a_publisher_key() {
    let server = server(Config {
        hub: Some(HubConfig::default()),
        ..Config::default()
    });
    let news = server.channel("/news", ChannelOptions::default()).unwrap();
    let addr = server.start().unwrap();
    let refused = post(
        addr,
        Some(&publisher(&["*"])),
        &[("topic", "/news"), ("data", "x")],
    )
    .await;
    assert_eq!(refused.status, 403);
    assert!(refused.text().await.contains("no publisher key"));
    // The host's channels still reach the hub's subscribers.
    let mut events = subscribe(addr, &["/news"], &[]).await.events();
    eventually("the hub subscriber", || {
        server
            .stats()
            .channels
            .iter()
            .any(|c| c.path == HUB && c.subscribers == 1)
    })
    .await;
    news.publish(tidings::Event::data("headline")).unwrap();
    assert_eq!(events.next().await.unwrap().data, "headline");
    server.stop();
}

#[tokio::test]
async fn a_hub_subscription_ends_when_its_token_expires() {
    let server = hub_server(HubConfig {
        subscriber_jwt: Some(JwtConfig {
            leeway: Duration::ZERO,
            ..JwtConfig::mercure(JwtKey::Secret(SUBSCRIBER_KEY.to_vec()))
        }),
        ..hub_config()
    });
    let addr = server.start().unwrap();
    let claims = json!({"exp": now() + 2, "mercure": {"subscribe": ["*"]}});
    let short = encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SUBSCRIBER_KEY),
    )
    .unwrap();
    let bearer = format!("Bearer {short}");
    let events = subscribe(addr, &["/a"], &[("authorization", &bearer)])
        .await
        .events();
    let ended = tokio::time::timeout(PATIENCE, events.collect()).await;
    assert!(ended.is_ok(), "the stream ended by itself");
    server.stop();
}

#[tokio::test]
async fn a_cookie_publishes_only_from_a_trusted_origin() {
    let server = server(Config {
        hub: Some(hub_config()),
        cors: tidings::Cors::Origins(vec!["https://app.example".into()]),
        ..Config::default()
    });
    let addr = server.start().unwrap();
    let cookie = format!("mercureAuthorization={}", publisher(&["*"]));
    let own = format!("http://{addr}");
    let post_from = |origin: Option<&str>, carrier: &str| {
        let token = publisher(&["*"]);
        let mut headers = vec![(
            "content-type",
            "application/x-www-form-urlencoded".to_owned(),
        )];
        match carrier {
            "cookie" => headers.push(("cookie", cookie.clone())),
            _ => headers.push(("authorization", format!("Bearer {token}"))),
        }
        if let Some(origin) = origin {
            headers.push(("origin", origin.to_owned()));
        }
        async move {
            let headers: Vec<(&str, &str)> =
                headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
            request_with_body(addr, "POST", HUB, &headers, "topic=%2Fa&data=x")
                .await
                .status
        }
    };
    // Another site's form, posted by a browser that holds the cookie.
    assert_eq!(post_from(Some("https://evil.example"), "cookie").await, 403);
    assert_eq!(
        post_from(Some(&own), "cookie").await,
        200,
        "the hub's own pages"
    );
    assert_eq!(
        post_from(Some("https://app.example"), "cookie").await,
        200,
        "a CORS origin"
    );
    assert_eq!(post_from(None, "cookie").await, 200, "not from a page");
    // A bearer token is no ambient credential: any origin may use its own.
    assert_eq!(post_from(Some("https://evil.example"), "header").await, 200);
    server.stop();
}

// Two threads: the client's connection task must run while `stop` blocks
// this one, to answer the server's GOAWAY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_subscriptions_share_an_http2_connection_and_resume_there_too() {
    let server = hub_server(hub_config());
    let addr = server.start().unwrap();
    let first = publish(addr, &[("topic", "/a"), ("data", "before")]).await;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut h2 = common::tls::H2::handshake(tcp, addr, false).await;
    let mut live = h2.get(&hub_url(&["/a"], &[]), &[]).await.events();
    let resumed = h2
        .get(&hub_url(&["/a", "/b"], &[]), &[("last-event-id", &first)])
        .await;
    assert_eq!(resumed.header("last-event-id"), Some(first.as_str()));
    let mut resumed = resumed.events();
    publish(addr, &[("topic", "/b"), ("data", "b")]).await;
    publish(addr, &[("topic", "/a"), ("data", "a")]).await;
    assert_eq!(live.next().await.unwrap().data, "a");
    let data: Vec<String> = resumed.take(2).await.into_iter().map(|e| e.data).collect();
    assert_eq!(data, ["b", "a"]);
    server.stop();
}

//! Private channels and JSON Web Tokens: the auth matrix (no token, bad
//! signature, expired, wrong channel, right channel) from each place a token
//! may come from (header, cookie, query), on the direct path and over
//! HTTP/2, with HS256 secrets, RS256 PEM keys and an ES256 key from a JWKS;
//! the subscription that ends when its token expires.

mod common;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use tidings::{ChannelOptions, Config, Error, Event, JwtConfig, JwtKey, Server};

const SECRET: &[u8] = b"a secret only the token tests know, 32+ bytes";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/jwt")
        .join(name)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An HS256 token granting `channels`, expiring `exp_in` seconds from now
/// (negative: expired).
fn token(channels: &[&str], exp_in: i64) -> String {
    let claims = json!({
        "sub": "tester",
        "exp": now().saturating_add_signed(exp_in),
        "tidings": { "subscribe": channels },
    });
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET),
    )
    .unwrap()
}

/// A server verifying `jwt` with a private channel `/private/news` and a
/// public one `/public`.
fn server_with(jwt: JwtConfig) -> (Server, tidings::Channel, tidings::Channel) {
    let server = server(Config {
        jwt: Some(jwt),
        metrics_path: Some("/metrics".into()),
        ..Config::default()
    });
    let private = server
        .channel(
            "/private/news",
            ChannelOptions {
                private: true,
                ..ChannelOptions::default()
            },
        )
        .unwrap();
    let public = server
        .channel("/public", ChannelOptions::default())
        .unwrap();
    (server, private, public)
}

fn hs256() -> JwtConfig {
    JwtConfig::new(JwtKey::Secret(SECRET.to_vec()))
}

/// Where the request carries its token.
#[derive(Clone, Copy, Debug)]
enum Carrier {
    Header,
    Cookie,
    Query,
}

async fn subscribe(
    addr: std::net::SocketAddr,
    path: &str,
    token: Option<&str>,
    carrier: Carrier,
) -> Response {
    let Some(token) = token else {
        return get(addr, path, &[]).await;
    };
    match carrier {
        Carrier::Header => {
            let value = format!("Bearer {token}");
            get(addr, path, &[("authorization", &value)]).await
        }
        Carrier::Cookie => {
            let value = format!("theme=dark; tidings_token={token}");
            get(addr, path, &[("cookie", &value)]).await
        }
        Carrier::Query => get(addr, &format!("{path}?access_token={token}"), &[]).await,
    }
}

#[tokio::test]
async fn the_auth_matrix_from_every_carrier() {
    let (server, private, _public) = server_with(hs256());
    let addr = server.start().unwrap();
    let forged = {
        let claims = json!({"exp": now() + 60, "tidings": {"subscribe": ["*"]}});
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(b"not the secret, though just as long as it"),
        )
        .unwrap()
    };
    for carrier in [Carrier::Header, Carrier::Cookie, Carrier::Query] {
        let path = "/private/news";
        let refused = subscribe(addr, path, None, carrier).await;
        assert_eq!(refused.status, 401, "{carrier:?}: no token");
        assert_eq!(
            refused.header("www-authenticate"),
            Some(r#"Bearer realm="tidings""#)
        );

        let bad = subscribe(addr, path, Some(&forged), carrier).await;
        assert_eq!(bad.status, 401, "{carrier:?}: bad signature");
        let challenge = bad.header("www-authenticate").unwrap().to_owned();
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
        assert!(challenge.contains("bad signature"), "{challenge}");

        let expired = subscribe(addr, path, Some(&token(&[path], -120)), carrier).await;
        assert_eq!(expired.status, 401, "{carrier:?}: expired");
        assert!(expired.text().await.contains("expired"));

        let elsewhere = subscribe(addr, path, Some(&token(&["/private/other"], 60)), carrier).await;
        assert_eq!(elsewhere.status, 403, "{carrier:?}: wrong channel");
        assert!(elsewhere
            .header("www-authenticate")
            .unwrap()
            .contains("insufficient_scope"));

        let granted = subscribe(addr, path, Some(&token(&["/private/*"], 60)), carrier).await;
        assert_eq!(granted.status, 200, "{carrier:?}: right channel");
        let mut events = granted.events();
        eventually("the subscriber", || private.subscribers() == 1).await;
        private.publish(Event::data("for members")).unwrap();
        assert_eq!(events.next().await.unwrap().data, "for members");
        drop(events);
        eventually("the subscriber left", || private.subscribers() == 0).await;
    }
    let metrics = get(addr, "/metrics", &[]).await.text().await;
    for (reason, count) in [("missing_token", 3), ("invalid_token", 6), ("forbidden", 3)] {
        let series = format!("tidings_subscriptions_refused_total{{reason=\"{reason}\"}} {count}");
        assert!(metrics.contains(&series), "{series} in\n{metrics}");
    }
    server.stop();
}

#[tokio::test]
async fn a_public_channel_needs_no_token_but_refuses_a_bad_one() {
    let (server, _private, public) = server_with(hs256());
    let addr = server.start().unwrap();
    let mut anonymous = get(addr, "/public", &[]).await.events();
    let mut member = subscribe(addr, "/public", Some(&token(&[], 60)), Carrier::Header)
        .await
        .events();
    eventually("two subscribers", || public.subscribers() == 2).await;
    public.publish(Event::data("for all")).unwrap();
    assert_eq!(anonymous.next().await.unwrap().data, "for all");
    assert_eq!(member.next().await.unwrap().data, "for all");
    let expired = subscribe(addr, "/public", Some(&token(&[], -120)), Carrier::Query).await;
    assert_eq!(expired.status, 401);
    // Another scheme is no token at all.
    let basic = get(addr, "/public", &[("authorization", "Basic dXNlcjpwdw==")]).await;
    assert_eq!(basic.status, 200);
    let head = request(addr, "HEAD", "/private/news", &[]).await;
    assert_eq!(head.status, 401, "HEAD is refused like GET");
    server.stop();
}

#[tokio::test]
async fn a_subscription_ends_when_its_token_expires() {
    let (server, private, _public) = server_with(JwtConfig {
        leeway: Duration::ZERO,
        ..hs256()
    });
    let addr = server.start().unwrap();
    let short = token(&["/private/news"], 2);
    let mut events = subscribe(addr, "/private/news", Some(&short), Carrier::Header)
        .await
        .events();
    eventually("the subscriber", || private.subscribers() == 1).await;
    private.publish(Event::data("before")).unwrap();
    assert_eq!(events.next().await.unwrap().data, "before");
    // The stream ends by itself within the token's life (plus PATIENCE).
    assert!(events.next().await.is_none(), "the stream ended at expiry");
    eventually("the subscription dropped", || private.subscribers() == 0).await;

    let (lenient, lenient_channel, _) = server_with(JwtConfig {
        end_at_expiry: false,
        leeway: Duration::ZERO,
        ..hs256()
    });
    let addr = lenient.start().unwrap();
    let mut events = subscribe(
        addr,
        "/private/news",
        Some(&token(&["/private/news"], 1)),
        Carrier::Header,
    )
    .await
    .events();
    eventually("the subscriber", || lenient_channel.subscribers() == 1).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    lenient_channel.publish(Event::data("after")).unwrap();
    assert_eq!(
        events.next().await.unwrap().data,
        "after",
        "end_at_expiry: false keeps it"
    );
    server.stop();
    lenient.stop();
}

#[tokio::test]
async fn rs256_from_a_pem_file_and_es256_from_a_jwks_by_key_id() {
    let claims = json!({"exp": now() + 60, "tidings": {"subscribe": ["/private/news"]}});
    let rsa =
        EncodingKey::from_rsa_pem(&std::fs::read(fixture("rsa-private.pem")).unwrap()).unwrap();
    let ec = EncodingKey::from_ec_pem(&std::fs::read(fixture("ec-private.pem")).unwrap()).unwrap();

    let (server, _, _) = server_with(JwtConfig {
        algorithm: "RS256".into(),
        ..JwtConfig::new(JwtKey::PemFile(fixture("rsa-public.pem")))
    });
    let addr = server.start().unwrap();
    let signed = encode(&Header::new(Algorithm::RS256), &claims, &rsa).unwrap();
    let response = subscribe(addr, "/private/news", Some(&signed), Carrier::Header).await;
    assert_eq!(response.status, 200);
    // An HS256 token made with the public key as its secret: the classic
    // algorithm confusion, refused because only RS256 is accepted.
    let public_pem = std::fs::read(fixture("rsa-public.pem")).unwrap();
    let confused = encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(&public_pem),
    )
    .unwrap();
    let response = subscribe(addr, "/private/news", Some(&confused), Carrier::Header).await;
    assert_eq!(response.status, 401);
    assert!(response.text().await.contains("wrong algorithm"));
    server.stop();

    let (server, _, _) = server_with(JwtConfig {
        algorithm: "ES256".into(),
        ..JwtConfig::new(JwtKey::JwksFile(fixture("jwks.json")))
    });
    let addr = server.start().unwrap();
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("ec-1".into());
    let signed = encode(&header, &claims, &ec).unwrap();
    let response = subscribe(addr, "/private/news", Some(&signed), Carrier::Cookie).await;
    assert_eq!(response.status, 200);
    header.kid = Some("nobody".into());
    let unknown = encode(&header, &claims, &ec).unwrap();
    let response = subscribe(addr, "/private/news", Some(&unknown), Carrier::Cookie).await;
    assert_eq!(response.status, 401);
    assert!(response.text().await.contains("unknown key id"));
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http2_a_refused_stream_leaves_its_siblings_alone() {
    let (server, private, _public) = server_with(hs256());
    let addr = server.start().unwrap();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut h2 = common::tls::H2::handshake(stream, addr, false).await;
    let good = format!("Bearer {}", token(&["/private/news"], 60));
    let member = h2.get("/private/news", &[("authorization", &good)]).await;
    assert_eq!(member.status, 200);
    let mut member = member.raw();
    let refused = h2.get("/private/news", &[]).await;
    assert_eq!(refused.status, 401);
    eventually("the member", || private.subscribers() == 1).await;
    private.publish(Event::data("still here")).unwrap();
    member.read_until("data: still here\n\n").await;
    server.stop();
}

#[test]
fn a_private_channel_needs_a_verifier_and_a_bad_key_is_named() {
    let plain = server(Config::default());
    match plain.channel(
        "/private",
        ChannelOptions {
            private: true,
            ..ChannelOptions::default()
        },
    ) {
        Err(Error::InvalidConfig(message)) => assert!(message.contains("no JWT key"), "{message}"),
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
    let config = Config {
        jwt: Some(JwtConfig {
            algorithm: "ES256".into(),
            ..JwtConfig::new(JwtKey::PemFile(fixture("rsa-public.pem")))
        }),
        ..Config::default()
    };
    match Server::new(config) {
        Err(Error::InvalidConfig(message)) => {
            assert!(message.contains("rsa-public.pem"), "{message}")
        }
        other => panic!("expected InvalidConfig, got {other:?}"),
    }
}

/// A channel whose hook lets in `?user=ada` at once, answers `?user=bob`
/// later from another thread with a 402, and never answers `?user=slow`.
fn hooked(
    config: Config,
) -> (
    Server,
    tidings::Channel,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let server = server(config);
    let channel = server
        .channel("/hooked", ChannelOptions::default())
        .unwrap();
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = std::sync::Arc::clone(&asked);
    channel.authorize(move |request, verdict| {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        match request.query("user").as_deref() {
            Some("ada") => verdict.allow().unwrap(),
            Some("bob") => {
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(50));
                    verdict.deny(402, "pay first").unwrap();
                });
            }
            Some("slow") => std::mem::forget(verdict),
            Some("panic") => panic!("a host bug"),
            _ => drop(verdict),
        }
    });
    (server, channel, asked)
}

#[tokio::test]
async fn an_authorize_hook_decides_at_once_or_later_and_its_failures_are_answered() {
    let (server, channel, asked) = hooked(Config {
        limits: tidings::Limits {
            head_timeout: Duration::from_millis(500),
            ..tidings::Limits::default()
        },
        metrics_path: Some("/metrics".into()),
        ..Config::default()
    });
    let addr = server.start().unwrap();
    let mut ada = get(addr, "/hooked?user=ada", &[]).await.events();
    eventually("ada", || channel.subscribers() == 1).await;
    channel.publish(Event::data("hello ada")).unwrap();
    assert_eq!(ada.next().await.unwrap().data, "hello ada");

    let bob = get(addr, "/hooked?user=bob", &[]).await;
    assert_eq!(bob.status, 402);
    assert_eq!(bob.text().await, "pay first\n");
    let slow = get(addr, "/hooked?user=slow", &[]).await;
    assert_eq!(slow.status, 503, "no answer within head_timeout");
    assert!(slow.header("retry-after").is_some());
    assert_eq!(
        get(addr, "/hooked?user=nobody", &[]).await.status,
        500,
        "dropped unanswered"
    );
    assert_eq!(
        get(addr, "/hooked?user=panic", &[]).await.status,
        500,
        "the hook panicked"
    );
    assert_eq!(
        request(addr, "HEAD", "/hooked?user=bob", &[]).await.status,
        402
    );
    assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 6);
    assert_eq!(channel.subscribers(), 1, "only ada got in");
    let metrics = get(addr, "/metrics", &[]).await.text().await;
    assert!(
        metrics.contains("tidings_subscriptions_refused_total{reason=\"denied\"} 2"),
        "{metrics}"
    );
    server.stop();
}

#[tokio::test]
async fn a_token_is_checked_before_the_hook_is_asked() {
    let (server, channel, _public) = server_with(hs256());
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = std::sync::Arc::clone(&asked);
    channel.authorize(move |_request, verdict| {
        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        verdict.allow().unwrap();
    });
    let addr = server.start().unwrap();
    assert_eq!(get(addr, "/private/news", &[]).await.status, 401);
    assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 0);
    let granted = subscribe(
        addr,
        "/private/news",
        Some(&token(&["/private/news"], 60)),
        Carrier::Query,
    )
    .await;
    assert_eq!(granted.status, 200);
    assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1);
    server.stop();
}

#[tokio::test]
async fn a_connection_handed_over_by_the_application_is_neither_checked_nor_asked() {
    let (server, channel, _public) = server_with(hs256());
    channel.authorize(|_request, verdict| verdict.deny(403, "not at this door").unwrap());
    let handed = channel.clone();
    server
        .mount(move |exchange: tidings::Exchange| {
            exchange.subscribe(&handed).unwrap();
        })
        .unwrap();
    let addr = server.start().unwrap();
    assert_eq!(get(addr, "/private/news", &[]).await.status, 401);
    // The application's own endpoint: it decided (no token, no hook).
    let mut events = get(addr, "/app/news", &[]).await.events();
    eventually("the handed-over subscriber", || channel.subscribers() == 1).await;
    channel.publish(Event::data("via the app")).unwrap();
    assert_eq!(events.next().await.unwrap().data, "via the app");
    server.stop();
}

//! Entry points for the fuzz targets (`fuzz/`, `make fuzz`): the engine's
//! parsers of untrusted input, reachable without a socket. Built only with
//! the `fuzzing` feature; not part of the API.

use std::sync::{Arc, OnceLock};

use crate::auth::Verifier;
use crate::config::{JwtConfig, JwtKey};
use crate::request::Endpoints;
use crate::topic::{SelectorCache, TopicFilter, Topics};

/// Parses a first request head as the direct path does, then reads what
/// the engine reads from a request: the query, `Last-Event-ID`, the token
/// (verified with a fixed HS256 key, as a private channel would).
pub fn request_head(head: &[u8]) {
    let ends = Endpoints {
        peer: ([127, 0, 0, 1], 1).into(),
        local: ([127, 0, 0, 1], 2).into(),
        tls: false,
    };
    let Some((request, _version)) = crate::direct::parse(head, ends) else {
        return;
    };
    let _ = request.query_pairs();
    let _ = request.decoded_path();
    let _ = request.resume_from();
    let _ = request.header_bytes().count();
    static VERIFIER: OnceLock<Verifier> = OnceLock::new();
    let verifier = VERIFIER.get_or_init(|| {
        let key = JwtKey::Secret(b"the fuzz targets' secret, 32 bytes+".to_vec());
        Verifier::new(&JwtConfig::new(key)).expect("a valid key")
    });
    let _ = verifier.admit(&request, request.path(), true);
    // The hub reads the same request for its selectors and its token.
    if let Some(hub) = hub() {
        let _ = hub.subscribe(request);
    }
}

/// A hub of its own (no server), for the request target.
fn hub() -> Option<&'static crate::hub::Hub> {
    static HUB: OnceLock<Option<crate::hub::Hub>> = OnceLock::new();
    HUB.get_or_init(|| {
        let key = JwtKey::Secret(b"the fuzz targets' secret, 32 bytes+".to_vec());
        let config = crate::config::HubConfig {
            subscriber_jwt: Some(JwtConfig::mercure(key)),
            ..crate::config::HubConfig::default()
        };
        let ring = crate::channel::Channel::new(
            config.path.clone(),
            crate::channel::ChannelOptions::default(),
            Arc::default(),
            None,
        );
        crate::hub::Hub::new(config, ring).ok()
    })
    .as_ref()
}

/// Parses a hub publish form; `Ok` holds the update's topics.
pub fn hub_form(body: &[u8]) -> Result<Vec<String>, String> {
    crate::hub::parse_form(body)
}

/// Whether `selector` (if it parses) selects `topic`; `None` for a selector
/// the hub refuses. Checks on the way that a template selects its own text
/// and that a remembered answer is the answer.
pub fn selector_selects(selector: &str, topic: &str) -> Option<bool> {
    let cache = SelectorCache::default();
    let parsed = cache.get(selector).ok()?;
    assert!(
        parsed.matches(selector),
        "{selector:?} does not select itself"
    );
    let topics = Topics::new(vec![topic.to_owned()], false);
    let direct = parsed.matches(topic);
    assert_eq!(topics.selected_by(&parsed), direct);
    assert_eq!(topics.selected_by(&parsed), direct, "the remembered answer");
    let filter = TopicFilter {
        wanted: vec![parsed],
        granted: Vec::new(),
    };
    assert_eq!(filter.admits(Some(&topics)), direct);
    Some(direct)
}

//! The Mercure hub ([`HubConfig`]): who may subscribe to which topics and
//! publish which updates, decided from the request; the hyper service
//! (`http.rs`) reads the bodies and writes the answers.
//!
//! The hub's updates live in one channel of their own, whose ring entries
//! carry their topics: a subscriber is a cursor into it with a
//! [`TopicFilter`], so resume, lag, keep-alives, the broker and shutdown
//! work as on any channel. A channel of the host's is a topic too: what
//! the host publishes on it is copied into the hub's ring
//! (`Channel::mirrored_into`), and an update of its topic is published on it.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use percent_encoding::percent_decode;

use crate::auth::{Carrier, Claims, Denial, Verifier};
use crate::channel::{Channel, Published, SubscribeError, Subscription};
use crate::config::HubConfig;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::request::{Request, ResumeFrom};
use crate::topic::{is_valid_topic, SelectorCache, TopicFilter, Topics};

/// The hub: its ring, its configuration and its token verifiers.
pub(crate) struct Hub {
    channel: Channel,
    config: HubConfig,
    publishers: Option<Verifier>,
    subscribers: Option<Verifier>,
    selectors: SelectorCache,
}

/// Why the hub turned a request away.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The token is missing or does not verify: 401 with its challenge.
    Token(Denial),
    /// Any other answer, with a plain-text message.
    Status(u16, String),
}

impl Refusal {
    fn bad_request(message: impl Into<String>) -> Self {
        Refusal::Status(400, message.into())
    }
}

/// A subscriber let in.
pub(crate) struct HubSubscription {
    pub(crate) subscription: Subscription,
    /// When its token ends the subscription.
    pub(crate) until: Option<Instant>,
    /// For a subscriber that resumed, the `Last-Event-ID` response header:
    /// the newest update before the first one it is sent that it may see,
    /// or `earliest` (`None` also for an id a header cannot carry).
    pub(crate) last_event_id: Option<http::HeaderValue>,
}

/// An update accepted: stored once `published` resolves, under `id`.
pub(crate) struct Publication {
    pub(crate) published: Published,
    pub(crate) id: String,
}

impl Hub {
    /// A hub whose updates go into `channel`; reads the token keys.
    pub(crate) fn new(config: HubConfig, channel: Channel) -> Result<Self> {
        let verifier =
            |jwt: &Option<crate::config::JwtConfig>| jwt.as_ref().map(Verifier::new).transpose();
        Ok(Hub {
            publishers: verifier(&config.publisher_jwt)?,
            subscribers: verifier(&config.subscriber_jwt)?,
            channel,
            config,
            selectors: SelectorCache::default(),
        })
    }

    /// The channel that holds the hub's updates.
    pub(crate) fn channel(&self) -> &Channel {
        &self.channel
    }

    pub(crate) fn config(&self) -> &HubConfig {
        &self.config
    }

    /// Subscribes `request` to the topics its `topic` parameters select,
    /// and the private updates its token grants.
    pub(crate) fn subscribe(
        &self,
        request: Request,
    ) -> std::result::Result<HubSubscription, Refusal> {
        let selectors: Vec<String> = request
            .query_pairs()
            .into_iter()
            .filter(|(name, _)| name == "topic")
            .map(|(_, selector)| selector)
            .collect();
        if selectors.is_empty() {
            return Err(Refusal::bad_request(
                "missing topic: name at least one topic selector (?topic=...)",
            ));
        }
        if selectors.len() > self.config.max_topics {
            return Err(Refusal::bad_request(format!(
                "at most {} topic selectors per subscription",
                self.config.max_topics
            )));
        }
        let wanted = selectors
            .iter()
            .map(|selector| self.selectors.get(selector))
            .collect::<std::result::Result<Vec<_>, String>>()
            .map_err(Refusal::bad_request)?;
        let claims = match &self.subscribers {
            Some(verifier) => verifier
                .claims(&request)
                .map_err(Refusal::Token)?
                .map(|(claims, _)| claims),
            None => None,
        };
        let (granted, until) = match (&self.subscribers, &claims) {
            (Some(verifier), Some(claims)) => {
                let granted = verifier
                    .granted(claims, "subscribe")
                    .into_iter()
                    .flatten()
                    // A selector the token's issuer got wrong grants nothing.
                    .filter_map(|selector| self.selectors.get(selector).ok())
                    .collect();
                (granted, verifier.ends_at(claims))
            }
            _ if !self.config.anonymous => return Err(Refusal::Token(Denial::Missing)),
            _ => (Vec::new(), None),
        };
        let filter = Arc::new(TopicFilter { wanted, granted });
        let resumed = request.last_event_id().is_some_and(|id| !id.is_empty());
        let from = (request.last_event_id() == Some("earliest")).then_some(ResumeFrom::Earliest);
        let (subscription, preceding) = self
            .channel
            .subscribe_to_topics(request, from, filter)
            .map_err(|err| match err {
                SubscribeError::Full => Refusal::Status(503, "the hub is full".to_owned()),
                SubscribeError::Stopped => {
                    Refusal::Status(503, "the server is stopping".to_owned())
                }
            })?;
        Ok(HubSubscription {
            subscription,
            until,
            last_event_id: resumed
                .then(|| preceding.unwrap_or_else(|| Bytes::from_static(b"earliest")))
                .and_then(|id| http::HeaderValue::from_maybe_shared(id).ok()),
        })
    }

    /// Publishes the update in the form `body` (`application/x-www-form-
    /// urlencoded`) if the request's token allows it: into the hub's ring,
    /// and on the channel of each of its topics that `channel_at` finds.
    /// A private update is published on private channels only, whose
    /// subscribers brought a token for them.
    ///
    /// A token in a cookie publishes only from a `trusted_origin` (the
    /// hub's own, or one the CORS policy names): a browser sends the cookie
    /// with a form another site makes it post, and a form needs no
    /// preflight.
    pub(crate) fn publish(
        &self,
        request: &Request,
        trusted_origin: bool,
        body: &[u8],
        channel_at: impl Fn(&str) -> Option<Channel>,
    ) -> std::result::Result<Publication, Refusal> {
        let Some(verifier) = &self.publishers else {
            return Err(Refusal::Status(
                403,
                "publishing is off: the hub has no publisher key".to_owned(),
            ));
        };
        let (claims, carrier) = verifier
            .claims(request)
            .map_err(Refusal::Token)?
            .ok_or(Refusal::Token(Denial::Missing))?;
        if carrier == Carrier::Cookie && !trusted_origin {
            return Err(Refusal::Status(
                403,
                "a token in a cookie publishes only from the hub's origin or an allowed CORS origin"
                    .to_owned(),
            ));
        }
        let update = Update::parse(body)?;
        self.check_publisher(verifier, &claims, &update.topics)?;
        let id = match update.id {
            Some(id) => id,
            None => urn_uuid(),
        };
        let event = update.event.with_checked_id(&id);
        let topics = Arc::new(Topics::new(update.topics, update.private));
        let mut seen = std::collections::HashSet::new();
        for path in topics.names().iter().filter_map(|t| self.config.path_of(t)) {
            if !seen.insert(path) {
                continue;
            }
            let Some(channel) = channel_at(path) else {
                continue;
            };
            if topics.is_private() && !channel.options().private {
                continue;
            }
            if let Err(err) = channel.publish_tagged(event.clone(), None) {
                tracing::warn!(%path, %err, "a hub update did not reach its channel");
            }
        }
        let published = self.channel.publish_confirmed_tagged(event, Some(topics));
        Ok(Publication { published, id })
    }

    /// Whether the publisher's `mercure.publish` selectors select every
    /// topic of the update.
    fn check_publisher(
        &self,
        verifier: &Verifier,
        claims: &Claims,
        topics: &[String],
    ) -> std::result::Result<(), Refusal> {
        let selectors: Vec<_> = verifier
            .granted(claims, "publish")
            .into_iter()
            .flatten()
            .filter_map(|selector| self.selectors.get(selector).ok())
            .collect();
        match topics
            .iter()
            .find(|topic| !selectors.iter().any(|selector| selector.matches(topic)))
        {
            None => Ok(()),
            Some(topic) => Err(Refusal::Status(
                403,
                format!("the token does not grant publishing to {topic:?}"),
            )),
        }
    }
}

/// The topics of the update in a publish form, or why it is refused (for
/// the fuzz targets).
#[cfg(feature = "fuzzing")]
pub(crate) fn parse_form(body: &[u8]) -> std::result::Result<Vec<String>, String> {
    match Update::parse(body) {
        Ok(update) => Ok(update.topics),
        Err(refusal) => Err(format!("{refusal:?}")),
    }
}

/// A publish request's fields.
struct Update {
    topics: Vec<String>,
    private: bool,
    id: Option<String>,
    /// The event, without its id.
    event: Event,
}

impl Update {
    fn parse(body: &[u8]) -> std::result::Result<Update, Refusal> {
        let mut topics = Vec::new();
        let mut private = false;
        let mut id = None;
        let (mut data, mut kind, mut retry) = (None, None, None);
        for (name, value) in form_pairs(body)? {
            match name.as_str() {
                "topic" => {
                    if !is_valid_topic(&value) {
                        return Err(Refusal::bad_request(format!(
                            "the topic {value:?} is empty or holds control characters"
                        )));
                    }
                    topics.push(value);
                }
                "data" => data = Some(value),
                "id" => id = Some(value),
                "type" => kind = Some(value),
                "retry" => retry = Some(value),
                // Mercure: the field's presence makes the update private,
                // whatever its value (`on`, `true`).
                "private" => private = true,
                _ => {}
            }
        }
        if topics.is_empty() {
            return Err(Refusal::bad_request("missing topic"));
        }
        let mut event = Event::data(data.unwrap_or_default());
        if let Some(kind) = kind {
            event = event
                .event(kind)
                .map_err(|err| Refusal::bad_request(format!("type: {err}")))?;
        }
        if let Some(retry) = retry {
            let millis: u64 = retry.parse().map_err(|_| {
                Refusal::bad_request(format!(
                    "retry must be a number of milliseconds, not {retry:?}"
                ))
            })?;
            event = event.retry(std::time::Duration::from_millis(millis));
        }
        if let Some(id) = &id {
            if id.is_empty() || id.starts_with('#') {
                return Err(Refusal::bad_request(
                    "id must not be empty or start with '#'",
                ));
            }
            // Checked with the rules every event id follows.
            Event::default()
                .id(id.as_str())
                .map_err(|err| Refusal::bad_request(format!("id: {err}")))?;
        }
        Ok(Update {
            topics,
            private,
            id,
            event,
        })
    }
}

/// The pairs of an `application/x-www-form-urlencoded` body, decoded
/// (`+` is a space); a name or value that is not UTF-8 is refused.
fn form_pairs(body: &[u8]) -> std::result::Result<Vec<(String, String)>, Refusal> {
    let decode = |part: &[u8]| {
        let spaced: Vec<u8> = part
            .iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect();
        percent_decode(&spaced)
            .decode_utf8()
            .map(|text| text.into_owned())
            .map_err(|_| Refusal::bad_request("the form is not UTF-8"))
    };
    body.split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(at) => (&pair[..at], &pair[at + 1..]),
                None => (pair, &b""[..]),
            };
            Ok((decode(name)?, decode(value)?))
        })
        .collect()
}

/// A random (version 4) UUID as a URN: the id of an update published
/// without one, unique across hubs and restarts.
fn urn_uuid() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: two independently seeded hashes of the time.
        use std::hash::{BuildHasher, RandomState};
        let now = std::time::SystemTime::now();
        bytes[..8].copy_from_slice(&RandomState::new().hash_one(now).to_le_bytes());
        bytes[8..].copy_from_slice(&RandomState::new().hash_one(now).to_le_bytes());
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// Why a publish could not be stored, for its `503`.
pub(crate) fn publish_failed(err: &Error) -> String {
    match err {
        Error::Stopped => "the server is stopping".to_owned(),
        Error::TimedOut => "the broker did not store the update in time".to_owned(),
        other => format!("the update was not stored: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> std::result::Result<Update, Refusal> {
        Update::parse(body.as_bytes())
    }

    #[test]
    fn a_form_names_every_field_of_an_update() {
        let update = parse(
            "topic=https%3A%2F%2Fex.com%2Fbooks%2F1&topic=%2Falt&data=a+b%0Ac&id=urn%3Ax&type=goal&retry=1500&private=on",
        )
        .unwrap();
        assert_eq!(update.topics, ["https://ex.com/books/1", "/alt"]);
        assert!(update.private);
        assert_eq!(update.id.as_deref(), Some("urn:x"));
        assert_eq!(update.event.data_str(), Some("a b\nc"));
        assert_eq!(update.event.event_name(), Some("goal"));
        assert_eq!(update.event.retry_ms(), Some(1500));
    }

    #[test]
    fn bad_fields_are_refused_with_their_reason() {
        let refused = |body: &str, expected: &str| match parse(body) {
            Err(Refusal::Status(400, message)) => {
                assert!(message.contains(expected), "{body}: {message}")
            }
            Err(other) => panic!("{body}: {other:?}"),
            Ok(_) => panic!("{body} was accepted"),
        };
        refused("data=x", "missing topic");
        refused("topic=", "empty");
        refused("topic=a%0Ab", "control");
        refused("topic=a&type=a%0Ab", "type");
        refused("topic=a&retry=soon", "retry");
        refused("topic=a&id=%23frag", "'#'");
        refused("topic=a&id=a%0Ab", "id");
        refused("topic=a&data=%FF", "UTF-8");
    }

    #[test]
    fn generated_ids_are_version_4_uuids() {
        let id = urn_uuid();
        assert_eq!(id.len(), "urn:uuid:".len() + 36);
        assert_eq!(&id[23..24], "4");
        assert!(matches!(&id[28..29], "8" | "9" | "a" | "b"), "{id}");
        assert_ne!(id, urn_uuid());
    }
}

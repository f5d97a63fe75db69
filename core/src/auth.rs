//! Who may subscribe to a private channel: JSON Web Tokens
//! ([`JwtConfig`](crate::JwtConfig)), verified by the `jsonwebtoken` crate, whose claims name
//! the channels they grant.
//!
//! A token comes from the `Authorization: Bearer` header, else a cookie,
//! else a query parameter (`EventSource` cannot set headers). Answers follow
//! RFC 9110 and RFC 6750: no token for a private channel is 401 with a bare
//! `WWW-Authenticate: Bearer` challenge, a token that does not verify is 401
//! `invalid_token` (on any channel: a client that sent a bad credential
//! hears about it), and a valid token that does not grant the channel is
//! 403 `insufficient_scope`.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::config::{JwtConfig, JwtKey, MAX_DURATION};
use crate::error::{Error, Result};
use crate::request::Request;

/// The most clock skew a server may be configured to allow.
const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// Why a subscription was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Denial {
    /// A private channel, and no token: 401.
    Missing,
    /// A token that does not verify, with the reason: 401.
    Invalid(&'static str),
    /// A valid token that does not grant the channel: 403.
    Forbidden,
}

impl Denial {
    /// The status, the `WWW-Authenticate` challenge and the body.
    pub(crate) fn answer(&self) -> (u16, String, String) {
        match self {
            Denial::Missing => (
                401,
                r#"Bearer realm="tidings""#.to_owned(),
                "a token is required\n".to_owned(),
            ),
            Denial::Invalid(reason) => (
                401,
                format!(
                    r#"Bearer realm="tidings", error="invalid_token", error_description="{reason}""#
                ),
                format!("invalid token: {reason}\n"),
            ),
            Denial::Forbidden => (
                403,
                r#"Bearer realm="tidings", error="insufficient_scope""#.to_owned(),
                "the token does not grant this channel\n".to_owned(),
            ),
        }
    }
}

/// Where a request carried its token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Carrier {
    Header,
    /// A cookie, which a browser sends by itself, to any site's requests.
    Cookie,
    Query,
}

/// A verified token's claims.
pub(crate) type Claims = serde_json::Map<String, serde_json::Value>;

/// A subscription let in: until when, if its token ends it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Admitted {
    pub(crate) until: Option<Instant>,
}

enum Keys {
    One(DecodingKey),
    /// From a JWKS file: (kid, key).
    Set(Vec<(Option<String>, DecodingKey)>),
}

/// A [`JwtConfig`] with its key read and its validation rules built.
pub(crate) struct Verifier {
    keys: Keys,
    validation: Validation,
    config: JwtConfig,
}

fn invalid(message: String) -> Error {
    Error::InvalidConfig(message)
}

fn read(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|err| {
        invalid(format!(
            "jwt: cannot read the {what} {}: {err}",
            path.display()
        ))
    })
}

/// The public key in `pem` (from `source`) for `algorithm`.
fn public_key(
    config: &JwtConfig,
    algorithm: Algorithm,
    pem: &[u8],
    source: &str,
) -> Result<DecodingKey> {
    match algorithm {
        Algorithm::ES256 | Algorithm::ES384 => DecodingKey::from_ec_pem(pem),
        Algorithm::EdDSA => DecodingKey::from_ed_pem(pem),
        _ => DecodingKey::from_rsa_pem(pem),
    }
    .map_err(|err| {
        invalid(format!(
            "jwt: {source} does not hold a {} public key: {err}",
            config.algorithm
        ))
    })
}

impl Verifier {
    /// Reads the key and checks the settings; every problem is an
    /// [`Error::InvalidConfig`] that names it.
    pub(crate) fn new(config: &JwtConfig) -> Result<Self> {
        let algorithm: Algorithm = config.algorithm.parse().map_err(|_| {
            invalid(format!(
                "jwt: unknown algorithm {:?} (HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA)",
                config.algorithm
            ))
        })?;
        if config.leeway > MAX_LEEWAY {
            return Err(invalid("jwt: leeway must be at most 300 s".to_owned()));
        }
        if config.claim.is_empty() {
            return Err(invalid("jwt: claim must not be empty".to_owned()));
        }
        let hmac = matches!(
            algorithm,
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
        );
        let keys = match &config.key {
            JwtKey::Secret(secret) if hmac => {
                // RFC 7518 §3.2: an HMAC key at least as long as the hash.
                let least = match algorithm {
                    Algorithm::HS384 => 48,
                    Algorithm::HS512 => 64,
                    _ => 32,
                };
                if secret.len() < least {
                    return Err(invalid(format!(
                        "jwt: a {} secret must be at least {least} bytes (RFC 7518 §3.2), not {}",
                        config.algorithm,
                        secret.len()
                    )));
                }
                Keys::One(DecodingKey::from_secret(secret))
            }
            JwtKey::Secret(_) => {
                return Err(invalid(format!(
                    "jwt: {} verifies with a public key (a PEM or JWKS file), not a secret",
                    config.algorithm
                )));
            }
            _ if hmac => {
                return Err(invalid(format!(
                    "jwt: {} verifies with a secret, not a key file",
                    config.algorithm
                )));
            }
            JwtKey::PemFile(path) => {
                let pem = read(path, "key file")?;
                Keys::One(public_key(
                    config,
                    algorithm,
                    &pem,
                    &path.display().to_string(),
                )?)
            }
            JwtKey::Pem(pem) => Keys::One(public_key(config, algorithm, pem, "the key")?),
            JwtKey::JwksFile(path) => {
                let text = read(path, "JWKS file")?;
                let set: JwkSet = serde_json::from_slice(&text).map_err(|err| {
                    invalid(format!("jwt: {} is not a JWKS: {err}", path.display()))
                })?;
                if set.keys.is_empty() {
                    return Err(invalid(format!("jwt: {} holds no key", path.display())));
                }
                let mut keys = Vec::with_capacity(set.keys.len());
                for jwk in &set.keys {
                    let key = DecodingKey::from_jwk(jwk).map_err(|err| {
                        invalid(format!(
                            "jwt: a key in {} is unusable: {err}",
                            path.display()
                        ))
                    })?;
                    keys.push((jwk.common.key_id.clone(), key));
                }
                Keys::Set(keys)
            }
        };
        let mut validation = Validation::new(algorithm);
        // `exp` and `nbf` are checked when present; a token without `exp`
        // never expires (Mercure's publishers often send none).
        validation.required_spec_claims.clear();
        validation.validate_nbf = true;
        validation.leeway = config.leeway.as_secs();
        validation.validate_aud = config.audience.is_some();
        if let Some(audience) = &config.audience {
            validation.set_audience(&[audience]);
        }
        if let Some(issuer) = &config.issuer {
            validation.set_issuer(&[issuer]);
        }
        Ok(Verifier {
            keys,
            validation,
            config: config.clone(),
        })
    }

    /// The token a request brings, and where: the `Authorization: Bearer`
    /// header, else the cookie, else the query parameter.
    pub(crate) fn token(&self, request: &Request) -> Option<(String, Carrier)> {
        let bearer = request.header("authorization").and_then(|value| {
            let (scheme, token) = value.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        });
        if let Some(token) = bearer {
            return Some((token, Carrier::Header));
        }
        if let Some(name) = &self.config.cookie {
            // HTTP/2 may split cookies over several headers.
            let found = request
                .headers()
                .filter(|(header, _)| *header == "cookie")
                .find_map(|(_, value)| {
                    value.split(';').find_map(|pair| {
                        let (key, token) = pair.trim().split_once('=')?;
                        (key == name).then(|| token.trim_matches('"').to_owned())
                    })
                });
            if let Some(token) = found {
                return Some((token, Carrier::Cookie));
            }
        }
        self.config
            .query
            .as_ref()
            .and_then(|name| request.query(name))
            .map(|token| (token, Carrier::Query))
    }

    /// Whether the request may subscribe to the channel at `path`
    /// (`private` or not), and until when.
    pub(crate) fn admit(
        &self,
        request: &Request,
        path: &str,
        private: bool,
    ) -> std::result::Result<Admitted, Denial> {
        let Some((claims, _)) = self.claims(request)? else {
            return if private {
                Err(Denial::Missing)
            } else {
                Ok(Admitted { until: None })
            };
        };
        if !private {
            return Ok(Admitted { until: None });
        }
        let granted = self
            .granted(&claims, "subscribe")
            .is_some_and(|mut patterns| patterns.any(|pattern| matches_pattern(pattern, path)));
        if !granted {
            return Err(Denial::Forbidden);
        }
        Ok(Admitted {
            until: self.ends_at(&claims),
        })
    }

    /// The claims of the token the request brings, verified, and where it
    /// was; `None` when it brings none.
    pub(crate) fn claims(
        &self,
        request: &Request,
    ) -> std::result::Result<Option<(Claims, Carrier)>, Denial> {
        self.token(request)
            .map(|(token, carrier)| Ok((self.verify(&token)?, carrier)))
            .transpose()
    }

    /// The patterns (or topic selectors) the configured claim lists under
    /// `action` (`subscribe`, `publish`), if it has that list.
    pub(crate) fn granted<'c>(
        &self,
        claims: &'c Claims,
        action: &str,
    ) -> Option<impl Iterator<Item = &'c str>> {
        let list = claims.get(&self.config.claim)?.get(action)?.as_array()?;
        Some(list.iter().filter_map(serde_json::Value::as_str))
    }

    /// When a subscription let in by these claims ends: at their `exp`
    /// (plus the leeway), if the configuration says so.
    pub(crate) fn ends_at(&self, claims: &Claims) -> Option<Instant> {
        claims
            .get("exp")
            .and_then(serde_json::Value::as_u64)
            .filter(|_| self.config.end_at_expiry)
            .map(|exp| expiry_instant(exp, self.config.leeway))
    }

    /// The claims of a token whose signature and times check out.
    fn verify(&self, token: &str) -> std::result::Result<Claims, Denial> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| Denial::Invalid("malformed"))?;
        let key = match &self.keys {
            Keys::One(key) => key,
            Keys::Set(keys) => match (&header.kid, keys.as_slice()) {
                (Some(kid), _) => keys
                    .iter()
                    .find(|(id, _)| id.as_deref() == Some(kid))
                    .map(|(_, key)| key)
                    .ok_or(Denial::Invalid("unknown key id"))?,
                (None, [(_, only)]) => only,
                (None, _) => return Err(Denial::Invalid("no key id")),
            },
        };
        jsonwebtoken::decode::<Claims>(token, key, &self.validation)
            .map(|data| data.claims)
            .map_err(|err| Denial::Invalid(describe(err.kind())))
    }
}

/// A short, fixed description (it goes into a header) of why a token was
/// refused.
fn describe(kind: &jsonwebtoken::errors::ErrorKind) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match kind {
        ErrorKind::ExpiredSignature => "expired",
        ErrorKind::ImmatureSignature => "not valid yet",
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::InvalidAlgorithm => "wrong algorithm",
        ErrorKind::InvalidAudience => "wrong audience",
        ErrorKind::InvalidIssuer => "wrong issuer",
        _ => "malformed",
    }
}

/// When a token expiring at `exp` (seconds since the epoch) ends its
/// subscription: at `exp` plus the leeway, on the monotonic clock.
fn expiry_instant(exp: u64, leeway: Duration) -> Instant {
    let now_wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let left = Duration::from_secs(exp).saturating_sub(now_wall) + leeway;
    Instant::now() + left.min(MAX_DURATION)
}

/// Whether `path` matches `pattern`, where each `*` stands for any run of
/// characters (none included) and everything else for itself.
pub(crate) fn matches_pattern(pattern: &str, path: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = path.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*`: an exact match.
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_exactly_or_with_stars_for_any_run() {
        assert!(matches_pattern("/news", "/news"));
        assert!(!matches_pattern("/news", "/news/1"));
        assert!(!matches_pattern("/news", "/new"));
        assert!(matches_pattern("/chat/*", "/chat/"));
        assert!(matches_pattern("/chat/*", "/chat/room/1"));
        assert!(!matches_pattern("/chat/*", "/chat"));
        assert!(matches_pattern("*", "/anything"));
        assert!(matches_pattern("/users/*/inbox", "/users/42/inbox"));
        assert!(!matches_pattern("/users/*/inbox", "/users/42/outbox"));
        assert!(matches_pattern("/a*b*c", "/a-b-b-c"));
        assert!(!matches_pattern("/a*bc", "/abc-"));
        assert!(
            !matches_pattern("/a*a", "/a"),
            "the two ends may not overlap"
        );
    }

    #[test]
    fn settings_that_cannot_work_are_refused_by_name() {
        let secret = JwtConfig::new(JwtKey::Secret([7; 32].to_vec()));
        assert!(Verifier::new(&secret).is_ok());
        let cases = [
            (
                JwtConfig {
                    algorithm: "HS1".into(),
                    ..secret.clone()
                },
                "unknown algorithm",
            ),
            (
                JwtConfig {
                    algorithm: "RS256".into(),
                    ..secret.clone()
                },
                "not a secret",
            ),
            (
                JwtConfig {
                    key: JwtKey::Secret([7; 31].to_vec()),
                    ..secret.clone()
                },
                "at least 32 bytes",
            ),
            (
                JwtConfig {
                    algorithm: "HS512".into(),
                    ..secret.clone()
                },
                "at least 64 bytes",
            ),
            (
                JwtConfig {
                    key: JwtKey::PemFile("/nonexistent/k.pem".into()),
                    ..secret.clone()
                },
                "with a secret",
            ),
            (
                JwtConfig {
                    key: JwtKey::PemFile("/nonexistent/k.pem".into()),
                    algorithm: "ES256".into(),
                    ..secret.clone()
                },
                "/nonexistent/k.pem",
            ),
            (
                JwtConfig {
                    leeway: Duration::from_secs(301),
                    ..secret.clone()
                },
                "leeway",
            ),
        ];
        for (config, expected) in cases {
            match Verifier::new(&config) {
                Err(Error::InvalidConfig(message)) => {
                    assert!(message.contains(expected), "{message}")
                }
                Ok(_) => panic!("{config:?} was accepted"),
                Err(other) => panic!("{other:?}"),
            }
        }
    }
}

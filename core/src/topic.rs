//! Mercure topics and topic selectors: which updates of the hub's ring a
//! subscriber receives.
//!
//! An update names one or more topics (the first canonical, the others
//! alternates) and may be private. A selector is `*` (every topic), a URI
//! template (RFC 6570, when it holds a `{`), or otherwise a topic compared
//! byte for byte. Templates compile to anchored expressions of the `regex`
//! crate, whose matching time is linear in the topic: a crafted selector
//! cannot make matching backtrack.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// The topics of one hub update, shared by its ring entry and every
/// subscriber that looks at it.
#[derive(Debug)]
pub(crate) struct Topics {
    names: Box<[String]>,
    /// Only subscribers whose token grants one of the topics receive it.
    private: bool,
    /// What templates answered for these topics. Subscribers asking for the
    /// same template share one compiled selector ([`SelectorCache`]), so it
    /// runs once per update, not once per subscriber (nor again when a
    /// subscriber woken for the update reads it).
    answers: Mutex<Vec<(Arc<Selector>, bool)>>,
}

/// Most template answers an update remembers.
const MAX_ANSWERS: usize = 8;

impl PartialEq for Topics {
    fn eq(&self, other: &Self) -> bool {
        (&self.names, self.private) == (&other.names, other.private)
    }
}

impl Eq for Topics {}

impl Topics {
    pub(crate) fn new(names: Vec<String>, private: bool) -> Self {
        Topics {
            names: names.into_boxed_slice(),
            private,
            answers: Mutex::default(),
        }
    }

    /// Whether `selector` selects one of these topics; a template's answer
    /// is remembered.
    pub(crate) fn selected_by(&self, selector: &Arc<Selector>) -> bool {
        if !matches!(**selector, Selector::Template { .. }) {
            return selector.matches_any(self);
        }
        let mut answers = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, answer)) = answers.iter().find(|(s, _)| Arc::ptr_eq(s, selector)) {
            return *answer;
        }
        let answer = selector.matches_any(self);
        if answers.len() < MAX_ANSWERS {
            answers.push((Arc::clone(selector), answer));
        }
        answer
    }

    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    pub(crate) fn is_private(&self) -> bool {
        self.private
    }
}

/// Whether `topic` may name a Mercure topic: UTF-8 (it is a `str`) without
/// control characters.
pub(crate) fn is_valid_topic(topic: &str) -> bool {
    !topic.is_empty() && !topic.chars().any(char::is_control)
}

/// One topic selector.
#[derive(Debug)]
pub(crate) enum Selector {
    /// `*`: every topic.
    Any,
    /// A topic, compared byte for byte.
    Exact(String),
    /// A URI template, matched as a whole by its expression.
    Template {
        template: String,
        pattern: regex::Regex,
    },
}

/// The longest selector accepted, in bytes: bounds what compiling one costs.
pub(crate) const MAX_SELECTOR_BYTES: usize = 2048;

/// The most memory one compiled template may take.
const MAX_TEMPLATE_PROGRAM: usize = 256 * 1024;

impl Selector {
    /// Parses a selector; `Err` says why a template is not one.
    pub(crate) fn parse(selector: &str) -> Result<Selector, String> {
        if selector.len() > MAX_SELECTOR_BYTES {
            return Err(format!(
                "a topic selector may be at most {MAX_SELECTOR_BYTES} bytes"
            ));
        }
        if !is_valid_topic(selector) {
            return Err("a topic selector must not be empty or hold control characters".into());
        }
        if selector == "*" {
            return Ok(Selector::Any);
        }
        if !selector.contains('{') {
            return Ok(Selector::Exact(selector.to_owned()));
        }
        let expression = template_expression(selector)?;
        let pattern = regex::RegexBuilder::new(&expression)
            .size_limit(MAX_TEMPLATE_PROGRAM)
            .build()
            .map_err(|_| format!("the URI template {selector:?} is too complex"))?;
        Ok(Selector::Template {
            template: selector.to_owned(),
            pattern,
        })
    }

    /// Whether the selector selects `topic`.
    pub(crate) fn matches(&self, topic: &str) -> bool {
        match self {
            Selector::Any => true,
            Selector::Exact(exact) => exact == topic,
            // A template also selects the topic spelled exactly as it is.
            Selector::Template { template, pattern } => {
                template == topic || pattern.is_match(topic)
            }
        }
    }

    /// Whether the selector selects one of `topics`.
    pub(crate) fn matches_any(&self, topics: &Topics) -> bool {
        topics.names.iter().any(|topic| self.matches(topic))
    }
}

/// The characters an expression's value may hold, by operator (RFC 6570
/// §3.2.1): unreserved and percent-encoded for most, reserved ones too for
/// `+` and `#`.
const UNRESERVED: &str = r"A-Za-z0-9\-._~";
const RESERVED: &str = r":/?#\[\]@!$&'()*+,;=";

/// The anchored regular expression a URI template's expansions match.
///
/// Every expression may expand to nothing (its variables undefined), so
/// each becomes an optional group; a list or several variables add `,`
/// between values, or the operator's own separator.
fn template_expression(template: &str) -> Result<String, String> {
    let not_template = |why: &str| format!("{template:?} is not a URI template: {why}");
    let mut out = String::from("^");
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return Err(not_template("a '}' without its '{'"));
        }
        out.push_str(&regex::escape(&rest[..open]));
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| not_template("a '{' without its '}'"))?;
        let body = &after[..close];
        if body.contains('{') {
            return Err(not_template("expressions do not nest"));
        }
        out.push_str(&expression_group(body).map_err(|why| not_template(&why))?);
        rest = &after[close + 1..];
    }
    out.push_str(&regex::escape(rest));
    out.push('$');
    Ok(out)
}

/// The group one `{...}` expression expands to.
fn expression_group(body: &str) -> Result<String, String> {
    let (operator, variables) = match body.chars().next() {
        Some(op @ ('+' | '#' | '.' | '/' | ';' | '?' | '&')) => (Some(op), &body[1..]),
        Some(op @ ('=' | ',' | '!' | '@' | '|')) => {
            return Err(format!("the operator {op:?} is reserved"));
        }
        _ => (None, body),
    };
    if variables.is_empty() {
        return Err("an expression without a variable".into());
    }
    for spec in variables.split(',') {
        // `name`, `name*` (explode) or `name:N` (a prefix of at most N).
        let name = match spec.split_once(':') {
            Some((name, length)) => {
                let valid =
                    (1..=4).contains(&length.len()) && length.bytes().all(|b| b.is_ascii_digit());
                if !valid {
                    return Err(format!("{spec:?} has no valid prefix length"));
                }
                name
            }
            None => spec.strip_suffix('*').unwrap_or(spec),
        };
        let valid_name = !name.is_empty()
            && name
                .split('.')
                .all(|part| !part.is_empty() && part.bytes().all(is_varchar));
        if !valid_name {
            return Err(format!("{spec:?} is not a variable"));
        }
    }
    let value = |reserved: bool| {
        let allowed = if reserved {
            format!("[{UNRESERVED}{RESERVED}]")
        } else {
            format!("[{UNRESERVED}]")
        };
        format!("(?:{allowed}|%[0-9A-Fa-f]{{2}})")
    };
    let plain = value(false);
    Ok(match operator {
        None => format!("(?:{plain}|,)*"),
        Some('+') => format!("{}*", value(true)),
        Some('#') => format!("(?:#{}*)?", value(true)),
        Some('.') => format!(r"(?:\.(?:{plain}|,)*)*"),
        Some('/') => format!("(?:/(?:{plain}|,)*)*"),
        Some(';') => format!("(?:;(?:{plain}|[=,])*)*"),
        Some('?') => format!(r"(?:\?(?:{plain}|[=,])*(?:&(?:{plain}|[=,])*)*)?"),
        Some('&') => format!("(?:&(?:{plain}|[=,])*)*"),
        Some(_) => unreachable!("operators are matched above"),
    })
}

/// A variable name's characters (RFC 6570 §2.3; a percent-encoded triplet
/// is taken as its three characters).
fn is_varchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'%'
}

/// What a hub subscriber receives: an update one of whose topics one of
/// its selectors selects and, if the update is private, one of whose topics
/// its token grants.
#[derive(Debug)]
pub(crate) struct TopicFilter {
    pub(crate) wanted: Vec<Arc<Selector>>,
    /// The selectors of the token's `mercure.subscribe` claim.
    pub(crate) granted: Vec<Arc<Selector>>,
}

impl TopicFilter {
    /// Whether an entry with `topics` (`None`: one every subscriber gets,
    /// such as a reset) is delivered.
    pub(crate) fn admits(&self, topics: Option<&Topics>) -> bool {
        let Some(topics) = topics else {
            return true;
        };
        self.wanted.iter().any(|s| topics.selected_by(s))
            && (!topics.private || self.granted.iter().any(|s| topics.selected_by(s)))
    }
}

/// Compiled selectors by their text, so that subscribers asking for the
/// same template share one expression. Bounded: past its size, selectors
/// are compiled for their subscriber alone.
#[derive(Default)]
pub(crate) struct SelectorCache {
    compiled: Mutex<HashMap<String, Arc<Selector>>>,
}

const MAX_CACHED_SELECTORS: usize = 4096;

impl SelectorCache {
    pub(crate) fn get(&self, selector: &str) -> Result<Arc<Selector>, String> {
        let mut compiled = self.compiled.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(found) = compiled.get(selector) {
            return Ok(Arc::clone(found));
        }
        let parsed = Arc::new(Selector::parse(selector)?);
        if compiled.len() < MAX_CACHED_SELECTORS {
            compiled.insert(selector.to_owned(), Arc::clone(&parsed));
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selects(selector: &str, topic: &str) -> bool {
        Selector::parse(selector).unwrap().matches(topic)
    }

    #[test]
    fn exact_selectors_compare_bytes() {
        assert!(selects(
            "https://example.com/books/1",
            "https://example.com/books/1"
        ));
        assert!(!selects(
            "https://example.com/books/1",
            "https://example.com/books/10"
        ));
        assert!(!selects(
            "https://example.com/Books/1",
            "https://example.com/books/1"
        ));
        assert!(selects("*", "anything at all"));
    }

    #[test]
    fn simple_expressions_stop_at_reserved_characters() {
        let template = "https://example.com/books/{id}";
        assert!(selects(template, "https://example.com/books/1"));
        assert!(selects(template, "https://example.com/books/a%20b"));
        assert!(selects(template, "https://example.com/books/"));
        assert!(!selects(template, "https://example.com/books/1/reviews"));
        assert!(!selects(template, "https://example.com/authors/1"));
        assert!(!selects(template, "xhttps://example.com/books/1"));
        assert!(selects(template, template), "a template selects itself");
    }

    #[test]
    fn operators_expand_as_rfc_6570_says() {
        assert!(selects("/files{+path}", "/files/a/b/c.txt"));
        assert!(selects("/users{/id,tab}", "/users/42/inbox"));
        assert!(selects("/users{/id,tab}", "/users"));
        assert!(selects("/search{?q,lang}", "/search?q=sse&lang=en"));
        assert!(!selects("/search{?q,lang}", "/search?q=a b"));
        assert!(selects("/doc{#section}", "/doc#intro/2"));
        assert!(selects("/map{;x,y}", "/map;x=1;y=2"));
        assert!(selects("/a{.ext}", "/a.tar.gz"));
        assert!(selects("/list{?q}{&page}", "/list?q=x&page=2"));
        assert!(selects("/x/{a}-{b}", "/x/1-2"));
        assert!(selects("/p/{name:3}", "/p/abc"));
        assert!(selects("/p/{list*}", "/p/a,b"));
    }

    #[test]
    fn malformed_templates_are_refused() {
        for bad in [
            "/a/{", "/}/{a}", "/a/{}", "/a/{{b}}", "/a/{=b}", "/a/{b c}", "/a/{b:}",
        ] {
            assert!(Selector::parse(bad).is_err(), "{bad}");
        }
        // Without a `{` it is a topic, whatever else it holds.
        assert!(selects("/a/}", "/a/}"));
        assert!(Selector::parse("").is_err());
        assert!(Selector::parse("/a\nb").is_err());
        assert!(Selector::parse(&"a".repeat(MAX_SELECTOR_BYTES + 1)).is_err());
    }

    #[test]
    fn literal_parts_are_not_expressions() {
        assert!(selects("/a.b/{x}", "/a.b/1"));
        assert!(!selects("/a.b/{x}", "/aXb/1"));
        assert!(selects("/(x)+/{y}", "/(x)+/1"));
    }

    #[test]
    fn private_updates_need_a_granting_selector() {
        let parse = |s: &str| Arc::new(Selector::parse(s).unwrap());
        let filter = TopicFilter {
            wanted: vec![parse("/books/{id}")],
            granted: vec![parse("/books/1")],
        };
        let public = Topics::new(vec!["/books/2".into()], false);
        let private_1 = Topics::new(vec!["/books/1".into()], true);
        let private_2 = Topics::new(vec!["/books/2".into()], true);
        let alternate = Topics::new(vec!["/other".into(), "/books/1".into()], true);
        assert!(filter.admits(Some(&public)));
        assert!(filter.admits(Some(&private_1)));
        assert!(!filter.admits(Some(&private_2)));
        assert!(filter.admits(Some(&alternate)));
        assert!(!filter.admits(Some(&Topics::new(vec!["/other".into()], false))));
        assert!(filter.admits(None), "a reset reaches everyone");
    }

    #[test]
    fn an_update_remembers_what_a_shared_template_answered() {
        let cache = SelectorCache::default();
        let template = cache.get("/books/{id}").unwrap();
        let topics = Topics::new(vec!["/books/1".into()], false);
        assert!(topics.selected_by(&template));
        assert_eq!(topics.answers.lock().unwrap().len(), 1);
        assert!(topics.selected_by(&cache.get("/books/{id}").unwrap()));
        assert_eq!(topics.answers.lock().unwrap().len(), 1, "the same selector");
        let other = cache.get("/authors/{id}").unwrap();
        assert!(!topics.selected_by(&other));
        assert!(!topics.selected_by(&other), "remembered as no");
        // Exact selectors are compared, never remembered.
        assert!(topics.selected_by(&cache.get("/books/1").unwrap()));
        assert_eq!(topics.answers.lock().unwrap().len(), 2);
    }

    #[test]
    fn the_cache_shares_compiled_selectors() {
        let cache = SelectorCache::default();
        let a = cache.get("/books/{id}").unwrap();
        let b = cache.get("/books/{id}").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(cache.get("/a/{").is_err());
    }
}

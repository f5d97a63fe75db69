//! Any publish form: the hub answers with an update or a refusal, never a
//! panic, and an update it takes names valid topics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    if let Ok(topics) = tidings::fuzzing::hub_form(body) {
        assert!(!topics.is_empty());
        for topic in topics {
            assert!(
                !topic.is_empty() && !topic.chars().any(char::is_control),
                "{topic:?}"
            );
        }
    }
});

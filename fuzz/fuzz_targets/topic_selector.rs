//! Any topic selector against any topic: compiling and matching never
//! panic, a selector selects its own text, `*` selects everything, and an
//! exact selector selects exactly itself.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Case<'a> {
    selector: &'a str,
    topic: &'a str,
}

fuzz_target!(|case: Case<'_>| {
    let Some(selects) = tidings::fuzzing::selector_selects(case.selector, case.topic) else {
        return;
    };
    if case.selector == "*" {
        assert!(selects);
    } else if !case.selector.contains('{') {
        assert_eq!(selects, case.selector == case.topic);
    }
});

//! Any first request head: the direct path's parser, the query and
//! `Last-Event-ID` readers, the token check of a private channel and the
//! hub's subscription never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|head: &[u8]| {
    tidings::fuzzing::request_head(head);
});

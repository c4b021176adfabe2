#![no_main]

// Shared with the relay's corpus replay test (relay/tests/fuzz_corpus.rs).
#[allow(dead_code)]
#[path = "../relay_targets.rs"]
mod relay_targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| relay_targets::blobs(data));

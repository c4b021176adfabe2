#![no_main]

// The decode entry points are shared with client-wasm's corpus replay test, so the committed corpus
// exercises exactly what the fuzzer does.
#[allow(dead_code)]
#[path = "../../client-wasm/tests/common/fuzz_targets.rs"]
mod fuzz_targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_targets::group_credential(data));

//! The HTTP API: request bodies, query strings and path ids through the real
//! router (see `reyna_fuzz::api`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = reyna_fuzz::api(data);
});

//! The upload path: `Engine::upload_plugin` on raw bytes, or on mutants of a
//! real component when the first byte is 0x80 or above (see `reyna_fuzz::upload`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = reyna_fuzz::upload(data);
});

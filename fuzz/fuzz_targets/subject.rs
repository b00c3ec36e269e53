//! Subject matching: a pattern, a newline, a subject; `matches` against the
//! reference matcher, and re-parsing (see `reyna_fuzz::subject`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    reyna_fuzz::subject(data);
});

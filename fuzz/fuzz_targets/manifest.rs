//! Manifest parsing: `Manifest::from_bytes` and `parse` on any bytes, and the
//! TOML round trip of every manifest they accept (see `reyna_fuzz::manifest`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    reyna_fuzz::manifest(data);
});

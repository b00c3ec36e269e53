//! Fuzz targets for the places where Reyna reads bytes it did not write:
//! manifest parsing ([`manifest()`]), subject matching ([`subject()`]), the
//! plugin upload path ([`upload()`]) and the HTTP API's request bodies, query
//! strings and path ids ([`api()`]).
//!
//! Each target is a plain function over `&[u8]` that returns normally on any
//! input, refused or accepted, and panics only when an invariant breaks. The
//! libFuzzer binaries in `fuzz_targets/` (feature `libfuzzer`, nightly
//! `cargo fuzz`) call them; so does `tests/fuzz_smoke.rs` on the stable
//! toolchain, over the seed corpora in `corpus/` and deterministic mutations
//! of them ([`mutate`]).
//!
//! ```
//! // A pattern, a newline, a subject: `matches` must agree with the reference.
//! reyna_fuzz::subject(b"blob.created.*\nblob.created.text-input-v1");
//! // Anything at all may be fed to the manifest parser.
//! reyna_fuzz::manifest(b"name = \"x\"\nversion = \"0.1.0\"\nkind = \"effect\"\n");
//! ```
#![deny(missing_docs)]
// A fuzz target reports a broken invariant by panicking: that is what libFuzzer
// and the smoke test detect. Every `panic!`, `expect` and `unwrap` here states
// an invariant (or a broken test set-up); none handles user input.
#![allow(clippy::panic, clippy::expect_used, clippy::unwrap_used)]

pub mod api;
mod manifest;
pub mod mutate;
mod subject;
pub mod upload;

pub use api::api;
pub use manifest::manifest;
pub use subject::{reference_matches, subject};
pub use upload::upload;

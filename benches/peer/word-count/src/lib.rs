//! Reyna's `tests/programs/word-count` as an Extism plugin: the same input
//! (`{"content": ...}` as JSON), the same rule (`str::split_whitespace`), the
//! same output (`{"words": n}` as JSON), so the peer bench compares like with
//! like. Built for wasm32-unknown-unknown by `benches/suite.sh`.

use extism_pdk::{FnResult, plugin_fn};

/// The `text-input-v1` fields word-count reads (unknown fields ignored, as
/// in Reyna's program).
#[derive(serde::Deserialize, Debug)]
struct Input {
    content: String,
}

/// Counts the words of the input text.
#[plugin_fn]
pub fn word_count(input: Vec<u8>) -> FnResult<Vec<u8>> {
    let input: Input = serde_json::from_slice(&input)?;
    let words = input.content.split_whitespace().count();
    Ok(serde_json::to_vec(&serde_json::json!({ "words": words }))?)
}

//! `text-expand`: text-input-v1 -> expanded-text-v1.
//!
//! Config: `expansion_ratio` (default 2, between 1 and 10); `use_llm = true`
//! asks the `llm` effect to write the expansion. Without it the expansion is
//! deterministic: every sentence is restated with a connective until the text
//! reaches the ratio, so the same input always gives the same output.

use reyna_sdk::{Context, Error, Output, Processor};
use serde::{Deserialize, Serialize};

/// The text-input-v1 fields this plugin reads.
#[derive(Debug, Deserialize)]
pub struct TextInput {
    /// The text to expand.
    pub text: String,
}

#[derive(Debug, Serialize)]
struct Expanded<'a> {
    text: String,
    source_words: usize,
    words: usize,
    ratio: f64,
    method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LlmResponse {
    text: String,
    #[serde(default)]
    model: Option<String>,
}

/// The processor.
#[derive(Debug)]
pub struct TextExpand;

const CONNECTIVES: [&str; 4] = [
    "In other words,",
    "Put differently,",
    "That is to say,",
    "To restate the point,",
];

/// Splits text into sentences, keeping their closing punctuation.
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in text.char_indices() {
        if matches!(c, '.' | '!' | '?') {
            let s = text[start..=i].trim();
            if !s.is_empty() {
                out.push(s);
            }
            start = i + c.len_utf8();
        }
    }
    let rest = text[start..].trim();
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

fn word_count(text: &str) -> usize {
    text.split_whitespace().count()
}

/// Deterministic expansion to at least `ratio` times the words of `text`.
pub fn expand(text: &str, ratio: f64) -> String {
    let source = sentences(text);
    let target = (word_count(text) as f64 * ratio).ceil() as usize;
    let mut out = source.join(" ");
    let mut words = word_count(&out);
    let mut round = 0;
    while words < target && !source.is_empty() {
        for sentence in &source {
            if words >= target {
                break;
            }
            let connective = CONNECTIVES[round % CONNECTIVES.len()];
            let mut chars = sentence.chars();
            let restated = match chars.next() {
                Some(first) => format!("{}{}", first.to_lowercase(), chars.as_str()),
                None => continue,
            };
            out.push(' ');
            out.push_str(connective);
            out.push(' ');
            out.push_str(&restated);
            words += word_count(connective) + word_count(&restated);
        }
        round += 1;
    }
    out
}

impl Processor for TextExpand {
    type Input = TextInput;

    fn process(input: TextInput, ctx: &mut Context<'_>) -> Result<Vec<Output>, Error> {
        if input.text.trim().is_empty() {
            return Err(Error::invalid_input("text is empty"));
        }
        let ratio: f64 = ctx.config_parse("expansion_ratio")?.unwrap_or(2.0);
        if !(1.0..=10.0).contains(&ratio) {
            return Err(Error::fatal(format!(
                "config `expansion_ratio` = {ratio} must be between 1 and 10"
            )));
        }
        let use_llm: bool = ctx.config_parse("use_llm")?.unwrap_or(false);
        let source_words = word_count(&input.text);
        let (text, method, model) = if use_llm {
            let request = serde_json::json!({
                "system": "You expand texts. Keep the meaning, add detail and examples, no preamble.",
                "prompt": format!(
                    "Expand the following text to about {} words:\n\n{}",
                    (source_words as f64 * ratio).round(),
                    input.text
                ),
                "max_tokens": ((source_words as f64 * ratio * 2.0) as u64).clamp(64, 4096),
            });
            let response: LlmResponse = ctx.call_effect_json("llm", &request)?;
            if response.text.trim().is_empty() {
                return Err(Error::retryable("llm returned an empty text"));
            }
            (response.text, "llm", response.model)
        } else {
            (expand(&input.text, ratio), "deterministic", None)
        };
        let words = word_count(&text);
        ctx.info(&format!(
            "expanded {source_words} words to {words} ({method})"
        ));
        let expanded = Expanded {
            ratio: if source_words == 0 {
                0.0
            } else {
                words as f64 / source_words as f64
            },
            text,
            source_words,
            words,
            method,
            model,
        };
        Ok(vec![Output::json("expanded-text-v1", &expanded)?])
    }
}

reyna_sdk::export_processor!(TextExpand);

#[cfg(test)]
mod tests {
    use super::*;
    use reyna_sdk::testing::Harness;
    use serde_json::json;

    #[test]
    fn deterministic_expansion_reaches_the_ratio_and_repeats_exactly() {
        let mut h = Harness::new();
        h.config("expansion_ratio", "3");
        let text = "Rust is fast. It is also safe!";
        let out = h
            .process::<TextExpand>("text-input-v1", json!({ "text": text }))
            .unwrap();
        assert_eq!(out.len(), 1);
        let o = &out[0].json;
        assert_eq!(out[0].schema, "expanded-text-v1");
        assert_eq!(o["method"], "deterministic");
        assert_eq!(o["source_words"], 7);
        assert!(o["words"].as_u64().unwrap() >= 21, "{o}");
        assert!(
            o["text"]
                .as_str()
                .unwrap()
                .starts_with("Rust is fast. It is also safe! In other words, rust is fast.")
        );
        let again = Harness::new()
            .config("expansion_ratio", "3")
            .process::<TextExpand>("text-input-v1", json!({ "text": text }))
            .unwrap();
        assert_eq!(again[0].json, *o);
    }

    #[test]
    fn uses_the_llm_effect_when_configured() {
        let mut h = Harness::new();
        h.config("use_llm", "true").effect("llm", |req| {
            let req: serde_json::Value = serde_json::from_slice(req).unwrap();
            assert!(req["prompt"].as_str().unwrap().contains("Short text."));
            Ok(
                br#"{"text": "A much longer text about a short text.", "model": "test-model"}"#
                    .to_vec(),
            )
        });
        let out = h
            .process::<TextExpand>("text-input-v1", json!({ "text": "Short text." }))
            .unwrap();
        assert_eq!(out[0].json["method"], "llm");
        assert_eq!(out[0].json["model"], "test-model");
        assert_eq!(
            out[0].json["text"],
            "A much longer text about a short text."
        );
        assert_eq!(h.effect_calls.len(), 1);
        assert_eq!(h.effect_calls[0].0, "llm");
    }

    #[test]
    fn llm_failures_propagate_so_the_host_can_retry() {
        let mut h = Harness::new();
        h.config("use_llm", "true")
            .effect("llm", |_| Err(Error::retryable("rate limited")));
        let err = h
            .process::<TextExpand>("text-input-v1", json!({ "text": "x" }))
            .unwrap_err();
        assert_eq!(err, Error::retryable("rate limited"));
    }

    #[test]
    fn bad_input_is_invalid_input_not_a_panic() {
        let mut h = Harness::new();
        let err = h
            .process::<TextExpand>("text-input-v1", json!({ "txt": "typo" }))
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidInput(ref m) if m.contains("missing field `text`")),
            "{err}"
        );
        let err = h
            .process_bytes::<TextExpand>("text-input-v1", b"not json".to_vec())
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err}");
        let err = h
            .process::<TextExpand>("text-input-v1", json!({ "text": "   " }))
            .unwrap_err();
        assert_eq!(err, Error::invalid_input("text is empty"));
    }

    #[test]
    fn a_bad_ratio_is_a_config_error() {
        let mut h = Harness::new();
        h.config("expansion_ratio", "banana");
        let err = h
            .process::<TextExpand>("text-input-v1", json!({ "text": "x" }))
            .unwrap_err();
        assert!(
            matches!(err, Error::Fatal(ref m) if m.contains("expansion_ratio")),
            "{err}"
        );
        h.config("expansion_ratio", "50");
        let err = h
            .process::<TextExpand>("text-input-v1", json!({ "text": "x" }))
            .unwrap_err();
        assert!(matches!(err, Error::Fatal(_)));
    }
}

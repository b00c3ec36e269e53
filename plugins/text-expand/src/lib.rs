//! `text-expand`: text-input-v1 -> expanded-text-v1 (and chapter-v1).
//!
//! Config: `expansion_ratio` (default 4, accepted 1 to 10): how many times the
//! words of `content` the expansion aims for. Without `use_llm = true` the
//! expansion is deterministic: every sentence is restated after a connective
//! ("In other words, ...") until the text has at least `ratio` times the
//! words, so the same input always gives the same output. With `use_llm =
//! true` the `llm` effect writes it, asked for about `ratio` times the words in
//! the input's `metadata.style`; a model that returns fewer words than the
//! original is padded with restatements up to the original's length, so the
//! measured `expansion_ratio` is never below 1.
//!
//! `metrics` measure the expanded text with the SDK's [`TextMetrics`]:
//! `readability_score` is its Flesch reading ease; `complexity` is
//! [`Complexity::of`] its average sentence length and syllables per word;
//! `tone` is the input's style, or `neutral`.
//!
//! When the input's metadata has both `book_id` and `chapter`, the plugin also
//! emits a chapter-v1 `{book_id, index: chapter, title: "Chapter N", text:
//! <the expanded text>}` for `book-compile` to gather.

use reyna_sdk::text::{self, TextMetrics};
use reyna_sdk::{Context, Error, Output, Processor};
use serde::{Deserialize, Serialize};

/// The register the text is written in (text-input-v1's `metadata.style`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Style {
    /// Formal.
    Formal,
    /// Casual.
    Casual,
    /// Creative.
    Creative,
}

impl Style {
    fn as_str(self) -> &'static str {
        match self {
            Style::Formal => "formal",
            Style::Casual => "casual",
            Style::Creative => "creative",
        }
    }
}

/// text-input-v1's `metadata`, copied to the expansion.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    /// The book the text is a chapter of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub book_id: Option<String>,
    /// The chapter's number, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chapter: Option<u64>,
    /// The register to write in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style: Option<Style>,
}

/// The text-input-v1 document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextInput {
    /// The text to expand.
    pub content: String,
    /// Facts about the text.
    #[serde(default)]
    pub metadata: Option<Metadata>,
}

/// How hard the expanded text is to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Complexity {
    /// Short sentences of short words.
    Low,
    /// Neither low nor high.
    Medium,
    /// Long sentences or long words.
    High,
}

impl Complexity {
    /// `high` when sentences average more than 20 words or words more than
    /// 1.7 syllables; `low` when sentences average at most 12 words and words
    /// at most 1.4 syllables; `medium` otherwise.
    pub fn of(metrics: &TextMetrics) -> Self {
        let words_per_sentence = metrics.avg_words_per_sentence();
        let syllables_per_word = metrics.avg_syllables_per_word();
        if words_per_sentence > 20.0 || syllables_per_word > 1.7 {
            Complexity::High
        } else if words_per_sentence <= 12.0 && syllables_per_word <= 1.4 {
            Complexity::Low
        } else {
            Complexity::Medium
        }
    }
}

#[derive(Debug, Serialize)]
struct Metrics {
    readability_score: f64,
    complexity: Complexity,
    tone: &'static str,
}

/// The expanded-text-v1 document.
#[derive(Debug, Serialize)]
struct Expanded<'a> {
    original: &'a str,
    expanded: &'a str,
    expansion_ratio: f64,
    metrics: Metrics,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<&'a Metadata>,
    method: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<String>,
}

/// The chapter-v1 document.
#[derive(Debug, Serialize)]
struct Chapter<'a> {
    book_id: &'a str,
    index: u64,
    title: String,
    text: &'a str,
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

/// Appends restatements of `source`'s sentences to `text` (each after a
/// connective, in turn) until it has at least `target` words.
fn pad(mut text: String, source: &str, target: u64) -> String {
    let sentences = text::sentences(source);
    let mut words = text::words(&text).count() as u64;
    let mut round = 0;
    while words < target && !sentences.is_empty() {
        for sentence in &sentences {
            if words >= target {
                break;
            }
            let connective = CONNECTIVES[round % CONNECTIVES.len()];
            let mut chars = sentence.chars();
            let Some(first) = chars.next() else { continue };
            let restated = format!("{}{}", first.to_lowercase(), chars.as_str());
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(connective);
            text.push(' ');
            text.push_str(&restated);
            words += (text::words(connective).count() + text::words(&restated).count()) as u64;
        }
        round += 1;
    }
    text
}

/// Deterministic expansion of `source` to at least `ratio` times its words.
pub fn expand(source: &str, ratio: f64) -> String {
    let target = (text::words(source).count() as f64 * ratio).ceil() as u64;
    pad(text::sentences(source).join(" "), source, target)
}

fn config(ctx: &mut Context<'_>) -> Result<(f64, bool), Error> {
    let ratio: f64 = ctx.config_parse("expansion_ratio")?.unwrap_or(4.0);
    if !(1.0..=10.0).contains(&ratio) {
        return Err(Error::fatal(format!(
            "config `expansion_ratio` = {ratio} must be between 1 and 10"
        )));
    }
    let use_llm: bool = ctx.config_parse("use_llm")?.unwrap_or(false);
    Ok((ratio, use_llm))
}

/// Asks the `llm` effect for the expansion; returns its text and model.
fn ask_llm(
    ctx: &mut Context<'_>,
    content: &str,
    source_words: u64,
    ratio: f64,
    style: Option<Style>,
) -> Result<(String, Option<String>), Error> {
    let target = (source_words as f64 * ratio).round();
    let style = match style {
        Some(style) => format!(" Write in a {} style.", style.as_str()),
        None => String::new(),
    };
    let request = serde_json::json!({
        "system": "You expand texts. Keep the meaning, add detail and examples, no preamble.",
        "prompt": format!("Expand the following text to about {target} words.{style}\n\n{content}"),
        "max_tokens": ((target * 2.0) as u64).clamp(64, 4096),
    });
    let response: LlmResponse = ctx.call_effect_json("llm", &request)?;
    if response.text.trim().is_empty() {
        return Err(Error::retryable("llm returned an empty text"));
    }
    Ok((response.text, response.model))
}

impl Processor for TextExpand {
    type Input = TextInput;

    fn process(input: TextInput, ctx: &mut Context<'_>) -> Result<Vec<Output>, Error> {
        let source_words = text::words(&input.content).count() as u64;
        if source_words == 0 {
            return Err(Error::invalid_input("content has no words"));
        }
        let (ratio, use_llm) = config(ctx)?;
        let style = input.metadata.as_ref().and_then(|m| m.style);
        let (expanded, method, model) = if use_llm {
            let (written, model) = ask_llm(ctx, &input.content, source_words, ratio, style)?;
            (pad(written, &input.content, source_words), "llm", model)
        } else {
            (expand(&input.content, ratio), "deterministic", None)
        };
        let metrics = TextMetrics::measure(&expanded);
        ctx.info(&format!(
            "expanded {source_words} words to {} ({method})",
            metrics.words
        ));
        let document = Expanded {
            original: &input.content,
            expanded: &expanded,
            expansion_ratio: metrics.words as f64 / source_words as f64,
            metrics: Metrics {
                readability_score: metrics.flesch_reading_ease(),
                complexity: Complexity::of(&metrics),
                tone: style.map_or("neutral", Style::as_str),
            },
            metadata: input.metadata.as_ref(),
            method,
            model,
        };
        let mut outputs = vec![Output::json("expanded-text-v1", &document)?];
        if let Some(Metadata {
            book_id: Some(book_id),
            chapter: Some(index),
            ..
        }) = &input.metadata
        {
            let chapter = Chapter {
                book_id,
                index: *index,
                title: format!("Chapter {index}"),
                text: &expanded,
            };
            outputs.push(Output::json("chapter-v1", &chapter)?);
        }
        Ok(outputs)
    }
}

reyna_sdk::export_processor!(TextExpand);

#[cfg(test)]
mod tests {
    use super::*;
    use reyna_sdk::testing::Harness;
    use serde_json::json;

    const TEXT: &str = "Rust is fast. It is also safe!";

    fn words(text: &serde_json::Value) -> usize {
        text::words(text.as_str().unwrap()).count()
    }

    #[test]
    fn deterministic_expansion_reaches_the_default_ratio_and_repeats_exactly() {
        let out = Harness::new()
            .process::<TextExpand>("text-input-v1", json!({ "content": TEXT }))
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].schema, "expanded-text-v1");
        let o = &out[0].json;
        assert_eq!(o["method"], "deterministic");
        assert_eq!(o["original"], TEXT);
        assert!(
            o.get("model").is_none() && o.get("metadata").is_none(),
            "{o}"
        );
        let expanded = o["expanded"].as_str().unwrap();
        assert!(
            expanded.starts_with(
                "Rust is fast. It is also safe! In other words, rust is fast. \
                 In other words, it is also safe! Put differently, rust is fast."
            ),
            "{expanded}"
        );
        // 7 words, default ratio 4: at least 28, and the ratio is the measured one.
        let n = words(&o["expanded"]);
        assert!(n >= 28, "{n}");
        assert_eq!(o["expansion_ratio"], n as f64 / 7.0);
        let again = Harness::new()
            .process::<TextExpand>("text-input-v1", json!({ "content": TEXT }))
            .unwrap();
        assert_eq!(again[0].json, *o);
    }

    #[test]
    fn the_configured_ratio_sets_the_length() {
        for ratio in [1.0, 2.5, 10.0] {
            let out = Harness::new()
                .config("expansion_ratio", &ratio.to_string())
                .process::<TextExpand>("text-input-v1", json!({ "content": TEXT }))
                .unwrap();
            let measured = out[0].json["expansion_ratio"].as_f64().unwrap();
            // At least the ratio, and less than one more sentence beyond it.
            assert!(
                measured >= ratio && measured < ratio + 1.0,
                "{ratio}: {measured}"
            );
        }
        let out = Harness::new()
            .config("expansion_ratio", "1")
            .process::<TextExpand>("text-input-v1", json!({ "content": TEXT }))
            .unwrap();
        assert_eq!(out[0].json["expanded"], TEXT);
        assert_eq!(out[0].json["expansion_ratio"], 1.0);
    }

    #[test]
    fn metrics_describe_the_expanded_text() {
        let out = Harness::new()
            .process::<TextExpand>(
                "text-input-v1",
                json!({ "content": TEXT, "metadata": { "style": "casual" } }),
            )
            .unwrap();
        let o = &out[0].json;
        let measured = TextMetrics::measure(o["expanded"].as_str().unwrap());
        assert_eq!(
            o["metrics"]["readability_score"],
            measured.flesch_reading_ease()
        );
        assert_eq!(o["metrics"]["complexity"], "low");
        assert_eq!(o["metrics"]["tone"], "casual");
        assert_eq!(o["metadata"], json!({ "style": "casual" }));
        let plain = Harness::new()
            .process::<TextExpand>("text-input-v1", json!({ "content": TEXT }))
            .unwrap();
        assert_eq!(plain[0].json["metrics"]["tone"], "neutral");
    }

    #[test]
    fn complexity_follows_sentence_length_and_word_length() {
        let of = |text: &str| Complexity::of(&TextMetrics::measure(text));
        assert_eq!(of("I see a dog. The dog is red."), Complexity::Low);
        // Short sentences of long words.
        assert_eq!(
            of("Institutional considerations necessitate reorganization."),
            Complexity::High
        );
        // 21 one-syllable words in one sentence.
        assert_eq!(
            of(&format!("{} end.", ["the cat"; 10].join(" "))),
            Complexity::High
        );
        // 16 words in one sentence, 1.38 syllables a word.
        assert_eq!(
            of("The quick brown fox jumps over the lazy dog and then it runs away again today."),
            Complexity::Medium
        );
    }

    #[test]
    fn a_chapter_input_also_emits_its_chapter() {
        let metadata = json!({ "book_id": "b1", "chapter": 2, "style": "formal" });
        let out = Harness::new()
            .process::<TextExpand>(
                "text-input-v1",
                json!({ "content": TEXT, "metadata": metadata }),
            )
            .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].json["metadata"], metadata);
        assert_eq!(out[0].json["metrics"]["tone"], "formal");
        assert_eq!(out[1].schema, "chapter-v1");
        assert_eq!(
            out[1].json,
            json!({
                "book_id": "b1",
                "index": 2,
                "title": "Chapter 2",
                "text": out[0].json["expanded"],
            })
        );
        // The chapter's parent is the input itself, as for the expansion.
        assert!(out[1].extra_parents.is_empty());
        // A book without a chapter number is no chapter.
        let out = Harness::new()
            .process::<TextExpand>(
                "text-input-v1",
                json!({ "content": TEXT, "metadata": { "book_id": "b1" } }),
            )
            .unwrap();
        assert_eq!(out.len(), 1);
    }

    #[test]
    fn uses_the_llm_effect_when_configured() {
        let mut h = Harness::new();
        h.config("use_llm", "true")
            .config("expansion_ratio", "3")
            .effect("llm", |req| {
                let req: serde_json::Value = serde_json::from_slice(req).unwrap();
                let prompt = req["prompt"].as_str().unwrap();
                assert!(prompt.contains("about 9 words"), "{prompt}");
                assert!(prompt.contains("in a creative style"), "{prompt}");
                assert!(prompt.ends_with("Short text, three."), "{prompt}");
                Ok(
                    br#"{"text": "A much longer text about a short text, with three words.", "model": "test-model"}"#
                        .to_vec(),
                )
            });
        let out = h
            .process::<TextExpand>(
                "text-input-v1",
                json!({ "content": "Short text, three.", "metadata": { "style": "creative" } }),
            )
            .unwrap();
        let o = &out[0].json;
        assert_eq!(o["method"], "llm");
        assert_eq!(o["model"], "test-model");
        assert_eq!(
            o["expanded"],
            "A much longer text about a short text, with three words."
        );
        assert_eq!(o["expansion_ratio"], 11.0 / 3.0);
        assert_eq!(h.effect_calls.len(), 1);
        assert_eq!(h.effect_calls[0].0, "llm");
    }

    #[test]
    fn a_shorter_llm_answer_is_padded_to_the_original_length() {
        let mut h = Harness::new();
        h.config("use_llm", "true")
            .effect("llm", |_| Ok(br#"{"text": "Brief."}"#.to_vec()));
        let out = h
            .process::<TextExpand>("text-input-v1", json!({ "content": TEXT }))
            .unwrap();
        let o = &out[0].json;
        assert_eq!(o["expanded"], "Brief. In other words, rust is fast.");
        assert_eq!(o["expansion_ratio"], 1.0);
        assert!(o.get("model").is_none());
    }

    #[test]
    fn llm_failures_propagate_so_the_host_can_retry() {
        let mut h = Harness::new();
        h.config("use_llm", "true")
            .effect("llm", |_| Err(Error::retryable("rate limited")));
        let err = h
            .process::<TextExpand>("text-input-v1", json!({ "content": TEXT }))
            .unwrap_err();
        assert_eq!(err, Error::retryable("rate limited"));
        let mut h = Harness::new();
        h.config("use_llm", "true")
            .effect("llm", |_| Ok(br#"{"text": "  "}"#.to_vec()));
        let err = h
            .process::<TextExpand>("text-input-v1", json!({ "content": TEXT }))
            .unwrap_err();
        assert_eq!(err, Error::retryable("llm returned an empty text"));
    }

    #[test]
    fn bad_input_is_invalid_input_not_a_panic() {
        let mut h = Harness::new();
        let err = h
            .process::<TextExpand>("text-input-v1", json!({ "text": "the old shape" }))
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidInput(ref m) if m.contains("unknown field `text`")),
            "{err}"
        );
        let err = h
            .process_bytes::<TextExpand>("text-input-v1", b"not json".to_vec())
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err}");
        let err = h
            .process::<TextExpand>("text-input-v1", json!({ "content": " ... !!! -- " }))
            .unwrap_err();
        assert_eq!(err, Error::invalid_input("content has no words"));
    }

    #[test]
    fn a_bad_ratio_is_a_config_error() {
        for bad in ["banana", "0.5", "10.5", "NaN"] {
            let mut h = Harness::new();
            h.config("expansion_ratio", bad);
            let err = h
                .process::<TextExpand>("text-input-v1", json!({ "content": TEXT }))
                .unwrap_err();
            assert!(
                matches!(err, Error::Fatal(ref m) if m.contains("expansion_ratio")),
                "{bad}: {err}"
            );
        }
    }
}

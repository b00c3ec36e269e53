//! `word-stats`: text-input-v1, chapter-v1 and expanded-text-v1 -> word-stats-v1.
//!
//! Measures the text of each input (`content` of a text-input-v1, `expanded`
//! of an expanded-text-v1, `text` of a chapter-v1) with the SDK's
//! [`TextMetrics`]: words, sentences, characters and syllables (vowel groups,
//! an estimate good enough for English) and the Flesch reading ease
//! `206.835 - 1.015 * words/sentences - 84.6 * syllables/words`.

use reyna_sdk::text::TextMetrics;
use reyna_sdk::{Context, Error, Output, Processor};
use serde::{Deserialize, Serialize};

/// The text of any accepted schema, under the field that schema gives it.
#[derive(Debug, Deserialize)]
pub struct WithText {
    /// text-input-v1's text.
    #[serde(default)]
    pub content: Option<String>,
    /// expanded-text-v1's expanded text.
    #[serde(default)]
    pub expanded: Option<String>,
    /// chapter-v1's text.
    #[serde(default)]
    pub text: Option<String>,
}

/// The computed statistics (the word-stats-v1 document).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    /// Schema of the measured blob.
    pub source_schema: String,
    /// Whitespace-separated words containing a letter or digit.
    pub words: u64,
    /// Sentences (runs ending in `.`, `!` or `?`, plus a trailing fragment).
    pub sentences: u64,
    /// Unicode scalar values.
    pub characters: u64,
    /// Estimated syllables.
    pub syllables: u64,
    /// Words per sentence.
    pub avg_words_per_sentence: f64,
    /// Flesch reading ease (higher is easier).
    pub flesch_reading_ease: f64,
}

/// Measures `text`.
pub fn measure(source_schema: &str, text: &str) -> Stats {
    let m = TextMetrics::measure(text);
    Stats {
        source_schema: source_schema.to_owned(),
        words: m.words,
        sentences: m.sentences,
        characters: m.characters,
        syllables: m.syllables,
        avg_words_per_sentence: m.avg_words_per_sentence(),
        flesch_reading_ease: m.flesch_reading_ease(),
    }
}

impl WithText {
    /// The text under the field `schema` gives it.
    pub fn into_text(self, schema: &str) -> Result<String, Error> {
        let (field, text) = match schema {
            "text-input-v1" => ("content", self.content),
            "expanded-text-v1" => ("expanded", self.expanded),
            "chapter-v1" => ("text", self.text),
            other => {
                return Err(Error::invalid_input(format!(
                    "schema `{other}` has no text"
                )));
            }
        };
        text.ok_or_else(|| Error::invalid_input(format!("missing field `{field}`")))
    }
}

/// The processor.
#[derive(Debug)]
pub struct WordStats;

impl Processor for WordStats {
    type Input = WithText;

    fn process(input: WithText, ctx: &mut Context<'_>) -> Result<Vec<Output>, Error> {
        let schema = &ctx.blob().schema;
        let stats = measure(schema, &input.into_text(schema)?);
        Ok(vec![Output::json("word-stats-v1", &stats)?])
    }
}

reyna_sdk::export_processor!(WordStats);

#[cfg(test)]
mod tests {
    use super::*;
    use reyna_sdk::testing::Harness;
    use serde_json::json;

    #[test]
    fn counts_words_sentences_and_syllables() {
        let s = measure("text-input-v1", "The cat sat on the mat. It was happy!");
        assert_eq!(s.words, 9);
        assert_eq!(s.sentences, 2);
        assert_eq!(s.syllables, 10);
        assert_eq!(s.avg_words_per_sentence, 4.5);
        // 206.835 - 1.015 * 4.5 - 84.6 * 10/9
        assert_eq!(s.flesch_reading_ease, 108.27);
    }

    #[test]
    fn harder_text_scores_lower() {
        let easy = measure("x", "I see a dog. The dog is red.");
        let hard = measure(
            "x",
            "Consequently, institutional considerations necessitate extraordinarily comprehensive reorganization.",
        );
        assert!(easy.flesch_reading_ease > hard.flesch_reading_ease);
    }

    #[test]
    fn runs_on_each_declared_input() {
        let mut h = Harness::new();
        let out = h
            .process::<WordStats>("text-input-v1", json!({ "content": "One two three." }))
            .unwrap();
        assert_eq!(out[0].json["words"], 3);
        assert_eq!(out[0].json["source_schema"], "text-input-v1");
        let out = h
            .process::<WordStats>(
                "chapter-v1",
                json!({ "book_id": "b", "index": 0, "title": "T", "text": "Hello there." }),
            )
            .unwrap();
        assert_eq!(out[0].json["words"], 2);
        assert_eq!(out[0].json["source_schema"], "chapter-v1");
        let out = h
            .process::<WordStats>(
                "expanded-text-v1",
                json!({
                    "original": "a b",
                    "expanded": "a b, that is to say a b",
                    "expansion_ratio": 3.0,
                    "metrics": { "readability_score": 100.0, "complexity": "low", "tone": "neutral" },
                    "method": "deterministic"
                }),
            )
            .unwrap();
        assert_eq!(out[0].json["words"], 8);
        assert_eq!(out[0].json["source_schema"], "expanded-text-v1");
    }

    #[test]
    fn empty_or_symbol_only_text_gives_zeros() {
        let s = measure("x", " ... !!! ");
        assert_eq!((s.words, s.sentences, s.flesch_reading_ease), (0, 0, 0.0));
    }

    #[test]
    fn bad_input_is_invalid_input_not_a_panic() {
        let mut h = Harness::new();
        let err = h
            .process::<WordStats>("text-input-v1", json!({ "content": 42 }))
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidInput(ref m) if m.contains("invalid type")),
            "{err}"
        );
        // Each schema's text is under its own field: another's is not read.
        let err = h
            .process::<WordStats>("text-input-v1", json!({ "text": "the old shape" }))
            .unwrap_err();
        assert_eq!(err, Error::invalid_input("missing field `content`"));
        let err = h
            .process::<WordStats>("expanded-text-v1", json!({ "original": "only this" }))
            .unwrap_err();
        assert_eq!(err, Error::invalid_input("missing field `expanded`"));
    }
}

//! `word-stats`: text-input-v1, chapter-v1 and expanded-text-v1 -> word-stats-v1.
//!
//! Counts words, sentences, characters and syllables (vowel groups, an
//! estimate good enough for English) and computes the Flesch reading ease:
//! `206.835 - 1.015 * words/sentences - 84.6 * syllables/words`.

use reyna_sdk::{Context, Error, Output, Processor};
use serde::{Deserialize, Serialize};

/// Every accepted schema carries its text in `text`.
#[derive(Debug, Deserialize)]
pub struct WithText {
    /// The text to measure.
    pub text: String,
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

fn syllables(word: &str) -> u64 {
    let lower: Vec<char> = word
        .chars()
        .filter(|c| c.is_alphabetic())
        .flat_map(char::to_lowercase)
        .collect();
    if lower.is_empty() {
        return 0;
    }
    let is_vowel = |c: char| matches!(c, 'a' | 'e' | 'i' | 'o' | 'u' | 'y');
    let mut count = 0u64;
    let mut previous_vowel = false;
    for &c in &lower {
        let v = is_vowel(c);
        if v && !previous_vowel {
            count += 1;
        }
        previous_vowel = v;
    }
    // A silent final "e" (make, code) is not a syllable, but "le" (table) is.
    if lower.len() > 2
        && lower[lower.len() - 1] == 'e'
        && lower[lower.len() - 2] != 'l'
        && count > 1
    {
        count -= 1;
    }
    count.max(1)
}

/// Measures `text`.
pub fn measure(source_schema: &str, text: &str) -> Stats {
    let words: Vec<&str> = text
        .split_whitespace()
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .collect();
    let mut sentences = 0u64;
    let mut in_sentence = false;
    for c in text.chars() {
        if matches!(c, '.' | '!' | '?') {
            if in_sentence {
                sentences += 1;
            }
            in_sentence = false;
        } else if c.is_alphanumeric() {
            in_sentence = true;
        }
    }
    if in_sentence {
        sentences += 1;
    }
    let word_count = words.len() as u64;
    let syllable_count: u64 = words.iter().map(|w| syllables(w)).sum();
    let (avg, flesch) = if word_count == 0 || sentences == 0 {
        (0.0, 0.0)
    } else {
        let wps = word_count as f64 / sentences as f64;
        let spw = syllable_count as f64 / word_count as f64;
        (wps, 206.835 - 1.015 * wps - 84.6 * spw)
    };
    let round2 = |x: f64| (x * 100.0).round() / 100.0;
    Stats {
        source_schema: source_schema.to_owned(),
        words: word_count,
        sentences,
        characters: text.chars().count() as u64,
        syllables: syllable_count,
        avg_words_per_sentence: round2(avg),
        flesch_reading_ease: round2(flesch),
    }
}

/// The processor.
#[derive(Debug)]
pub struct WordStats;

impl Processor for WordStats {
    type Input = WithText;

    fn process(input: WithText, ctx: &mut Context<'_>) -> Result<Vec<Output>, Error> {
        let stats = measure(&ctx.blob().schema, &input.text);
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
            .process::<WordStats>("text-input-v1", json!({ "text": "One two three." }))
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
                json!({ "text": "a b", "source_words": 1, "words": 2, "ratio": 2.0, "method": "deterministic" }),
            )
            .unwrap();
        assert_eq!(out[0].json["words"], 2);
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
            .process::<WordStats>("text-input-v1", json!({ "text": 42 }))
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidInput(ref m) if m.contains("invalid type")),
            "{err}"
        );
    }
}

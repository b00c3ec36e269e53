//! Text measures shared by the text plugins: words, sentences, syllables and
//! the Flesch reading ease, so every plugin counts a text the same way.
//!
//! ```
//! use reyna_sdk::text::TextMetrics;
//!
//! let m = TextMetrics::measure("The cat sat on the mat. It was happy!");
//! assert_eq!((m.words, m.sentences, m.syllables), (9, 2, 10));
//! assert_eq!(m.flesch_reading_ease(), 108.27);
//! ```

fn is_terminator(c: char) -> bool {
    matches!(c, '.' | '!' | '?')
}

/// The words of `text`: whitespace-separated pieces containing a letter or digit.
pub fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split_whitespace()
        .filter(|w| w.chars().any(char::is_alphanumeric))
}

/// The sentences of `text`, trimmed, each with its closing run of `.`, `!`
/// or `?` (`"Really?!"` stays whole); a trailing fragment with no closing
/// punctuation is a sentence too. Pieces with no letter or digit are skipped.
pub fn sentences(text: &str) -> Vec<&str> {
    fn push<'t>(out: &mut Vec<&'t str>, piece: &'t str) {
        let piece = piece.trim();
        if piece.chars().any(char::is_alphanumeric) {
            out.push(piece);
        }
    }
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if is_terminator(c) && !chars.peek().is_some_and(|&(_, next)| is_terminator(next)) {
            let end = i + c.len_utf8();
            push(&mut out, &text[start..end]);
            start = end;
        }
    }
    push(&mut out, &text[start..]);
    out
}

/// Estimated syllables of one word: groups of vowels (`y` included), less a
/// silent final `e` (make, code; but not table); at least 1 for a word with a
/// letter, 0 for one without.
pub fn syllables(word: &str) -> u64 {
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
    let n = lower.len();
    if n > 2 && lower[n - 1] == 'e' && lower[n - 2] != 'l' && count > 1 {
        count -= 1;
    }
    count.max(1)
}

/// Counts of one text, and the measures derived from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextMetrics {
    /// Words (see [`words`]).
    pub words: u64,
    /// Sentences (see [`sentences`]).
    pub sentences: u64,
    /// Unicode scalar values.
    pub characters: u64,
    /// Estimated syllables of all words (see [`syllables`]).
    pub syllables: u64,
}

/// Rounds to two decimals, as every measure is reported.
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl TextMetrics {
    /// Measures `text`.
    pub fn measure(text: &str) -> Self {
        let (words, syllables) = words(text).fold((0u64, 0u64), |(w, s), word| {
            (w + 1, s + self::syllables(word))
        });
        Self {
            words,
            sentences: sentences(text).len() as u64,
            characters: text.chars().count() as u64,
            syllables,
        }
    }

    /// Words per sentence, to two decimals; 0 for a text with no words.
    pub fn avg_words_per_sentence(&self) -> f64 {
        if self.words == 0 || self.sentences == 0 {
            return 0.0;
        }
        round2(self.words as f64 / self.sentences as f64)
    }

    /// Syllables per word, to two decimals; 0 for a text with no words.
    pub fn avg_syllables_per_word(&self) -> f64 {
        if self.words == 0 {
            return 0.0;
        }
        round2(self.syllables as f64 / self.words as f64)
    }

    /// Flesch reading ease, to two decimals:
    /// `206.835 - 1.015 * words/sentences - 84.6 * syllables/words`; higher is
    /// easier (90-100 very easy, 0-30 very hard); 0 for a text with no words.
    pub fn flesch_reading_ease(&self) -> f64 {
        if self.words == 0 || self.sentences == 0 {
            return 0.0;
        }
        let wps = self.words as f64 / self.sentences as f64;
        let spw = self.syllables as f64 / self.words as f64;
        round2(206.835 - 1.015 * wps - 84.6 * spw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_keep_their_punctuation_and_skip_empty_pieces() {
        assert_eq!(
            sentences("Hi!! Is it?! yes ... and a tail"),
            ["Hi!!", "Is it?!", "yes ...", "and a tail"]
        );
        assert_eq!(sentences(" ... !!! "), Vec::<&str>::new());
        assert_eq!(sentences("Naïve café. Done"), ["Naïve café.", "Done"]);
    }

    #[test]
    fn syllables_follow_vowel_groups_and_a_silent_e() {
        for (word, n) in [
            ("cat", 1),
            ("make", 1),
            ("table", 2),
            ("happy", 2),
            ("reorganization", 5),
            ("42", 0),
            ("the", 1),
        ] {
            assert_eq!(syllables(word), n, "{word}");
        }
    }

    #[test]
    fn measures_counts_and_the_flesch_score() {
        let m = TextMetrics::measure("The cat sat on the mat. It was happy!");
        assert_eq!(
            m,
            TextMetrics {
                words: 9,
                sentences: 2,
                characters: 37,
                syllables: 10
            }
        );
        assert_eq!(m.avg_words_per_sentence(), 4.5);
        assert_eq!(m.avg_syllables_per_word(), 1.11);
        // 206.835 - 1.015 * 4.5 - 84.6 * 10/9
        assert_eq!(m.flesch_reading_ease(), 108.27);
        let none = TextMetrics::measure(" ... !!! ");
        assert_eq!((none.words, none.sentences), (0, 0));
        assert_eq!(none.flesch_reading_ease(), 0.0);
        assert_eq!(none.avg_words_per_sentence(), 0.0);
    }
}

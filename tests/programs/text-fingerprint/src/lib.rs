//! Test program `text-fingerprint`: a MinHash fingerprint of a text, the
//! CPU-heavy processor of the scale-out bench. Each of [`HASHES`] hash
//! functions is applied to every 3-word shingle, so the work grows with the
//! text times the number of functions while input and output stay small.
//! Two texts' fingerprints agree in about the fraction of hash functions
//! equal to their shingle sets' Jaccard similarity.

use std::fmt::Write as _;

use reyna_sdk::{Context, Error, Output, Processor};

/// Hash functions in a fingerprint.
pub const HASHES: usize = 256;

#[derive(serde::Deserialize, Debug)]
pub struct Input {
    content: String,
}

/// splitmix64's finaliser: a cheap, well-mixed 64-bit hash.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// FNV-1a of a word, lowercased.
fn word_hash(word: &str) -> u64 {
    word.chars()
        .flat_map(char::to_lowercase)
        .fold(0xcbf2_9ce4_8422_2325, |h, c| {
            (h ^ u64::from(c)).wrapping_mul(0x0000_0100_0000_01b3)
        })
}

/// The MinHash signature of `text` and its number of shingles.
pub fn fingerprint(text: &str) -> (usize, [u32; HASHES]) {
    let words: Vec<u64> = text.split_whitespace().map(word_hash).collect();
    let mut signature = [u32::MAX; HASHES];
    let mut shingles = 0;
    for w in words.windows(3) {
        let shingle = mix(w[0] ^ mix(w[1] ^ mix(w[2])));
        shingles += 1;
        for (i, slot) in signature.iter_mut().enumerate() {
            let h = (mix(shingle ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)) >> 32) as u32;
            *slot = (*slot).min(h);
        }
    }
    (shingles, signature)
}

#[derive(Debug)]
pub struct TextFingerprint;

impl Processor for TextFingerprint {
    type Input = Input;
    fn process(input: Input, _ctx: &mut Context<'_>) -> Result<Vec<Output>, Error> {
        let (shingles, signature) = fingerprint(&input.content);
        let mut hex = String::with_capacity(HASHES * 8);
        for h in signature {
            let _ = write!(hex, "{h:08x}");
        }
        Ok(vec![Output::json(
            "text-fingerprint-v1",
            &serde_json::json!({ "shingles": shingles, "signature": hex }),
        )?])
    }
}

reyna_sdk::export_processor!(TextFingerprint);

#[cfg(test)]
mod tests {
    use super::*;

    fn agreement(a: &[u32; HASHES], b: &[u32; HASHES]) -> f64 {
        a.iter().zip(b).filter(|(x, y)| x == y).count() as f64 / HASHES as f64
    }

    #[test]
    fn near_duplicates_agree_and_unrelated_texts_do_not() {
        let base: String = (0..400).map(|i| format!("word{} ", i % 97)).collect();
        let edited = base.replacen("word5 ", "changed ", 1);
        let other: String = (0..400).map(|i| format!("other{i} ")).collect();
        let (n, a) = fingerprint(&base);
        assert_eq!(n, 398);
        assert_eq!(fingerprint(&base).1, a, "deterministic");
        assert!(agreement(&a, &fingerprint(&edited).1) > 0.8);
        assert!(agreement(&a, &fingerprint(&other).1) < 0.05);
        assert_eq!(
            fingerprint("one two").0,
            0,
            "fewer than 3 words: no shingle"
        );
    }
}

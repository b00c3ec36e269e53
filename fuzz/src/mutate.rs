//! Deterministic mutations for the stable smoke test. libFuzzer brings its
//! own mutator and coverage feedback; this is the small, dependency-free
//! stand-in that lets `cargo test` run every target over thousands of inputs
//! derived from the seed corpora, identically on every run.

/// Most bytes a mutated input grows to: keeps every smoke input cheap.
pub const MAX_LEN: usize = 4096;

/// A xorshift64 generator: small, fast, and the same sequence everywhere.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    /// A generator seeded with `seed` (zero is replaced: xorshift needs a set bit).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        self.next_u64().to_le_bytes()[0]
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.byte()).collect()
    }
}

/// Bytes that matter to text formats: separators, quotes, digits, wildcards.
const INTERESTING: &[u8] = b"\0\n\r\t \"'#.,=*>-_[]{}0123456789azAZ\\\x7f\xc3\xff";

/// Applies one to four random edits to `input`: bit flips, byte writes,
/// insertions and deletions, duplicated ranges, truncation, and tokens from
/// `dictionary` inserted or written over a range. The result is at most
/// [`MAX_LEN`] bytes.
pub fn mutate<T: AsRef<[u8]>>(rng: &mut XorShift, input: &mut Vec<u8>, dictionary: &[T]) {
    for _ in 0..=rng.below(4) {
        edit(rng, input, dictionary);
    }
    input.truncate(MAX_LEN);
}

fn edit<T: AsRef<[u8]>>(rng: &mut XorShift, input: &mut Vec<u8>, dictionary: &[T]) {
    let len = input.len();
    let at = rng.below(len + 1);
    match rng.below(9) {
        0 if at < len => input[at] ^= 1 << rng.below(8),
        1 if at < len => input[at] = rng.byte(),
        2 if at < len => input[at] = INTERESTING[rng.below(INTERESTING.len())],
        3 => input.insert(at, INTERESTING[rng.below(INTERESTING.len())]),
        4 if at < len => {
            let end = (at + 1 + rng.below(8)).min(len);
            input.drain(at..end);
        }
        5 if at < len => {
            let end = (at + 1 + rng.below(16)).min(len);
            let chunk = input[at..end].to_vec();
            let to = rng.below(input.len() + 1);
            input.splice(to..to, chunk);
        }
        6 => input.truncate(at),
        7 | 8 if !dictionary.is_empty() => {
            let token = dictionary[rng.below(dictionary.len())].as_ref();
            // Half the time insert, half the time write over what is there.
            let end = if rng.below(2) == 0 {
                at
            } else {
                (at + token.len()).min(len)
            };
            input.splice(at..end, token.iter().copied());
        }
        _ => input.insert(at, rng.byte()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_mutations() {
        let run = || {
            let mut rng = XorShift::new(7);
            let mut input = b"name = \"word-stats\"".to_vec();
            for _ in 0..100 {
                mutate(&mut rng, &mut input, &[&b"kind"[..], b"\"effect\""]);
            }
            input
        };
        assert_eq!(run(), run());
        assert_ne!(XorShift::new(1).next_u64(), XorShift::new(2).next_u64());
    }

    #[test]
    fn mutations_stay_bounded() {
        let mut rng = XorShift::new(1);
        let mut input = vec![b'a'; MAX_LEN];
        for _ in 0..1000 {
            mutate(&mut rng, &mut input, &[&[b'x'; 64]]);
            assert!(input.len() <= MAX_LEN);
        }
        let mut empty = Vec::new();
        for _ in 0..100 {
            mutate::<&[u8]>(&mut rng, &mut empty, &[]);
        }
    }
}

//! The fuzz targets on the stable toolchain, as part of `cargo test`: every
//! seed in `corpus/<target>/`, then a fixed number of deterministic mutations
//! of them (a constant-seeded xorshift; the same inputs on every run). This is
//! no substitute for `cargo fuzz` and its coverage feedback; it keeps the
//! targets, their invariants and their seeds working between fuzzing sessions.
//! Each test also checks that its inputs reached past the first refusal, so a
//! corpus that stopped exercising anything would fail here.
//!
//! `REYNA_FUZZ_SMOKE_SCALE=<n>` multiplies the mutation counts and
//! `REYNA_FUZZ_SMOKE_SEED=<n>` changes the sequence, for a longer run on the
//! stable toolchain; the defaults keep `cargo test` at a few seconds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Instant;

use reyna_engine::EngineError;
use reyna_fuzz::mutate::{XorShift, mutate};
use reyna_fuzz::upload::{BASES, Base, UploadTarget};
use reyna_manifest::{Manifest, Subject, SubjectPattern};

/// Mutated inputs per cheap target.
const TEXT_INPUTS: usize = 20_000;
/// Mutated raw byte strings through the full upload path.
const RAW_UPLOADS: usize = 300;
/// Mutated real components through the full upload path.
const MUTANT_UPLOADS: usize = 300;
/// Code-byte mutants, each uploaded to an engine without its base (so it is
/// compiled, not refused as a version conflict).
const COMPILED_MUTANTS: usize = 6;

const SEED: u64 = 0x5eed_f022_7e57_2026;

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|e| panic!("{name}={v:?} is not a number: {e}"))
    })
}

/// `count` times `REYNA_FUZZ_SMOKE_SCALE` (default 1).
fn scaled(count: usize) -> usize {
    count * env_number("REYNA_FUZZ_SMOKE_SCALE").map_or(1, |n| n as usize)
}

/// The PRNG seed for one stream: `REYNA_FUZZ_SMOKE_SEED` (default [`SEED`])
/// mixed with `salt`, so each test draws its own sequence.
fn seed(salt: u64) -> u64 {
    env_number("REYNA_FUZZ_SMOKE_SEED").unwrap_or(SEED) ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The tokens of `dict/<target>.dict`, the libFuzzer dictionary of a target:
/// one `"..."` per line (optionally `name="..."`), escapes `\\`, `\"` and
/// `\xNN`, `#` comments.
fn dictionary(target: &str) -> Vec<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("dict")
        .join(format!("{target}.dict"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut tokens = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let quoted = &line[line.find('"').expect("a quoted token")..];
        let inner = quoted
            .strip_prefix('"')
            .and_then(|q| q.strip_suffix('"'))
            .unwrap_or_else(|| panic!("{}: bad line {line:?}", path.display()));
        let mut token = Vec::new();
        let mut bytes = inner.bytes();
        while let Some(b) = bytes.next() {
            if b != b'\\' {
                token.push(b);
                continue;
            }
            match bytes.next() {
                Some(b'x') => {
                    let hex: Vec<u8> = bytes.by_ref().take(2).collect();
                    let hex = std::str::from_utf8(&hex).unwrap();
                    token.push(u8::from_str_radix(hex, 16).unwrap());
                }
                Some(escaped) => token.push(escaped),
                None => panic!("{}: trailing backslash in {line:?}", path.display()),
            }
        }
        tokens.push(token);
    }
    assert!(!tokens.is_empty(), "{} has no tokens", path.display());
    tokens
}

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    paths.sort();
    let seeds: Vec<Vec<u8>> = paths.iter().map(|p| std::fs::read(p).unwrap()).collect();
    assert!(!seeds.is_empty(), "no seeds in {}", dir.display());
    seeds
}

/// `count` inputs, each a seed mutated once or (a quarter of the time) the
/// previous input mutated further, so some inputs wander far from any seed.
fn mutations(
    seeds: &[Vec<u8>],
    count: usize,
    salt: u64,
    dictionary: Vec<Vec<u8>>,
) -> impl Iterator<Item = Vec<u8>> {
    let mut rng = XorShift::new(seed(salt));
    let mut current = seeds[0].clone();
    (0..count).map(move |_| {
        if rng.below(4) != 0 {
            current = seeds[rng.below(seeds.len())].clone();
        }
        mutate(&mut rng, &mut current, &dictionary);
        current.clone()
    })
}

#[test]
fn manifest_seeds_and_mutations() {
    let started = Instant::now();
    let seeds = corpus("manifest");
    for seed in &seeds {
        assert!(
            Manifest::from_bytes(seed).is_ok(),
            "seed {:?} is not a valid manifest",
            String::from_utf8_lossy(seed)
        );
        reyna_fuzz::manifest(seed);
    }
    let count = scaled(TEXT_INPUTS);
    let mut accepted = 0;
    for input in mutations(&seeds, count, 1, dictionary("manifest")) {
        reyna_fuzz::manifest(&input);
        accepted += usize::from(Manifest::from_bytes(&input).is_ok());
    }
    eprintln!(
        "manifest: {} seeds, {count} mutations ({accepted} accepted and round-tripped) in {:?}",
        seeds.len(),
        started.elapsed()
    );
    assert!(
        accepted >= count / 20,
        "only {accepted} mutated manifests parsed: the round trip was hardly checked"
    );
}

#[test]
fn subject_seeds_and_mutations() {
    let started = Instant::now();
    let seeds = corpus("subject");
    let count = scaled(TEXT_INPUTS);
    let (mut compared, mut matched) = (0, 0);
    let inputs = seeds
        .iter()
        .cloned()
        .chain(mutations(&seeds, count, 2, dictionary("subject")));
    for input in inputs {
        reyna_fuzz::subject(&input);
        let text = String::from_utf8_lossy(&input);
        let (pattern, subject) = text.split_once('\n').unwrap_or((&text, &text));
        if let (Ok(p), Ok(s)) = (SubjectPattern::parse(pattern), Subject::parse(subject)) {
            compared += 1;
            matched += usize::from(p.matches(&s));
        }
    }
    eprintln!(
        "subject: {} seeds, {count} mutations ({compared} pairs compared with the reference, {matched} matching) in {:?}",
        seeds.len(),
        started.elapsed()
    );
    assert!(compared >= count / 10, "only {compared} pairs parsed");
    assert!(
        matched >= compared / 10 && matched <= compared * 9 / 10,
        "{matched} of {compared} pairs matched: too one-sided to test `matches`"
    );
}

/// Whether `input` selects the mutant mode of the upload target.
fn is_mutant(input: &[u8]) -> bool {
    input.first().is_some_and(|&b| b >= 0x80)
}

fn target() -> UploadTarget {
    let bases = BASES
        .iter()
        .map(|name| {
            let bytes = reyna_artifacts::bytes(name).unwrap_or_else(|e| panic!("{name}: {e}"));
            Base::new(*name, bytes)
        })
        .collect();
    UploadTarget::open(bases).unwrap()
}

/// How uploads ended, for the report and the "reached past the header" check.
#[derive(Debug, Default)]
struct Tally {
    accepted: usize,
    not_a_plugin: usize,
    not_loaded: usize,
    refused_otherwise: usize,
}

impl Tally {
    fn add(&mut self, result: &Result<reyna_fuzz::upload::Accepted, EngineError>) {
        match result {
            Ok(_) => self.accepted += 1,
            Err(EngineError::NotAPlugin(_)) => self.not_a_plugin += 1,
            Err(EngineError::PluginLoad { .. }) => self.not_loaded += 1,
            Err(_) => self.refused_otherwise += 1,
        }
    }
}

#[test]
fn upload_seeds_raw_bytes_and_mutants() {
    let started = Instant::now();
    let seeds = corpus("upload");
    let (mutant_seeds, raw_seeds): (Vec<_>, Vec<_>) =
        seeds.iter().cloned().partition(|s| is_mutant(s));
    assert!(!raw_seeds.is_empty() && !mutant_seeds.is_empty());

    // With no base registered, mutants of the code compile (or fail to).
    let mut fresh = target();
    let mut rng = XorShift::new(seed(3));
    let mut compiled = Tally::default();
    let (compiled_count, raw_count, mutant_count) = (
        scaled(COMPILED_MUTANTS),
        scaled(RAW_UPLOADS),
        scaled(MUTANT_UPLOADS),
    );
    for _ in 0..compiled_count {
        let mut script = vec![0x80 | (rng.byte() & 1)];
        for _ in 0..=rng.below(2) {
            script.push(0); // op 0: xor a byte anywhere; most bytes are code
            script.extend(rng.bytes(4));
        }
        let result = fresh.run(&script);
        if result.is_ok() {
            fresh.reset().unwrap();
        }
        compiled.add(&result);
    }
    drop(fresh);
    let compiled_time = started.elapsed();

    let mut target = target();
    let mut tally = Tally::default();
    for seed in &seeds {
        let result = target.run(seed);
        if !is_mutant(seed) {
            assert!(
                result.is_err(),
                "raw seed {:?} was accepted",
                String::from_utf8_lossy(seed)
            );
        }
        tally.add(&result);
    }
    for input in mutations(&raw_seeds, raw_count, 4, dictionary("upload")) {
        // Keep them raw: a leading 0x80+ byte would select the mutant mode.
        if is_mutant(&input) {
            continue;
        }
        let result = target.run(&input);
        assert!(
            result.is_err(),
            "random bytes were accepted as a plugin: {input:?}"
        );
        tally.add(&result);
    }
    let mut rng = XorShift::new(seed(5));
    for _ in 0..mutant_count {
        let mut script = vec![0x80 | rng.byte()];
        let edits = 1 + rng.below(3);
        script.extend(rng.bytes(edits * 5));
        tally.add(&target.run(&script));
    }
    eprintln!(
        "upload: {compiled_count} compiled mutants {compiled:?} in {compiled_time:?}; {} seeds, {raw_count} raw, {mutant_count} mutants {tally:?}; {:?} in all",
        seeds.len(),
        started.elapsed()
    );
    assert!(
        tally.accepted >= 2,
        "the unmodified bases were not both accepted"
    );
    assert!(
        tally.not_a_plugin > 0 && tally.refused_otherwise > 0,
        "mutants did not reach past inspection: {tally:?}"
    );
    assert!(
        compiled.not_loaded > 0,
        "no mutant reached the compiler and failed there: {compiled:?}"
    );
}

/// Inputs through the API target (each a request through the router).
const API_INPUTS: usize = 5_000;

#[test]
fn api_seeds_and_mutations() {
    let started = Instant::now();
    let seeds = corpus("api");
    let mut target = reyna_fuzz::api::ApiTarget::open().unwrap();
    let count = scaled(API_INPUTS);
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut kinds = std::collections::BTreeSet::new();
    let inputs = seeds
        .iter()
        .cloned()
        .chain(mutations(&seeds, count, 6, dictionary("api")));
    for input in inputs {
        if let Some(answer) = target.run(&input) {
            *statuses.entry(answer.status).or_default() += 1;
            kinds.extend(answer.kind);
        }
    }
    eprintln!(
        "api: {} seeds, {count} mutations, statuses {statuses:?}, problem kinds {kinds:?} in {:?}",
        seeds.len(),
        started.elapsed()
    );
    let ok = statuses.range(200..300).map(|(_, n)| n).sum::<usize>();
    assert!(
        ok >= count / 50,
        "only {ok} inputs were accepted: {statuses:?}"
    );
    for kind in [
        "malformed-json",
        "invalid-body",
        "invalid-query",
        "schema-violation",
        "unsupported-content-type",
    ] {
        assert!(
            kinds.contains(kind),
            "no input was refused as {kind}: {kinds:?}"
        );
    }
}

//! Manifest parsing: any bytes in, a manifest or a refusal out, and every
//! accepted manifest survives a round trip through its own TOML.

use reyna_manifest::{Manifest, ManifestError};

/// Feeds `data` to [`Manifest::from_bytes`] and, when it is UTF-8, to
/// [`Manifest::parse`], and checks:
///
/// - both entry points agree (non-UTF-8 is [`ManifestError::NotUtf8`]);
/// - whatever parses also validates;
/// - `Manifest::parse(&m.to_toml())` gives back an equal manifest, and
///   rendering that again gives the same text (`to_toml` is a fixed point).
pub fn manifest(data: &[u8]) {
    let from_bytes = Manifest::from_bytes(data);
    let Ok(text) = std::str::from_utf8(data) else {
        assert_eq!(
            from_bytes,
            Err(ManifestError::NotUtf8),
            "non-UTF-8 bytes must be refused as such"
        );
        return;
    };
    let parsed = Manifest::parse(text);
    assert_eq!(
        from_bytes, parsed,
        "from_bytes and parse disagree on UTF-8 input {text:?}"
    );
    if let Ok(m) = parsed {
        round_trip(&m, text, Manifest::to_toml);
    }
}

/// The round-trip invariant for one accepted manifest, rendered by `render`
/// (`Manifest::to_toml`; tests pass a broken one to see the check fire).
fn round_trip(m: &Manifest, source: &str, render: fn(&Manifest) -> String) {
    if let Err(e) = m.validate() {
        panic!("parse accepted a manifest that does not validate ({e}): {source:?}");
    }
    let rendered = render(m);
    let again = match Manifest::parse(&rendered) {
        Ok(again) => again,
        Err(e) => panic!(
            "the rendering of an accepted manifest is refused ({e})\nsource: {source:?}\nrendered: {rendered:?}"
        ),
    };
    assert_eq!(
        &again, m,
        "round trip changed the manifest\nsource: {source:?}\nrendered: {rendered:?}"
    );
    assert_eq!(
        render(&again),
        rendered,
        "to_toml is not a fixed point\nsource: {source:?}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORD_STATS: &str = include_str!("../corpus/manifest/word-stats.toml");

    #[test]
    fn the_seeds_round_trip() {
        for seed in [WORD_STATS, include_str!("../corpus/manifest/llm.toml")] {
            assert!(Manifest::parse(seed).is_ok(), "{seed}");
            manifest(seed.as_bytes());
        }
    }

    #[test]
    fn refusals_are_not_failures() {
        manifest(b"");
        manifest(b"\xff\xfe");
        manifest(b"name = ");
        manifest(WORD_STATS.replace("word-stats", "Word_Stats").as_bytes());
    }

    #[test]
    #[should_panic(expected = "round trip changed the manifest")]
    fn a_rendering_that_drops_a_field_is_caught() {
        let m = Manifest::parse(WORD_STATS).unwrap();
        round_trip(&m, WORD_STATS, |m| {
            let mut lossy = m.clone();
            lossy.description = None;
            lossy.to_toml()
        });
    }

    #[test]
    #[should_panic(expected = "rendering of an accepted manifest is refused")]
    fn a_rendering_that_does_not_parse_is_caught() {
        let m = Manifest::parse(WORD_STATS).unwrap();
        round_trip(&m, WORD_STATS, |_| String::new());
    }
}

//! Rewriting the manifest embedded in a built component. Plugin identity is
//! the manifest's `name@version`, so this makes many distinct plugins out of
//! one built program (benches register hundreds; crash tests upload a new
//! version each time).

use std::fmt;

/// Why a component's manifest could not be rewritten.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManifestEditError {
    /// The bytes end inside the preamble, a section or a length.
    Truncated,
    /// A LEB128 length does not fit in a `usize`.
    LengthOverflow,
    /// The `reyna-manifest` section is not UTF-8.
    NotUtf8,
    /// No top-level core module carries a `reyna-manifest` section.
    NoManifest,
}

impl fmt::Display for ManifestEditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let section = reyna_manifest::MANIFEST_SECTION;
        match self {
            Self::Truncated => f.write_str("the component is truncated"),
            Self::LengthOverflow => f.write_str("a section length overflows"),
            Self::NotUtf8 => write!(f, "the `{section}` section is not utf-8"),
            Self::NoManifest => write!(f, "no top-level core module has a `{section}` section"),
        }
    }
}

impl std::error::Error for ManifestEditError {}

/// Reads an unsigned LEB128 number at `pos`, moving `pos` past it.
fn read_leb(bytes: &[u8], pos: &mut usize) -> Result<usize, ManifestEditError> {
    let mut value = 0usize;
    let mut shift = 0u32;
    loop {
        let byte = *bytes.get(*pos).ok_or(ManifestEditError::Truncated)?;
        *pos += 1;
        let bits = usize::from(byte & 0x7f);
        if shift >= usize::BITS || (bits << shift) >> shift != bits {
            return Err(ManifestEditError::LengthOverflow);
        }
        value |= bits << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
        shift += 7;
    }
}

pub(crate) fn write_leb(out: &mut Vec<u8>, mut value: usize) {
    loop {
        // The mask keeps the value below 0x80.
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Replaces a section's body (given its id), or keeps it (`None`).
type EditSection<'a> = dyn FnMut(u8, &[u8]) -> Result<Option<Vec<u8>>, ManifestEditError> + 'a;

/// Re-emits a module or component section by section (8-byte preamble,
/// then `id, size, body`), letting `edit` replace bodies; sizes follow.
fn map_sections(bytes: &[u8], edit: &mut EditSection<'_>) -> Result<Vec<u8>, ManifestEditError> {
    let mut out = bytes.get(..8).ok_or(ManifestEditError::Truncated)?.to_vec();
    let mut pos = 8;
    while let Some(&id) = bytes.get(pos) {
        pos += 1;
        let size = read_leb(bytes, &mut pos)?;
        let end = pos.checked_add(size).ok_or(ManifestEditError::Truncated)?;
        let body = bytes.get(pos..end).ok_or(ManifestEditError::Truncated)?;
        pos = end;
        let body = edit(id, body)?.unwrap_or_else(|| body.to_vec());
        out.push(id);
        write_leb(&mut out, body.len());
        out.extend_from_slice(&body);
    }
    Ok(out)
}

/// The component with its embedded manifest (the `reyna-manifest` custom
/// section of a core module at the top level, where the SDK puts it)
/// rewritten by `edit`, which gets the manifest's TOML and returns the new
/// text. Everything else is kept byte for byte.
///
/// ```no_run
/// let word_count = reyna_artifacts::bytes("word-count")?;
/// let renamed = reyna_artifacts::with_manifest(&word_count, |toml| {
///     toml.replace("name = \"word-count\"", "name = \"tally\"")
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn with_manifest(
    component: &[u8],
    edit: impl Fn(&str) -> String,
) -> Result<Vec<u8>, ManifestEditError> {
    const CORE_MODULE: u8 = 1;
    const CUSTOM: u8 = 0;
    let section = reyna_manifest::MANIFEST_SECTION.as_bytes();
    let mut found = false;
    let out = map_sections(component, &mut |id, module| {
        if id != CORE_MODULE {
            return Ok(None);
        }
        map_sections(module, &mut |id, body| {
            if id != CUSTOM {
                return Ok(None);
            }
            let mut pos = 0;
            let len = read_leb(body, &mut pos)?;
            let name_end = pos.checked_add(len).ok_or(ManifestEditError::Truncated)?;
            let name = body
                .get(pos..name_end)
                .ok_or(ManifestEditError::Truncated)?;
            if name != section {
                return Ok(None);
            }
            let text = body.get(name_end..).unwrap_or_default();
            let text = std::str::from_utf8(text).map_err(|_| ManifestEditError::NotUtf8)?;
            found = true;
            let mut new = Vec::new();
            write_leb(&mut new, len);
            new.extend_from_slice(section);
            new.extend_from_slice(edit(text).as_bytes());
            Ok(Some(new))
        })
        .map(Some)
    })?;
    if found {
        Ok(out)
    } else {
        Err(ManifestEditError::NoManifest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component-shaped byte string: preamble, then one core module with
    /// a `reyna-manifest` custom section and one other section.
    fn component(manifest: &str) -> Vec<u8> {
        let mut custom = Vec::new();
        write_leb(&mut custom, reyna_manifest::MANIFEST_SECTION.len());
        custom.extend_from_slice(reyna_manifest::MANIFEST_SECTION.as_bytes());
        custom.extend_from_slice(manifest.as_bytes());
        let mut module = b"\0asm\x01\0\0\0".to_vec();
        module.push(0);
        write_leb(&mut module, custom.len());
        module.extend_from_slice(&custom);
        module.extend_from_slice(&[3, 1, 0]);
        let mut out = b"\0asm\x0d\0\x01\0".to_vec();
        out.push(1);
        write_leb(&mut out, module.len());
        out.extend_from_slice(&module);
        out
    }

    #[test]
    fn the_manifest_is_replaced_and_sizes_follow() {
        let long = format!("name = \"{}\"", "x".repeat(200));
        let edited = with_manifest(&component("name = \"a\""), |_| long.clone()).unwrap();
        assert_eq!(edited, component(&long));
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let whole = component("name = \"a\"");
        for cut in 0..whole.len() {
            assert!(
                with_manifest(&whole[..cut], str::to_owned).is_err(),
                "cut at {cut}"
            );
        }
        let plain = b"\0asm\x0d\0\x01\0".to_vec();
        assert_eq!(
            with_manifest(&plain, str::to_owned),
            Err(ManifestEditError::NoManifest)
        );
    }
}

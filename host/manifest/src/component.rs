//! Reading a plugin's declaration out of its component bytes, without running
//! or compiling it: the embedded manifest section and the component's world
//! (its top-level imports and exports).

use wasmparser::{ComponentExternalKind, ComponentTypeRef, Encoding, Parser, Payload};

use crate::{Kind, Manifest, ManifestError};

/// Name of the custom section that carries the manifest (TOML, UTF-8). The SDK's
/// export macros write it into the core module; it survives the wasm32-wasip2
/// component build because the component embeds that module unchanged.
pub const MANIFEST_SECTION: &str = "reyna-manifest";

/// Largest manifest section accepted.
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024;

/// Why bytes are not a usable Reyna plugin. Each message is one line a person
/// can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InspectError {
    /// The bytes do not start with the wasm magic number.
    #[error("not a WebAssembly file (missing the `\\0asm` header)")]
    NotWasm,
    /// A core module, not a component.
    #[error(
        "this is a core WebAssembly module, not a component: build the plugin for the wasm32-wasip2 target with reyna-sdk"
    )]
    CoreModule,
    /// The binary is truncated or malformed.
    #[error("malformed component: {0}")]
    Malformed(String),
    /// A component without the manifest section.
    #[error(
        "component has no `reyna-manifest` section: it was not built with reyna-sdk's export macro"
    )]
    NoManifest,
    /// More than one manifest section.
    #[error("component has more than one `reyna-manifest` section")]
    DuplicateManifest,
    /// The manifest section is larger than [`MAX_MANIFEST_BYTES`].
    #[error("manifest section is {0} bytes, more than the 64 KiB allowed")]
    ManifestTooLarge(usize),
    /// The manifest is present but invalid.
    #[error("{0}")]
    Manifest(#[from] ManifestError),
    /// The component does not target the world its manifest's `kind` names.
    #[error("component does not target the {kind} world ({world}): {reason}")]
    WorldMismatch {
        /// The kind the manifest declares.
        kind: Kind,
        /// That kind's world.
        world: &'static str,
        /// What is missing or extra.
        reason: String,
    },
}

/// What a component declares, read without running it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentInfo {
    /// The embedded, validated manifest.
    pub manifest: Manifest,
    /// Names of the component's top-level imports, e.g. `reyna:plugin/host@0.1.0`.
    pub imports: Vec<String>,
    /// Names of the component's top-level exports, e.g. `process`.
    pub exports: Vec<String>,
}

/// Interfaces any plugin may import. The host links every WASI p2 interface
/// a std guest needs, with a context that grants nothing.
const COMMON_IMPORT_PREFIXES: &[&str] = &[
    "reyna:plugin/types@0.1.0",
    "reyna:plugin/host@0.1.0",
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:io/",
    "wasi:random/",
    "wasi:sockets/",
];

/// Reads the manifest and world of a component and checks that the world
/// matches the manifest's kind.
pub fn inspect(bytes: &[u8]) -> Result<ComponentInfo, InspectError> {
    let raw = read_raw(bytes)?;
    let section = raw.manifest.ok_or(InspectError::NoManifest)?;
    if section.len() > MAX_MANIFEST_BYTES {
        return Err(InspectError::ManifestTooLarge(section.len()));
    }
    let manifest = Manifest::from_bytes(section)?;
    check_world(manifest.kind, &raw.imports, &raw.exports)?;
    Ok(ComponentInfo {
        manifest,
        imports: raw.imports,
        exports: raw.exports,
    })
}

/// Checks that a component's imports and exports fit the world of `kind`.
pub fn check_world(kind: Kind, imports: &[String], exports: &[String]) -> Result<(), InspectError> {
    let mismatch = |reason: String| InspectError::WorldMismatch {
        kind,
        world: kind.world(),
        reason,
    };
    let (required, forbidden_exports, extra_imports): (&[&str], &[&str], &[&str]) = match kind {
        Kind::Processor => (
            &["process"],
            &["perform", "deliver"],
            &["reyna:plugin/effects@0.1.0"],
        ),
        Kind::Effect => (
            &["perform", "deliver"],
            &["process"],
            &["wasi:http/", "reyna:plugin/usage@0.1.0"],
        ),
    };
    for name in required {
        if !exports.iter().any(|e| e == name) {
            return Err(mismatch(format!("it does not export `{name}`")));
        }
    }
    for name in forbidden_exports {
        if exports.iter().any(|e| e == name) {
            return Err(mismatch(format!(
                "it exports `{name}`, which belongs to the other plugin kind"
            )));
        }
    }
    for import in imports {
        let allowed = COMMON_IMPORT_PREFIXES
            .iter()
            .chain(extra_imports)
            .any(|p| import.starts_with(p));
        if !allowed {
            return Err(mismatch(format!(
                "it imports `{import}`, which this world does not provide"
            )));
        }
    }
    Ok(())
}

struct RawInfo<'a> {
    manifest: Option<&'a [u8]>,
    imports: Vec<String>,
    exports: Vec<String>,
}

fn read_raw(bytes: &[u8]) -> Result<RawInfo<'_>, InspectError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(InspectError::NotWasm);
    }
    let mut info = RawInfo {
        manifest: None,
        imports: Vec::new(),
        exports: Vec::new(),
    };
    // `parse_all` walks nested modules and components in order; depth 1 is the
    // outer component, whose imports and exports are the plugin's world.
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| InspectError::Malformed(e.message().to_owned()))?;
        match payload {
            Payload::Version { encoding, .. } => {
                if depth == 0 && encoding == Encoding::Module {
                    return Err(InspectError::CoreModule);
                }
                depth += 1;
            }
            Payload::End(_) => depth = depth.saturating_sub(1),
            Payload::ComponentImportSection(reader) if depth == 1 => {
                for import in reader {
                    let import =
                        import.map_err(|e| InspectError::Malformed(e.message().to_owned()))?;
                    // Type imports come from a world's `use`; they carry no capability.
                    if !matches!(import.ty, ComponentTypeRef::Type(_)) {
                        info.imports.push(import.name.name.to_owned());
                    }
                }
            }
            Payload::ComponentExportSection(reader) if depth == 1 => {
                for export in reader {
                    let export =
                        export.map_err(|e| InspectError::Malformed(e.message().to_owned()))?;
                    if export.kind != ComponentExternalKind::Type {
                        info.exports.push(export.name.name.to_owned());
                    }
                }
            }
            Payload::CustomSection(reader) if reader.name() == MANIFEST_SECTION => {
                if info.manifest.is_some() {
                    return Err(InspectError::DuplicateManifest);
                }
                info.manifest = Some(reader.data());
            }
            _ => {}
        }
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_bytes_are_not_wasm() {
        assert_eq!(
            inspect(b"hello, this is not wasm").unwrap_err(),
            InspectError::NotWasm
        );
        assert_eq!(inspect(b"").unwrap_err(), InspectError::NotWasm);
    }

    #[test]
    fn a_core_module_is_named_as_such() {
        // The smallest valid core module: magic + version 1.
        let module = b"\0asm\x01\0\0\0";
        assert_eq!(inspect(module).unwrap_err(), InspectError::CoreModule);
    }

    #[test]
    fn an_empty_component_has_no_manifest() {
        // Magic + component layer version.
        let component = b"\0asm\x0d\0\x01\0";
        assert_eq!(inspect(component).unwrap_err(), InspectError::NoManifest);
    }

    #[test]
    fn truncated_bytes_are_malformed() {
        let truncated = b"\0asm\x0d\0\x01\0\x00\x05ab";
        assert!(matches!(
            inspect(truncated).unwrap_err(),
            InspectError::Malformed(_)
        ));
    }

    #[test]
    fn world_checks_name_what_is_wrong() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(
            check_world(
                Kind::Processor,
                &s(&["reyna:plugin/host@0.1.0", "wasi:io/streams@0.2.6"]),
                &s(&["process"])
            )
            .is_ok()
        );
        let e = check_world(Kind::Processor, &s(&[]), &s(&["perform", "deliver"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "component does not target the processor world (reyna:plugin/processor@0.1.0): it does not export `process`"
        );
        let e = check_world(
            Kind::Processor,
            &s(&["wasi:http/outgoing-handler@0.2.12"]),
            &s(&["process"]),
        )
        .unwrap_err();
        assert!(e.to_string().ends_with(
            "it imports `wasi:http/outgoing-handler@0.2.12`, which this world does not provide"
        ));
        assert!(
            check_world(
                Kind::Effect,
                &s(&[
                    "wasi:http/outgoing-handler@0.2.12",
                    "reyna:plugin/usage@0.1.0"
                ]),
                &s(&["perform", "deliver"])
            )
            .is_ok()
        );
        // Usage units are the effect world's: a processor has none to report.
        let e = check_world(
            Kind::Processor,
            &s(&["reyna:plugin/usage@0.1.0"]),
            &s(&["process"]),
        )
        .unwrap_err();
        assert!(
            e.to_string().ends_with(
                "it imports `reyna:plugin/usage@0.1.0`, which this world does not provide"
            )
        );
    }
}

//! The plugin upload path: [`Engine::upload_plugin`] on a real engine (redb
//! store, wasmtime runtime, bundled schemas) in a temporary directory.
//!
//! Two kinds of input reach it ([`UploadTarget::run`]):
//!
//! - **raw** (first byte below `0x80`, which includes every wasm file and
//!   text): the bytes themselves are uploaded;
//! - **mutant** (first byte `0x80` or above): the rest of the input is a
//!   script of edits ([`Base::mutant`]) applied to a real component from
//!   [`BASES`], since random bytes rarely get past the wasm header.
//!
//! Either way the upload must not panic, and:
//!
//! - a refusal is a client error, stores nothing (plugin records, store
//!   counts, audit log, component bytes and the engine's listing are
//!   unchanged), and when [`reyna_manifest::inspect`] refuses the bytes it is
//!   that same refusal;
//! - an acceptance is of bytes `inspect` accepts, with the manifest it read;
//!   the plugin is stored, enabled and listed under the bytes' digest, and
//!   uploading the same bytes again is a no-op.
//!
//! Compiling is the expensive step; it runs only for bytes `inspect` accepts
//! whose `name@version` is new. Once a plugin is registered, mutants of it
//! that keep its manifest are version conflicts, refused before compiling.
//! So the engine is replaced by a fresh one [`RECYCLE_INPUTS`] inputs after
//! it first accepted a plugin: inputs meet a registry holding the plugin
//! (conflicts, identical re-uploads) and an empty one (compilation) in
//! turn, and the temporary directory stays small.
//!
//! The engine's state carries over from input to input, as a host's does.
//! A failure that needs that state names the plugin and what was stored, but
//! its input alone may not reproduce it on a fresh engine.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use reyna_engine::reyna_store::{Counts, PluginRecord};
use reyna_engine::{Digest, Engine, EngineConfig, EngineError};
use reyna_manifest::MANIFEST_SECTION;
use wasmparser::{Parser, Payload};

/// The components the mutant mode starts from, by manifest name: a processor
/// and an effect, so both worlds' checks are reached.
pub const BASES: &[&str] = &["word-count", "echo-sink"];

/// Inputs, counted from the first acceptance, after which the engine is
/// replaced by a fresh one.
pub const RECYCLE_INPUTS: usize = 64;

/// The actor recorded in the audit log for fuzz uploads.
const ACTOR: &str = "fuzz";

/// Most edits one mutant script applies.
const MAX_EDITS: usize = 8;

/// Why the upload target could not be set up (never an invariant failure).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SetupError {
    /// The engine's temporary directory.
    #[error("cannot create a temporary directory: {0}")]
    TempDir(#[source] std::io::Error),
    /// The tokio runtime.
    #[error("cannot start a tokio runtime: {0}")]
    Tokio(#[source] std::io::Error),
    /// Opening the engine or registering the bundled schemas.
    #[error("cannot open the engine: {0}")]
    Engine(#[from] EngineError),
    /// A base component file.
    #[error(
        "cannot read base component {path}: {source} (build the components with `cargo build -p reyna-artifacts`, or point REYNA_FUZZ_COMPONENTS at a directory of them)"
    )]
    Base {
        /// The file.
        path: PathBuf,
        /// The read error.
        #[source]
        source: std::io::Error,
    },
}

/// What an accepted upload registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// `name@version`.
    pub plugin: String,
    /// Whether it was new (false: the same bytes were already registered).
    pub created: bool,
}

/// A real component to mutate, with the byte ranges worth aiming at.
#[derive(Debug, Clone)]
pub struct Base {
    name: String,
    bytes: Vec<u8>,
    /// Where each section's header starts, at every nesting depth.
    sections: Vec<usize>,
    /// The contents of the `reyna-manifest` custom section.
    manifest: Option<Range<usize>>,
}

/// Length of `n` as an unsigned LEB128.
fn leb128_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

impl Base {
    /// A base from its manifest name and component bytes.
    pub fn new(name: impl Into<String>, bytes: Vec<u8>) -> Self {
        let mut sections = Vec::new();
        let mut manifest = None;
        for payload in Parser::new(0).parse_all(&bytes) {
            let Ok(payload) = payload else { break };
            if let Some((_, range)) = payload.as_section() {
                // The header is the id byte and the size before the contents
                // (custom sections: before the name, which is in the range).
                sections.push(range.start.saturating_sub(1 + leb128_len(range.len())));
            }
            if let Payload::CustomSection(reader) = &payload
                && reader.name() == MANIFEST_SECTION
            {
                let start = reader.data_offset();
                manifest = Some(start..start + reader.data().len());
            }
        }
        Self {
            name: name.into(),
            bytes,
            sections,
            manifest,
        }
    }

    /// The manifest name it was built from.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The unmodified component.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The component with the edits of `script` applied. The script is read
    /// five bytes at a time, `[op, p0, p1, p2, value]`, for at most
    /// [`MAX_EDITS`] edits; `p` is a 24-bit position taken modulo what the
    /// edit aims at:
    ///
    /// | `op % 8` | edit |
    /// |---|---|
    /// | 0 | xor the byte at `p` with `value \| 1` |
    /// | 1 | xor a byte of a section header (`p` picks section and byte) |
    /// | 2 | set a byte of a section header to `value` |
    /// | 3 | set a byte of the manifest text to `value` (same length) |
    /// | 4 | insert `value` at `p` |
    /// | 5 | delete `value % 16 + 1` bytes at `p` |
    /// | 6 | truncate at `p` |
    /// | 7 | set the byte at `p` to `value` |
    ///
    /// An empty script gives the component unchanged.
    pub fn mutant(&self, script: &[u8]) -> Vec<u8> {
        let mut bytes = self.bytes.clone();
        for edit in script.chunks_exact(5).take(MAX_EDITS) {
            let &[op, p0, p1, p2, value] = edit else {
                continue;
            };
            let p = usize::from(p0) | (usize::from(p1) << 8) | (usize::from(p2) << 16);
            let len = bytes.len();
            if len == 0 {
                bytes.push(value);
                continue;
            }
            let in_header = |p: usize| {
                let start = self.sections[p % self.sections.len()];
                start + (p >> 12) % 6
            };
            match op % 8 {
                0 => bytes[p % len] ^= value | 1,
                1 | 2 if !self.sections.is_empty() => {
                    let at = in_header(p);
                    if at < len {
                        if op % 8 == 1 {
                            bytes[at] ^= value | 1;
                        } else {
                            bytes[at] = value;
                        }
                    }
                }
                3 => match &self.manifest {
                    Some(m) if !m.is_empty() && m.end <= len => {
                        bytes[m.start + p % m.len()] = value;
                    }
                    _ => bytes[p % len] = value,
                },
                4 => bytes.insert(p % (len + 1), value),
                5 => {
                    let at = p % len;
                    let end = (at + usize::from(value % 16) + 1).min(len);
                    bytes.drain(at..end);
                }
                6 => bytes.truncate(p % len),
                _ => bytes[p % len] = value,
            }
        }
        bytes
    }
}

/// Reads the [`BASES`] from `dir` (`<name>.wasm` each).
pub fn load_bases(dir: &Path) -> Result<Vec<Base>, SetupError> {
    BASES
        .iter()
        .map(|name| {
            let path = dir.join(format!("{name}.wasm"));
            std::fs::read(&path)
                .map(|bytes| Base::new(*name, bytes))
                .map_err(|source| SetupError::Base { path, source })
        })
        .collect()
}

/// Where the fuzz binary finds the base components: `REYNA_FUZZ_COMPONENTS`,
/// else `target/plugins/` of this repository, where `reyna-artifacts` puts them.
pub fn components_dir() -> PathBuf {
    std::env::var_os("REYNA_FUZZ_COMPONENTS").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/plugins"),
        PathBuf::from,
    )
}

/// An engine in its own temporary directory (removed on drop).
#[derive(Debug)]
struct Instance {
    // Dropped before `dir`: the store and runtime close before their files go.
    engine: Engine,
    /// Inputs run since this engine first accepted a plugin.
    since_accepted: Option<usize>,
    dir: tempfile::TempDir,
}

impl Instance {
    fn open(rt: &tokio::runtime::Runtime) -> Result<Self, SetupError> {
        let dir = tempfile::Builder::new()
            .prefix("reyna-fuzz-upload-")
            .tempdir()
            .map_err(SetupError::TempDir)?;
        let mut config = EngineConfig::new(dir.path());
        // Nothing is ever instantiated: a small pool keeps the reservation small.
        config.runtime.max_instances = 4;
        config.workers = 1;
        let engine = rt.block_on(async {
            let engine = Engine::open(config).await?;
            engine.register_bundled_schemas().await?;
            Ok::<_, EngineError>(engine)
        })?;
        Ok(Self {
            engine,
            since_accepted: None,
            dir,
        })
    }
}

/// What the store and engine hold, for "a refusal stores nothing".
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    records: Vec<PluginRecord>,
    listed: Vec<(String, String, bool, Digest)>,
    counts: Counts,
    audit: usize,
    component: bool,
}

impl Snapshot {
    fn take(engine: &Engine, digest: &Digest) -> Self {
        let store = engine.store();
        let mut records = store.list_plugins().expect("store: list plugins");
        records.sort_by(|a, b| (&a.name, &a.version).cmp(&(&b.name, &b.version)));
        let mut listed: Vec<_> = engine
            .list_plugins(None)
            .into_iter()
            .map(|p| (p.name, p.version, p.enabled, p.digest))
            .collect();
        listed.sort();
        Self {
            records,
            listed,
            counts: store.counts().expect("store: counts"),
            audit: store
                .list_audit(0, usize::MAX, None)
                .expect("store: audit")
                .len(),
            component: store
                .get_component(digest)
                .expect("store: get component")
                .is_some(),
        }
    }
}

/// The upload target: a current-thread tokio runtime, an engine in a
/// temporary directory, and the base components for mutants.
#[derive(Debug)]
pub struct UploadTarget {
    instance: Instance,
    bases: Vec<Base>,
    // Last: the engine goes before the runtime its tasks ran on.
    rt: tokio::runtime::Runtime,
}

impl UploadTarget {
    /// Opens an engine with the bundled schemas in a new temporary directory.
    pub fn open(bases: Vec<Base>) -> Result<Self, SetupError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(SetupError::Tokio)?;
        let instance = Instance::open(&rt)?;
        Ok(Self {
            instance,
            bases,
            rt,
        })
    }

    /// The engine's data directory.
    pub fn data_dir(&self) -> &Path {
        self.instance.dir.path()
    }

    /// The engine currently in use.
    pub fn engine(&self) -> &Engine {
        &self.instance.engine
    }

    /// Replaces the engine by a fresh one (no plugins) in a new directory.
    pub fn reset(&mut self) -> Result<(), SetupError> {
        self.instance = Instance::open(&self.rt)?;
        Ok(())
    }

    /// Runs one fuzz input: a mutant of a base when its first byte is `0x80`
    /// or above (and there are bases), else the raw bytes.
    pub fn run(&mut self, data: &[u8]) -> Result<Accepted, EngineError> {
        let result = match data.split_first() {
            Some((&first, script)) if first >= 0x80 && !self.bases.is_empty() => {
                let base = &self.bases[usize::from(first & 0x7f) % self.bases.len()];
                let bytes = base.mutant(script);
                self.upload(bytes)
            }
            _ => self.upload(data.to_vec()),
        };
        let since = &mut self.instance.since_accepted;
        *since = match (*since, &result) {
            (None, Ok(_)) => Some(0),
            (since, _) => since.map(|n| n + 1),
        };
        if since.is_some_and(|n| n >= RECYCLE_INPUTS) {
            self.reset()
                .unwrap_or_else(|e| panic!("reopen the engine in a fresh directory: {e}"));
        }
        result
    }

    /// Uploads `bytes` and checks the invariants in the module docs.
    pub fn upload(&mut self, bytes: Vec<u8>) -> Result<Accepted, EngineError> {
        let digest = Digest::of(&bytes);
        let inspected = reyna_manifest::inspect(&bytes);
        let engine = self.instance.engine.clone();
        let before = Snapshot::take(&engine, &digest);
        let result = self.rt.block_on(engine.upload_plugin(
            bytes.clone(),
            None,
            reyna_engine::InstallPolicy::All,
            ACTOR,
        ));
        let (view, created) = match result {
            Err(err) => {
                assert!(
                    err.is_client_error(),
                    "upload failed on the server side: {err} ({err:?})"
                );
                if let Err(refused) = &inspected {
                    assert!(
                        matches!(&err, EngineError::NotAPlugin(e) if e == refused),
                        "inspect refused with `{refused}` but upload_plugin with `{err}`"
                    );
                }
                let after = Snapshot::take(&engine, &digest);
                assert_eq!(
                    after, before,
                    "the refused upload ({err}) changed the store"
                );
                return Err(err);
            }
            Ok(accepted) => accepted,
        };
        let info = match inspected {
            Ok(info) => info,
            Err(e) => panic!("upload_plugin accepted bytes that inspect refuses ({e})"),
        };
        let plugin = info.manifest.id();
        assert_eq!(view.manifest, info.manifest, "{plugin}: listed manifest");
        assert_eq!(view.digest, digest, "{plugin}: digest");
        assert_eq!(
            created, !before.component,
            "{plugin}: `created` must say whether the bytes were new"
        );
        // A new upload is the live version; identical bytes again change
        // nothing, not even a version a newer one has disabled.
        assert!(
            view.enabled || !created,
            "{plugin}: a new upload is enabled"
        );
        let store = engine.store();
        let record = store
            .get_plugin(&view.name, &view.version)
            .expect("store: get plugin");
        assert!(
            record.is_some_and(|r| r.digest == view.digest && r.enabled == view.enabled),
            "{plugin}: not stored, or stored with other bytes or another state"
        );
        assert_eq!(
            store.get_component(&digest).expect("store: get component"),
            Some(bytes.clone()),
            "{plugin}: stored component bytes differ from the upload"
        );
        // Accepted consistently: the same bytes again are a no-op.
        let settled = Snapshot::take(&engine, &digest);
        match self.rt.block_on(engine.upload_plugin(
            bytes,
            None,
            reyna_engine::InstallPolicy::All,
            ACTOR,
        )) {
            Ok((again, false)) => assert_eq!(again.digest, view.digest, "{plugin}: again"),
            Ok((_, true)) => panic!("{plugin}: identical bytes registered twice"),
            Err(e) => panic!("{plugin}: accepted once, refused the second time: {e}"),
        }
        assert_eq!(
            Snapshot::take(&engine, &digest),
            settled,
            "{plugin}: uploading identical bytes again changed the store"
        );
        Ok(Accepted { plugin, created })
    }
}

static GLOBAL: OnceLock<Mutex<UploadTarget>> = OnceLock::new();

/// The fuzz target: runs `data` through [`UploadTarget::run`] on one engine
/// per process, opened on first use with the bases from [`components_dir`].
///
/// libFuzzer exits without running destructors, so that engine's directory
/// (`$TMPDIR/reyna-fuzz-upload-*`) outlives the process; tests use their own
/// [`UploadTarget`], which removes it.
pub fn upload(data: &[u8]) -> Result<Accepted, EngineError> {
    let target = GLOBAL.get_or_init(|| {
        let target = load_bases(&components_dir()).and_then(UploadTarget::open);
        match target {
            Ok(target) => Mutex::new(target),
            Err(e) => panic!("upload fuzz target set-up: {e}"),
        }
    });
    target
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .run(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> UploadTarget {
        let bases = BASES
            .iter()
            .map(|name| Base::new(*name, reyna_artifacts::bytes(name).unwrap()))
            .collect();
        UploadTarget::open(bases).unwrap()
    }

    #[test]
    fn not_wasm_is_refused_and_stores_nothing() {
        let mut target = target();
        let err = target.run(b"not wasm").unwrap_err();
        assert!(
            matches!(
                err,
                EngineError::NotAPlugin(reyna_manifest::InspectError::NotWasm)
            ),
            "{err}"
        );
        for raw in [&b""[..], b"\0asm\x0d\0\x01\0", b"\0asm\x01\0\0\0"] {
            assert!(target.run(raw).is_err());
        }
        assert!(target.engine().list_plugins(None).is_empty());
    }

    #[test]
    fn an_empty_script_uploads_the_base_and_a_second_time_is_a_no_op() {
        let mut target = target();
        let first = target.run(&[0x80]).unwrap();
        assert_eq!(
            first,
            Accepted {
                plugin: "word-count@0.1.0".into(),
                created: true
            }
        );
        assert!(!target.run(&[0x80]).unwrap().created);
        // A changed byte of the manifest text is a conflict or a refusal.
        assert!(target.run(&[0x80, 3, 0, 0, 0, b'X']).is_err());
        let effect = target.run(&[0x81]).unwrap();
        assert_eq!(effect.plugin, "echo-sink@0.1.0");
        assert_eq!(target.engine().list_plugins(None).len(), 2);
    }

    #[test]
    fn a_version_disabled_by_a_newer_one_is_still_a_no_op_upload() {
        let mut target = target();
        let base = &target.bases[0];
        let manifest = &base.bytes()[base.manifest.clone().unwrap()];
        let at = manifest.windows(5).position(|w| w == b"0.1.0").unwrap() + 4;
        let bump = [0x80, 3, at as u8, (at >> 8) as u8, 0, b'9'];
        assert!(target.run(&[0x80]).unwrap().created);
        let newer = target.run(&bump).unwrap();
        assert_eq!(newer.plugin, "word-count@0.1.9");
        let again = target.run(&[0x80]).unwrap();
        assert!(!again.created);
        let old = target.engine().plugin("word-count", "0.1.0", None).unwrap();
        assert!(!old.enabled, "the newer version stays the live one");
    }

    #[test]
    fn mutants_are_deterministic_and_aim_where_asked() {
        let base = Base::new("word-count", reyna_artifacts::bytes("word-count").unwrap());
        assert!(base.manifest.is_some(), "the manifest section was found");
        assert!(base.sections.len() > 10);
        assert_eq!(base.mutant(&[]), base.bytes());
        let script = [3, 7, 0, 0, b'Z', 6, 0xff, 0xff, 0xff, 0];
        assert_eq!(base.mutant(&script), base.mutant(&script));
        let manifest = base.manifest.clone().unwrap();
        let edited = base.mutant(&[3, 7, 0, 0, b'Z']);
        assert_eq!(edited.len(), base.bytes().len());
        assert_eq!(edited[manifest.start + (7 % manifest.len())], b'Z');
    }

    #[test]
    fn the_snapshot_sees_what_an_upload_stores() {
        // The refusal check compares snapshots: they must differ when an
        // upload did store something, or the check would prove nothing.
        let mut target = target();
        let bytes = reyna_artifacts::bytes("word-count").unwrap();
        let digest = Digest::of(&bytes);
        let engine = target.engine().clone();
        let before = Snapshot::take(&engine, &digest);
        assert!(!before.component);
        target.upload(bytes).unwrap();
        let after = Snapshot::take(&engine, &digest);
        assert!(after.component);
        assert_ne!(after.records, before.records);
        assert_ne!(after.listed, before.listed);
        assert!(after.audit > before.audit);
    }
}

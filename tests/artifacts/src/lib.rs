//! The example plugins and test programs as built components, and the
//! fixtures tests run them against: a real `nats-server` ([`NatsServer`]), a
//! model server for the `llm` effect ([`ChatServer`]), and [`with_manifest`],
//! which makes distinct plugins out of one built component.
//!
//! Depending on this crate (usually as a dev-dependency) builds every plugin in
//! `plugins/` and every test program in `tests/programs/` for wasm32-wasip2 and
//! copies them to `target/plugins/<name>.wasm`; `cargo build -p reyna-artifacts`
//! does only that.
//!
//! ```
//! let path = reyna_artifacts::plugin("word-stats");
//! assert!(path.ends_with("target/plugins/word-stats.wasm"));
//! ```
#![deny(missing_docs)]

use std::path::PathBuf;

mod chat;
mod expensive;
mod manifest_edit;
mod nats;

pub use chat::{COMPLETION_TOKENS, ChatServer, PROMPT_TOKENS, Received};
pub use expensive::{module_with_locals, nested_module, with_extra_module};
pub use manifest_edit::{ManifestEditError, with_manifest};
pub use nats::NatsServer;

mod generated {
    include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));
}

pub use generated::{ALL, DIR};

/// The path of the component whose manifest is named `name`.
pub fn plugin(name: &str) -> PathBuf {
    PathBuf::from(DIR).join(format!("{name}.wasm"))
}

/// Reads the component whose manifest is named `name`.
pub fn bytes(name: &str) -> std::io::Result<Vec<u8>> {
    std::fs::read(plugin(name))
}

/// Names of the example plugins (`plugins/`).
pub fn examples() -> impl Iterator<Item = &'static str> {
    ALL.iter()
        .filter(|(_, example)| *example)
        .map(|(name, _)| *name)
}

/// Names of the test programs (`tests/programs/`).
pub fn test_programs() -> impl Iterator<Item = &'static str> {
    ALL.iter()
        .filter(|(_, example)| !*example)
        .map(|(name, _)| *name)
}

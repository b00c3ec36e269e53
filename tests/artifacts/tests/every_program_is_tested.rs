//! Every test program in `tests/programs/` is used by some test: a hostile
//! program nobody runs protects nothing. (Wasmtime keeps the same rule for its
//! test programs.)

#![allow(clippy::panic)]

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_test_program_is_named_in_a_test() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for crate_dir in [
        "host/runtime",
        "host/engine",
        "host/api",
        "host/cli",
        "host/store",
        "benches",
    ] {
        rust_files(&repo.join(crate_dir).join("tests"), &mut files);
        rust_files(&repo.join(crate_dir).join("benches"), &mut files);
    }
    let sources: Vec<String> = files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .collect();
    assert!(
        !sources.is_empty(),
        "no test sources found under {}",
        repo.display()
    );
    let untested: Vec<&str> = reyna_artifacts::test_programs()
        .filter(|name| !sources.iter().any(|s| s.contains(&format!("\"{name}\""))))
        .collect();
    assert!(
        untested.is_empty(),
        "test programs no test uses: {untested:?}"
    );
}

#[test]
fn every_component_was_built() {
    for (name, _) in reyna_artifacts::ALL {
        let bytes = reyna_artifacts::bytes(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(bytes.starts_with(b"\0asm"), "{name} is not wasm");
    }
}

//! `reyna plugin inspect` against real built components and bad files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn reyna() -> Command {
    Command::new(env!("CARGO_BIN_EXE_reyna"))
}

fn inspect(path: &std::path::Path) -> (bool, String, String) {
    let out = reyna()
        .args(["plugin", "inspect"])
        .arg(path)
        .output()
        .expect("run reyna");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn prints_the_manifest_and_world_of_an_example_plugin() {
    let (ok, stdout, stderr) = inspect(&reyna_artifacts::plugin("text-expand"));
    assert!(ok, "{stderr}");
    for line in [
        "name:          text-expand",
        "version:       2.0.0",
        "kind:          processor",
        "world:         reyna:plugin/processor@0.1.0",
        "subscribes:    blob.created.text-input-v1",
        "inputs:        text-input-v1",
        "outputs:       expanded-text-v1, chapter-v1",
        "effects:       llm",
        "  memory:           64MiB",
        "  timeout:          10s",
        "  max-concurrency:  4",
        "  max-outputs:      2",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    assert!(stdout.contains("reyna:plugin/host@0.1.0"), "{stdout}");
    assert!(stdout.contains("exports:       process"), "{stdout}");
}

#[test]
fn every_built_component_inspects_as_its_kind() {
    for (name, _) in reyna_artifacts::ALL {
        let (ok, stdout, stderr) = inspect(&reyna_artifacts::plugin(name));
        if *name == "hostile-processor-http" {
            // Built to be refused: a processor that imports wasi:http.
            assert!(!ok, "{stdout}");
            assert!(
                stderr.contains("does not target the processor world"),
                "{stderr}"
            );
            assert!(
                stderr.contains("which this world does not provide"),
                "{stderr}"
            );
            continue;
        }
        assert!(ok, "{name}: {stderr}");
        assert!(
            stdout.contains(&format!("name:          {name}\n")),
            "{stdout}"
        );
    }
    let (_, stdout, _) = inspect(&reyna_artifacts::plugin("llm"));
    assert!(
        stdout.contains("world:         reyna:plugin/effect@0.1.0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("wasi:http/outgoing-handler@0.2.12"),
        "{stdout}"
    );
}

#[test]
fn json_output_is_machine_readable() {
    let out = reyna()
        .args(["plugin", "inspect", "--json"])
        .arg(reyna_artifacts::plugin("word-stats"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["manifest"]["name"], "word-stats");
    assert_eq!(v["manifest"]["inputs"].as_array().unwrap().len(), 3);
    assert!(v["digest"].as_str().unwrap().starts_with("sha256:"));
}

fn refusal(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("plugin.wasm");
    std::fs::write(&path, bytes).unwrap();
    let (ok, stdout, stderr) = inspect(&path);
    assert!(!ok, "expected a refusal, got:\n{stdout}");
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "one-line reason expected:\n{stderr}"
    );
    stderr
}

#[test]
fn refuses_a_random_file_with_one_line() {
    let err = refusal(b"#!/bin/sh\necho this is not a plugin\n");
    assert!(
        err.contains("is not a Reyna plugin: not a WebAssembly file"),
        "{err}"
    );
}

#[test]
fn refuses_a_core_module_with_one_line() {
    // (module (func (export "f")))
    let module = b"\0asm\x01\0\0\0\x01\x04\x01\x60\0\0\x03\x02\x01\0\x07\x05\x01\x01f\0\0\x0a\x04\x01\x02\0\x0b";
    let err = refusal(module);
    assert!(
        err.contains("core WebAssembly module, not a component"),
        "{err}"
    );
}

#[test]
fn refuses_a_component_without_a_manifest() {
    // The built component with its manifest section renamed.
    let mut bytes = reyna_artifacts::bytes("word-count").unwrap();
    let needle = b"reyna-manifest";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("manifest section present");
    bytes[at..at + needle.len()].copy_from_slice(b"other-manifest");
    let err = refusal(&bytes);
    assert!(err.contains("has no `reyna-manifest` section"), "{err}");
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let (ok, _, stderr) = inspect(std::path::Path::new("/nonexistent/plugin.wasm"));
    assert!(!ok);
    assert!(
        stderr.contains("cannot read /nonexistent/plugin.wasm"),
        "{stderr}"
    );
}

//! Builds every plugin in `plugins/` and every test program in `tests/programs/`
//! for wasm32-wasip2 (profile `plugin`) and copies each component to
//! `<repo>/target/plugins/<manifest name>.wasm`.
//!
//! Processors and effects are built by separate cargo invocations, so the SDK's
//! `processor` and `effect` features are never unified into one component.
//! The nested build uses its own target directory, so it never waits on the
//! outer build's lock.

// A build script reports failure by panicking, with the reason.
#![allow(clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use reyna_manifest::{Kind, Manifest};

struct Crate {
    package: String,
    name: String,
    kind: Kind,
    example: bool,
}

fn package_name(cargo_toml: &Path) -> String {
    let text = std::fs::read_to_string(cargo_toml).unwrap_or_default();
    text.lines()
        .find_map(|l| {
            l.strip_prefix("name = ")
                .map(|v| v.trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| panic!("no package name in {}", cargo_toml.display()))
}

fn crates_in(dir: &Path, example: bool) -> Vec<Crate> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("reyna.toml").is_file())
        .collect();
    entries.sort();
    for path in entries {
        let text = std::fs::read_to_string(path.join("reyna.toml")).unwrap_or_default();
        let manifest = Manifest::parse(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", path.join("reyna.toml").display()));
        out.push(Crate {
            package: package_name(&path.join("Cargo.toml")),
            name: manifest.name,
            kind: manifest.kind,
            example,
        });
    }
    out
}

/// The wasm32-wasip2 standard library must be in the active toolchain's
/// sysroot. rustup installs the targets of `rust-toolchain.toml` only when it
/// installs the toolchain itself, so a machine that already had the pinned
/// toolchain lacks it: add it here (announced as a build warning), or, with no
/// rustup, stop with the one command to run.
fn ensure_wasm_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or_else(|| panic!("cannot run `{rustc} --print sysroot`"));
    let target_lib = sysroot.join("lib/rustlib/wasm32-wasip2/lib");
    if target_lib.is_dir() {
        return;
    }
    // Set by rustup's proxies; names the toolchain this build runs with.
    let Ok(toolchain) = std::env::var("RUSTUP_TOOLCHAIN") else {
        panic!(
            "the wasm32-wasip2 target is not installed in {} and rustup is not managing this \
             toolchain: install rustup (https://rustup.rs), then run `rustup target add wasm32-wasip2`",
            sysroot.display()
        );
    };
    println!(
        "cargo:warning=installing the wasm32-wasip2 target: rustup target add --toolchain {toolchain} wasm32-wasip2"
    );
    let rustup = std::env::var("RUSTUP").unwrap_or_else(|_| "rustup".to_owned());
    let status = Command::new(&rustup)
        .args(["target", "add", "--toolchain", &toolchain, "wasm32-wasip2"])
        .status();
    match status {
        Ok(s) if s.success() && target_lib.is_dir() => {}
        _ => panic!(
            "could not install the wasm32-wasip2 target; run `rustup target add --toolchain {toolchain} wasm32-wasip2`"
        ),
    }
}

fn main() {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let repo = manifest_dir
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|e| panic!("repo root: {e}"));
    for watched in [
        "plugins",
        "tests/programs",
        "sdk",
        "wit",
        "host/manifest/src",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", repo.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");

    ensure_wasm_target();

    let mut crates = crates_in(&repo.join("plugins"), true);
    crates.extend(crates_in(&repo.join("tests/programs"), false));

    let outer_target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target"));
    let wasm_target = outer_target.join("wasm-plugins");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());

    for kind in [Kind::Processor, Kind::Effect] {
        let packages: Vec<&Crate> = crates.iter().filter(|c| c.kind == kind).collect();
        if packages.is_empty() {
            continue;
        }
        let mut cmd = Command::new(&cargo);
        cmd.current_dir(&repo)
            .args([
                "build",
                "--profile",
                "plugin",
                "--target",
                "wasm32-wasip2",
                "--locked",
            ])
            .env("CARGO_TARGET_DIR", &wasm_target);
        for var in [
            "RUSTFLAGS",
            "CARGO_ENCODED_RUSTFLAGS",
            "CARGO_BUILD_TARGET",
            "RUSTC_WORKSPACE_WRAPPER",
        ] {
            cmd.env_remove(var);
        }
        for c in &packages {
            cmd.args(["-p", &c.package]);
        }
        let status = cmd
            .status()
            .unwrap_or_else(|e| panic!("cannot run cargo: {e}"));
        assert!(
            status.success(),
            "building the {kind} plugins for wasm32-wasip2 failed"
        );
    }

    let out_dir = repo.join("target/plugins");
    std::fs::create_dir_all(&out_dir).unwrap_or_else(|e| panic!("{}: {e}", out_dir.display()));
    let mut listing = String::from(
        "/// Every component built, as (manifest name, is an example plugin).\npub const ALL: &[(&str, bool)] = &[\n",
    );
    for c in &crates {
        let built = wasm_target
            .join("wasm32-wasip2/plugin")
            .join(format!("{}.wasm", c.package.replace('-', "_")));
        let bytes = std::fs::read(&built).unwrap_or_else(|e| panic!("{}: {e}", built.display()));
        let dest = out_dir.join(format!("{}.wasm", c.name));
        // Only rewrite changed files, so their mtimes mean something.
        if std::fs::read(&dest).ok().as_deref() != Some(&bytes[..]) {
            std::fs::write(&dest, &bytes).unwrap_or_else(|e| panic!("{}: {e}", dest.display()));
        }
        listing.push_str(&format!("    ({:?}, {}),\n", c.name, c.example));
    }
    listing.push_str("];\n");
    listing.push_str(&format!(
        "/// Where the components are.\npub const DIR: &str = {:?};\n",
        out_dir.display().to_string()
    ));
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default()).join("artifacts.rs");
    std::fs::write(&out, listing).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
}

//! `cargo xtask test [ARGS]`: finds or installs the programs the tests run
//! (Debian packages), then runs `cargo test --workspace --locked [ARGS]`.
//! The README's test command and `.ci/run` are this same command, so a
//! newcomer and CI check exactly the same thing.
//!
//! It says what it installs before installing. When it cannot install (not
//! root and no password-less sudo, or no `apt-get`), it stops with the exact
//! command to run instead of letting tests fail one by one. The
//! wasm32-wasip2 target is added by the plugins' build script
//! (`tests/artifacts/build.rs`), because the host command needs it too.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// A program the tests run, and the Debian package that provides it.
struct Requirement {
    program: &'static str,
    package: &'static str,
    why: &'static str,
}

const REQUIREMENTS: &[Requirement] = &[
    Requirement {
        program: "nats-server",
        package: "nats-server",
        why: "the scale-out tests start it on a loopback port",
    },
    Requirement {
        program: "curl",
        package: "curl",
        why: "the README quickstart is run as written",
    },
    Requirement {
        program: "jq",
        package: "jq",
        why: "the README quickstart is run as written",
    },
    Requirement {
        program: "chromium",
        package: "chromium",
        why: "the console's browser tests (host/cli/tests/console.rs) drive it headless",
    },
    Requirement {
        program: "chromedriver",
        package: "chromium-driver",
        why: "the console's browser tests speak WebDriver to it on a loopback port",
    },
];

const USAGE: &str = "usage: cargo xtask test [ARGS passed to cargo test]";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("test") => match test(args.collect()) {
            Ok(code) => code,
            Err(message) => {
                eprintln!("xtask: {message}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("{USAGE}");
            ExitCode::FAILURE
        }
    }
}

fn test(extra: Vec<String>) -> Result<ExitCode, String> {
    install_missing(REQUIREMENTS)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    println!("xtask: cargo test --workspace --locked {}", extra.join(" "));
    let status = Command::new(cargo)
        .args(["test", "--workspace", "--locked"])
        .args(&extra)
        .current_dir(repo_root())
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The workspace root (this crate lives in `<root>/xtask`).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Installs the packages of every requirement whose program is not on the
/// PATH, or explains exactly what to run.
fn install_missing(requirements: &[Requirement]) -> Result<(), String> {
    let missing: Vec<&Requirement> = requirements
        .iter()
        .filter(|r| find_program(r.program).is_none())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let packages: Vec<&str> = missing.iter().map(|r| r.package).collect();
    let command = format!("sudo apt-get install -y {}", packages.join(" "));
    for r in &missing {
        println!("xtask: `{}` is missing ({})", r.program, r.why);
    }
    if find_program("apt-get").is_none() {
        return Err(format!(
            "no apt-get on this machine: install {} with your package manager, then run the tests again",
            packages.join(", ")
        ));
    }
    let prefix: &[&str] = if is_root() {
        &[]
    } else if passwordless_sudo() {
        &["sudo"]
    } else {
        return Err(format!(
            "not root and sudo needs a password: run `{command}`, then run the tests again"
        ));
    };
    println!(
        "xtask: installing Debian packages: {} (apt-get update, then apt-get install)",
        packages.join(" ")
    );
    run(prefix, &["apt-get", "update", "-qq"])
        .and_then(|()| {
            let mut install = vec!["apt-get", "install", "-y", "-qq"];
            install.extend(&packages);
            run(prefix, &install)
        })
        .map_err(|e| format!("{e}; run `{command}`, then run the tests again"))?;
    let still: Vec<&str> = missing
        .iter()
        .filter(|r| find_program(r.program).is_none())
        .map(|r| r.program)
        .collect();
    if still.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "installed, but still not on the PATH: {}",
            still.join(", ")
        ))
    }
}

fn run(prefix: &[&str], command: &[&str]) -> Result<(), String> {
    let all: Vec<&str> = prefix.iter().chain(command).copied().collect();
    let (program, args) = all.split_first().ok_or("empty command")?;
    let status = Command::new(program)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed ({status})", all.join(" ")))
    }
}

/// The program's path if it is an executable file on the PATH.
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn passwordless_sudo() -> bool {
    find_program("sudo").is_some()
        && Command::new("sudo")
            .args(["-n", "true"])
            .status()
            .is_ok_and(|s| s.success())
}

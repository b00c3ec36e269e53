//! The tenancy commands of the CLI against a real `reyna serve`: the
//! operator creates a tenant and its admin token; that admin sees its
//! installations, configures one, sets a secret from stdin (write-only: the
//! value is printed nowhere, its version is), is refused the operator's
//! commands, and reads its tenant's audit log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::process::{Output, Stdio};

use serde_json::Value;

mod common;

use common::{Host, reyna};

/// What one CLI run printed.
struct Run {
    ok: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        Run {
            ok: out.status.success(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs `reyna ARGS --url URL --token TOKEN`, feeding `stdin` when given
/// (else stdin is empty), and keeps every output for the final check.
fn cli(host: &Host, token: &str, args: &[&str], stdin: &str, seen: &mut Vec<String>) -> Run {
    let mut child = reyna()
        .args(args)
        .args(["--url", &host.url, "--token", token])
        .env_remove("REYNA_URL")
        .env_remove("REYNA_TOKEN")
        .current_dir(&host.dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that does not read stdin may exit before this is written.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let run = Run::from(child.wait_with_output().unwrap());
    seen.push(format!(
        "reyna {}\n{}{}",
        args.join(" "),
        run.stdout,
        run.stderr
    ));
    run
}

fn ok(run: Run, what: &str) -> Run {
    assert!(
        run.ok,
        "{what} failed ({:?}): {}{}",
        run.code, run.stdout, run.stderr
    );
    run
}

#[test]
fn a_tenant_admin_configures_its_installation_and_sets_a_secret_that_is_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::start(dir.path(), &[]);
    let operator = host.token();
    let mut seen = Vec::new();

    let me = ok(cli(&host, &operator, &["whoami"], "", &mut seen), "whoami");
    assert!(
        me.stdout.starts_with("operator of tenant "),
        "{}",
        me.stdout
    );

    // The operator creates tenant acme and an admin token for it; the
    // token's secret is stdout's only line.
    let created = ok(
        cli(
            &host,
            &operator,
            &["tenant", "create", "acme", "--name", "Acme Ltd"],
            "",
            &mut seen,
        ),
        "tenant create",
    );
    assert_eq!(created.stdout.trim(), "created tenant acme");
    let again = cli(
        &host,
        &operator,
        &["tenant", "create", "acme"],
        "",
        &mut seen,
    );
    assert_eq!(again.code, Some(1), "{}", again.stderr);
    assert!(again.stderr.contains("409"), "{}", again.stderr);
    let listed = ok(
        cli(&host, &operator, &["tenant", "ls"], "", &mut seen),
        "tenant ls",
    );
    assert!(
        listed
            .stdout
            .lines()
            .any(|l| l.starts_with("acme ") && l.contains("Acme Ltd") && l.ends_with("live")),
        "{}",
        listed.stdout
    );
    let token = ok(
        cli(
            &host,
            &operator,
            &[
                "token",
                "create",
                "--tenant",
                "acme",
                "--role",
                "admin",
                "--name",
                "acme-admin",
            ],
            "",
            &mut seen,
        ),
        "token create",
    );
    assert_eq!(token.stdout.lines().count(), 1, "{}", token.stdout);
    assert!(
        token.stderr.contains("admin token") && token.stderr.contains("tenant acme"),
        "{}",
        token.stderr
    );
    let admin = token.stdout.trim().to_owned();
    let me = ok(cli(&host, &admin, &["whoami"], "", &mut seen), "whoami");
    assert!(
        me.stdout.starts_with("admin of tenant acme "),
        "{}",
        me.stdout
    );

    // Its installations: the bundled plugins, without `--tenant` (the
    // token's own tenant).
    let installs = ok(
        cli(&host, &admin, &["install", "ls"], "", &mut seen),
        "install ls",
    );
    for plugin in ["word-stats", "text-expand", "book-compile", "llm"] {
        assert!(
            installs
                .stdout
                .lines()
                .any(|l| l.split_whitespace().next() == Some(plugin)),
            "{plugin} in {}",
            installs.stdout
        );
    }

    let config = ok(
        cli(
            &host,
            &admin,
            &["install", "config", "llm", "model=gpt-x"],
            "",
            &mut seen,
        ),
        "install config",
    );
    assert!(
        config.stdout.contains("  model = gpt-x"),
        "{}",
        config.stdout
    );

    // The secret comes on stdin; its value is never an argument.
    let first = "sk-acme-first-4f9a1c7e2b";
    let set = ok(
        cli(
            &host,
            &admin,
            &["secret", "set", "llm", "api_key"],
            &format!("{first}\n"),
            &mut seen,
        ),
        "secret set",
    );
    assert_eq!(
        set.stdout.trim(),
        "secret api_key of llm for tenant acme is at version 1"
    );
    let shown = ok(
        cli(&host, &admin, &["install", "get", "llm"], "", &mut seen),
        "install get",
    );
    assert!(
        shown.stdout.starts_with("llm for tenant acme: "),
        "{}",
        shown.stdout
    );
    assert!(shown.stdout.contains("  model = gpt-x"), "{}", shown.stdout);
    assert!(
        shown
            .stdout
            .lines()
            .any(|l| l.trim_start().starts_with("api_key")
                && l.contains(" set ")
                && l.contains("version 1 ")),
        "{}",
        shown.stdout
    );
    let json = ok(
        cli(
            &host,
            &admin,
            &["install", "get", "llm", "--json"],
            "",
            &mut seen,
        ),
        "install get --json",
    );
    let installation: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(installation["tenant"], "acme");
    assert_eq!(installation["config"]["model"], "gpt-x");
    let secret = &installation["secrets"][0];
    assert_eq!(
        (&secret["name"], &secret["set"], &secret["version"]),
        (&Value::from("api_key"), &Value::from(true), &Value::from(1)),
        "{installation}"
    );

    // A second value is version 2, here from a file.
    let second = "sk-acme-second-91d3e0a6c8";
    let file = dir.path().join("api-key.txt");
    std::fs::write(&file, format!("{second}\n")).unwrap();
    let file_arg = file.to_str().unwrap();
    let set = ok(
        cli(
            &host,
            &admin,
            &["secret", "set", "llm", "api_key", "--from-file", file_arg],
            "",
            &mut seen,
        ),
        "secret set --from-file",
    );
    assert_eq!(
        set.stdout.trim(),
        "secret api_key of llm for tenant acme is at version 2"
    );
    // No value on stdin: refused before any request.
    let empty = cli(
        &host,
        &admin,
        &["secret", "set", "llm", "api_key"],
        "",
        &mut seen,
    );
    assert_eq!(empty.code, Some(1), "{}", empty.stderr);
    assert!(empty.stderr.contains("no secret value"), "{}", empty.stderr);

    // The operator's commands are refused to a tenant admin, with the
    // API's reason.
    let refused = cli(&host, &admin, &["tenant", "ls"], "", &mut seen);
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);
    assert!(
        refused.stderr.starts_with("error: ") && refused.stderr.contains("(403)"),
        "{}",
        refused.stderr
    );
    assert!(refused.stdout.is_empty(), "{}", refused.stdout);

    // Its tokens and audit log are its tenant's own.
    let tokens = ok(
        cli(&host, &admin, &["token", "ls", "--json"], "", &mut seen),
        "token ls",
    );
    let tokens: Value = serde_json::from_str(&tokens.stdout).unwrap();
    assert!(
        tokens
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["tenant"] == "acme"),
        "{tokens}"
    );
    let audit = ok(cli(&host, &admin, &["audit"], "", &mut seen), "audit");
    for action in ["installation.config", "installation.secret.set"] {
        assert!(
            audit
                .stdout
                .lines()
                .any(|l| l.contains(action) && l.contains("acme")),
            "{action} in {}",
            audit.stdout
        );
    }
    let audit = ok(
        cli(&host, &admin, &["audit", "--json"], "", &mut seen),
        "audit --json",
    );
    let entries: Value = serde_json::from_str(&audit.stdout).unwrap();
    let entries = entries.as_array().unwrap();
    assert!(!entries.is_empty());
    assert!(
        entries.iter().all(|e| e["tenant"] == "acme"),
        "an admin reads its own tenant's audit only: {entries:?}"
    );
    let secret_sets = entries
        .iter()
        .filter(|e| e["action"] == "installation.secret.set")
        .count();
    assert_eq!(secret_sets, 2, "{entries:?}");

    // Another tenant's installations do not exist for acme's admin; the
    // operator reads acme's with `--tenant`.
    let elsewhere = cli(
        &host,
        &admin,
        &["install", "ls", "--tenant", "default"],
        "",
        &mut seen,
    );
    assert_eq!(elsewhere.code, Some(1), "{}", elsewhere.stderr);
    assert!(elsewhere.stderr.contains("(404)"), "{}", elsewhere.stderr);
    let shown = ok(
        cli(
            &host,
            &operator,
            &["install", "get", "llm", "--tenant", "acme"],
            "",
            &mut seen,
        ),
        "install get --tenant",
    );
    assert!(
        shown
            .stdout
            .lines()
            .any(|l| l.contains("api_key") && l.contains("version 2 ")),
        "{}",
        shown.stdout
    );

    // The values were printed nowhere.
    for output in &seen {
        assert!(
            !output.contains(first) && !output.contains(second),
            "a secret value was printed: {output}"
        );
    }
    host.stop();
}

#[test]
fn the_operator_sets_a_tenants_quotas_and_its_admin_reads_its_usage() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::start(dir.path(), &[]);
    let operator = host.token();
    let mut seen = Vec::new();
    let run = |token: &str, args: &[&str], stdin: &str, seen: &mut Vec<String>| {
        cli(&host, token, args, stdin, seen)
    };
    ok(
        run(&operator, &["tenant", "create", "acme"], "", &mut seen),
        "tenant create",
    );
    let admin = ok(
        run(
            &operator,
            &[
                "token", "create", "--tenant", "acme", "--role", "admin", "--name", "a",
            ],
            "",
            &mut seen,
        ),
        "token create",
    )
    .stdout
    .trim()
    .to_owned();
    let set = ok(
        run(
            &operator,
            &[
                "tenant",
                "quotas",
                "acme",
                "--set",
                r#"{"blobs_per_second":1,"blob_burst":1,"budgets":{"tokens":{"per_day":500}}}"#,
            ],
            "",
            &mut seen,
        ),
        "tenant quotas --set",
    );
    assert!(
        set.stdout
            .lines()
            .any(|l| l.starts_with("blobs per second") && l.ends_with(" 1")),
        "{}",
        set.stdout
    );
    assert!(set.stdout.contains("budget tokens"), "{}", set.stdout);
    // The tenant's admin reads its quotas but may not change them.
    let refused = run(
        &admin,
        &["tenant", "quotas", "acme", "--set", "{}"],
        "",
        &mut seen,
    );
    assert_eq!(refused.code, Some(1), "{}", refused.stderr);
    assert!(refused.stderr.contains("403"), "{}", refused.stderr);

    let doc = r#"{"content":"one two three"}"#;
    ok(
        run(
            &admin,
            &["blob", "put", "text-input-v1", "-"],
            doc,
            &mut seen,
        ),
        "blob put",
    );
    let second = run(
        &admin,
        &["blob", "put", "text-input-v1", "-"],
        doc,
        &mut seen,
    );
    assert_eq!(second.code, Some(1), "{}", second.stderr);
    assert!(
        second.stderr.contains("429") && second.stderr.contains("blobs per second"),
        "{}",
        second.stderr
    );

    let usage = ok(
        run(
            &admin,
            &["usage", "--granularity", "day", "--json"],
            "",
            &mut seen,
        ),
        "usage --json",
    );
    let usage: Value = serde_json::from_str(&usage.stdout).unwrap();
    assert_eq!(usage["tenant"], "acme");
    assert_eq!(usage["total"]["blobs_created"], 1);
    assert!(usage["total"]["bytes_stored"].as_u64().unwrap() >= doc.len() as u64);
    let table = ok(run(&admin, &["usage"], "", &mut seen), "usage");
    assert!(
        table.stdout.lines().any(|l| l.starts_with("total ")),
        "{}",
        table.stdout
    );
    let theirs = run(&admin, &["usage", "--tenant", "default"], "", &mut seen);
    assert!(theirs.stderr.contains("(404)"), "{}", theirs.stderr);
    host.stop();
}

//! End to end against a real `reyna serve` process on a loopback port: the
//! quickstart's own commands, derived blobs and lineage over HTTP, live
//! events in order with a resume that loses nothing, the CLI client,
//! restarts, and a graceful stop on SIGTERM.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

mod common;

use common::{Host, WAIT, client, get_json, post_text, reyna};

/// The ```sh blocks of the quickstart, in order.
fn quickstart_blocks() -> Vec<String> {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../api/QUICKSTART.md"))
            .unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_commands_create_a_blob_and_show_derived_blobs_and_lineage() {
    let blocks = quickstart_blocks();
    assert_eq!(
        blocks.len(),
        3,
        "the quickstart has three command blocks: {blocks:#?}"
    );
    // Block 1 is how the host is started; this test runs the same binary
    // and subcommand, on a free port instead of 8080.
    assert_eq!(blocks[0].trim(), "cargo run -p reyna -- serve");
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::start(dir.path(), &[]);

    let meta = std::fs::metadata(dir.path().join("reyna-data/admin-token")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            meta.permissions().mode() & 0o777,
            0o600,
            "the admin token is readable only by its owner"
        );
    }
    assert!(meta.len() > 10);

    if !(have("curl") && have("jq")) {
        eprintln!(
            "SKIPPED the shell part: the quickstart needs curl and jq, which are not installed"
        );
    } else {
        let script = format!("set -e\n{}{}", blocks[1], blocks[2])
            .replace("http://127.0.0.1:8080", &host.url);
        let out = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "quickstart failed: {}\n{script}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Two JSON documents: the derived blobs, then the lineage.
        let docs: Vec<Value> = serde_json::Deserializer::from_slice(&out.stdout)
            .into_iter::<Value>()
            .map(Result::unwrap)
            .collect();
        assert_eq!(docs.len(), 2, "{}", String::from_utf8_lossy(&out.stdout));
        let (derived, lineage) = (&docs[0], &docs[1]);
        assert_eq!(derived["settled"], true, "{derived}");
        let stats = derived["derived"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["schema"] == "word-stats-v1");
        let stats = stats.unwrap_or_else(|| panic!("no word-stats blob in {derived}"));
        assert_eq!(stats["producer"]["plugin"], "word-stats");
        assert_eq!(lineage["root"], derived["blob"]);
        let edges = lineage["edges"].as_array().unwrap();
        assert!(
            edges
                .iter()
                .any(|e| e["parent"] == derived["blob"] && e["child"] == stats["id"]),
            "{lineage}"
        );
    }

    // The same through the CLI client.
    let token = host.token();
    let mut put = reyna()
        .args([
            "blob",
            "put",
            "text-input-v1",
            "-",
            "--wait",
            "30s",
            "--url",
            &host.url,
            "--token",
            &token,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        put.stdin
            .take()
            .unwrap()
            .write_all(br#"{"content": "one two three"}"#)
            .unwrap();
    }
    let out = put.wait_with_output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let id = stdout.lines().next().unwrap().trim().to_owned();
    assert_eq!(id.len(), 26, "{stdout}");
    assert!(
        stdout.contains("word-stats-v1 by word-stats@1.1.0"),
        "{stdout}"
    );
    let out = reyna()
        .args([
            "blob", "lineage", &id, "--url", &host.url, "--token", &token,
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let tree = String::from_utf8(out.stdout).unwrap();
    assert!(
        tree.starts_with(&format!("{id} text-input-v1 (ingested)\nderived:\n")),
        "{tree}"
    );
    assert!(
        tree.contains("── ") && tree.contains("word-stats-v1 by word-stats@1.1.0"),
        "{tree}"
    );
    // What text-expand logged for that blob, through the CLI.
    let jobs = get_json(&client(), format!("{}/v1/jobs?blob={id}", host.url), &token).await;
    let expand = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["plugin"] == "text-expand")
        .unwrap_or_else(|| panic!("a text-expand job in {jobs}"));
    let out = reyna()
        .args([
            "job",
            "logs",
            expand["id"].as_str().unwrap(),
            "--url",
            &host.url,
            "--token",
            &token,
        ])
        .output()
        .unwrap();
    let logs = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{logs}");
    assert!(logs.starts_with("-- attempt 1\n"), "{logs}");
    assert!(logs.contains("info  expanded 3 words to "), "{logs}");
    // A re-run of the newest word-stats on the same blob, replaying effects.
    let out = reyna()
        .args([
            "blob",
            "rerun",
            &id,
            "word-stats",
            "--replay-effects",
            "--url",
            &host.url,
            "--token",
            &token,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.starts_with(&format!("re-running word-stats@1.1.0 on {id}: job "))
            && stdout.contains("replaying recorded effects"),
        "{stdout}"
    );
    host.stop();
}

/// Reads server-sent events from a reqwest response.
struct Events {
    response: reqwest::Response,
    buf: String,
}

impl Events {
    async fn open(
        http: &reqwest::Client,
        host: &Host,
        token: &str,
        query: &str,
        last: Option<u64>,
    ) -> Events {
        let mut request = http
            .get(format!("{}/v1/events{query}", host.url))
            .bearer_auth(token);
        if let Some(last) = last {
            request = request.header("last-event-id", last.to_string());
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Events {
            response,
            buf: String::new(),
        }
    }

    /// The next event's (sequence, data); heartbeats are skipped.
    async fn next(&mut self) -> (u64, Value) {
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut id = None;
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().parse::<u64>().unwrap());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    } else if line.starts_with("event:") {
                        panic!("unexpected control event: {block}");
                    }
                }
                if let Some(id) = id {
                    return (id, serde_json::from_str(&data).unwrap());
                }
            }
            let chunk = tokio::time::timeout(WAIT, self.response.chunk())
                .await
                .expect("no event within 60 s")
                .unwrap()
                .expect("the event stream ended");
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_sees_derived_blobs_in_order_and_resumes_without_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::start(dir.path(), &[]);
    let token = host.token();
    let http = client();
    let pattern = "?subject=blob.created.%3E";
    let mut live = Events::open(&http, &host, &token, pattern, None).await;

    let mut inputs = Vec::new();
    for text in ["alpha beta", "gamma delta epsilon", "zeta and eta"] {
        inputs.push(
            post_text(&http, &host, &token, text).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // The word-stats blob derived from each input.
    let mut expected = Vec::new();
    for id in &inputs {
        let derived = get_json(
            &http,
            format!("{}/v1/blobs/{id}/derived?wait=60", host.url),
            &token,
        )
        .await;
        let stats = derived["derived"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["schema"] == "word-stats-v1")
            .cloned();
        expected.push(
            stats.unwrap_or_else(|| panic!("no word-stats blob from {id}: {derived}"))["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }

    // Read until every input and its word-stats blob was seen: sequences
    // strictly increase and each derived blob comes after its input.
    let mut seen: Vec<(u64, String, String)> = Vec::new();
    let missing = |seen: &[(u64, String, String)]| {
        inputs
            .iter()
            .chain(&expected)
            .any(|id| !seen.iter().any(|s| &s.2 == id))
    };
    while missing(&seen) {
        let (seq, event) = live.next().await;
        assert!(seen.last().is_none_or(|last| last.0 < seq), "in order");
        assert_eq!(event["seq"], seq);
        assert!(
            event["subject"]
                .as_str()
                .unwrap()
                .starts_with("blob.created.")
        );
        seen.push((
            seq,
            event["subject"].as_str().unwrap().to_owned(),
            event["blob_id"].as_str().unwrap().to_owned(),
        ));
    }
    let position = |id: &str| seen.iter().position(|s| s.2 == id).unwrap();
    for (input, stats) in inputs.iter().zip(&expected) {
        assert!(
            position(input) < position(stats),
            "{stats} is announced after its input {input}"
        );
        assert_eq!(seen[position(stats)].1, "blob.created.word-stats-v1");
    }
    drop(live);

    // Reconnect after the second event: exactly the rest, no gap, no repeat.
    let mut resumed = Events::open(&http, &host, &token, pattern, Some(seen[1].0)).await;
    for expected in &seen[2..] {
        let (seq, event) = resumed.next().await;
        assert_eq!(
            (seq, event["blob_id"].as_str().unwrap()),
            (expected.0, expected.2.as_str())
        );
    }
    host.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_blobs_and_the_admin_token_and_the_client_reports_failures() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::start(dir.path(), &[]);
    let token = host.token();
    let http = client();
    let id = post_text(&http, &host, &token, "kept across restarts").await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // `plugin push` streams the component; a second push of the same bytes
    // changes nothing; a file that is not a plugin is refused with exit 1.
    let wasm = reyna_artifacts::plugin("word-count");
    let push = |file: &Path| {
        reyna()
            .args(["plugin", "push"])
            .arg(file)
            .args(["--url", &host.url, "--token", &token])
            .output()
            .unwrap()
    };
    let out = push(&wasm);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("uploaded word-count@0.1.0"),
        "{out:?}"
    );
    let out = push(&wasm);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("already uploaded"),
        "{out:?}"
    );
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not a plugin at all").unwrap();
    let out = push(&junk);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a WebAssembly file"),
        "{out:?}"
    );

    // Client exit codes: refused is 1, unreachable is 3.
    let out = reyna()
        .args(["plugin", "ls", "--url", &host.url, "--token", "reyna_wrong"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("401"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = reyna()
        .args(["plugin", "ls", "--url", &host.url, "--token", &token])
        .output()
        .unwrap();
    assert!(out.status.success());
    let listing = String::from_utf8(out.stdout).unwrap();
    assert!(
        listing.contains("word-stats") && listing.contains("book-compile"),
        "{listing}"
    );
    let out = reyna()
        .args([
            "dead-letters",
            "--url",
            &host.url,
            "--token",
            &token,
            "--json",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        serde_json::from_slice::<Value>(&out.stdout)
            .unwrap()
            .is_array()
    );
    host.stop();
    let out = reyna()
        .args(["plugin", "ls", "--url", &host.url, "--token", &token])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));

    let mut again = Host::start(dir.path(), &[]);
    assert_eq!(again.token(), token, "the admin token survives a restart");
    let blob = get_json(&http, format!("{}/v1/blobs/{id}", again.url), &token).await;
    assert_eq!(blob["id"], id.as_str());
    let plugins = get_json(&http, format!("{}/v1/plugins", again.url), &token).await;
    let names: Vec<&str> = plugins
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names.iter().filter(|n| **n == "word-stats").count(),
        1,
        "examples are registered once: {names:?}"
    );
    again.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_token_from_the_environment_and_a_config_file_are_used() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("reyna.toml"),
        "data-dir = \"state\"\nmax-body = \"2KiB\"\nstore-cache = \"8MiB\"\n",
    )
    .unwrap();
    let secret = "reyna_from_the_environment_0123456789";
    let mut child_host = Host::start(
        dir.path(),
        &["--config", "reyna.toml", "--admin-token", secret],
    );
    assert!(
        dir.path().join("state/reyna.redb").exists(),
        "data-dir from the config file"
    );
    assert!(
        !dir.path().join("state/admin-token").exists(),
        "a given token is not written to disk"
    );
    let http = client();
    let response = http
        .post(format!("{}/v1/blobs", child_host.url))
        .bearer_auth(secret)
        .json(&json!({ "schema": "text-input-v1", "data": { "content": "x".repeat(4096) } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("2048 bytes"),
        "{problem}"
    );
    child_host.stop();

    // Unknown keys in the config file are refused with the key's name.
    let stderr = refused_config(dir.path(), "listen = \"127.0.0.1:0\"\ncolour = \"blue\"\n");
    assert!(stderr.contains("unknown field `colour`"), "{stderr}");
}

/// The admin token file only bootstraps an empty token table: an admin token
/// revoked through the API stays revoked after a restart, though its file is
/// still in the data directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_admin_token_stays_revoked_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut host = Host::start(dir.path(), &[]);
    let first = host.token();
    let http = client();
    let created = http
        .post(format!("{}/v1/tokens", host.url))
        .bearer_auth(&first)
        .json(&json!({ "tenant": "default", "role": "operator", "name": "second" }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let second = created["secret"].as_str().unwrap().to_owned();
    let tokens = get_json(&http, format!("{}/v1/tokens", host.url), &second).await;
    let first_id = tokens
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] != created["token"]["id"])
        .unwrap_or_else(|| panic!("the bootstrap token in {tokens}"))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let revoked = http
        .delete(format!("{}/v1/tokens/{first_id}", host.url))
        .bearer_auth(&second)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    host.stop();

    let mut host = Host::start(dir.path(), &[]);
    assert_eq!(host.token(), first, "the token file is still there");
    let status = |token: String| {
        let request = http
            .get(format!("{}/v1/tokens", host.url))
            .bearer_auth(token);
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(status(first.clone()).await, 401, "revoked stays revoked");
    assert_eq!(status(second.clone()).await, 200);
    host.stop();
}

/// An approval that names no scheme allows https only; one that reads as
/// plain http (`host:80`) is refused when `serve` starts, saying what to write.
#[test]
fn an_ambiguous_effect_approval_is_refused_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = refused_config(
        dir.path(),
        "listen = \"127.0.0.1:0\"\n[effects]\napproved-hosts = { webhook = [\"hooks.example.com:80\"] }\n",
    );
    assert!(
        stderr.contains("`effects.approved-hosts.webhook`")
            && stderr.contains("write `http://hooks.example.com:80` to allow plain http"),
        "{stderr}"
    );
}

/// Runs `reyna serve` with `config` as its config file in `dir`, expects it
/// to refuse to start (exit 1), and returns what it said.
fn refused_config(dir: &std::path::Path, config: &str) -> String {
    std::fs::write(dir.join("refused.toml"), config).unwrap();
    let out = reyna()
        .args(["serve", "--config", "refused.toml"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

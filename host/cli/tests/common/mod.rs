//! What the end-to-end tests against a real `reyna serve` process share:
//! starting one on a free loopback port, stopping it (SIGTERM) or killing it
//! (SIGKILL), and an HTTP client.
// Each test binary uses part of it.
#![allow(dead_code)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

/// Bound on every wait for the host (first start compiles the examples).
pub const STARTUP: Duration = Duration::from_secs(180);
pub const WAIT: Duration = Duration::from_secs(60);

pub fn reyna() -> Command {
    Command::new(env!("CARGO_BIN_EXE_reyna"))
}

/// A running `reyna serve`; killed on drop if the test did not stop it.
pub struct Host {
    child: Option<Child>,
    pub url: String,
    pub dir: PathBuf,
    lines: mpsc::Receiver<String>,
}

impl Host {
    /// Starts `reyna serve` in `dir` (data in `dir/reyna-data`, the default)
    /// on a free loopback port, and waits until it listens.
    pub fn start(dir: &Path, extra: &[&str]) -> Host {
        let mut child = reyna()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .current_dir(dir)
            .env("REYNA_LOG", "warn")
            .env_remove("REYNA_ADMIN_TOKEN")
            .env_remove("REYNA_DATA_DIR")
            .env_remove("REYNA_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start reyna serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut host = Host {
            child: Some(child),
            url: String::new(),
            dir: dir.to_owned(),
            lines,
        };
        loop {
            let line = host
                .lines
                .recv_timeout(STARTUP)
                .expect("reyna serve did not print its address in time");
            if let Some(rest) = line.split_once("listening on ").map(|(_, r)| r) {
                host.url = rest.trim().to_owned();
                break;
            }
        }
        host
    }

    /// Starts `reyna serve` in `dir` with `config` as its config file.
    pub fn with_config(dir: &Path, config: &str) -> Host {
        let path = dir.join("reyna.toml");
        std::fs::write(&path, config).unwrap();
        Host::start(dir, &["--config", path.to_str().unwrap()])
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.dir.join("reyna-data/admin-token"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit.
    pub fn stop(&mut self) {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let exit = rx
            .recv_timeout(WAIT)
            .expect("reyna serve did not stop within 60 s of SIGTERM")
            .unwrap();
        assert!(exit.success(), "reyna serve exited with {exit}");
    }

    /// Sends SIGKILL (no chance to finish anything) and waits (bounded)
    /// until the process is gone.
    pub fn kill(&mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().expect("SIGKILL reyna serve");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        rx.recv_timeout(WAIT)
            .expect("reyna serve was not gone within 60 s of SIGKILL")
            .unwrap();
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().unwrap()
}

pub async fn get_json(http: &reqwest::Client, url: String, token: &str) -> Value {
    let response = http.get(url).bearer_auth(token).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Creates a `text-input-v1` blob of `text` (201), and returns it.
pub async fn post_text(http: &reqwest::Client, host: &Host, token: &str, text: &str) -> Value {
    post_blob(
        http,
        host,
        token,
        "text-input-v1",
        json!({ "content": text }),
    )
    .await
}

/// Creates a blob of `schema` holding `data` (201), and returns it.
pub async fn post_blob(
    http: &reqwest::Client,
    host: &Host,
    token: &str,
    schema: &str,
    data: Value,
) -> Value {
    let response = http
        .post(format!("{}/v1/blobs", host.url))
        .bearer_auth(token)
        .json(&json!({ "schema": schema, "data": data }))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 201, "creating a {schema} blob: {body}");
    body
}

/// What was derived from blob `id` once its jobs have settled (the API's
/// long-poll, bounded by [`WAIT`]); fails if they have not by then.
pub async fn settled_derived(http: &reqwest::Client, host: &Host, token: &str, id: &str) -> Value {
    let secs = WAIT.as_secs();
    let derived = get_json(
        http,
        format!("{}/v1/blobs/{id}/derived?wait={secs}", host.url),
        token,
    )
    .await;
    assert_eq!(
        derived["settled"], true,
        "the jobs of {id} did not settle within {secs} s: {derived}"
    );
    derived
}

/// Uploads a plugin component (`POST /v1/plugins`) and returns the answer.
pub async fn upload_plugin(
    http: &reqwest::Client,
    host: &Host,
    token: &str,
    component: Vec<u8>,
) -> reqwest::Response {
    http.post(format!("{}/v1/plugins", host.url))
        .bearer_auth(token)
        .header("content-type", "application/wasm")
        .body(component)
        .timeout(WAIT)
        .send()
        .await
        .unwrap()
}

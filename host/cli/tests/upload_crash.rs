//! Crash consistency of plugin upload, against a real `reyna serve` process.
//!
//! An upload stores the component and the plugin record, enables the new
//! version, disables the name's other versions and appends a `plugin.upload`
//! audit entry. This test proves those land together or not at all: it
//! uploads new versions of one plugin one after another and SIGKILLs the
//! host at pseudo-random moments ([`KILLS`] times, on one data directory),
//! and after each restart checks that
//!
//! - at most one version of the plugin is enabled,
//! - every stored version has its `plugin.upload` audit entry,
//! - every upload answered `201 Created` before a kill is still there.
//!
//! Compiling a component takes most of an upload (about 250 ms of 270 in a
//! debug build); the store writes are the last few milliseconds, so random
//! kills would seldom land in them. So every version is first uploaded to a
//! scratch host, whose compiled artifacts (`<data-dir>/artifacts`, files keyed
//! by the component's digest) seed the crash host's cache: there an upload
//! takes 10 to 20 ms, much of it store writes. Each life of the host uploads
//! at most [`PER_LIFE`] versions, so [`KILLS`] lives need a bounded number.
//!
//! The kill delays come from a PRNG seeded with [`SEED`] (printed; set
//! `UPLOAD_CRASH_SEED` to try another), so a failing run can be repeated.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

mod common;

use common::{Host, WAIT, client, get_json};

/// Kills in one run.
const KILLS: usize = 24;
/// Seed of the kill delays.
const SEED: u64 = 0x5eed_c0de_0b1d_0001;
/// Each kill comes 0 to this many ms after the first upload of the host's
/// life starts: one to a few cached uploads.
const MAX_DELAY_MS: u64 = 32;
/// Uploads in one life of the host at most; a kill after them lands between
/// uploads.
const PER_LIFE: usize = 4;
/// The plugin every upload is a new version of.
const NAME: &str = "crash-count";
/// Audit page size (the API's default maximum is 1000).
const AUDIT_PAGE: usize = 500;

/// splitmix64: small, deterministic, good enough to spread delays.
struct Prng(u64);

impl Prng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn version(n: usize) -> String {
    format!("1.0.{n}")
}

/// Every version the run uploads, in order: `word-count` renamed to
/// [`NAME`], version `1.0.<n>`.
fn variants() -> Vec<Vec<u8>> {
    let word_count =
        reyna_artifacts::bytes("word-count").expect("word-count component (reyna-artifacts)");
    (0..KILLS * PER_LIFE)
        .map(|n| {
            let version = version(n);
            let bytes = reyna_artifacts::with_manifest(&word_count, |toml| {
                toml.replace("name = \"word-count\"", &format!("name = \"{NAME}\""))
                    .replace("version = \"0.1.0\"", &format!("version = \"{version}\""))
            })
            .expect("word-count has an embedded manifest");
            let info = reyna_manifest::inspect(&bytes).expect("the variant is a valid plugin");
            assert_eq!(info.manifest.name, NAME, "variant renamed");
            assert_eq!(
                info.manifest.version.to_string(),
                version,
                "variant version"
            );
            bytes
        })
        .collect()
}

async fn upload(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: Vec<u8>,
) -> reqwest::Result<reqwest::Response> {
    http.post(format!("{url}/v1/plugins"))
        .bearer_auth(token)
        .header("content-type", "application/wasm")
        .body(body)
        .timeout(WAIT)
        .send()
        .await
}

/// Uploads every version to a scratch host in `scratch`, then copies its
/// compiled artifacts into `dir`'s data directory. Returns how many
/// artifacts were copied.
async fn seed_artifact_cache(
    http: &reqwest::Client,
    variants: &[Vec<u8>],
    scratch: &Path,
    dir: &Path,
) -> usize {
    let mut host = Host::start(scratch, &[]);
    let token = host.token();
    for (n, body) in variants.iter().enumerate() {
        let response = upload(http, &host.url, &token, body.clone())
            .await
            .expect("upload to the scratch host");
        assert_eq!(response.status(), 201, "scratch upload of version {n}");
    }
    host.stop();
    let from = scratch.join("reyna-data/artifacts");
    let to = dir.join("reyna-data/artifacts");
    std::fs::create_dir_all(&to).unwrap();
    let mut copied = 0;
    for entry in std::fs::read_dir(&from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file()
            && !entry.file_name().to_string_lossy().starts_with('.')
        {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
            copied += 1;
        }
    }
    copied
}

/// What the upload task of one host's life shares with the test.
#[derive(Default)]
struct Uploads {
    /// The version whose upload is waiting for its answer.
    in_flight: Mutex<Option<String>>,
    /// Versions answered 201.
    acknowledged: Mutex<BTreeSet<String>>,
    /// Answers other than 201, and transport errors before the kill.
    unexpected: Mutex<Vec<String>>,
    /// Set just before the kill: transport errors after it are expected.
    killed: AtomicBool,
    /// Told when the first upload request goes out.
    started: Notify,
    /// Told when this life's uploads are over (all answered, or one failed).
    done: Notify,
}

/// Uploads new versions one after another, [`PER_LIFE`] at most, until the
/// host is gone.
async fn upload_until_killed(
    http: reqwest::Client,
    url: String,
    token: String,
    variants: Arc<Vec<Vec<u8>>>,
    next: Arc<AtomicUsize>,
    uploads: Arc<Uploads>,
) {
    upload_versions(&http, &url, &token, &variants, &next, &uploads).await;
    uploads.done.notify_one();
}

/// The uploads of [`upload_until_killed`], until one fails.
async fn upload_versions(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    variants: &[Vec<u8>],
    next: &AtomicUsize,
    uploads: &Uploads,
) {
    for _ in 0..PER_LIFE {
        let n = next.fetch_add(1, Ordering::SeqCst);
        let body = variants[n].clone();
        let version = version(n);
        *uploads.in_flight.lock().unwrap() = Some(version.clone());
        uploads.started.notify_one();
        let sent = upload(http, url, token, body).await;
        match sent {
            Ok(response) if response.status() == 201 => {
                *uploads.in_flight.lock().unwrap() = None;
                uploads.acknowledged.lock().unwrap().insert(version);
            }
            Ok(response) => {
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                uploads
                    .unexpected
                    .lock()
                    .unwrap()
                    .push(format!("upload of {NAME}@{version}: {status} {text}"));
                return;
            }
            Err(e) => {
                if !uploads.killed.load(Ordering::SeqCst) {
                    uploads
                        .unexpected
                        .lock()
                        .unwrap()
                        .push(format!("upload of {NAME}@{version} failed: {e}"));
                }
                return;
            }
        }
    }
}

/// Every stored version of [`NAME`], with whether it is enabled.
async fn stored_versions(
    http: &reqwest::Client,
    host: &Host,
    token: &str,
) -> BTreeMap<String, bool> {
    let plugins = tokio::time::timeout(
        WAIT,
        get_json(http, format!("{}/v1/plugins", host.url), token),
    )
    .await
    .expect("no plugin listing within 60 s");
    plugins
        .as_array()
        .expect("the plugin listing is an array")
        .iter()
        .filter(|p| p["name"] == NAME)
        .map(|p| {
            (
                p["version"].as_str().unwrap().to_owned(),
                p["enabled"].as_bool().unwrap(),
            )
        })
        .collect()
}

/// The targets of every `plugin.upload` audit entry, all pages.
async fn uploads_audited(http: &reqwest::Client, host: &Host, token: &str) -> BTreeSet<String> {
    let mut targets = BTreeSet::new();
    let mut after = 0;
    loop {
        let url = format!("{}/v1/audit?after={after}&limit={AUDIT_PAGE}", host.url);
        let page = tokio::time::timeout(WAIT, get_json(http, url, token))
            .await
            .expect("no audit page within 60 s");
        let entries = page.as_array().expect("an audit page is an array");
        let Some(last) = entries.last() else {
            return targets;
        };
        let seq = last["seq"].as_u64().unwrap();
        assert!(seq > after, "audit pages move forward: {seq} after {after}");
        after = seq;
        targets.extend(
            entries
                .iter()
                .filter(|e| e["action"] == "plugin.upload")
                .map(|e| e["target"].as_str().unwrap().to_owned()),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_during_uploads_never_leaves_a_partial_upload() {
    let seed = std::env::var("UPLOAD_CRASH_SEED")
        .ok()
        .map(|s| {
            let s = s.trim_start_matches("0x");
            u64::from_str_radix(s, 16).expect("UPLOAD_CRASH_SEED is a hex number")
        })
        .unwrap_or(SEED);
    println!("upload crash test: seed {seed:#x}, {KILLS} kills 0-{MAX_DELAY_MS} ms into uploads");
    let began = Instant::now();
    let mut prng = Prng(seed);
    let http = client();
    let variants = Arc::new(variants());
    let dir = tempfile::tempdir().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let seeded = seed_artifact_cache(&http, &variants, scratch.path(), dir.path()).await;
    drop(scratch);
    println!(
        "{} versions compiled, {seeded} artifacts seeded in {:.1} s",
        variants.len(),
        began.elapsed().as_secs_f64()
    );

    let next = Arc::new(AtomicUsize::new(0));
    let mut host = Host::start(dir.path(), &[]);
    let token = host.token();
    // Everything answered 201 in any earlier life of the host.
    let mut acknowledged = BTreeSet::new();
    // What was already reported, so a state that outlives a restart is
    // reported once: versions without their audit entry (they stay so), the
    // last set of enabled versions (the next stored upload repairs it).
    let mut reported = BTreeSet::new();
    let mut reported_enabled = Vec::new();
    let mut violations = Vec::new();
    // Where the kills landed: during an upload before any of it was
    // stored, during one after (part of) it was stored, between uploads
    // (or after the life's last).
    let (mut before_store, mut after_store, mut between) = (0, 0, 0);

    for kill in 1..=KILLS {
        let uploads = Arc::new(Uploads::default());
        let task = tokio::spawn(upload_until_killed(
            http.clone(),
            host.url.clone(),
            token.clone(),
            variants.clone(),
            next.clone(),
            uploads.clone(),
        ));
        tokio::time::timeout(WAIT, uploads.started.notified())
            .await
            .expect("no upload started within 60 s");
        // The kill lands at a random moment of this life's uploads: when
        // they are over, or after the random bound, whichever is first.
        let delay = Duration::from_millis(prng.next() % (MAX_DELAY_MS + 1));
        let _ = tokio::time::timeout(delay, uploads.done.notified()).await;
        uploads.killed.store(true, Ordering::SeqCst);
        let cut = uploads.in_flight.lock().unwrap().clone();
        host.kill();
        tokio::time::timeout(WAIT, task)
            .await
            .expect("the uploads did not end within 60 s of the kill")
            .expect("upload task");
        let unexpected = uploads.unexpected.lock().unwrap().clone();
        assert!(
            unexpected.is_empty(),
            "before kill {kill}, uploads failed: {unexpected:#?}"
        );
        let answered = uploads.acknowledged.lock().unwrap().clone();
        acknowledged.extend(answered.iter().cloned());

        host = Host::start(dir.path(), &[]);
        let versions = stored_versions(&http, &host, &token).await;
        let audited = uploads_audited(&http, &host, &token).await;

        let landed = match &cut {
            None => {
                between += 1;
                "between uploads".to_owned()
            }
            Some(v) if versions.contains_key(v) => {
                after_store += 1;
                format!("during {v}, stored")
            }
            Some(v) => {
                before_store += 1;
                format!("during {v}, not stored")
            }
        };
        println!(
            "kill {kill:2}: {:3} ms in, {} answered, {landed}",
            delay.as_millis(),
            answered.len()
        );

        let enabled: Vec<String> = versions
            .iter()
            .filter(|(_, on)| **on)
            .map(|(v, _)| v.clone())
            .collect();
        if enabled.len() > 1 && enabled != reported_enabled {
            violations.push(format!(
                "kill {kill} ({landed}): {} versions of {NAME} enabled: {enabled:?}",
                enabled.len()
            ));
            reported_enabled = enabled;
        }
        for version in versions.keys() {
            let target = format!("{NAME}@{version}");
            if !audited.contains(&target) && reported.insert(target.clone()) {
                violations.push(format!(
                    "kill {kill} ({landed}): {target} is stored without its plugin.upload audit entry"
                ));
            }
        }
        let lost: Vec<&String> = acknowledged
            .iter()
            .filter(|v| !versions.contains_key(*v))
            .collect();
        if !lost.is_empty() {
            violations.push(format!(
                "kill {kill} ({landed}): uploads answered 201 are gone: {lost:?}"
            ));
        }
    }

    host.stop();
    println!(
        "{KILLS} kills in {:.1} s: {before_store} during an upload before it was stored, \
         {after_store} during one after it was stored (before its answer), {between} between \
         uploads; {} versions tried, {} answered 201",
        began.elapsed().as_secs_f64(),
        next.load(Ordering::SeqCst),
        acknowledged.len(),
    );
    assert!(
        violations.is_empty(),
        "kills left partial uploads behind (seed {seed:#x}):\n{}",
        violations.join("\n")
    );
}

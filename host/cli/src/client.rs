//! The client subcommands: the HTTP API from a terminal.
//!
//! Human output by default, `--json` for scripts (the API's JSON as is).
//! Exit codes: 0 done; 1 the request was refused (a 4xx, or bad local
//! input such as a missing file); 3 the host could not be reached or failed
//! (a 5xx). Clap's usage errors exit 2.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::Path;
use std::time::Duration;

use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};

mod tenancy;
pub use tenancy::*;

/// Where the API is and who is calling; shared by every client subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct Remote {
    /// Base URL of the Reyna API.
    #[arg(long, env = "REYNA_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// API token [default: ./reyna-data/admin-token when that file exists].
    #[arg(long, env = "REYNA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the API's JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Why a CLI command failed, and the exit code it maps to.
#[derive(Debug)]
pub struct CommandError {
    /// 1: refused or bad input; 3: unreachable or host failure.
    pub code: u8,
    /// What to print (after `error: `).
    pub message: String,
}

impl CommandError {
    fn local(message: impl Into<String>) -> Self {
        CommandError {
            code: 1,
            message: message.into(),
        }
    }
}

type Result<T, E = CommandError> = std::result::Result<T, E>;

/// A connection to the API.
#[derive(Debug)]
pub struct Api {
    client: Client,
    base: String,
    token: Option<String>,
    /// Print JSON.
    pub json: bool,
}

impl Api {
    /// Builds a client for `remote` (reads the default token file if needed).
    pub fn new(remote: &Remote) -> Result<Self> {
        // reqwest is built without a bundled crypto provider; use ring's.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| CommandError {
                code: 3,
                message: format!("cannot build an HTTP client: {e}"),
            })?;
        let token = remote.token.clone().or_else(|| {
            std::fs::read_to_string(Path::new("reyna-data").join("admin-token"))
                .ok()
                .map(|s| s.trim().to_owned())
        });
        Ok(Api {
            client,
            base: remote.url.trim_end_matches('/').to_owned(),
            token,
            json: remote.json,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        let builder = self.client.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    fn get(&self, path: &str) -> RequestBuilder {
        self.request(reqwest::Method::GET, path)
    }

    fn post(&self, path: &str) -> RequestBuilder {
        self.request(reqwest::Method::POST, path)
    }

    fn put(&self, path: &str) -> RequestBuilder {
        self.request(reqwest::Method::PUT, path)
    }

    fn delete(&self, path: &str) -> RequestBuilder {
        self.request(reqwest::Method::DELETE, path)
    }

    fn patch(&self, path: &str) -> RequestBuilder {
        self.request(reqwest::Method::PATCH, path)
    }

    /// Sends, then prints the reply: as JSON with `--json`, else as `text`
    /// renders it.
    async fn show(
        &self,
        request: RequestBuilder,
        text: impl FnOnce(&Value) -> String,
    ) -> Result<()> {
        let reply = self.send_json(request).await?;
        if self.json {
            self.print_json(&reply);
        } else {
            print!("{}", text(&reply));
        }
        Ok(())
    }

    /// Sends and turns transport failures and error statuses into a [`CommandError`].
    async fn send(&self, request: RequestBuilder) -> Result<Response> {
        let response = request.send().await.map_err(|e| CommandError {
            code: 3,
            message: format!(
                "cannot reach the Reyna API at {}: {}",
                self.base,
                error_chain(&e)
            ),
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        Err(problem_failure(status, &body))
    }

    async fn send_json(&self, request: RequestBuilder) -> Result<Value> {
        let response = self.send(request).await?;
        response.json::<Value>().await.map_err(|e| CommandError {
            code: 3,
            message: format!("the API answered with something that is not JSON: {e}"),
        })
    }

    fn print_json(&self, value: &Value) {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let _ = write!(text, ": {s}");
        source = s.source();
    }
    text
}

/// Renders an error response, problem+json or not.
fn problem_failure(status: StatusCode, body: &[u8]) -> CommandError {
    let code = if status.is_server_error() { 3 } else { 1 };
    let Ok(problem) = serde_json::from_slice::<Value>(body) else {
        return CommandError {
            code,
            message: format!("{status}: {}", String::from_utf8_lossy(body).trim()),
        };
    };
    let title = problem["title"].as_str().unwrap_or("request failed");
    let detail = problem["detail"].as_str().unwrap_or_default();
    let mut message = format!("{title} ({})", status.as_u16());
    let errors = problem["errors"].as_array().filter(|e| !e.is_empty());
    if errors.is_none() {
        let _ = write!(message, ": {detail}");
    }
    if let Some(errors) = errors {
        for e in errors {
            let pointer = e["pointer"].as_str().unwrap_or_default();
            let _ = write!(
                message,
                "\n  at {} ({}): {}",
                if pointer.is_empty() { "/" } else { pointer },
                e["rule"].as_str().unwrap_or_default(),
                e["message"].as_str().unwrap_or_default()
            );
        }
    }
    CommandError { code, message }
}

/// Percent-encodes a query parameter value.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'*') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn read_input(file: &Path) -> Result<Vec<u8>> {
    if file == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| CommandError::local(format!("cannot read stdin: {e}")))?;
        Ok(bytes)
    } else {
        std::fs::read(file)
            .map_err(|e| CommandError::local(format!("cannot read {}: {e}", file.display())))
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("-")
}

// ---- plugins ---------------------------------------------------------------

/// `reyna plugin push FILE.wasm [--install all|opt-in]`: the install policy
/// says which tenants run a global plugin (the operator's choice; a
/// tenant's own plugin takes none).
pub async fn plugin_push(api: &Api, file: &Path, install: Option<&str>) -> Result<()> {
    let bytes = read_input(file)?;
    let total = bytes.len() as u64;
    // A byte progress bar on a terminal; hidden when stderr is not one.
    let bar = indicatif::ProgressBar::new(total).with_style(
        indicatif::ProgressStyle::with_template("uploading {msg} {bar:30} {bytes}/{total_bytes}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(file.display().to_string());
    let chunks: Vec<Vec<u8>> = bytes.chunks(64 * 1024).map(<[u8]>::to_vec).collect();
    let progress = bar.clone();
    let stream = futures_util::stream::iter(chunks.into_iter().map(move |chunk| {
        progress.inc(chunk.len() as u64);
        Ok::<_, std::io::Error>(chunk)
    }));
    let path = match install {
        Some(policy) => format!("/v1/plugins?install={}", encode(policy)),
        None => "/v1/plugins".to_owned(),
    };
    let request = api
        .post(&path)
        .header("content-type", "application/wasm")
        .header("content-length", total.to_string())
        .body(reqwest::Body::wrap_stream(stream));
    let reply = api.send_json(request).await;
    bar.finish_and_clear();
    let reply = reply?;
    if api.json {
        api.print_json(&reply);
    } else {
        let p = &reply["plugin"];
        let id = format!("{}@{}", str_of(p, "name"), str_of(p, "version"));
        let scope = match (p["owner"].as_str(), p["install"].as_str()) {
            (Some(owner), _) => format!(", for tenant {owner} only"),
            (None, Some("opt-in")) => ", installed for tenants that opt in".to_owned(),
            (None, Some(policy)) => format!(", installed for {policy} tenants"),
            (None, None) => String::new(),
        };
        if reply["created"] == true {
            println!("uploaded {id} ({}, enabled{scope})", str_of(p, "kind"));
        } else {
            println!("{id} was already uploaded with these bytes; nothing changed");
        }
    }
    Ok(())
}

/// `reyna plugin ls`.
pub async fn plugin_ls(api: &Api) -> Result<()> {
    let reply = api.send_json(api.get("/v1/plugins")).await?;
    if api.json {
        api.print_json(&reply);
        return Ok(());
    }
    let plugins = reply.as_array().cloned().unwrap_or_default();
    if plugins.is_empty() {
        println!("no plugins");
        return Ok(());
    }
    println!(
        "{:<20} {:<10} {:<10} {:<9} {:>7} {:>7} {:>7}  DIGEST",
        "NAME", "VERSION", "KIND", "STATE", "CALLS", "FAILED", "DEAD"
    );
    for p in plugins {
        let stats = &p["stats"];
        let state = if p["enabled"] == true {
            "enabled"
        } else if stats["paused_reason"].is_string() {
            "paused"
        } else {
            "disabled"
        };
        // The digest's hex, shortened (the listing's column).
        let digest = str_of(&p, "digest")
            .parse::<reyna_types::Digest>()
            .map(|d| d.hex())
            .unwrap_or_default();
        println!(
            "{:<20} {:<10} {:<10} {:<9} {:>7} {:>7} {:>7}  {}",
            str_of(&p, "name"),
            str_of(&p, "version"),
            str_of(&p, "kind"),
            state,
            stats["calls"].to_string(),
            stats["failed"].to_string(),
            stats["dead_lettered"].to_string(),
            &digest[..digest.len().min(12)]
        );
    }
    Ok(())
}

/// `NAME@VERSION` as (name, version); `NAME` alone names the newest upload
/// of that name.
async fn plugin_version(api: &Api, plugin: &str) -> Result<(String, String)> {
    Ok(match plugin.split_once('@') {
        Some((name, version)) => (name.to_owned(), version.to_owned()),
        None => {
            let reply = api
                .send_json(api.get(&format!("/v1/plugins/{plugin}")))
                .await?;
            let newest = reply["versions"]
                .as_array()
                .and_then(|v| v.last())
                .cloned()
                .unwrap_or_default();
            (plugin.to_owned(), str_of(&newest, "version").to_owned())
        }
    })
}

/// `reyna plugin enable|disable NAME[@VERSION]`: without a version, the
/// newest upload of that name.
pub async fn plugin_set_enabled(api: &Api, plugin: &str, enabled: bool) -> Result<()> {
    let (name, version) = plugin_version(api, plugin).await?;
    let action = if enabled { "enable" } else { "disable" };
    let reply = api
        .send_json(api.post(&format!("/v1/plugins/{name}/{version}/{action}")))
        .await?;
    if api.json {
        api.print_json(&reply);
    } else {
        println!(
            "{name}@{version} {}",
            if reply["enabled"] == true {
                "enabled"
            } else {
                "disabled"
            }
        );
    }
    Ok(())
}

// ---- schemas ---------------------------------------------------------------

/// `reyna schema push FILE.json [--id ID]`; the id defaults to the file stem.
pub async fn schema_push(api: &Api, file: &Path, id: Option<String>) -> Result<()> {
    let id = match id {
        Some(id) => id,
        None => file
            .file_stem()
            .and_then(|s| s.to_str())
            .map(str::to_owned)
            .ok_or_else(|| {
                CommandError::local("pass --id: the file name does not give a schema id")
            })?,
    };
    let bytes = read_input(file)?;
    let schema: Value = serde_json::from_slice(&bytes)
        .map_err(|e| CommandError::local(format!("{} is not JSON: {e}", file.display())))?;
    let reply = api
        .send_json(
            api.post("/v1/schemas")
                .json(&json!({ "id": id, "schema": schema })),
        )
        .await?;
    if api.json {
        api.print_json(&reply);
    } else if reply["created"] == true {
        println!("registered schema {id}");
    } else {
        println!("schema {id} was already registered with this document; nothing changed");
    }
    Ok(())
}

// ---- blobs -----------------------------------------------------------------

/// `reyna blob put SCHEMA FILE|- [--parent ID]... [--wait DURATION]`.
pub async fn blob_put(
    api: &Api,
    schema: &str,
    file: &Path,
    parents: Vec<String>,
    wait: Option<String>,
) -> Result<()> {
    let bytes = read_input(file)?;
    let data: Value = serde_json::from_slice(&bytes).map_err(|e| {
        CommandError::local(format!(
            "{} is not JSON: {e}",
            if file == Path::new("-") {
                "stdin".into()
            } else {
                file.display().to_string()
            }
        ))
    })?;
    let body = json!({ "schema": schema, "data": data, "parents": parents });
    let blob = api.send_json(api.post("/v1/blobs").json(&body)).await?;
    let id = str_of(&blob, "id").to_owned();
    let derived = match &wait {
        Some(wait) => {
            // A spinner on a terminal while the host works; hidden otherwise.
            let spinner = indicatif::ProgressBar::new_spinner();
            if !api.json {
                spinner.set_message(format!("waiting up to {wait} for derived blobs"));
                spinner.enable_steady_tick(Duration::from_millis(120));
            }
            let derived = api
                .send_json(api.get(&format!("/v1/blobs/{id}/derived?wait={wait}")))
                .await;
            spinner.finish_and_clear();
            Some(derived?)
        }
        None => None,
    };
    if api.json {
        api.print_json(&json!({ "blob": blob, "derived": derived }));
        return Ok(());
    }
    println!("{id}");
    if let Some(derived) = derived {
        for child in derived["derived"].as_array().cloned().unwrap_or_default() {
            println!(
                "  -> {} {} {}",
                str_of(&child, "id"),
                str_of(&child, "schema"),
                producer_label(&child)
            );
        }
        if derived["settled"] != true {
            println!("  (some jobs are still pending or running)");
        }
    }
    Ok(())
}

/// `reyna blob get ID`: metadata on stderr, the data (pretty JSON) on stdout.
pub async fn blob_get(api: &Api, id: &str) -> Result<()> {
    let meta = api.send_json(api.get(&format!("/v1/blobs/{id}"))).await?;
    let data = api
        .send_json(api.get(&format!("/v1/blobs/{id}/data")))
        .await?;
    if api.json {
        api.print_json(&json!({ "blob": meta, "data": data }));
        return Ok(());
    }
    eprintln!(
        "{} {} {} bytes {}",
        str_of(&meta, "id"),
        str_of(&meta, "schema"),
        meta["size"],
        producer_label(&meta)
    );
    println!(
        "{}",
        serde_json::to_string_pretty(&data).unwrap_or_default()
    );
    Ok(())
}

fn producer_label(blob: &Value) -> String {
    let p = &blob["producer"];
    if p.is_null() {
        return "(ingested)".to_owned();
    }
    let wall = p["cost"]["wall_us"].as_u64().unwrap_or(0);
    format!(
        "by {}@{} attempt {} in {}",
        str_of(p, "plugin"),
        str_of(p, "version"),
        p["attempt"],
        humantime::format_duration(Duration::from_micros(wall))
    )
}

/// `reyna blob lineage ID`: ancestors and descendants as a tree.
pub async fn blob_lineage(api: &Api, id: &str, depth: u32) -> Result<()> {
    let graph = api
        .send_json(api.get(&format!(
            "/v1/blobs/{id}/lineage?direction=both&depth={depth}"
        )))
        .await?;
    if api.json {
        api.print_json(&graph);
    } else {
        print!("{}", render_lineage(&graph));
    }
    Ok(())
}

/// Renders a lineage graph: the root, what it was derived from (upwards),
/// and what was derived from it (downwards).
pub fn render_lineage(graph: &Value) -> String {
    let nodes: BTreeMap<&str, &Value> = graph["nodes"]
        .as_array()
        .map(|n| n.iter().map(|b| (str_of(b, "id"), b)).collect())
        .unwrap_or_default();
    let mut up: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut down: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for edge in graph["edges"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let (parent, child) = (str_of(edge, "parent"), str_of(edge, "child"));
        up.entry(child).or_default().push(parent);
        down.entry(parent).or_default().push(child);
    }
    let label = |id: &str| match nodes.get(id) {
        Some(b) => format!("{id} {} {}", str_of(b, "schema"), producer_label(b)),
        None => id.to_owned(),
    };
    let root = str_of(graph, "root");
    let mut out = format!("{}\n", label(root));
    if up.contains_key(root) {
        out.push_str("derived from:\n");
        let mut seen = HashSet::new();
        tree(&mut out, root, &up, &label, "", &mut seen);
    }
    if down.contains_key(root) {
        out.push_str("derived:\n");
        let mut seen = HashSet::new();
        tree(&mut out, root, &down, &label, "", &mut seen);
    }
    if graph["truncated"] == true {
        out.push_str("(truncated: the graph is larger than the host returns at once)\n");
    }
    out
}

fn tree<'a>(
    out: &mut String,
    node: &'a str,
    links: &BTreeMap<&'a str, Vec<&'a str>>,
    label: &dyn Fn(&str) -> String,
    indent: &str,
    seen: &mut HashSet<&'a str>,
) {
    let next = links.get(node).cloned().unwrap_or_default();
    for (i, n) in next.iter().enumerate() {
        let last = i + 1 == next.len();
        let repeated = !seen.insert(n);
        let _ = writeln!(
            out,
            "{indent}{}{}{}",
            if last { "└── " } else { "├── " },
            label(n),
            if repeated { " (shown above)" } else { "" }
        );
        if !repeated {
            let deeper = format!("{indent}{}", if last { "    " } else { "│   " });
            tree(out, n, links, label, &deeper, seen);
        }
    }
}

// ---- events ----------------------------------------------------------------

/// `reyna events [PATTERN]`: follows the live stream, reconnecting (with
/// `Last-Event-ID`) when it drops, until interrupted.
pub async fn events(api: &Api, pattern: Option<String>, after: Option<u64>) -> Result<()> {
    let mut last: Option<u64> = after;
    let pattern = pattern.unwrap_or_else(|| ">".to_owned());
    let mut failures = 0u32;
    loop {
        let mut request = api.get(&format!("/v1/events?subject={}", encode(&pattern)));
        if let Some(seq) = last {
            request = request.header("last-event-id", seq.to_string());
        }
        let mut response = match api.send(request).await {
            Ok(r) => r,
            // Refusals are final; a host that went away is retried.
            Err(f) if f.code == 1 || failures >= 30 => return Err(f),
            Err(f) => {
                failures += 1;
                eprintln!("{}; retrying", f.message);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        failures = 0;
        let mut buf = String::new();
        loop {
            let chunk = match response.chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) | Err(_) => break,
            };
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let (mut id, mut kind, mut data) = (None, None, String::new());
                for line in block.lines() {
                    if let Some((k, v)) = line.split_once(':') {
                        let v = v.strip_prefix(' ').unwrap_or(v);
                        match k {
                            "id" => id = v.parse::<u64>().ok(),
                            "event" => kind = Some(v.to_owned()),
                            "data" => data.push_str(v),
                            _ => {}
                        }
                    }
                }
                if kind.as_deref() == Some("lagged") {
                    eprintln!("fell behind the host; resuming");
                    continue;
                }
                if data.is_empty() {
                    continue;
                }
                if let Some(id) = id {
                    last = Some(id);
                }
                if api.json {
                    println!("{data}");
                } else if let Ok(event) = serde_json::from_str::<Value>(&data) {
                    println!(
                        "{:>8} {:<40} {}",
                        event["seq"].to_string(),
                        str_of(&event, "subject"),
                        str_of(&event, "blob_id")
                    );
                }
            }
        }
        eprintln!("the event stream ended; reconnecting");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `reyna blob rerun ID NAME[@VERSION] [--replay-effects]` (admin).
pub async fn blob_rerun(api: &Api, id: &str, plugin: &str, replay_effects: bool) -> Result<()> {
    let (name, version) = plugin_version(api, plugin).await?;
    let body = json!({ "plugin": name, "version": version, "replay_effects": replay_effects });
    let job = api
        .send_json(api.post(&format!("/v1/blobs/{id}/rerun")).json(&body))
        .await?;
    if api.json {
        api.print_json(&job);
    } else {
        println!(
            "re-running {name}@{version} on {id}: job {} is pending{}",
            str_of(&job, "id"),
            if replay_effects {
                ", replaying recorded effects"
            } else {
                ""
            }
        );
    }
    Ok(())
}

// ---- dead letters ----------------------------------------------------------

/// `reyna dead-letters`.
pub async fn dead_letters(api: &Api) -> Result<()> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/dead-letters?limit=1000&cursor={}", encode(c)),
            None => "/v1/dead-letters?limit=1000".to_owned(),
        };
        let page = api.send_json(api.get(&path)).await?;
        items.extend(page["items"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    if api.json {
        api.print_json(&Value::Array(items));
        return Ok(());
    }
    if items.is_empty() {
        println!("no dead letters");
        return Ok(());
    }
    println!(
        "{:<26} {:<24} {:>7} {:<9} REASON",
        "ID", "PLUGIN", "ATTEMPT", "STATE"
    );
    for d in items {
        let job = &d["job"];
        println!(
            "{:<26} {:<24} {:>7} {:<9} {}",
            str_of(&d, "id"),
            format!("{}@{}", str_of(job, "plugin"), str_of(job, "version")),
            job["attempt"].to_string(),
            if d["replayed_at"].is_null() {
                "dead"
            } else {
                "replayed"
            },
            str_of(&d, "reason")
        );
    }
    Ok(())
}

/// `reyna dead-letters replay ID`.
pub async fn replay(api: &Api, id: &str) -> Result<()> {
    let job = api
        .send_json(api.post(&format!("/v1/dead-letters/{id}/replay")))
        .await?;
    if api.json {
        api.print_json(&job);
    } else {
        println!(
            "replayed {id}: job {} of {}@{} is pending as attempt {}",
            str_of(&job, "id"),
            str_of(&job, "plugin"),
            str_of(&job, "version"),
            job["attempt"]
        );
    }
    Ok(())
}

// ---- jobs ------------------------------------------------------------------

/// `reyna job logs ID`: what a job's plugin logged, per attempt.
pub async fn job_logs(api: &Api, id: &str) -> Result<()> {
    let logs = api
        .send_json(api.get(&format!("/v1/jobs/{}/logs", encode(id))))
        .await?;
    if api.json {
        api.print_json(&logs);
        return Ok(());
    }
    let attempts = logs.as_array().cloned().unwrap_or_default();
    if attempts.is_empty() {
        println!("job {id} logged nothing");
        return Ok(());
    }
    for attempt in attempts {
        println!("-- attempt {}", attempt["attempt"]);
        for line in attempt["lines"].as_array().cloned().unwrap_or_default() {
            println!("{:<5} {}", str_of(&line, "level"), str_of(&line, "message"));
        }
        if attempt["truncated"] == true {
            println!("(more lines were dropped: the plugin's log limit was reached)");
        }
    }
    Ok(())
}

/// Runs one client command on a fresh runtime.
pub fn block_on<F: std::future::Future<Output = Result<()>>>(future: F) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CommandError {
            code: 3,
            message: format!("cannot start tokio: {e}"),
        })?;
    runtime.block_on(future)
}

//! `reyna plugin inspect`.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use reyna_manifest::ComponentInfo;
use reyna_types::Digest;

/// Reads `file`, checks it is a Reyna plugin, prints what it declares.
pub fn run(file: &Path, json: bool) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let info = reyna_manifest::inspect(&bytes)
        .with_context(|| format!("{} is not a Reyna plugin", file.display()))?;
    let digest = Digest::of(&bytes);
    let out = if json {
        let value = serde_json::json!({
            "manifest": info.manifest,
            "world": info.manifest.kind.world(),
            "imports": info.imports,
            "exports": info.exports,
            "digest": digest,
            "size": bytes.len(),
        });
        format!("{}\n", serde_json::to_string_pretty(&value)?)
    } else {
        render(&info, &digest, bytes.len())
    };
    print!("{out}");
    Ok(())
}

fn list(items: impl IntoIterator<Item = impl std::fmt::Display>) -> String {
    let items: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(", ")
    }
}

fn render(info: &ComponentInfo, digest: &Digest, size: usize) -> String {
    let m = &info.manifest;
    let l = &m.limits;
    let or_default = |v: Option<String>| v.unwrap_or_else(|| "host default".to_owned());
    let mut s = String::new();
    let _ = writeln!(s, "name:          {}", m.name);
    let _ = writeln!(s, "version:       {}", m.version);
    let _ = writeln!(s, "kind:          {}", m.kind);
    if let Some(d) = &m.description {
        let _ = writeln!(s, "description:   {d}");
    }
    let _ = writeln!(s, "world:         {}", m.kind.world());
    let _ = writeln!(s, "subscribes:    {}", list(&m.subscribes));
    let _ = writeln!(s, "inputs:        {}", list(&m.inputs));
    let _ = writeln!(s, "outputs:       {}", list(&m.outputs));
    let _ = writeln!(s, "effects:       {}", list(&m.effects));
    let _ = writeln!(s, "allowed-hosts: {}", list(&m.allowed_hosts));
    let _ = writeln!(s, "limits:");
    let _ = writeln!(
        s,
        "  memory:           {}",
        or_default(l.memory.map(|b| humanize_bytes(b.0)))
    );
    let _ = writeln!(
        s,
        "  timeout:          {}",
        or_default(l.timeout.map(|t| format!("{:?}", t.0)))
    );
    let _ = writeln!(
        s,
        "  max-concurrency:  {}",
        or_default(l.max_concurrency.map(|v| v.to_string()))
    );
    let _ = writeln!(
        s,
        "  max-outputs:      {}",
        or_default(l.max_outputs.map(|v| v.to_string()))
    );
    let _ = writeln!(
        s,
        "  max-output-bytes: {}",
        or_default(l.max_output_bytes.map(|b| humanize_bytes(b.0)))
    );
    let _ = writeln!(
        s,
        "  max-retries:      {}",
        or_default(l.max_retries.map(|v| v.to_string()))
    );
    let _ = writeln!(s, "imports:       {}", list(&info.imports));
    let _ = writeln!(s, "exports:       {}", list(&info.exports));
    let _ = writeln!(s, "digest:        {digest}");
    let _ = writeln!(s, "size:          {size} bytes");
    s
}

fn humanize_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 && n % (1 << 30) == 0 => format!("{}GiB", n >> 30),
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{}MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{}KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}

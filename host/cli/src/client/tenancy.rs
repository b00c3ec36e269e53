//! The tenancy commands: tenants, installations, secrets, tokens and the
//! audit log.

#[allow(clippy::wildcard_imports)]
use super::*;

// ---- tenants, installations, secrets, tokens, audit -------------------------

/// A unix-ms timestamp as RFC 3339 (UTC, seconds).
fn when(ms: &Value) -> String {
    match ms.as_u64() {
        Some(ms) => {
            humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_millis(ms))
                .to_string()
        }
        None => "-".to_owned(),
    }
}

/// `reyna whoami`.
pub async fn whoami(api: &Api) -> Result<()> {
    api.show(api.get("/v1/me"), |me| {
        format!(
            "{} of tenant {} (token {})\n",
            str_of(me, "role"),
            str_of(me, "tenant"),
            str_of(me, "token_id")
        )
    })
    .await
}

/// `--tenant`, or the calling token's own tenant.
async fn tenant_or_own(api: &Api, tenant: Option<String>) -> Result<String> {
    match tenant {
        Some(tenant) => Ok(tenant),
        None => {
            let me = api.send_json(api.get("/v1/me")).await?;
            Ok(str_of(&me, "tenant").to_owned())
        }
    }
}

fn tenant_rows(tenants: &[Value]) -> String {
    let mut out = format!("{:<24} {:<24} {:<21} STATE\n", "ID", "NAME", "CREATED");
    for t in tenants {
        let state = match &t["deleted_at"] {
            Value::Null => "live".to_owned(),
            at => format!("deleted {}", when(at)),
        };
        let _ = writeln!(
            out,
            "{:<24} {:<24} {:<21} {state}",
            str_of(t, "id"),
            t["name"].as_str().unwrap_or_default(),
            when(&t["created_at"])
        );
    }
    out
}

/// `reyna tenant create ID [--name NAME]` (operator).
pub async fn tenant_create(api: &Api, id: &str, name: Option<String>) -> Result<()> {
    let mut body = json!({ "id": id });
    if let Some(name) = name {
        body["name"] = Value::String(name);
    }
    api.show(api.post("/v1/tenants").json(&body), |t| {
        format!("created tenant {}\n", str_of(t, "id"))
    })
    .await
}

/// `reyna tenant ls` (operator).
pub async fn tenant_ls(api: &Api) -> Result<()> {
    api.show(api.get("/v1/tenants"), |list| {
        tenant_rows(list.as_array().map(Vec::as_slice).unwrap_or_default())
    })
    .await
}

/// `reyna tenant get ID`.
pub async fn tenant_get(api: &Api, id: &str) -> Result<()> {
    let path = format!("/v1/tenants/{}", encode(id));
    api.show(api.get(&path), |t| tenant_rows(std::slice::from_ref(t)))
        .await
}

/// A tenant's quotas: what is set for it, what is in force, what it holds.
fn quota_text(t: &Value) -> String {
    let mut out = format!("tenant {}\n", str_of(t, "id"));
    let fields = [
        ("blobs_per_second", "blobs per second"),
        ("blob_burst", "blob burst"),
        ("stored_bytes", "stored bytes"),
        ("queued_jobs", "queued jobs"),
        ("running_jobs", "running jobs"),
        ("share", "share"),
        ("effect_calls_per_day", "effect calls per day"),
    ];
    let (set, effective) = (&t["quotas"], &t["effective_quotas"]);
    let shown = |v: &Value| match v {
        Value::Null => "-".to_owned(),
        v => v.to_string(),
    };
    let _ = writeln!(out, "{:<22} {:>14} {:>14}", "QUOTA", "OVERRIDE", "IN FORCE");
    for (key, label) in fields {
        let _ = writeln!(
            out,
            "{label:<22} {:>14} {:>14}",
            shown(&set[key]),
            shown(&effective[key])
        );
    }
    if let Some(budgets) = effective["budgets"].as_object() {
        for (unit, b) in budgets {
            let _ = writeln!(
                out,
                "budget {unit:<15} {:>14} {:>14}",
                format!("{}/day", shown(&b["per_day"])),
                format!("{}/month", shown(&b["per_month"]))
            );
        }
    }
    let held = &t["holdings"];
    let _ = writeln!(
        out,
        "holds: {} bytes stored, {} jobs waiting, {} running",
        held["stored_bytes"], held["queued_jobs"], held["running_jobs"]
    );
    out
}

/// `reyna tenant quotas ID [--set JSON]`: prints a tenant's quotas, or
/// (operator) replaces its overrides with `set` (`{}`: the defaults).
pub async fn tenant_quotas(api: &Api, id: &str, set: Option<String>) -> Result<()> {
    let path = format!("/v1/tenants/{}", encode(id));
    if let Some(set) = set {
        let quotas: Value = serde_json::from_str(&set).map_err(|e| {
            CommandError::local(format!("--set must be a JSON object of quotas: {e}"))
        })?;
        api.send_json(
            api.patch(&path)
                .json(&serde_json::json!({ "quotas": quotas })),
        )
        .await?;
    }
    api.show(api.get(&path), quota_text).await
}

/// `reyna usage`: a tenant's metered usage per hour, day or month.
pub async fn usage(
    api: &Api,
    tenant: Option<String>,
    granularity: &str,
    from: Option<u64>,
    to: Option<u64>,
) -> Result<()> {
    let mut query = vec![format!("granularity={}", encode(granularity))];
    if let Some(tenant) = tenant {
        query.push(format!("tenant={}", encode(&tenant)));
    }
    if let Some(from) = from {
        query.push(format!("from={from}"));
    }
    if let Some(to) = to {
        query.push(format!("to={to}"));
    }
    api.show(api.get(&format!("/v1/usage?{}", query.join("&"))), |u| {
        let mut out = format!(
            "{:<21} {:>8} {:>8} {:>12} {:>8} {:>7} {:>10} {:>10} {:>8} UNITS\n",
            "PERIOD", "BLOBS", "DERIVED", "BYTES", "JOBS", "FAILED", "WALL ms", "CPU ms", "EFFECTS"
        );
        let row = |out: &mut String, label: String, p: &Value| {
            let units = p["units"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            let ms = |key: &str| p[key].as_u64().unwrap_or(0) / 1000;
            let _ = writeln!(
                out,
                "{label:<21} {:>8} {:>8} {:>12} {:>8} {:>7} {:>10} {:>10} {:>8} {units}",
                p["blobs_created"],
                p["blobs_derived"],
                p["bytes_stored"],
                p["jobs_run"],
                p["jobs_failed"],
                ms("wall_us"),
                ms("cpu_us"),
                p["effect_calls"]
            );
        };
        let periods = u["periods"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        for p in periods {
            row(&mut out, when(&p["start"]), p);
        }
        row(&mut out, "total".to_owned(), &u["total"]);
        let _ = writeln!(
            out,
            "tenant {}, per {}",
            str_of(u, "tenant"),
            str_of(u, "granularity")
        );
        out
    })
    .await
}

/// `reyna tenant rm ID` (operator): revokes its tokens, removes its
/// installations, disables its own plugins.
pub async fn tenant_rm(api: &Api, id: &str) -> Result<()> {
    let path = format!("/v1/tenants/{}", encode(id));
    api.show(api.delete(&path), |done| {
        format!(
            "deleted tenant {id}: {} tokens revoked, {} installations removed, {} own plugin versions disabled\n",
            done["tokens"], done["installations"], done["plugins"]
        )
    })
    .await
}

fn installation_path(tenant: &str, plugin: &str) -> String {
    format!(
        "/v1/tenants/{}/installations/{}",
        encode(tenant),
        encode(plugin)
    )
}

fn installation_state(i: &Value) -> &'static str {
    match (i["enabled"] == true, i["paused"].is_null()) {
        (true, true) => "enabled",
        (true, false) => "paused",
        (false, _) => "disabled",
    }
}

/// An installation, in full (never a secret's value: the API has none).
fn installation_text(i: &Value) -> String {
    let mut out = format!(
        "{} for tenant {}: {} ({})\nconfig digest: {}\n",
        str_of(i, "plugin"),
        str_of(i, "tenant"),
        installation_state(i),
        if i["explicit"] == true {
            "set by the tenant"
        } else {
            "the plugin's install policy"
        },
        str_of(i, "config_digest")
    );
    let config = i["config"].as_object().filter(|c| !c.is_empty());
    out.push_str(if config.is_some() {
        "config:\n"
    } else {
        "config: (none)\n"
    });
    for (key, value) in config.into_iter().flatten() {
        let _ = writeln!(out, "  {key} = {}", value.as_str().unwrap_or_default());
    }
    let secrets = i["secrets"].as_array().filter(|s| !s.is_empty());
    out.push_str(if secrets.is_some() {
        "secrets:\n"
    } else {
        "secrets: (none)\n"
    });
    for s in secrets.into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {:<24} {:<5} version {:<4} updated {}",
            str_of(s, "name"),
            if s["set"] == true { "set" } else { "unset" },
            s["version"],
            when(&s["updated_at"])
        );
    }
    let p = &i["paused"];
    if !p.is_null() {
        let _ = writeln!(
            out,
            "paused since {} ({}@{}): {}\n  next probe at {} (backoff {})",
            when(&p["since"]),
            str_of(i, "plugin"),
            str_of(p, "version"),
            str_of(p, "reason"),
            when(&p["probe_at"]),
            humantime::format_duration(Duration::from_millis(
                p["backoff_ms"].as_u64().unwrap_or(0)
            ))
        );
    }
    out
}

/// `reyna install ls [--tenant T]`.
pub async fn install_ls(api: &Api, tenant: Option<String>) -> Result<()> {
    let tenant = tenant_or_own(api, tenant).await?;
    let path = format!("/v1/tenants/{}/installations", encode(&tenant));
    api.show(api.get(&path), |list| {
        let mut out = format!(
            "{:<24} {:<9} {:<8} {:>6} {:>7}\n",
            "PLUGIN", "STATE", "CHOSEN", "CONFIG", "SECRETS"
        );
        for i in list.as_array().map(Vec::as_slice).unwrap_or_default() {
            let _ = writeln!(
                out,
                "{:<24} {:<9} {:<8} {:>6} {:>7}",
                str_of(i, "plugin"),
                installation_state(i),
                if i["explicit"] == true {
                    "tenant"
                } else {
                    "default"
                },
                i["config"].as_object().map_or(0, serde_json::Map::len),
                i["secrets"]
                    .as_array()
                    .map_or(0, |s| { s.iter().filter(|s| s["set"] == true).count() })
            );
        }
        out
    })
    .await
}

/// `reyna install get PLUGIN [--tenant T]`.
pub async fn install_get(api: &Api, plugin: &str, tenant: Option<String>) -> Result<()> {
    let tenant = tenant_or_own(api, tenant).await?;
    let path = installation_path(&tenant, plugin);
    api.show(api.get(&path), installation_text).await
}

/// `reyna install enable|disable PLUGIN [--tenant T]`.
pub async fn install_set_enabled(
    api: &Api,
    plugin: &str,
    tenant: Option<String>,
    enabled: bool,
) -> Result<()> {
    let tenant = tenant_or_own(api, tenant).await?;
    let path = installation_path(&tenant, plugin);
    let request = api.put(&path).json(&json!({ "enabled": enabled }));
    api.show(request, |i| {
        format!("{plugin} {} for tenant {tenant}\n", installation_state(i))
    })
    .await
}

/// `reyna install config PLUGIN KEY=VALUE... | --clear [--tenant T]`:
/// replaces the installation's plain config.
pub async fn install_config(
    api: &Api,
    plugin: &str,
    tenant: Option<String>,
    pairs: &[String],
) -> Result<()> {
    let mut config = serde_json::Map::new();
    for pair in pairs {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| CommandError::local(format!("`{pair}` is not KEY=VALUE")))?;
        if config
            .insert(key.to_owned(), Value::String(value.to_owned()))
            .is_some()
        {
            return Err(CommandError::local(format!("`{key}` is given twice")));
        }
    }
    let tenant = tenant_or_own(api, tenant).await?;
    let path = format!("{}/config", installation_path(&tenant, plugin));
    let request = api.put(&path).json(&json!({ "config": config }));
    api.show(request, installation_text).await
}

/// A secret's value: the first line of stdin (not echoed on a terminal) or
/// a file's content, without its trailing newline. Never an argument: a
/// value on the command line ends up in shell history and `ps`.
fn read_secret(key: &str, from_file: Option<&Path>) -> Result<String> {
    use std::io::IsTerminal as _;
    let mut raw = String::new();
    match from_file {
        Some(path) => {
            raw = std::fs::read_to_string(path)
                .map_err(|e| CommandError::local(format!("cannot read {}: {e}", path.display())))?;
        }
        None => {
            let stdin = std::io::stdin();
            let terminal = stdin.is_terminal();
            if terminal {
                eprint!("value of secret {key} (not shown): ");
                stty("-echo");
            }
            let read = stdin.read_line(&mut raw);
            if terminal {
                stty("echo");
                eprintln!();
            }
            read.map_err(|e| CommandError::local(format!("cannot read stdin: {e}")))?;
        }
    }
    let value = raw.strip_suffix('\n').unwrap_or(&raw);
    let value = value.strip_suffix('\r').unwrap_or(value);
    if value.is_empty() {
        return Err(CommandError::local(
            "no secret value: give it on stdin or with --from-file (`reyna secret rm` removes one)",
        ));
    }
    Ok(value.to_owned())
}

/// Turns the terminal's echo on or off; best effort (no `stty`, no change).
fn stty(setting: &str) {
    let _ = std::process::Command::new("stty")
        .arg(setting)
        .stdin(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::null())
        .status();
}

/// `reyna secret set PLUGIN KEY [--from-file PATH] [--tenant T]`: prints
/// the secret's new version, never its value.
pub async fn secret_set(
    api: &Api,
    plugin: &str,
    key: &str,
    tenant: Option<String>,
    from_file: Option<&Path>,
) -> Result<()> {
    let value = read_secret(key, from_file)?;
    let tenant = tenant_or_own(api, tenant).await?;
    let path = format!(
        "{}/secrets/{}",
        installation_path(&tenant, plugin),
        encode(key)
    );
    let request = api.put(&path).json(&json!({ "value": value }));
    api.show(request, |i| {
        let version = i["secrets"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == key))
            .map_or(Value::Null, |s| s["version"].clone());
        format!("secret {key} of {plugin} for tenant {tenant} is at version {version}\n")
    })
    .await
}

/// `reyna secret rm PLUGIN KEY [--tenant T]`.
pub async fn secret_rm(api: &Api, plugin: &str, key: &str, tenant: Option<String>) -> Result<()> {
    let tenant = tenant_or_own(api, tenant).await?;
    let path = format!(
        "{}/secrets/{}",
        installation_path(&tenant, plugin),
        encode(key)
    );
    api.show(api.delete(&path), |_| {
        format!("removed secret {key} of {plugin} for tenant {tenant}\n")
    })
    .await
}

/// `reyna secret rotate-master-key` (operator).
pub async fn rotate_master_key(api: &Api) -> Result<()> {
    api.show(api.post("/v1/secrets/rotate-master-key"), |r| {
        let key = r["key_id"].as_str().map_or_else(
            || "a new master key".to_owned(),
            |id| format!("master key {id}"),
        );
        format!(
            "re-encrypted {} secret versions under {key}\n",
            r["resealed"]
        )
    })
    .await
}

/// `reyna token create --role R --name N [--tenant T]`: the secret alone on
/// stdout (shown this once), what it is on stderr.
pub async fn token_create(api: &Api, role: &str, name: &str, tenant: Option<String>) -> Result<()> {
    let mut body = json!({ "role": role, "name": name });
    if let Some(tenant) = tenant {
        body["tenant"] = Value::String(tenant);
    }
    let reply = api.send_json(api.post("/v1/tokens").json(&body)).await?;
    if api.json {
        api.print_json(&reply);
        return Ok(());
    }
    let t = &reply["token"];
    eprintln!(
        "created {} token {} for tenant {}; its secret is shown this once:",
        str_of(t, "role"),
        str_of(t, "id"),
        str_of(t, "tenant")
    );
    println!("{}", str_of(&reply, "secret"));
    Ok(())
}

/// `reyna token ls [--tenant T]`.
pub async fn token_ls(api: &Api, tenant: Option<String>) -> Result<()> {
    let path = match tenant {
        Some(t) => format!("/v1/tokens?tenant={}", encode(&t)),
        None => "/v1/tokens".to_owned(),
    };
    api.show(api.get(&path), |list| {
        let mut out = format!(
            "{:<26} {:<20} {:<8} {:<21} NAME\n",
            "ID", "TENANT", "ROLE", "CREATED"
        );
        for t in list.as_array().map(Vec::as_slice).unwrap_or_default() {
            let _ = writeln!(
                out,
                "{:<26} {:<20} {:<8} {:<21} {}",
                str_of(t, "id"),
                str_of(t, "tenant"),
                str_of(t, "role"),
                when(&t["created_at"]),
                t["name"].as_str().unwrap_or_default()
            );
        }
        out
    })
    .await
}

/// `reyna token rm ID`.
pub async fn token_rm(api: &Api, id: &str) -> Result<()> {
    api.send(api.delete(&format!("/v1/tokens/{}", encode(id))))
        .await?;
    if api.json {
        api.print_json(&json!({ "id": id, "revoked": true }));
    } else {
        println!("revoked token {id}");
    }
    Ok(())
}

/// `reyna audit [--tenant T] [--after N] [--limit N]`: one page, oldest first.
pub async fn audit(
    api: &Api,
    tenant: Option<String>,
    after: Option<u64>,
    limit: Option<usize>,
) -> Result<()> {
    let mut query = vec![format!("after={}", after.unwrap_or(0))];
    if let Some(limit) = limit {
        query.push(format!("limit={limit}"));
    }
    if let Some(tenant) = tenant {
        query.push(format!("tenant={}", encode(&tenant)));
    }
    api.show(api.get(&format!("/v1/audit?{}", query.join("&"))), |list| {
        let entries = list.as_array().map(Vec::as_slice).unwrap_or_default();
        if entries.is_empty() {
            return "no audit entries\n".to_owned();
        }
        let mut out = format!(
            "{:>6} {:<21} {:<32} {:<16} {:<28} {:<28} {:<8} DETAIL\n",
            "SEQ", "AT", "ACTOR", "TENANT", "ACTION", "TARGET", "OUTCOME"
        );
        for e in entries {
            let _ = writeln!(
                out,
                "{:>6} {:<21} {:<32} {:<16} {:<28} {:<28} {:<8} {}",
                e["seq"].to_string(),
                when(&e["at"]),
                str_of(e, "actor"),
                str_of(e, "tenant"),
                str_of(e, "action"),
                str_of(e, "target"),
                str_of(e, "outcome"),
                e["detail"].as_str().unwrap_or_default()
            );
        }
        if let Some(last) = entries.last() {
            let _ = writeln!(out, "(next page: --after {})", last["seq"]);
        }
        out
    })
    .await
}

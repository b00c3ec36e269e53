//! Who may call what (issue 19): a table of every operation in the OpenAPI
//! document × caller (no token, reader, writer, admin of `acme`, the
//! operator of a third tenant `platform`) × target (acme's resource,
//! globex's) -> expected status, generated from one rule per operation and
//! asserted with real requests. A new route without a rule fails the test.
//! Then what the table cannot say: what an admin may not grant, whose
//! plugins a tenant sees, and that secrets are never echoed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use axum::http::Method;
use reyna_api::{ApiConfig, ensure_token, hash_token};
use reyna_engine::reyna_store::Role;
use reyna_engine::{InstallPolicy, NewToken, TenantId};
use serde_json::json;

use crate::common::*;

/// The operator, of a tenant that is neither acme nor globex, so "own
/// tenant" never explains what it may do.
const OPERATOR: &str = "reyna_test_platform_operator";
const PLATFORM: &str = "platform";

/// The least role an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Need {
    Public,
    Reader,
    Writer,
    Admin,
    Operator,
}

/// Whose resource an operation acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// No tenant's in particular (or the caller's own, with no way to name
    /// another): the target changes nothing.
    Global,
    /// The named tenant's (a `{tenant}` segment or `?tenant=`) or a
    /// resource that belongs to one (dead letter, token, a tenant's own
    /// plugin): another tenant's is 404 for everyone but the operator.
    Tenant,
    /// The caller's own tenant's data (blobs, jobs): every token reads and
    /// writes only its own tenant's, the operator's too (its tenant is
    /// `platform`), so acme's and globex's are both 404 for it.
    Caller,
}

struct Rule {
    method: &'static str,
    path: &'static str,
    need: Need,
    scope: Scope,
    /// What a permitted caller gets.
    ok: u16,
}

const fn rule(method: &'static str, path: &'static str, need: Need, scope: Scope, ok: u16) -> Rule {
    Rule {
        method,
        path,
        need,
        scope,
        ok,
    }
}

use Need as N;
use Scope as S;

/// One rule per operation of the OpenAPI document.
const RULES: &[Rule] = &[
    rule("get", "/healthz", N::Public, S::Global, 200),
    rule("get", "/readyz", N::Public, S::Global, 200),
    rule("get", "/metrics", N::Public, S::Global, 200),
    // Tenant ids and usage are the operator's to see.
    rule("get", "/metrics/tenants", N::Operator, S::Global, 200),
    rule("get", "/openapi.json", N::Public, S::Global, 200),
    rule("get", "/v1/me", N::Reader, S::Global, 200),
    // Schemas are global: the operator registers them, everyone reads.
    rule("post", "/v1/schemas", N::Operator, S::Global, 201),
    rule("get", "/v1/schemas", N::Reader, S::Global, 200),
    rule("get", "/v1/schemas/{id}", N::Reader, S::Global, 200),
    rule(
        "post",
        "/v1/schemas/{id}/validate",
        N::Reader,
        S::Global,
        200,
    ),
    // An admin's upload is its tenant's own plugin, the operator's a global one.
    rule("post", "/v1/plugins", N::Admin, S::Global, 201),
    rule("get", "/v1/plugins", N::Reader, S::Global, 200),
    // Targets are acme's and globex's own plugins.
    rule("get", "/v1/plugins/{name}", N::Reader, S::Tenant, 200),
    rule(
        "get",
        "/v1/plugins/{name}/{version}",
        N::Reader,
        S::Tenant,
        200,
    ),
    rule(
        "post",
        "/v1/plugins/{name}/{version}/enable",
        N::Admin,
        S::Tenant,
        200,
    ),
    rule(
        "post",
        "/v1/plugins/{name}/{version}/disable",
        N::Admin,
        S::Tenant,
        200,
    ),
    rule("post", "/v1/blobs", N::Writer, S::Global, 201),
    rule("get", "/v1/blobs", N::Reader, S::Global, 200),
    rule("get", "/v1/blobs/{id}", N::Reader, S::Caller, 200),
    rule("get", "/v1/blobs/{id}/data", N::Reader, S::Caller, 200),
    rule("get", "/v1/blobs/{id}/lineage", N::Reader, S::Caller, 200),
    rule("get", "/v1/blobs/{id}/graph", N::Reader, S::Caller, 200),
    rule("get", "/v1/blobs/{id}/derived", N::Reader, S::Caller, 200),
    rule("post", "/v1/blobs/{id}/rerun", N::Admin, S::Caller, 202),
    rule("get", "/v1/jobs", N::Reader, S::Global, 200),
    rule("get", "/v1/jobs/{id}", N::Reader, S::Caller, 200),
    rule("get", "/v1/jobs/{id}/logs", N::Reader, S::Caller, 200),
    // The code lets a reader list its tenant's dead letters (api19.md says admin).
    rule("get", "/v1/dead-letters", N::Reader, S::Tenant, 200),
    rule(
        "post",
        "/v1/dead-letters/{id}/replay",
        N::Admin,
        S::Tenant,
        200,
    ),
    // For its own tenant (no `tenant` in the body); another tenant is the
    // 403 of `an_admin_grants_only_its_own_tenant_and_no_operator`.
    rule("post", "/v1/tokens", N::Admin, S::Global, 201),
    rule("get", "/v1/tokens", N::Admin, S::Tenant, 200),
    rule("delete", "/v1/tokens/{id}", N::Admin, S::Tenant, 204),
    rule("get", "/v1/audit", N::Admin, S::Tenant, 200),
    rule("post", "/v1/tenants", N::Operator, S::Global, 201),
    rule("get", "/v1/tenants", N::Operator, S::Global, 200),
    rule("get", "/v1/tenants/{tenant}", N::Admin, S::Tenant, 200),
    // Quotas are the operator's to set; a tenant admin reads them and its usage.
    rule("patch", "/v1/tenants/{tenant}", N::Operator, S::Tenant, 200),
    rule("get", "/v1/usage", N::Admin, S::Tenant, 200),
    rule(
        "delete",
        "/v1/tenants/{tenant}",
        N::Operator,
        S::Tenant,
        200,
    ),
    rule(
        "get",
        "/v1/tenants/{tenant}/installations",
        N::Admin,
        S::Tenant,
        200,
    ),
    rule(
        "get",
        "/v1/tenants/{tenant}/installations/{plugin}",
        N::Admin,
        S::Tenant,
        200,
    ),
    rule(
        "put",
        "/v1/tenants/{tenant}/installations/{plugin}",
        N::Admin,
        S::Tenant,
        200,
    ),
    rule(
        "put",
        "/v1/tenants/{tenant}/installations/{plugin}/config",
        N::Admin,
        S::Tenant,
        200,
    ),
    rule(
        "put",
        "/v1/tenants/{tenant}/installations/{plugin}/secrets/{key}",
        N::Admin,
        S::Tenant,
        200,
    ),
    rule(
        "delete",
        "/v1/tenants/{tenant}/installations/{plugin}/secrets/{key}",
        N::Admin,
        S::Tenant,
        200,
    ),
    rule(
        "post",
        "/v1/secrets/rotate-master-key",
        N::Operator,
        S::Global,
        200,
    ),
    rule("get", "/v1/events", N::Reader, S::Global, 200),
    // A request through the router cannot be upgraded: a permitted caller
    // gets as far as `websocket-required` (400). The socket itself, and a
    // token sent in its first message, are tested end to end in
    // host/cli/tests/websocket.rs.
    rule("get", "/v1/ws", N::Reader, S::Global, 400),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Nobody,
    Reader,
    Writer,
    Admin,
    Operator,
}

const CALLERS: [Who; 5] = [
    Who::Nobody,
    Who::Reader,
    Who::Writer,
    Who::Admin,
    Who::Operator,
];

impl Who {
    fn token(self) -> Option<&'static str> {
        match self {
            Who::Nobody => None,
            Who::Reader => Some(READER),
            Who::Writer => Some(WRITER),
            Who::Admin => Some(TENANT_ADMIN),
            Who::Operator => Some(OPERATOR),
        }
    }

    fn rank(self) -> Need {
        match self {
            Who::Nobody => N::Public,
            Who::Reader => N::Reader,
            Who::Writer => N::Writer,
            Who::Admin => N::Admin,
            Who::Operator => N::Operator,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// Acme's resource (the non-operator callers' own tenant).
    Own,
    /// Globex's.
    Other,
}

impl Target {
    fn tenant(self) -> &'static str {
        match self {
            Target::Own => TENANT,
            Target::Other => OTHER,
        }
    }

    fn index(self) -> usize {
        match self {
            Target::Own => 0,
            Target::Other => 1,
        }
    }
}

/// The status the table expects.
fn expected(rule: &Rule, who: Who, target: Target) -> u16 {
    if rule.need == N::Public {
        return rule.ok;
    }
    if who == Who::Nobody {
        return 401;
    }
    if who.rank() < rule.need {
        return 403;
    }
    let foreign = match rule.scope {
        S::Global => false,
        S::Tenant => target == Target::Other && who != Who::Operator,
        S::Caller => target == Target::Other || who == Who::Operator,
    };
    if foreign { 404 } else { rule.ok }
}

/// What the requests act on, in acme ([0]) and globex ([1]).
struct Fixtures {
    blobs: [String; 2],
    jobs: [String; 2],
    /// Each tenant's own plugin (a renamed word-count).
    plugins: [&'static str; 2],
    /// Dead letters not replayed yet, one used per case.
    dead_letters: [Vec<String>; 2],
    /// Makes names unique per case.
    n: usize,
}

fn renamed(name: &str) -> Vec<u8> {
    let bytes = reyna_artifacts::bytes("word-count").unwrap();
    reyna_artifacts::with_manifest(&bytes, |toml| {
        toml.replace("name = \"word-count\"", &format!("name = \"{name}\""))
    })
    .unwrap()
}

async fn table_api() -> Api {
    // Moody's fatal failures make the dead letters; they must not pause it.
    let api = api_with(ApiConfig::default(), &["word-count", "moody"], |c| {
        c.pause_min_calls = 1000;
    })
    .await;
    let platform = TenantId::parse(PLATFORM).unwrap();
    api.engine
        .create_tenant(&platform, "the platform", "test")
        .await
        .unwrap();
    ensure_token(&api.engine, OPERATOR, PLATFORM, Role::Operator, "platform")
        .await
        .unwrap();
    api
}

async fn fixtures(api: &Api) -> Fixtures {
    let plugins = ["acme-tool", "globex-tool"];
    for (tenant, name) in [TENANT, OTHER].into_iter().zip(plugins) {
        api.engine
            .upload_plugin(renamed(name), Some(tenant), InstallPolicy::All, "test")
            .await
            .unwrap();
    }
    let mut blobs = Vec::new();
    for tenant in [TENANT, OTHER] {
        let meta = api
            .engine
            .create_blob(
                tenant,
                "text-input-v1",
                br#"{"content":"one and two"}"#.to_vec(),
                vec![],
            )
            .await
            .unwrap();
        blobs.push(meta.id);
        // One dead letter per caller: moody fails at once on `fatal`.
        for i in 0..CALLERS.len() {
            let text = format!(r#"{{"content":"fatal number {i}"}}"#);
            api.engine
                .create_blob(tenant, "text-input-v1", text.into_bytes(), vec![])
                .await
                .unwrap();
        }
    }
    assert!(api.engine.wait_idle(Duration::from_secs(30)).await);
    let mut jobs = Vec::new();
    let mut dead_letters = [Vec::new(), Vec::new()];
    for (i, tenant) in [TENANT, OTHER].into_iter().enumerate() {
        let id = TenantId::parse(tenant).unwrap();
        let view = api.engine.tenant(&id);
        let done = view.jobs_for_blob(blobs[i]).await.unwrap();
        jobs.push(done[0].id.to_string());
        let page = api.engine.dead_letters(Some(id), None, 100).await.unwrap();
        dead_letters[i] = page.items.iter().map(|d| d.id.to_string()).collect();
        assert_eq!(dead_letters[i].len(), CALLERS.len(), "{tenant}: {page:?}");
    }
    Fixtures {
        blobs: [blobs[0].to_string(), blobs[1].to_string()],
        jobs: [jobs[0].clone(), jobs[1].clone()],
        plugins,
        dead_letters,
        n: 0,
    }
}

/// A real request for `rule` on `target`, making what it changes fresh.
async fn request(api: &Api, fx: &mut Fixtures, rule: &Rule, target: Target) -> Call {
    fx.n += 1;
    let n = fx.n;
    let t = target.index();
    let tenant = target.tenant();
    let method = Method::from_bytes(rule.method.to_uppercase().as_bytes()).unwrap();
    let blob = fx.blobs[t].clone();
    let job = fx.jobs[t].clone();
    let plugin = fx.plugins[t];
    let uri = rule
        .path
        .replace("{tenant}", tenant)
        .replace("{plugin}", "word-count")
        .replace("{name}", plugin)
        .replace("{version}", "0.1.0");
    let call = |uri: &str| Call::new(method.clone(), uri);
    match (rule.method, rule.path) {
        ("get", "/v1/schemas/{id}") => call("/v1/schemas/text-input-v1"),
        ("post", "/v1/schemas/{id}/validate") => {
            call("/v1/schemas/text-input-v1/validate").json(&json!({ "content": "hello there" }))
        }
        ("post", "/v1/schemas") => call(&uri)
            .json(&json!({ "id": format!("table-{n}-v1"), "schema": { "type": "object" } })),
        ("post", "/v1/plugins") => {
            call(&uri).raw("application/wasm", renamed(&format!("table-upload-{n}")))
        }
        ("post", "/v1/blobs") => call(&uri)
            .json(&json!({ "schema": "text-input-v1", "data": { "content": "table text" } })),
        ("post", "/v1/blobs/{id}/rerun") => call(&format!("/v1/blobs/{blob}/rerun"))
            .json(&json!({ "plugin": "word-count", "version": "0.1.0" })),
        (_, p) if p.starts_with("/v1/blobs/{id}") => call(&p.replace("{id}", &blob)),
        (_, p) if p.starts_with("/v1/jobs/{id}") => call(&p.replace("{id}", &job)),
        ("patch", "/v1/tenants/{tenant}") => call(&uri).json(&json!({ "quotas": { "share": 2 } })),
        ("get", "/v1/dead-letters" | "/v1/tokens" | "/v1/audit" | "/v1/usage") => {
            call(&format!("{uri}?tenant={tenant}"))
        }
        ("post", "/v1/dead-letters/{id}/replay") => {
            let letter = fx.dead_letters[t].pop().expect("a dead letter per case");
            call(&format!("/v1/dead-letters/{letter}/replay"))
        }
        ("post", "/v1/tokens") => {
            call(&uri).json(&json!({ "role": "reader", "name": format!("table-{n}") }))
        }
        ("delete", "/v1/tokens/{id}") => {
            let record = api
                .engine
                .create_token(
                    NewToken {
                        tenant: tenant.to_owned(),
                        role: Role::Reader,
                        name: format!("table-{n}"),
                        hash: hash_token(&format!("reyna_table_{n}")),
                    },
                    "test",
                )
                .await
                .unwrap();
            call(&format!("/v1/tokens/{}", record.id))
        }
        ("post", "/v1/tenants") => call(&uri).json(&json!({ "id": format!("table-{n}") })),
        ("put", "/v1/tenants/{tenant}/installations/{plugin}") => {
            call(&uri).json(&json!({ "enabled": true }))
        }
        ("put", "/v1/tenants/{tenant}/installations/{plugin}/config") => {
            call(&uri).json(&json!({ "config": { "mode": "fast" } }))
        }
        ("put", "/v1/tenants/{tenant}/installations/{plugin}/secrets/{key}") => {
            call(&uri.replace("{key}", "api_key")).json(&json!({ "value": "sk-table" }))
        }
        ("delete", "/v1/tenants/{tenant}/installations/{plugin}/secrets/{key}") => {
            let key = format!("key_{n}");
            api.engine
                .set_secret(tenant, "word-count", &key, "sk-table", "test")
                .await
                .unwrap();
            call(&uri.replace("{key}", &key))
        }
        _ => call(&uri),
    }
}

/// The (method, path) of every operation in the OpenAPI document.
fn documented() -> BTreeSet<(String, String)> {
    let doc = serde_json::to_value(reyna_api::openapi()).unwrap();
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if ["get", "post", "put", "delete", "patch", "head", "options"]
                .contains(&method.as_str())
            {
                out.insert((method.clone(), path.clone()));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_operation_answers_each_role_and_tenant_as_the_table_says() {
    // Every operation has exactly one rule, and every rule an operation.
    let documented = documented();
    let mut ruled = BTreeMap::new();
    let mut problems = Vec::new();
    for r in RULES {
        if ruled
            .insert((r.method.to_owned(), r.path.to_owned()), r)
            .is_some()
        {
            problems.push(format!(
                "two rules for {} {}",
                r.method.to_uppercase(),
                r.path
            ));
        }
    }
    for (method, path) in &documented {
        if !ruled.contains_key(&(method.clone(), path.clone())) {
            problems.push(format!(
                "add a rule for {} {path} to RULES in roles.rs",
                method.to_uppercase()
            ));
        }
    }
    for (method, path) in ruled.keys() {
        if !documented.contains(&(method.clone(), path.clone())) {
            problems.push(format!(
                "remove the rule for {} {path}: the OpenAPI document has no such operation",
                method.to_uppercase()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    let api = table_api().await;
    let mut fx = fixtures(&api).await;
    // Deleting acme or globex would take the other cases' fixtures with
    // it: those cases run last (the operator, the only one permitted, last of all).
    let mut cases = Vec::new();
    for r in RULES {
        for who in CALLERS {
            for target in [Target::Own, Target::Other] {
                cases.push((r, who, target));
            }
        }
    }
    cases.sort_by_key(|(r, _, _)| r.method == "delete" && r.path == "/v1/tenants/{tenant}");

    let mut table = String::new();
    let mut mismatches = 0;
    for (r, who, target) in cases {
        let want = expected(r, who, target);
        let mut call = request(&api, &mut fx, r, target).await;
        if let Some(token) = who.token() {
            call = call.token(token);
        }
        let (got, body) = if r.path == "/v1/events" {
            // A live stream never ends: its status is enough.
            (api.open(call).await.status().as_u16(), String::new())
        } else {
            let reply = api.send(call).await;
            (reply.status.as_u16(), reply.text())
        };
        let mark = if got == want { "  " } else { "!!" };
        if got != want {
            mismatches += 1;
        }
        let _ = write!(
            table,
            "{mark} {:<6} {:<62} {:<8} {:<5} expected {want} got {got}",
            r.method.to_uppercase(),
            r.path,
            format!("{who:?}"),
            format!("{target:?}"),
        );
        if got != want {
            let _ = write!(table, "  {}", body.chars().take(200).collect::<String>());
        }
        table.push('\n');
    }
    assert_eq!(
        mismatches, 0,
        "{mismatches} answers differ from the table (!!):\n{table}"
    );
    api.engine.shutdown().await;
}

#[tokio::test]
async fn an_admin_grants_only_its_own_tenant_and_no_operator() {
    let api = api().await;
    let p = api
        .post_json(
            "/v1/tokens",
            TENANT_ADMIN,
            json!({ "role": "operator", "name": "up" }),
        )
        .await
        .problem(403);
    assert!(p["detail"].as_str().unwrap().contains("operator"), "{p}");
    api.post_json(
        "/v1/tokens",
        TENANT_ADMIN,
        json!({ "tenant": "globex", "role": "reader", "name": "across" }),
    )
    .await
    .problem(403);
    // What it may: an admin of its own tenant, by default.
    let made = api
        .post_json(
            "/v1/tokens",
            TENANT_ADMIN,
            json!({ "role": "admin", "name": "second" }),
        )
        .await
        .ok(201);
    assert_eq!(made["token"]["tenant"], "acme");
    let tokens = api.get("/v1/tokens", ADMIN).await.ok(200);
    assert!(
        tokens
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["name"] != "up" && t["name"] != "across"),
        "a refused token is not stored: {tokens}"
    );
}

#[tokio::test]
async fn a_tenant_admins_upload_is_its_own_and_other_tenants_do_not_see_it() {
    let api = api().await;
    let uploaded = api
        .send(
            Call::post("/v1/plugins")
                .token(TENANT_ADMIN)
                .raw("application/wasm", renamed("acme-only")),
        )
        .await
        .ok(201);
    assert_eq!(uploaded["plugin"]["owner"], "acme", "{uploaded}");
    // Acme sees and runs it.
    let mine = api.get("/v1/plugins/acme-only", READER).await.ok(200);
    assert_eq!(mine["versions"][0]["owner"], "acme");
    assert_eq!(mine["versions"][0]["installed"], true, "{mine}");
    // Globex does not know it exists.
    api.get("/v1/plugins/acme-only", STRANGER)
        .await
        .problem(404);
    api.get("/v1/plugins/acme-only/0.1.0", STRANGER)
        .await
        .problem(404);
    let list = api.get("/v1/plugins", STRANGER).await.ok(200);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|p| p["name"] != "acme-only"),
        "{list}"
    );
    // A tenant's upload has no install policy to choose.
    api.send(
        Call::post("/v1/plugins?install=opt-in")
            .token(TENANT_ADMIN)
            .raw("application/wasm", renamed("acme-other")),
    )
    .await
    .problem(400);
    // The name is acme's: the operator cannot take it.
    let p = api
        .send(
            Call::post("/v1/plugins")
                .token(ADMIN)
                .raw("application/wasm", renamed("acme-only")),
        )
        .await
        .problem(409);
    assert_eq!(p["type"], "https://reyna.dev/problems/plugin-name-taken");
}

#[tokio::test]
async fn an_admins_token_list_and_audit_are_its_own_tenants() {
    let api = api().await;
    // Something happens in globex, done by the operator.
    api.post_json(
        "/v1/tokens",
        ADMIN,
        json!({ "tenant": "globex", "role": "reader", "name": "globex-reader" }),
    )
    .await
    .ok(201);
    let tokens = api.get("/v1/tokens", TENANT_ADMIN).await.ok(200);
    let tokens = tokens.as_array().unwrap();
    assert!(!tokens.is_empty());
    assert!(tokens.iter().all(|t| t["tenant"] == "acme"), "{tokens:?}");
    let audit = api.get("/v1/audit", TENANT_ADMIN).await.ok(200);
    let audit = audit.as_array().unwrap();
    assert!(!audit.is_empty());
    assert!(audit.iter().all(|e| e["tenant"] == "acme"), "{audit:?}");
    api.get("/v1/audit?tenant=globex", TENANT_ADMIN)
        .await
        .problem(404);
    // The operator sees both tenants'.
    let all = api.get("/v1/audit", ADMIN).await.ok(200);
    for tenant in ["acme", "globex"] {
        assert!(
            all.as_array()
                .unwrap()
                .iter()
                .any(|e| e["tenant"] == tenant),
            "{tenant} in {all}"
        );
    }
    let globex = api.get("/v1/tokens?tenant=globex", ADMIN).await.ok(200);
    assert!(
        globex
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["tenant"] == "globex")
            && globex.as_array().unwrap().len() == 2,
        "{globex}"
    );
}

#[tokio::test]
async fn a_secret_is_never_echoed_and_shows_as_set_with_its_version() {
    let api = api_with_plugins(&["word-count"]).await;
    let path = "/v1/tenants/acme/installations/word-count";
    let value = "sk-table-never-shown-1234";
    let reply = api
        .send(
            Call::new(Method::PUT, &format!("{path}/secrets/api_key"))
                .token(TENANT_ADMIN)
                .json(&json!({ "value": value })),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(!reply.text().contains(value), "{}", reply.text());
    for reply in [
        api.get(path, TENANT_ADMIN).await,
        api.get("/v1/tenants/acme/installations", TENANT_ADMIN)
            .await,
        api.get("/v1/audit", ADMIN).await,
    ] {
        assert!(!reply.text().contains(value), "{}", reply.text());
    }
    let got = api.get(path, TENANT_ADMIN).await.ok(200);
    let secret = got["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "api_key")
        .unwrap_or_else(|| panic!("no api_key in {got}"));
    assert_eq!(secret["set"], true, "{got}");
    assert_eq!(secret["version"], 1, "{got}");
    assert!(got["config"].get("api_key").is_none(), "{got}");
}

//! `reyna`: the Reyna host binary and operator CLI.
//!
//! `reyna serve` runs the host (engine + HTTP API); with `--nats URL` it is
//! the state node of a scale-out, and `reyna worker --nats URL` runs jobs. `reyna plugin inspect
//! FILE.wasm` prints a plugin's embedded manifest and its component world
//! without running or compiling it. The other subcommands are clients of the
//! HTTP API (`--url` / `REYNA_URL`, `--token` / `REYNA_TOKEN`), tenancy
//! included: `tenant`, `install`, `secret`, `token`, `audit`, `whoami`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod client;
mod inspect;
mod serve;
mod worker;

use client::Remote;

/// mimalloc rather than the system allocator: allocation and cross-thread
/// frees (a blob built on a tokio worker, dropped on the store's writer
/// thread) were ~10% of the host's CPU under load with glibc malloc, and the
/// engine bench runs ~15% faster with mimalloc, for ~10% more peak RSS
/// (`host/store/PERF.md`, fifth pass).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "reyna",
    version,
    about = "Host for WebAssembly processor plugins",
    after_help = "Exit codes: 0 done; 1 refused or bad input; 2 usage; 3 host unreachable or failed."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the host: engine and HTTP API.
    Serve(serve::ServeArgs),
    /// Run a scale-out worker: pulls pure processor jobs from NATS JetStream.
    Worker(worker::WorkerArgs),
    /// Work with plugin components.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Register JSON Schemas.
    Schema {
        #[command(subcommand)]
        command: SchemaCommand,
    },
    /// Create and read blobs.
    Blob {
        #[command(subcommand)]
        command: BlobCommand,
    },
    /// Follow live events (subject pattern, e.g. `blob.created.>`; default all).
    Events {
        /// Subject pattern with NATS wildcards: `*` one token, `>` the rest.
        pattern: Option<String>,
        /// Start after this event sequence instead of now.
        #[arg(long)]
        after: Option<u64>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Read jobs.
    Job {
        #[command(subcommand)]
        command: JobCommand,
    },
    /// List dead letters, or replay one.
    DeadLetters {
        #[command(subcommand)]
        command: Option<DeadLetterCommand>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Print who the token is: its id, tenant and role.
    Whoami {
        #[command(flatten)]
        remote: Remote,
    },
    /// Create, list, read and delete tenants (operator).
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// A tenant's installations of plugins: on or off, and their config.
    Install {
        #[command(subcommand)]
        command: InstallCommand,
    },
    /// Set and remove installation secrets (write-only); rotate the master key.
    #[command(alias = "secrets")]
    Secret {
        #[command(subcommand)]
        command: SecretCommand,
    },
    /// Create, list and revoke API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// A tenant's metered usage per hour, day or month (its admin, or the
    /// operator for any tenant).
    Usage {
        /// Tenant [default: the token's own].
        #[arg(long)]
        tenant: Option<String>,
        /// hour, day or month.
        #[arg(long, default_value = "hour")]
        granularity: String,
        /// Start, unix ms [default: 24 periods back].
        #[arg(long)]
        from: Option<u64>,
        /// End, unix ms, exclusive [default: now].
        #[arg(long)]
        to: Option<u64>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Read the audit log, oldest first: one page.
    Audit {
        /// Only this tenant's entries (operator; an admin reads its own).
        #[arg(long)]
        tenant: Option<String>,
        /// Entries after this sequence number.
        #[arg(long)]
        after: Option<u64>,
        /// Page size (the host's default when not given).
        #[arg(long)]
        limit: Option<usize>,
        #[command(flatten)]
        remote: Remote,
    },
}

/// Which tenants run a global plugin.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum InstallPolicy {
    /// Every tenant, unless it opts out.
    All,
    /// Only the tenants that opt in (`reyna install enable`).
    OptIn,
}

/// What a token may do.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Role {
    /// The platform: every tenant, global plugins and schemas.
    Operator,
    /// One tenant's tokens, installations, secrets, dead letters and audit.
    Admin,
    /// Create blobs in its tenant.
    Writer,
    /// Read its tenant.
    Reader,
}

fn wire_name(value: impl clap::ValueEnum) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default()
}

#[derive(Debug, Subcommand)]
enum TenantCommand {
    /// Create a tenant (ids are never reused).
    Create {
        /// Tenant id.
        id: String,
        /// A name for people.
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// List tenants, deleted ones included.
    Ls {
        #[command(flatten)]
        remote: Remote,
    },
    /// Print a tenant (operator, or that tenant's admin).
    Get {
        /// Tenant id.
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Print a tenant's quotas and what it holds; with --set (operator),
    /// replace its overrides first.
    Quotas {
        /// Tenant id.
        id: String,
        /// The whole set of overrides as JSON, e.g.
        /// '{"blobs_per_second":10,"budgets":{"tokens":{"per_day":100000}}}';
        /// '{}' returns the tenant to the operator's defaults.
        #[arg(long)]
        set: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Delete a tenant: revokes its tokens, removes its installations and
    /// secrets, disables its own plugins.
    Rm {
        /// Tenant id.
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Debug, Subcommand)]
enum InstallCommand {
    /// List the plugins the tenant can run, with their state.
    Ls {
        /// Tenant [default: the token's own].
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Print an installation: state, config, secrets (never their values), health.
    Get {
        /// Plugin name.
        plugin: String,
        /// Tenant [default: the token's own].
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Run the plugin for the tenant (opt in; resumes a paused installation).
    Enable {
        /// Plugin name.
        plugin: String,
        /// Tenant [default: the token's own].
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Stop running the plugin for the tenant (opt out).
    Disable {
        /// Plugin name.
        plugin: String,
        /// Tenant [default: the token's own].
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Replace the installation's plain config (secrets: `reyna secret set`).
    Config {
        /// Plugin name.
        plugin: String,
        /// The new config, every key given.
        #[arg(value_name = "KEY=VALUE", required_unless_present = "clear")]
        pairs: Vec<String>,
        /// Remove every plain config value.
        #[arg(long, conflicts_with = "pairs")]
        clear: bool,
        /// Tenant [default: the token's own].
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Debug, Subcommand)]
enum SecretCommand {
    /// Set a secret (a new version each time) from one line of stdin or a
    /// file; never from the command line. Prints its version, not its value.
    Set {
        /// Plugin name.
        plugin: String,
        /// Config key, e.g. `api_key`.
        key: String,
        /// Read the value from this file (its trailing newline dropped).
        #[arg(long, value_name = "PATH")]
        from_file: Option<PathBuf>,
        /// Tenant [default: the token's own].
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Remove a secret.
    Rm {
        /// Plugin name.
        plugin: String,
        /// Config key.
        key: String,
        /// Tenant [default: the token's own].
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Re-encrypt every secret under a new master key (operator).
    RotateMasterKey {
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token; its secret is printed on stdout, this once.
    Create {
        /// What it may do.
        #[arg(long, value_enum)]
        role: Role,
        /// A label for people.
        #[arg(long)]
        name: String,
        /// Tenant [default: the token's own].
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// List tokens (an admin sees its tenant's; the operator every one).
    Ls {
        /// Only this tenant's (operator).
        #[arg(long)]
        tenant: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Revoke a token.
    Rm {
        /// Token id (from `reyna token ls`).
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Print a plugin's manifest and world, read without running it.
    Inspect {
        /// The plugin component (`.wasm`).
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Upload a plugin component; it is enabled, older versions disabled.
    /// The operator's uploads are global; a tenant admin's are its tenant's own.
    Push {
        /// The plugin component (`.wasm`).
        file: PathBuf,
        /// Which tenants run a global plugin [host default: all].
        #[arg(long, value_enum)]
        install: Option<InstallPolicy>,
        #[command(flatten)]
        remote: Remote,
    },
    /// List plugin versions with their state and counters.
    Ls {
        #[command(flatten)]
        remote: Remote,
    },
    /// Enable a plugin version (NAME@VERSION, or NAME for its newest upload).
    Enable {
        /// NAME@VERSION or NAME.
        plugin: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Disable a plugin version (NAME@VERSION, or NAME for its newest upload).
    Disable {
        /// NAME@VERSION or NAME.
        plugin: String,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Debug, Subcommand)]
enum SchemaCommand {
    /// Register a JSON Schema file (its id defaults to the file name without `.json`).
    Push {
        /// The schema document.
        file: PathBuf,
        /// Schema id, `[a-z0-9-]+-v<N>`.
        #[arg(long)]
        id: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Debug, Subcommand)]
enum BlobCommand {
    /// Create a blob from a JSON file (or `-` for stdin); prints its id.
    Put {
        /// Schema id, e.g. `text-input-v1`.
        schema: String,
        /// JSON file, or `-` for stdin.
        file: PathBuf,
        /// A blob it derives from (repeatable).
        #[arg(long = "parent")]
        parents: Vec<String>,
        /// Wait this long for derived blobs and print them (e.g. `10s`).
        #[arg(long)]
        wait: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Print a blob: metadata on stderr, its JSON on stdout.
    Get {
        /// Blob id.
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Run a plugin version again on a stored blob (admin); its output is
    /// recorded beside earlier ones.
    Rerun {
        /// Blob id.
        id: String,
        /// NAME@VERSION, or NAME for its newest upload.
        plugin: String,
        /// Answer effect calls from the responses recorded in earlier runs'
        /// lineage instead of calling out (a call with none fails).
        #[arg(long)]
        replay_effects: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Print a blob's lineage as a tree: what it came from and what came from it.
    Lineage {
        /// Blob id.
        id: String,
        /// Hops to walk each way.
        #[arg(long, default_value_t = 8)]
        depth: u32,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Debug, Subcommand)]
enum JobCommand {
    /// What a job's plugin logged, per attempt (bounded, secrets redacted).
    Logs {
        /// Job id.
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Debug, Subcommand)]
enum DeadLetterCommand {
    /// Run a dead letter's job again (admin).
    Replay {
        /// Dead letter id.
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
}

fn remote_call<F, Fut>(remote: &Remote, call: F) -> Result<(), client::CommandError>
where
    F: FnOnce(client::Api) -> Fut,
    Fut: std::future::Future<Output = Result<(), client::CommandError>>,
{
    let api = client::Api::new(remote)?;
    client::block_on(call(api))
}

fn tenant(command: TenantCommand) -> Result<(), client::CommandError> {
    match command {
        TenantCommand::Create { id, name, remote } => remote_call(&remote, |api| async move {
            client::tenant_create(&api, &id, name).await
        }),
        TenantCommand::Ls { remote } => {
            remote_call(&remote, |api| async move { client::tenant_ls(&api).await })
        }
        TenantCommand::Get { id, remote } => {
            remote_call(
                &remote,
                |api| async move { client::tenant_get(&api, &id).await },
            )
        }
        TenantCommand::Quotas { id, set, remote } => remote_call(&remote, |api| async move {
            client::tenant_quotas(&api, &id, set).await
        }),
        TenantCommand::Rm { id, remote } => {
            remote_call(
                &remote,
                |api| async move { client::tenant_rm(&api, &id).await },
            )
        }
    }
}

fn install(command: InstallCommand) -> Result<(), client::CommandError> {
    match command {
        InstallCommand::Ls { tenant, remote } => remote_call(&remote, |api| async move {
            client::install_ls(&api, tenant).await
        }),
        InstallCommand::Get {
            plugin,
            tenant,
            remote,
        } => remote_call(&remote, |api| async move {
            client::install_get(&api, &plugin, tenant).await
        }),
        InstallCommand::Enable {
            plugin,
            tenant,
            remote,
        } => remote_call(&remote, |api| async move {
            client::install_set_enabled(&api, &plugin, tenant, true).await
        }),
        InstallCommand::Disable {
            plugin,
            tenant,
            remote,
        } => remote_call(&remote, |api| async move {
            client::install_set_enabled(&api, &plugin, tenant, false).await
        }),
        // `--clear` conflicts with pairs, so it needs no case of its own:
        // no pairs is the empty config.
        InstallCommand::Config {
            plugin,
            pairs,
            clear: _,
            tenant,
            remote,
        } => remote_call(&remote, |api| async move {
            client::install_config(&api, &plugin, tenant, &pairs).await
        }),
    }
}

fn secret(command: SecretCommand) -> Result<(), client::CommandError> {
    match command {
        SecretCommand::Set {
            plugin,
            key,
            from_file,
            tenant,
            remote,
        } => remote_call(&remote, |api| async move {
            client::secret_set(&api, &plugin, &key, tenant, from_file.as_deref()).await
        }),
        SecretCommand::Rm {
            plugin,
            key,
            tenant,
            remote,
        } => remote_call(&remote, |api| async move {
            client::secret_rm(&api, &plugin, &key, tenant).await
        }),
        SecretCommand::RotateMasterKey { remote } => remote_call(&remote, |api| async move {
            client::rotate_master_key(&api).await
        }),
    }
}

fn token(command: TokenCommand) -> Result<(), client::CommandError> {
    match command {
        TokenCommand::Create {
            role,
            name,
            tenant,
            remote,
        } => remote_call(&remote, |api| async move {
            client::token_create(&api, &wire_name(role), &name, tenant).await
        }),
        TokenCommand::Ls { tenant, remote } => remote_call(&remote, |api| async move {
            client::token_ls(&api, tenant).await
        }),
        TokenCommand::Rm { id, remote } => {
            remote_call(
                &remote,
                |api| async move { client::token_rm(&api, &id).await },
            )
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args).map_err(|e| client::CommandError {
            code: 1,
            message: format!("{e:#}"),
        }),
        Command::Worker(args) => worker::run(args).map_err(|e| client::CommandError {
            code: 1,
            message: format!("{e:#}"),
        }),
        Command::Plugin {
            command: PluginCommand::Inspect { file, json },
        } => inspect::run(&file, json).map_err(|e| client::CommandError {
            code: 1,
            message: format!("{e:#}"),
        }),
        Command::Plugin {
            command:
                PluginCommand::Push {
                    file,
                    install,
                    remote,
                },
        } => remote_call(&remote, |api| async move {
            let install = install.map(wire_name);
            client::plugin_push(&api, &file, install.as_deref()).await
        }),
        Command::Plugin {
            command: PluginCommand::Ls { remote },
        } => remote_call(&remote, |api| async move { client::plugin_ls(&api).await }),
        Command::Plugin {
            command: PluginCommand::Enable { plugin, remote },
        } => remote_call(&remote, |api| async move {
            client::plugin_set_enabled(&api, &plugin, true).await
        }),
        Command::Plugin {
            command: PluginCommand::Disable { plugin, remote },
        } => remote_call(&remote, |api| async move {
            client::plugin_set_enabled(&api, &plugin, false).await
        }),
        Command::Schema {
            command: SchemaCommand::Push { file, id, remote },
        } => remote_call(&remote, |api| async move {
            client::schema_push(&api, &file, id).await
        }),
        Command::Blob {
            command:
                BlobCommand::Put {
                    schema,
                    file,
                    parents,
                    wait,
                    remote,
                },
        } => remote_call(&remote, |api| async move {
            client::blob_put(&api, &schema, &file, parents, wait).await
        }),
        Command::Blob {
            command: BlobCommand::Get { id, remote },
        } => remote_call(
            &remote,
            |api| async move { client::blob_get(&api, &id).await },
        ),
        Command::Blob {
            command:
                BlobCommand::Rerun {
                    id,
                    plugin,
                    replay_effects,
                    remote,
                },
        } => remote_call(&remote, |api| async move {
            client::blob_rerun(&api, &id, &plugin, replay_effects).await
        }),
        Command::Blob {
            command: BlobCommand::Lineage { id, depth, remote },
        } => remote_call(&remote, |api| async move {
            client::blob_lineage(&api, &id, depth).await
        }),
        Command::Events {
            pattern,
            after,
            remote,
        } => remote_call(&remote, |api| async move {
            client::events(&api, pattern, after).await
        }),
        Command::Job {
            command: JobCommand::Logs { id, remote },
        } => remote_call(
            &remote,
            |api| async move { client::job_logs(&api, &id).await },
        ),
        Command::DeadLetters {
            command: None,
            remote,
        } => remote_call(
            &remote,
            |api| async move { client::dead_letters(&api).await },
        ),
        Command::DeadLetters {
            command: Some(DeadLetterCommand::Replay { id, remote }),
            ..
        } => remote_call(
            &remote,
            |api| async move { client::replay(&api, &id).await },
        ),
        Command::Whoami { remote } => {
            remote_call(&remote, |api| async move { client::whoami(&api).await })
        }
        Command::Tenant { command } => tenant(command),
        Command::Install { command } => install(command),
        Command::Secret { command } => secret(command),
        Command::Token { command } => token(command),
        Command::Usage {
            tenant,
            granularity,
            from,
            to,
            remote,
        } => remote_call(&remote, |api| async move {
            client::usage(&api, tenant, &granularity, from, to).await
        }),
        Command::Audit {
            tenant,
            after,
            limit,
            remote,
        } => remote_call(&remote, |api| async move {
            client::audit(&api, tenant, after, limit).await
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

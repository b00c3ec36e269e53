//! `reyna`: the Reyna host binary and operator CLI.
//!
//! `reyna serve` runs the host (engine + HTTP API); with `--nats URL` it is
//! the state node of a scale-out, and `reyna worker --nats URL` runs jobs. `reyna plugin inspect
//! FILE.wasm` prints a plugin's embedded manifest and its component world
//! without running or compiling it. The other subcommands are clients of the
//! HTTP API (`--url` / `REYNA_URL`, `--token` / `REYNA_TOKEN`).

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
    Push {
        /// The plugin component (`.wasm`).
        file: PathBuf,
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
            command: PluginCommand::Push { file, remote },
        } => remote_call(&remote, |api| async move {
            client::plugin_push(&api, &file).await
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
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

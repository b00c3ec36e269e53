//! `reyna`: the Reyna host binary and operator CLI.
//!
//! `reyna plugin inspect FILE.wasm` prints a plugin's embedded manifest and
//! its component world without running or compiling it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod inspect;

#[derive(Debug, Parser)]
#[command(
    name = "reyna",
    version,
    about = "Host for WebAssembly processor plugins"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with plugin components.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Plugin {
            command: PluginCommand::Inspect { file, json },
        } => inspect::run(&file, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

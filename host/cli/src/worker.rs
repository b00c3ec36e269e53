//! `reyna worker`: a stateless worker that runs pure processor jobs from NATS
//! JetStream for a state node (`reyna serve --nats URL`).

use std::path::PathBuf;

use anyhow::Context as _;
use reyna_nats::{Worker, WorkerConfig};

/// Flags of `reyna worker`.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// NATS server URL, the same the state node uses (e.g. `nats://127.0.0.1:4222`).
    #[arg(long, env = "REYNA_NATS")]
    pub nats: String,
    /// Where compiled components are cached [default: ./reyna-worker].
    #[arg(long, env = "REYNA_WORKER_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Jobs run at once [default: 16 per core, between 16 and 256].
    #[arg(long, env = "REYNA_WORKER_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// A job not acked this long goes to another worker, e.g. "30s" (long
    /// calls keep their job with in-progress acks). Every worker should use
    /// the same value: the shared consumer keeps the first one.
    #[arg(long, env = "REYNA_ACK_WAIT", default_value = "30s")]
    pub ack_wait: String,
    /// Name in logs and in the results it publishes [default: worker-<pid>].
    #[arg(long, env = "REYNA_WORKER_NAME")]
    pub name: Option<String>,
    /// Log filter, e.g. `info` [default: info].
    #[arg(long, env = "REYNA_LOG")]
    pub log: Option<String>,
}

/// Runs a worker until SIGINT or SIGTERM, then lets the jobs in hand publish.
pub fn run(args: WorkerArgs) -> anyhow::Result<()> {
    let mut config = WorkerConfig::new(
        &args.nats,
        args.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("./reyna-worker")),
    );
    if let Some(n) = args.concurrency {
        anyhow::ensure!(n > 0, "--concurrency must be at least 1");
        config.concurrency = n;
    }
    config.ack_wait = humantime::parse_duration(&args.ack_wait).with_context(|| {
        format!(
            "--ack-wait must be a duration like \"30s\", got {:?}",
            args.ack_wait
        )
    })?;
    anyhow::ensure!(
        config.ack_wait >= std::time::Duration::from_secs(1),
        "--ack-wait must be at least 1s"
    );
    if let Some(name) = &args.name {
        config.name = name.clone();
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create {}", config.data_dir.display()))?;
    let runtime = crate::serve::start_process(args.log.as_deref().unwrap_or("info"))?;
    runtime.block_on(async move {
        let (name, url) = (config.name.clone(), config.url.clone());
        let worker = Worker::start(config)
            .await
            .context("cannot start the worker")?;
        let stop = crate::serve::stop_signal();
        // Scripts and tests read this line.
        println!("reyna worker {name} pulling jobs from {url}");
        stop.await;
        tracing::info!("stopping: no new jobs; jobs in hand publish their results");
        worker.shutdown().await;
        Ok(())
    })
}

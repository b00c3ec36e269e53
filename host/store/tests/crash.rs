//! Crash consistency: a child process ingests blobs and completes jobs under
//! load and is killed with SIGKILL at random moments. After every kill the
//! database reopens with every acknowledged write present, nothing
//! duplicated, and every job done or pending/running (recoverable), also
//! the jobs claimed in the commit that created them.
//!
//! The child is this test binary itself, re-executed with
//! [`CHILD_ENV`] set, running [`child_process_entry`]. It prints one line per
//! acknowledged write, flushed after the acknowledgement; the parent waits on
//! those lines (with a bound), never on a timer.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a failure stops the test"
)]

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reyna_store::{
    BlobId, Completed, Completion, Job, JobId, JobSpec, JobState, NewBlob, NewOutput, Store, now_ms,
};

const CHILD_ENV: &str = "REYNA_STORE_CRASH_CHILD";
const TENANT: &str = "crash";
/// Kills to reach; at least `MIN_KILLS` even when the time budget runs out.
const KILLS: usize = 32;
const MIN_KILLS: usize = 20;
const BUDGET: Duration = Duration::from_secs(25);
/// Longest wait for one line from the child before declaring it stuck.
const LINE_TIMEOUT: Duration = Duration::from_secs(30);
/// The whole test gives up after this, whatever happens.
const HARD_LIMIT: Duration = Duration::from_secs(180);

/// xorshift64*: enough randomness for kill points, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    (nanos ^ u64::from(std::process::id())) | 1
}

/// What the child acknowledged, parsed from its stdout.
#[derive(Default)]
struct Acked {
    ingested: HashSet<BlobId>,
    outputs: HashSet<BlobId>,
    done: HashSet<JobId>,
    lines: usize,
}

impl Acked {
    fn take(&mut self, line: &str) -> bool {
        let Some((kind, id)) = line.split_once(' ') else {
            return false;
        };
        let parsed = match kind {
            "B" => id.parse().map(|id| self.ingested.insert(id)).is_ok(),
            "O" => id.parse().map(|id| self.outputs.insert(id)).is_ok(),
            "D" => id.parse().map(|id| self.done.insert(id)).is_ok(),
            _ => false,
        };
        if parsed {
            self.lines += 1;
        }
        parsed
    }
}

#[test]
fn sigkill_at_random_moments_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.redb");
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng(seed());
    let mut acked = Acked::default();
    let started = Instant::now();
    let mut kills = 0;
    let mut recovered_total = 0;

    while kills < KILLS && (kills < MIN_KILLS || started.elapsed() < BUDGET) {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "child_process_entry",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });

        // Wait for the child to open the store, then for a random number of
        // acknowledgements, then kill it mid-flight.
        let target = acked.lines + 1 + rng.below(600) as usize;
        let mut ready = false;
        while !ready || acked.lines < target {
            assert!(
                started.elapsed() < HARD_LIMIT,
                "crash test exceeded {HARD_LIMIT:?}"
            );
            match rx.recv_timeout(LINE_TIMEOUT) {
                Ok(line) => {
                    // libtest prints "test child_process_entry ... " without a
                    // newline, so READY may share the line.
                    if let Some((_, n)) = line.rsplit_once("READY ") {
                        ready = true;
                        recovered_total += n.parse::<usize>().unwrap();
                    } else {
                        acked.take(&line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    let _ = child.kill();
                    panic!("child printed nothing for {LINE_TIMEOUT:?} (kill {kills})");
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("child exited on its own: {:?}", child.wait());
                }
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        // Lines already written before the kill were acknowledged too.
        reader.join().unwrap();
        for line in rx.try_iter() {
            acked.take(&line);
        }

        verify(&path, &acked, kills);
    }

    let store = Store::open(&path).unwrap();
    let report = store.check().unwrap();
    let c = report.counts;
    println!(
        "crash: {kills} SIGKILLs in {:.1?}; acknowledged {} ingested blobs, {} derived blobs, {} completed jobs; \
         {recovered_total} running jobs recovered at restarts; store holds {} blobs, {} edges, {} events, \
         jobs pending {} / running {} / done {} / dead {}",
        started.elapsed(),
        acked.ingested.len(),
        acked.outputs.len(),
        acked.done.len(),
        c.blobs,
        c.edges,
        c.events,
        c.jobs_pending,
        c.jobs_running,
        c.jobs_done,
        c.jobs_dead,
    );
    assert!(kills >= MIN_KILLS);
    assert!(
        c.jobs_done > 0 && c.edges > 0,
        "the load reached completions and lineage"
    );
}

/// Reopens the database the child was killed on and checks every promise.
fn verify(path: &std::path::Path, acked: &Acked, kill: usize) {
    let store = Store::open(path).unwrap();
    for id in acked.ingested.iter().chain(&acked.outputs) {
        assert!(
            store.get_blob(TENANT, *id).unwrap().is_some(),
            "acknowledged blob {id} lost after kill {kill}"
        );
    }
    for id in &acked.done {
        let job = store.get_job(*id).unwrap().unwrap();
        assert_eq!(
            job.state,
            JobState::Done,
            "acknowledged completion of {id} lost after kill {kill}"
        );
    }
    // Indexes, edges, events and job queues agree; no output exists twice
    // or without its job being done.
    let report = store.check().unwrap();
    assert!(
        report.problems.is_empty(),
        "after kill {kill}: {:#?}",
        report.problems
    );
    assert_eq!(report.counts.jobs_dead, 0, "the load never dead-letters");
    let c = report.counts;
    let jobs = c.jobs_pending + c.jobs_running + c.jobs_done;
    let expected_blobs = acked.ingested.len() + acked.outputs.len();
    assert!(c.blobs as usize >= expected_blobs && jobs > 0);
}

/// In a normal run this does nothing. With [`CHILD_ENV`] set it is the child:
/// it runs load until it is killed.
#[test]
fn child_process_entry() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(child(std::path::PathBuf::from(path)));
}

/// Prints one acknowledgement line and flushes it.
fn ack(kind: &str, id: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{kind} {id}").unwrap();
    out.flush().unwrap();
}

fn spec(plugin: &str, schema: &str) -> JobSpec {
    JobSpec {
        plugin: plugin.to_owned(),
        version: "1.0.0".to_owned(),
        subject: format!("blob.created.{schema}"),
    }
}

async fn child(path: std::path::PathBuf) {
    let store = Store::open(&path).unwrap();
    let recovered = store.recover_running().await.unwrap();
    ack("READY", recovered);
    let recent: Arc<Mutex<Vec<BlobId>>> = Arc::default();
    let mut tasks = Vec::new();

    // Ingest: blobs with a `split` job, some derived from an earlier blob.
    for writer in 0..8u64 {
        let store = store.clone();
        let recent = Arc::clone(&recent);
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(seed() ^ (writer << 32) | 1);
            loop {
                let size = 64 + rng.below(4096) as usize;
                let data: Vec<u8> = (0..size).map(|_| rng.next() as u8).collect();
                let parent = if rng.below(4) == 0 {
                    let recent = recent.lock().unwrap();
                    recent
                        .get(rng.below(recent.len().max(1) as u64) as usize)
                        .copied()
                } else {
                    None
                };
                let blob = NewBlob {
                    tenant: TENANT.to_owned(),
                    schema: "doc-v1".to_owned(),
                    data,
                    parents: parent.into_iter().collect(),
                    hop: 0,
                };
                // Half the jobs are claimed as they are created and run
                // here, as the engine does with a free worker.
                let claim = rng.below(2) as usize;
                let (meta, claimed) = store
                    .create_blob_and_claim(
                        blob,
                        vec![spec("split", "doc-v1")],
                        claim,
                        Default::default(),
                        false,
                    )
                    .await
                    .unwrap();
                ack("B", meta.id);
                {
                    let mut recent = recent.lock().unwrap();
                    if recent.len() < 64 {
                        recent.push(meta.id);
                    } else {
                        let i = rng.below(64) as usize;
                        recent[i] = meta.id;
                    }
                }
                for job in claimed {
                    work(&store, &mut rng, job).await;
                }
            }
        }));
    }

    // Workers: claim due jobs and run them.
    for worker in 0..4u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(seed() ^ (worker << 40) | 1);
            let mut wake = store.watch_jobs();
            loop {
                // Marked seen before claiming, so a job made pending after the
                // claim (new, or a retry: retries here are due at once) wakes us.
                wake.borrow_and_update();
                let jobs = store.claim_due_jobs(now_ms(), 8, None).await.unwrap();
                if jobs.is_empty() {
                    if wake.changed().await.is_err() {
                        break;
                    }
                    continue;
                }
                for job in jobs {
                    work(&store, &mut rng, job).await;
                }
            }
        }));
    }
    // The load runs until the parent kills the process; a task that fails
    // ends the child, which the parent reports.
    let mut set = tokio::task::JoinSet::new();
    for task in tasks {
        set.spawn(task);
    }
    if let Some(Err(e)) = set.join_next().await {
        panic!("load task failed: {e}");
    }
}

/// Runs `job` and the next jobs its completion claims: split -> two parts
/// (each with an `upper` job); upper -> final. Some first attempts fail and
/// retry at once.
async fn work(store: &Store, rng: &mut Rng, job: Job) {
    let mut queue = vec![job];
    while let Some(job) = queue.pop() {
        if job.plugin == "upper" && job.attempt == 1 && rng.below(5) == 0 {
            let failure = reyna_store::FailedRun {
                reason: "retryable: flaky".to_owned(),
                cost: Default::default(),
                retry_at: Some(now_ms()),
                log: Default::default(),
            };
            store.fail_job(job.id, failure).await.unwrap();
            continue;
        }
        let completion = if job.plugin == "split" {
            Completion {
                outputs: (0..2)
                    .map(|i| NewOutput {
                        schema: "part-v1".to_owned(),
                        data: format!("part {i} of {}", job.blob_id).into_bytes(),
                        extra_parents: vec![],
                    })
                    .collect(),
                next_jobs: vec![vec![spec("upper", "part-v1")]; 2],
                ..Completion::default()
            }
        } else {
            Completion {
                outputs: vec![NewOutput {
                    schema: "final-v1".to_owned(),
                    data: format!("FINAL {}", job.blob_id).into_bytes(),
                    extra_parents: vec![],
                }],
                ..Completion::default()
            }
        };
        // Zero, one or both next jobs claimed in the completing commit.
        let claim = rng.below(3) as usize;
        let Completed::Stored { outputs, claimed } = store
            .complete_job_and_claim(job.id, completion, claim)
            .await
            .unwrap()
        else {
            panic!("no tree budget was set");
        };
        for out in outputs {
            ack("O", out.id);
        }
        ack("D", job.id);
        queue.extend(claimed);
    }
}

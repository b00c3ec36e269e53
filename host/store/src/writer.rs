//! The single writer thread and its group commit.
//!
//! Callers queue operations (bounded by a semaphore, so async callers feel
//! back-pressure). The writer takes what is queued (bounded by count and
//! bytes), applies it all in one write transaction, commits once with
//! `Durability::Immediate`, and only then answers each caller. While one
//! commit is being fsynced the next batch accumulates, so throughput grows
//! with the number of concurrent writers instead of being capped by fsync.
//!
//! Commit delay: callers answered by one commit (workers completing job after
//! job) usually come straight back. Without waiting for them, the writers
//! split into two halves that alternate commits, each half the size it could
//! be. So before committing, the writer waits, briefly and boundedly (at most
//! half the previous commit's duration, never more than [`MAX_DELAY`]), for
//! as many operations as it answered last time plus those that queued up
//! meanwhile. A lone caller never waits: it was the only one answered.
//! The transaction is open during that wait and each operation is applied
//! as it arrives, so the writer's work overlaps with callers preparing
//! their next request instead of following it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use redb::{Database, Durability};
use tokio::sync::{OwnedSemaphorePermit, oneshot, watch};

use crate::error::{Result, StoreError};
use crate::ops::{OpError, WriteOp};
use crate::tx::{Signals, Tx};

/// Most operations in one commit.
const MAX_BATCH_OPS: usize = 4096;
/// Most payload bytes in one commit (a single larger operation still runs alone).
const MAX_BATCH_BYTES: usize = 64 << 20;
/// Queue depth before `submit` waits (back-pressure on async callers).
pub(crate) const QUEUE_DEPTH: usize = 8192;
/// Payload bytes queued (and not yet answered) before `submit` waits, so
/// many large writes cannot pile up in memory behind the single writer. An
/// operation heavier than this waits until it is alone in the queue.
pub(crate) const QUEUE_BYTES: usize = 256 << 20;
/// Longest commit delay.
const MAX_DELAY: Duration = Duration::from_millis(2);

/// A queued operation with its caller's reply channel, type-erased.
pub(crate) trait Queued: Send {
    fn weight(&self) -> usize;
    /// Applies the operation; `Err` is fatal for the batch.
    fn apply(&mut self, tx: &mut Tx<'_>) -> Result<()>;
    /// Answers the caller once the batch's fate is known.
    fn finish(self: Box<Self>, committed: Result<(), &StoreError>);
}

pub(crate) struct Request<O: WriteOp> {
    op: O,
    result: Option<Result<O::Output>>,
    reply: oneshot::Sender<Result<O::Output>>,
    /// A queue slot and the op's share of the queue's bytes, freed when
    /// the caller is answered.
    _slot: (OwnedSemaphorePermit, OwnedSemaphorePermit),
}

impl<O: WriteOp> Request<O> {
    pub(crate) fn queue(
        op: O,
        slot: (OwnedSemaphorePermit, OwnedSemaphorePermit),
    ) -> (Box<dyn Queued>, oneshot::Receiver<Result<O::Output>>) {
        let (reply, rx) = oneshot::channel();
        (
            Box::new(Self {
                op,
                result: None,
                reply,
                _slot: slot,
            }),
            rx,
        )
    }
}

impl<O: WriteOp> Queued for Request<O> {
    fn weight(&self) -> usize {
        self.op.weight()
    }

    fn apply(&mut self, tx: &mut Tx<'_>) -> Result<()> {
        match self.op.apply(tx) {
            Ok(out) => {
                self.result = Some(Ok(out));
                Ok(())
            }
            Err(OpError::Rejected(e)) => {
                self.result = Some(Err(e));
                Ok(())
            }
            Err(OpError::Fatal(e)) => {
                self.result = None;
                Err(e)
            }
        }
    }

    fn finish(self: Box<Self>, committed: Result<(), &StoreError>) {
        let answer = match (self.result, committed) {
            // A rejection wrote nothing, whatever happened to the batch.
            (Some(Err(rejected)), _) => Err(rejected),
            (Some(Ok(out)), Ok(())) => Ok(out),
            (None, Ok(())) => Err(StoreError::Closed),
            (_, Err(e)) => Err(e.clone()),
        };
        // The caller may have stopped waiting; the write stands regardless.
        let _ = self.reply.send(answer);
    }
}

/// Channels the writer announces commits on, and its running totals.
pub(crate) struct Announce {
    pub(crate) events: watch::Sender<u64>,
    pub(crate) jobs: watch::Sender<u64>,
    pub(crate) stats: Arc<Stats>,
    /// Where a transaction's `now` comes from.
    pub(crate) clock: crate::Clock,
}

/// Running totals of the writer, read by [`crate::Store::writer_stats`].
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) commits: AtomicU64,
    pub(crate) ops: AtomicU64,
    pub(crate) failed_commits: AtomicU64,
    pub(crate) apply_us: AtomicU64,
    pub(crate) commit_us: AtomicU64,
}

pub(crate) fn run(db: Arc<Database>, rx: Receiver<Box<dyn Queued>>, announce: Announce) {
    // Callers answered by the last commit, and what queued up while it ran
    // (other callers' work, taken before answering so that callers who come
    // straight back are not counted twice).
    let mut answered = 0usize;
    let mut last_commit = Duration::ZERO;
    let mut next: Vec<Box<dyn Queued>> = Vec::new();
    let mut next_bytes = 0usize;
    loop {
        let mut batch = std::mem::take(&mut next);
        let carried = batch.len();
        let mut intake = Intake {
            rx: &rx,
            bytes: std::mem::take(&mut next_bytes),
            // Commit delay (see the module doc).
            target: (carried + answered).min(MAX_BATCH_OPS),
            deadline: Instant::now() + (last_commit / 2).min(MAX_DELAY),
            waited: Duration::ZERO,
        };
        if batch.is_empty() {
            match rx.recv() {
                Ok(first) => {
                    intake.bytes = first.weight();
                    batch.push(first);
                }
                Err(_) => return,
            }
        }
        let started = Instant::now();
        let outcome = try_commit(&db, &mut batch, Some(&mut intake), &announce);
        answered = batch.len();
        finish_batch(&db, batch, outcome, &announce, &mut || {
            take_ready(&rx, &mut next, &mut next_bytes);
        });
        // The work, not the wait for late callers, sets the next delay.
        last_commit = started.elapsed().saturating_sub(intake.waited);
    }
}

/// Where a batch's operations come from while its transaction is open.
struct Intake<'a> {
    rx: &'a Receiver<Box<dyn Queued>>,
    bytes: usize,
    /// Operations to wait for before committing.
    target: usize,
    /// When to stop waiting for them.
    deadline: Instant,
    /// Time spent waiting for operations to arrive.
    waited: Duration,
}

impl Intake<'_> {
    /// The next operation for the batch: one already queued, or one that
    /// arrives before the deadline while the batch is short of its target.
    /// `None` when the batch should commit.
    fn next(&mut self, len: usize) -> Option<Box<dyn Queued>> {
        if len >= MAX_BATCH_OPS || self.bytes >= MAX_BATCH_BYTES {
            return None;
        }
        let op = match self.rx.try_recv() {
            Ok(op) => op,
            Err(_) => {
                let now = Instant::now();
                if len >= self.target || now >= self.deadline {
                    return None;
                }
                let op = self.rx.recv_timeout(self.deadline - now);
                self.waited += now.elapsed();
                op.ok()?
            }
        };
        self.bytes = self.bytes.saturating_add(op.weight());
        Some(op)
    }
}

/// Moves everything already queued into `batch`, within the batch bounds.
fn take_ready(rx: &Receiver<Box<dyn Queued>>, batch: &mut Vec<Box<dyn Queued>>, bytes: &mut usize) {
    while batch.len() < MAX_BATCH_OPS && *bytes < MAX_BATCH_BYTES {
        match rx.try_recv() {
            Ok(next) => {
                *bytes = bytes.saturating_add(next.weight());
                batch.push(next);
            }
            Err(_) => break,
        }
    }
}

/// Answers the callers of a batch whose commit had `outcome`;
/// `before_answering` runs once the batch's fate is known, before any caller
/// hears of it.
fn finish_batch(
    db: &Database,
    batch: Vec<Box<dyn Queued>>,
    outcome: Result<Signals>,
    announce: &Announce,
    before_answering: &mut dyn FnMut(),
) {
    match outcome {
        Ok(signals) => {
            before_answering();
            publish(announce, signals);
            for req in batch {
                req.finish(Ok(()));
            }
        }
        Err(e) if batch.len() == 1 => {
            before_answering();
            for req in batch {
                req.finish(Err(&e));
            }
        }
        Err(_) => {
            before_answering();
            // Something in the batch failed while writing. Retry each
            // operation in its own transaction so one bad operation (or a
            // transient error) does not fail its neighbours.
            for req in batch {
                let mut single = vec![req];
                match try_commit(db, &mut single, None, announce) {
                    Ok(signals) => {
                        publish(announce, signals);
                        for req in single {
                            req.finish(Ok(()));
                        }
                    }
                    Err(e) => {
                        for req in single {
                            req.finish(Err(&e));
                        }
                    }
                }
            }
        }
    }
}

/// Applies `batch` in one write transaction and commits it durably. With an
/// `intake`, operations that arrive meanwhile join the batch (and are applied
/// at once), so applying overlaps with callers preparing their next request.
fn try_commit(
    db: &Database,
    batch: &mut Vec<Box<dyn Queued>>,
    intake: Option<&mut Intake<'_>>,
    announce: &Announce,
) -> Result<Signals> {
    let result = try_commit_inner(db, batch, intake, announce);
    if result.is_err() {
        announce
            .stats
            .failed_commits
            .fetch_add(1, Ordering::Relaxed);
    }
    result
}

fn try_commit_inner(
    db: &Database,
    batch: &mut Vec<Box<dyn Queued>>,
    intake: Option<&mut Intake<'_>>,
    announce: &Announce,
) -> Result<Signals> {
    let stats = &*announce.stats;
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    let mut applying = Duration::ZERO;
    let signals = {
        let mut tx = Tx::new(&txn, announce.clock.now_ms());
        // On error the transaction is dropped, which aborts it.
        for req in batch.iter_mut() {
            let t = Instant::now();
            req.apply(&mut tx)?;
            applying += t.elapsed();
        }
        if let Some(intake) = intake {
            while let Some(mut req) = intake.next(batch.len()) {
                let t = Instant::now();
                let applied = req.apply(&mut tx);
                applying += t.elapsed();
                batch.push(req);
                applied?;
            }
        }
        tx.finish()?;
        tx.signals()
    };
    let committing = Instant::now();
    txn.commit()?;
    let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    stats.commits.fetch_add(1, Ordering::Relaxed);
    stats.ops.fetch_add(batch.len() as u64, Ordering::Relaxed);
    stats
        .apply_us
        .fetch_add(micros(applying), Ordering::Relaxed);
    stats
        .commit_us
        .fetch_add(micros(committing.elapsed()), Ordering::Relaxed);
    Ok(signals)
}

fn publish(announce: &Announce, signals: Signals) {
    if let Some(seq) = signals.last_event {
        announce.events.send_replace(seq);
    }
    if signals.jobs_enqueued {
        announce.jobs.send_modify(|n| *n = n.wrapping_add(1));
    }
}

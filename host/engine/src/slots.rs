//! The dispatcher's slots: how many jobs are claimed ahead, how many run at
//! once, and how much finished work may wait for its commit. A job's task
//! holds its slot from claim to commit and moves it through these stages;
//! dropping the task's permit is what frees it.

use std::sync::Arc;

use reyna_store::Job;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};

/// A job claimed by this engine, with the claim slot it holds.
pub(crate) type Claimed = (Job, OwnedSemaphorePermit);

/// A job's current slot; `None` once given back.
pub(crate) type Slot = Option<OwnedSemaphorePermit>;

/// Units of [`Slots::awaiting_commit`]: room for this many small outcomes,
/// or fewer large ones (one unit per started [`COMMIT_UNIT_BYTES`]).
const COMMIT_UNITS: u32 = 4096;
/// Output bytes per unit of [`Slots::awaiting_commit`].
const COMMIT_UNIT_BYTES: usize = 64 * 1024;

/// Units an outcome with `bytes` of outputs takes while awaiting its commit.
fn commit_units(bytes: usize) -> u32 {
    u32::try_from(1 + bytes / COMMIT_UNIT_BYTES)
        .unwrap_or(COMMIT_UNITS)
        .min(COMMIT_UNITS)
}

pub(crate) struct Slots {
    /// One permit per job claimed by this engine and not yet running here,
    /// or sent out and not yet answered.
    permits: Arc<Semaphore>,
    /// One permit per job running here (its call, or its commit while the
    /// call's outcome is checked). A job trades its claim for one of these
    /// when it starts, so claiming the next jobs (a commit away) overlaps
    /// with running the current ones. `None` in remote mode, where a claim
    /// lasts until the result is committed.
    running: Option<Arc<Semaphore>>,
    /// Jobs claimed elsewhere (at ingest, at a completion), for the
    /// dispatcher to run like its own.
    handoff: mpsc::UnboundedSender<Claimed>,
    /// Finished calls whose outcome waits for the writer, in
    /// [`commit_units`]: a job gives its running slot back when its call
    /// returns, so the next job runs during the commit, and this bounds
    /// what piles up (by count and output bytes) when the disk is slow.
    awaiting_commit: Arc<Semaphore>,
    /// True once the engine stops: no more claims.
    shutdown: watch::Receiver<bool>,
}

impl Slots {
    /// `claims` jobs claimed ahead and, when jobs run here, `running` at
    /// once; and the receiving end of their handoff for the dispatcher.
    pub(crate) fn new(
        claims: usize,
        running: Option<usize>,
        shutdown: watch::Receiver<bool>,
    ) -> (Self, mpsc::UnboundedReceiver<Claimed>) {
        let (handoff, rx) = mpsc::unbounded_channel();
        let slots = Self {
            permits: Arc::new(Semaphore::new(claims)),
            running: running.map(|n| Arc::new(Semaphore::new(n))),
            handoff,
            awaiting_commit: Arc::new(Semaphore::new(COMMIT_UNITS as usize)),
            shutdown,
        };
        (slots, rx)
    }

    /// Takes up to `n` free claim slots for jobs about to be claimed; none
    /// once the engine is shutting down.
    pub(crate) fn reserve(&self, n: usize) -> Vec<OwnedSemaphorePermit> {
        if n == 0 || *self.shutdown.borrow() {
            return Vec::new();
        }
        std::iter::from_fn(|| self.permits.clone().try_acquire_owned().ok())
            .take(n)
            .collect()
    }

    /// Hands jobs the store claimed in another commit to the dispatcher,
    /// one claim slot each (extra slots are freed). If the dispatcher has
    /// stopped, a job stays running in the store and is due again at the
    /// next start ([`reyna_store::Store::recover_running`]).
    pub(crate) fn hand_over(&self, jobs: Vec<Job>, permits: Vec<OwnedSemaphorePermit>) {
        for claimed in jobs.into_iter().zip(permits) {
            if self.handoff.send(claimed).is_err() {
                tracing::debug!("dispatcher stopped; a claimed job waits for the next start");
            }
        }
    }

    /// Trades a claim slot for a running slot (waiting for one), freeing
    /// the claim for the next job. In remote mode the claim is kept.
    pub(crate) async fn start_running(&self, claim: OwnedSemaphorePermit) -> OwnedSemaphorePermit {
        match &self.running {
            Some(running) => running.clone().acquire_owned().await.unwrap_or(claim),
            None => claim,
        }
    }

    /// Trades a finished call's slot for room among the outcomes awaiting
    /// their commit (waiting while that is full); the returned permit is
    /// held until the commit returns. `None` when the job holds no slot
    /// here.
    pub(crate) async fn release_for_commit(
        &self,
        slot: &mut Slot,
        output_bytes: usize,
    ) -> Option<OwnedSemaphorePermit> {
        let slot = slot.take()?;
        let room = self
            .awaiting_commit
            .clone()
            .acquire_many_owned(commit_units(output_bytes))
            .await
            .ok();
        drop(slot);
        room
    }
}

//! The dispatcher's slots: how many jobs are claimed ahead, how many run at
//! once, and how much finished work may wait for its commit. A job's task
//! holds its slot from claim to commit and moves it through these stages;
//! dropping the task's permit is what frees it.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use reyna_store::Job;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};

/// A job claimed by this engine, with the claim slot it holds.
pub(crate) type Claimed = (Job, OwnedSemaphorePermit);

/// The slot a job holds: its claim, or (running here) a worker.
#[derive(Debug)]
pub(crate) enum Held {
    /// A claim slot (remote mode, or before the dispatcher started); held
    /// for its drop.
    Claim(#[expect(dead_code, reason = "held for its Drop")] OwnedSemaphorePermit),
    /// A worker of the [`FairGate`]; held for its drop.
    Running(#[expect(dead_code, reason = "held for its Drop")] Worker),
}

/// A job's current slot; `None` once given back.
pub(crate) type Slot = Option<Held>;

/// The workers, handed out fairly across tenants: while jobs wait for one,
/// a freed worker goes to the next tenant with a waiting job after the one
/// served last (round-robin), not to whichever job asked first. Jobs are
/// claimed ahead of the workers (so claiming overlaps with running); without
/// this, a tenant whose claimed jobs fill that queue would make another
/// tenant's job wait behind all of them.
#[derive(Debug)]
pub(crate) struct FairGate {
    state: Mutex<GateState>,
}

#[derive(Debug)]
struct GateState {
    free: usize,
    waiting: BTreeMap<String, VecDeque<oneshot::Sender<Worker>>>,
    /// The tenant the last handed-over worker went to.
    last: Option<String>,
}

/// One worker of a [`FairGate`], given back (to the next waiting tenant)
/// when dropped.
#[derive(Debug)]
pub(crate) struct Worker {
    /// `None` once disarmed (never handed to a job).
    gate: Option<Arc<FairGate>>,
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(gate) = self.gate.take() {
            gate.release();
        }
    }
}

impl FairGate {
    pub(crate) fn new(workers: usize) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(GateState {
                free: workers,
                waiting: BTreeMap::new(),
                last: None,
            }),
        })
    }

    /// A worker for a job of `tenant`: at once when one is free and no job
    /// waits, else when its tenant's turn comes.
    pub(crate) async fn acquire(self: &Arc<Self>, tenant: &str) -> Worker {
        let wait = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if state.free > 0 && state.waiting.is_empty() {
                state.free -= 1;
                return Worker {
                    gate: Some(self.clone()),
                };
            }
            let (tx, rx) = oneshot::channel();
            state
                .waiting
                .entry(tenant.to_owned())
                .or_default()
                .push_back(tx);
            rx
        };
        match wait.await {
            Ok(worker) => worker,
            // The sender was dropped unsent: only when the gate itself goes
            // away (the engine is dropped) with this job waiting.
            Err(_) => {
                let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
                state.free = state.free.saturating_sub(1);
                Worker {
                    gate: Some(self.clone()),
                }
            }
        }
    }

    /// Gives a worker back: to the first waiting job of the next tenant
    /// after the last one served, or to the free pool.
    fn release(self: &Arc<Self>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            let next = {
                let after = state.last.clone().unwrap_or_default();
                state
                    .waiting
                    .range::<String, _>((
                        std::ops::Bound::Excluded(&after),
                        std::ops::Bound::Unbounded,
                    ))
                    .next()
                    .or_else(|| state.waiting.iter().next())
                    .map(|(tenant, _)| tenant.clone())
            };
            let Some(tenant) = next else {
                state.free += 1;
                return;
            };
            let sender = state.waiting.get_mut(&tenant).and_then(VecDeque::pop_front);
            if state.waiting.get(&tenant).is_some_and(VecDeque::is_empty) {
                state.waiting.remove(&tenant);
            }
            let Some(sender) = sender else { continue };
            let worker = Worker {
                gate: Some(self.clone()),
            };
            match sender.send(worker) {
                Ok(()) => {
                    state.last = Some(tenant);
                    return;
                }
                // The job stopped waiting (its task was dropped): the worker
                // goes to the next one; disarmed, so dropping it does not
                // release again under this lock.
                Err(mut worker) => {
                    worker.gate = None;
                }
            }
        }
    }
}

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
    running: Option<Arc<FairGate>>,
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
            running: running.map(FairGate::new),
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

    /// Trades a claim slot for a worker (waiting for its tenant's turn),
    /// freeing the claim for the next job. In remote mode the claim is kept.
    pub(crate) async fn start_running(&self, tenant: &str, claim: OwnedSemaphorePermit) -> Held {
        match &self.running {
            Some(gate) => {
                let worker = gate.acquire(tenant).await;
                drop(claim);
                Held::Running(worker)
            }
            None => Held::Claim(claim),
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

#[cfg(test)]
mod tests {
    use super::*;

    impl FairGate {
        fn waiting(&self) -> usize {
            let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.waiting.values().map(VecDeque::len).sum()
        }
    }

    #[tokio::test]
    async fn a_freed_worker_goes_to_the_next_tenant_in_turn_not_the_first_in_line() {
        let gate = FairGate::new(1);
        let held = gate.acquire("b").await;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for (i, tenant) in ["b", "b", "b", "a", "c"].into_iter().enumerate() {
            let (g, tx) = (gate.clone(), tx.clone());
            tasks.push(tokio::spawn(async move {
                let worker = g.acquire(tenant).await;
                tx.send(format!("{tenant}{i}")).ok();
                drop(worker);
            }));
            // Wait (bounded) until it queued, so the order is known.
            for _ in 0..10_000 {
                if gate.waiting() == i + 1 {
                    break;
                }
                tokio::task::yield_now().await;
            }
            assert_eq!(gate.waiting(), i + 1);
        }
        // A task that stops waiting gives its turn up.
        let g = gate.clone();
        let gone = tokio::spawn(async move { g.acquire("a").await });
        for _ in 0..10_000 {
            if gate.waiting() == 6 {
                break;
            }
            tokio::task::yield_now().await;
        }
        gone.abort();
        let _ = gone.await;
        drop(held);
        let mut order = Vec::new();
        for _ in 0..5 {
            order.push(rx.recv().await.unwrap());
        }
        // b held the worker: a, then b, then c, then b's others.
        assert_eq!(order, ["a3", "b0", "c4", "b1", "b2"]);
        for task in tasks {
            task.await.unwrap();
        }
        // Everything given back: one free worker, at once.
        assert_eq!(gate.waiting(), 0);
        drop(gate.acquire("z").await);
    }
}

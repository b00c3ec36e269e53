//! The atomic operations the engine builds on: create, complete, fail, claim,
//! recover, dead letters, idempotency. Each either fully happens or leaves
//! nothing behind.
#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a failure stops the test"
)]

mod common;

use common::*;
use reyna_store::{
    BlobId, BlobMeta, Completed, Completion, Cost, EffectCall, FailOutcome, FailedRun, IdemKey,
    Job, JobId, JobState, NewAudit, StoreError,
};
use reyna_store::{Digest, EffectOutcome};

#[tokio::test]
async fn create_blob_stores_meta_bytes_event_and_jobs_together() {
    let (_dir, store) = open();
    let meta = store
        .create_blob(
            new_blob("text-input-v1", b"hello"),
            vec![
                spec("expand", "text-input-v1"),
                spec("stats", "text-input-v1"),
            ],
        )
        .await
        .unwrap();

    assert_eq!(meta.tenant, TENANT);
    assert_eq!(meta.size, 5);
    assert_eq!(meta.digest, Digest::of(b"hello"));
    assert_eq!(meta.hop, 0);
    assert!(meta.producer.is_none());
    assert_eq!(store.get_blob(TENANT, meta.id).unwrap(), Some(meta.clone()));
    assert_eq!(
        store.get_blob_data(TENANT, meta.id).unwrap().unwrap(),
        b"hello"
    );

    let events = store.events_after(Some(TENANT), 0, 10).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].subject, "blob.created.text-input-v1");
    assert_eq!(events[0].blob_id, Some(meta.id));

    let jobs = store.jobs_for_blob(TENANT, meta.id).unwrap();
    assert_eq!(jobs.len(), 2);
    for job in &jobs {
        assert_eq!(job.state, JobState::Pending);
        assert_eq!(job.attempt, 1);
        assert_eq!(job.blob_id, meta.id);
        assert_eq!(job.due_at, meta.created_at);
    }
    let counts = store.counts().unwrap();
    assert_eq!(
        (counts.blobs, counts.events, counts.jobs_pending),
        (1, 1, 2)
    );
    assert_eq!(store.next_due_at().unwrap(), Some(meta.created_at));
    assert_consistent(&store);
}

#[tokio::test]
async fn missing_or_foreign_parent_stores_nothing() {
    let (_dir, store) = open();
    let ghost = BlobId::generate();
    let mut blob = new_blob("text-input-v1", b"x");
    blob.parents = vec![ghost];
    let err = store
        .create_blob(blob, vec![spec("expand", "text-input-v1")])
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::ParentNotFound { id } if id == ghost),
        "{err}"
    );

    // A parent in another tenant is as good as missing.
    let mut other = new_blob("text-input-v1", b"other");
    other.tenant = "globex".to_owned();
    let foreign = store.create_blob(other, vec![]).await.unwrap();
    let mut blob = new_blob("text-input-v1", b"y");
    blob.parents = vec![foreign.id];
    let err = store
        .create_blob(blob, vec![spec("expand", "x")])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ParentNotFound { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("parent blob {} does not exist in this tenant", foreign.id)
    );

    let counts = store.counts().unwrap();
    assert_eq!(
        (
            counts.blobs,
            counts.events,
            counts.jobs_pending,
            counts.edges
        ),
        (1, 1, 0, 0)
    );
    assert_consistent(&store);
}

#[tokio::test]
async fn a_rejected_write_does_not_fail_the_rest_of_its_batch() {
    let (_dir, store) = open();
    // Many concurrent writers share commits; every other one is invalid.
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut blob = new_blob("text-input-v1", &i.to_be_bytes());
            if i % 2 == 1 {
                blob.parents = vec![BlobId::generate()];
            }
            store
                .create_blob(blob, vec![spec("expand", "text-input-v1")])
                .await
        }));
    }
    let mut ok = 0;
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(meta) => {
                assert_eq!(i % 2, 0);
                assert!(store.get_blob(TENANT, meta.id).unwrap().is_some());
                ok += 1;
            }
            Err(e) => {
                assert_eq!(i % 2, 1);
                assert!(matches!(e, StoreError::ParentNotFound { .. }));
            }
        }
    }
    assert_eq!(ok, 100);
    let counts = store.counts().unwrap();
    assert_eq!(
        (counts.blobs, counts.jobs_pending, counts.events),
        (100, 100, 100)
    );
    assert_consistent(&store);
}

#[tokio::test]
async fn create_blob_and_claim_stores_the_first_jobs_running_in_the_same_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reyna.redb");
    let store = reyna_store::Store::open(&path).unwrap();
    let (meta, claimed) = store
        .create_blob_and_claim(
            new_blob("text-input-v1", b"hello"),
            vec![
                spec("expand", "text-input-v1"),
                spec("stats", "text-input-v1"),
                spec("index", "text-input-v1"),
            ],
            2,
            Default::default(),
            false,
        )
        .await
        .unwrap();

    // The first two are claimed, as a claim would leave them; the third waits.
    let names: Vec<&str> = claimed.iter().map(|j| j.plugin.as_str()).collect();
    assert_eq!(names, ["expand", "stats"]);
    for job in &claimed {
        assert_eq!(job.state, JobState::Running);
        assert_eq!((job.blob_id, job.attempt, job.hop), (meta.id, 1, 0));
        assert_eq!(store.get_job(job.id).unwrap().as_ref(), Some(job));
    }
    assert!(store.get_blob(TENANT, meta.id).unwrap().is_some());
    assert_eq!(store.events_after(Some(TENANT), 0, 10).unwrap().len(), 1);
    let c = store.counts().unwrap();
    assert_eq!((c.blobs, c.jobs_pending, c.jobs_running), (1, 1, 2));
    assert_consistent(&store);

    // Only the pending one is left to claim; a claimed one completes as usual.
    let rest = store.claim_due_jobs(LATER, 10, None).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].plugin, "index");
    store
        .complete_job(claimed[0].id, completion(vec![output("expanded-v1", b"x")]))
        .await
        .unwrap();

    // A crash before the others finish: they are due again after recovery.
    drop(store);
    let store = reyna_store::Store::open(&path).unwrap();
    assert_eq!(store.recover_running().await.unwrap(), 2);
    let again = store.claim_due_jobs(LATER, 10, None).await.unwrap();
    let mut again: Vec<JobId> = again.into_iter().map(|j| j.id).collect();
    let mut expected = vec![claimed[1].id, rest[0].id];
    again.sort();
    expected.sort();
    assert_eq!(again, expected);
    assert_consistent(&store);
}

#[tokio::test]
async fn a_rejected_create_claims_nothing_and_claiming_more_than_exist_claims_all() {
    let (_dir, store) = open();
    let mut blob = new_blob("text-input-v1", b"x");
    blob.parents = vec![BlobId::generate()];
    let err = store
        .create_blob_and_claim(
            blob,
            vec![spec("expand", "text-input-v1")],
            1,
            Default::default(),
            false,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ParentNotFound { .. }), "{err}");
    let c = store.counts().unwrap();
    assert_eq!((c.blobs, c.jobs_pending, c.jobs_running), (0, 0, 0));

    let (_, claimed) = store
        .create_blob_and_claim(
            new_blob("text-input-v1", b"y"),
            vec![spec("expand", "text-input-v1")],
            5,
            Default::default(),
            false,
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let c = store.counts().unwrap();
    assert_eq!((c.jobs_pending, c.jobs_running), (0, 1));
    assert_consistent(&store);
}

#[tokio::test]
async fn complete_job_and_claim_stores_the_first_next_jobs_running() {
    let (_dir, store) = open();
    let (_, job) = split_job(&store).await;
    let mut c = completion(vec![output("part-v1", b"a"), output("part-v1", b"b")]);
    c.next_jobs = vec![
        vec![spec("upper", "part-v1"), spec("count", "part-v1")],
        vec![spec("upper", "part-v1")],
    ];
    let (outputs, next) = stored(
        store
            .complete_job_and_claim(job.id, c.clone(), 2)
            .await
            .unwrap(),
    );

    // Output order, then spec order: the first output's two jobs.
    assert_eq!(outputs.len(), 2);
    let names: Vec<(&str, BlobId)> = next
        .iter()
        .map(|j| (j.plugin.as_str(), j.blob_id))
        .collect();
    assert_eq!(names, [("upper", outputs[0].id), ("count", outputs[0].id)]);
    for job in &next {
        assert_eq!((job.state, job.hop), (JobState::Running, 1));
    }
    let counts = store.counts().unwrap();
    assert_eq!(
        (counts.jobs_pending, counts.jobs_running, counts.jobs_done),
        (1, 2, 1)
    );
    let pending = store.claim_due_jobs(LATER, 10, None).await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].blob_id, outputs[1].id);

    // Completing again changes nothing and claims nothing.
    let (again, none) = stored(store.complete_job_and_claim(job.id, c, 2).await.unwrap());
    assert_eq!(ids(&again), ids(&outputs));
    assert!(none.is_empty());
    assert_eq!(store.counts().unwrap().jobs_running, 3);
    assert_consistent(&store);
}

#[tokio::test]
async fn complete_job_stores_outputs_lineage_events_next_jobs_and_done() {
    let (_dir, store) = open();
    let input = store
        .create_blob(
            new_blob("text-input-v1", b"in"),
            vec![spec("expand", "text-input-v1")],
        )
        .await
        .unwrap();
    let job = store
        .claim_due_jobs(LATER, 10, None)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(job.state, JobState::Running);
    assert_eq!(store.counts().unwrap().jobs_running, 1);

    let effect = EffectCall {
        effect: "llm".to_owned(),
        version: "1.0.0".to_owned(),
        request_digest: Digest::of(b"request"),
        response_digest: Some(Digest::of(b"response")),
        duration_us: 1200,
        outcome: EffectOutcome::Ok,
    };
    let cost = Cost {
        wall_us: 900,
        epoch_ticks: 3,
        fuel: None,
        peak_memory: 1 << 20,
        bytes_in: 2,
        bytes_out: 6,
        outputs: 2,
        cpu_us: 450,
    };
    let mut c = completion(vec![
        output("expanded-v1", b"out-0"),
        output("expanded-v1", b"out-1"),
    ]);
    c.next_jobs = vec![vec![spec("summarize", "expanded-v1")], vec![]];
    c.cost = cost;
    c.effect_calls = vec![effect.clone()];
    let outputs = store.complete_job(job.id, c).await.unwrap();

    assert_eq!(outputs.len(), 2);
    for (i, out) in outputs.iter().enumerate() {
        assert_eq!(out.id, BlobId::derived(job.id, i as u32));
        assert_eq!(out.parents, vec![input.id]);
        assert_eq!(out.hop, 1);
        let p = out.producer.as_ref().unwrap();
        assert_eq!((p.plugin.as_str(), p.version.as_str()), ("expand", "1.0.0"));
        assert_eq!((p.job_id, p.attempt), (job.id, 1));
        assert_eq!(p.component_digest, Digest::of(b"component"));
        assert_eq!(p.cost, cost);
        assert_eq!(p.effect_calls, vec![effect.clone()]);
        assert_eq!(store.get_blob(TENANT, out.id).unwrap().as_ref(), Some(out));
    }
    assert_eq!(
        store.get_blob_data(TENANT, outputs[1].id).unwrap().unwrap(),
        b"out-1"
    );
    assert_eq!(ids(&store.children(TENANT, input.id).unwrap()).len(), 2);

    let done = store.get_job(job.id).unwrap().unwrap();
    assert_eq!(done.state, JobState::Done);
    assert_eq!(done.outputs, ids(&outputs));
    let next = store.jobs_for_blob(TENANT, outputs[0].id).unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!((next[0].plugin.as_str(), next[0].hop), ("summarize", 1));
    assert!(
        store
            .jobs_for_blob(TENANT, outputs[1].id)
            .unwrap()
            .is_empty()
    );

    let subjects: Vec<String> = store
        .events_after(None, 0, 10)
        .unwrap()
        .into_iter()
        .map(|e| e.subject)
        .collect();
    assert_eq!(
        subjects,
        [
            "blob.created.text-input-v1",
            "blob.created.expanded-v1",
            "blob.created.expanded-v1"
        ]
    );

    let counts = store.counts().unwrap();
    assert_eq!(
        (
            counts.blobs,
            counts.edges,
            counts.jobs_pending,
            counts.jobs_running,
            counts.jobs_done
        ),
        (3, 2, 1, 0, 1)
    );
    assert_consistent(&store);
}

#[tokio::test]
async fn completing_twice_changes_nothing_and_returns_the_same_blobs() {
    let (_dir, store) = open();
    store
        .create_blob(
            new_blob("text-input-v1", b"in"),
            vec![spec("expand", "text-input-v1")],
        )
        .await
        .unwrap();
    let job = store
        .claim_due_jobs(LATER, 10, None)
        .await
        .unwrap()
        .remove(0);
    let make = || {
        let mut c = completion(vec![
            output("expanded-v1", b"a"),
            output("expanded-v1", b"b"),
        ]);
        c.next_jobs = vec![
            vec![spec("next", "expanded-v1")],
            vec![spec("next", "expanded-v1")],
        ];
        c
    };
    let first = store.complete_job(job.id, make()).await.unwrap();
    let counts = store.counts().unwrap();
    let events = store.events_after(None, 0, 100).unwrap();

    // The same result redelivered, and one that raced it into the same batch.
    let (second, third) = tokio::join!(
        store.complete_job(job.id, make()),
        store.complete_job(job.id, make())
    );
    assert_eq!(second.unwrap(), first);
    assert_eq!(third.unwrap(), first);
    assert_eq!(store.counts().unwrap(), counts);
    assert_eq!(store.events_after(None, 0, 100).unwrap(), events);
    assert_eq!(counts.jobs_pending, 2, "next jobs enqueued exactly once");
    assert_consistent(&store);
}

#[tokio::test]
async fn misaligned_next_jobs_or_missing_extra_parent_store_nothing() {
    let (_dir, store) = open();
    store
        .create_blob(
            new_blob("text-input-v1", b"in"),
            vec![spec("expand", "text-input-v1")],
        )
        .await
        .unwrap();
    let job = store
        .claim_due_jobs(LATER, 10, None)
        .await
        .unwrap()
        .remove(0);
    let before = store.counts().unwrap();

    let mut c = completion(vec![output("a-v1", b"1"), output("a-v1", b"2")]);
    c.next_jobs = vec![vec![]];
    let err = store.complete_job(job.id, c).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NextJobsMisaligned {
                outputs: 2,
                next_jobs: 1
            }
        ),
        "{err}"
    );

    let mut out = output("a-v1", b"1");
    out.extra_parents = vec![BlobId::generate()];
    let err = store
        .complete_job(job.id, completion(vec![out]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ParentNotFound { .. }), "{err}");

    let err = store
        .complete_job(JobId::generate(), completion(vec![]))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::JobNotFound { .. }), "{err}");

    assert_eq!(store.counts().unwrap(), before);
    assert_eq!(
        store.get_job(job.id).unwrap().unwrap().state,
        JobState::Running
    );
    assert_consistent(&store);
}

#[tokio::test]
async fn claim_takes_only_due_jobs_in_due_order_up_to_the_limit() {
    let (_dir, store) = open();
    for i in 0..5u8 {
        store
            .create_blob(
                new_blob("text-input-v1", &[i]),
                vec![spec("expand", "text-input-v1")],
            )
            .await
            .unwrap();
    }
    assert!(
        store.claim_due_jobs(0, 10, None).await.unwrap().is_empty(),
        "nothing is due at time 0"
    );
    let first = store.claim_due_jobs(LATER, 3, None).await.unwrap();
    assert_eq!(first.len(), 3);
    assert!(first.windows(2).all(|w| w[0].due_at <= w[1].due_at));
    let rest = store.claim_due_jobs(LATER, 10, None).await.unwrap();
    assert_eq!(rest.len(), 2);
    assert!(
        store
            .claim_due_jobs(LATER, 10, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.next_due_at().unwrap(), None);
    let counts = store.counts().unwrap();
    assert_eq!((counts.jobs_pending, counts.jobs_running), (0, 5));

    // After a restart every running job is pending again, due now.
    assert_eq!(store.recover_running().await.unwrap(), 5);
    let counts = store.counts().unwrap();
    assert_eq!((counts.jobs_pending, counts.jobs_running), (5, 0));
    assert_eq!(
        store.claim_due_jobs(LATER, 10, None).await.unwrap().len(),
        5
    );
    assert_consistent(&store);
}

#[tokio::test]
async fn fail_with_retry_requeues_the_next_attempt_at_the_retry_time() {
    let (_dir, store) = open();
    store
        .create_blob(
            new_blob("text-input-v1", b"in"),
            vec![spec("expand", "text-input-v1")],
        )
        .await
        .unwrap();
    let job = store
        .claim_due_jobs(LATER, 1, None)
        .await
        .unwrap()
        .remove(0);
    let retry_at = job.due_at + 60_000;
    let outcome = store
        .fail_job(
            job.id,
            FailedRun {
                reason: "timeout after 2s".to_owned(),
                cost: Cost::default(),
                retry_at: Some(retry_at),
                log: Default::default(),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        outcome,
        FailOutcome::Retrying {
            attempt: 2,
            due_at: retry_at
        }
    );
    assert_eq!(store.next_due_at().unwrap(), Some(retry_at));
    assert!(
        store
            .claim_due_jobs(retry_at - 1, 10, None)
            .await
            .unwrap()
            .is_empty()
    );
    let again = store
        .claim_due_jobs(retry_at, 10, None)
        .await
        .unwrap()
        .remove(0);
    assert_eq!((again.id, again.attempt), (job.id, 2));
    assert_eq!(again.last_error.as_deref(), Some("timeout after 2s"));

    // The producer records the attempt that succeeded.
    let out = store
        .complete_job(job.id, completion(vec![output("a-v1", b"1")]))
        .await
        .unwrap();
    assert_eq!(out[0].producer.as_ref().unwrap().attempt, 2);
    assert_consistent(&store);
}

#[tokio::test]
async fn fail_without_retry_dead_letters_and_replay_runs_it_again() {
    let (_dir, store) = open();
    let input = store
        .create_blob(
            new_blob("text-input-v1", b"in"),
            vec![spec("expand", "text-input-v1")],
        )
        .await
        .unwrap();
    let job = store
        .claim_due_jobs(LATER, 1, None)
        .await
        .unwrap()
        .remove(0);
    let cost = Cost {
        wall_us: 7,
        ..Cost::default()
    };
    let outcome = store
        .fail_job(
            job.id,
            FailedRun {
                reason: "invalid input: not json".to_owned(),
                cost,
                retry_at: None,
                log: Default::default(),
            },
        )
        .await
        .unwrap();
    let FailOutcome::DeadLettered { id } = outcome else {
        panic!("expected a dead letter, got {outcome:?}");
    };
    let dead = store.get_job(job.id).unwrap().unwrap();
    assert_eq!(dead.state, JobState::Dead);
    let counts = store.counts().unwrap();
    assert_eq!(
        (counts.jobs_dead, counts.dead_letters, counts.jobs_running),
        (1, 1, 0)
    );

    let page = store.list_dead_letters(Some(TENANT), None, 10).unwrap();
    assert_eq!(page.items.len(), 1);
    let letter = &page.items[0];
    assert_eq!(
        (letter.id, letter.job.id, letter.job.blob_id),
        (id, job.id, input.id)
    );
    assert_eq!(letter.reason, "invalid input: not json");
    assert_eq!(letter.cost, cost);
    assert_eq!(letter.replayed_at, None);
    assert!(
        store
            .list_dead_letters(Some("globex"), None, 10)
            .unwrap()
            .items
            .is_empty()
    );
    let last = store.events_after(Some(TENANT), 1, 10).unwrap();
    assert_eq!(last[0].subject, "job.failed.expand");

    // A dead job accepts neither a late completion nor another failure.
    let err = store
        .complete_job(job.id, completion(vec![]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::JobState {
                state: JobState::Dead,
                ..
            }
        ),
        "{err}"
    );
    let err = store
        .fail_job(job.id, FailedRun::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::JobState { .. }), "{err}");

    let replayed = store
        .replay_dead_letter(id, NewAudit::default())
        .await
        .unwrap();
    assert_eq!(
        (replayed.id, replayed.attempt, replayed.state),
        (job.id, 2, JobState::Pending)
    );
    assert!(
        store
            .get_dead_letter(id)
            .unwrap()
            .unwrap()
            .replayed_at
            .is_some()
    );
    let err = store
        .replay_dead_letter(id, NewAudit::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::AlreadyReplayed { .. }), "{err}");
    let counts = store.counts().unwrap();
    assert_eq!(
        (counts.jobs_dead, counts.dead_letters, counts.jobs_pending),
        (0, 1, 1)
    );

    let claimed = store
        .claim_due_jobs(LATER, 1, None)
        .await
        .unwrap()
        .remove(0);
    assert_eq!((claimed.id, claimed.attempt), (job.id, 2));
    store
        .complete_job(job.id, completion(vec![]))
        .await
        .unwrap();
    assert_consistent(&store);
}

#[tokio::test]
async fn idempotency_key_finds_the_stored_outputs_within_the_tenant() {
    let (_dir, store) = open();
    let input = store
        .create_blob(
            new_blob("text-input-v1", b"in"),
            vec![spec("expand", "text-input-v1")],
        )
        .await
        .unwrap();
    let job = store
        .claim_due_jobs(LATER, 1, None)
        .await
        .unwrap()
        .remove(0);
    let key = IdemKey {
        component_digest: Digest::of(b"component"),
        config_digest: Digest::of(b"config"),
        input_digest: input.digest,
    };
    assert_eq!(store.find_idempotent(TENANT, &key).unwrap(), None);
    let outputs = store
        .complete_job(
            job.id,
            Completion {
                idempotency_key: Some(key.clone()),
                ..completion(vec![output("a-v1", b"1")])
            },
        )
        .await
        .unwrap();
    assert_eq!(store.find_idempotent(TENANT, &key).unwrap(), Some(outputs));
    assert_eq!(store.find_idempotent("globex", &key).unwrap(), None);
}

/// The store's format-version table, as the tests write and read it directly.
const META: redb::TableDefinition<'static, &str, u64> = redb::TableDefinition::new("meta");
const TREES: redb::TableDefinition<'static, u128, u64> = redb::TableDefinition::new("trees");

/// Sets the file's format version inside `txn`, as an older or newer build
/// would have left it.
fn set_format(txn: &redb::WriteTransaction, version: u64) {
    txn.open_table(META)
        .unwrap()
        .insert("format", version)
        .unwrap();
}

/// The file's format version as `txn` sees it.
fn format_of(txn: &redb::ReadTransaction) -> u64 {
    txn.open_table(META)
        .unwrap()
        .get("format")
        .unwrap()
        .unwrap()
        .value()
}

#[tokio::test]
async fn a_store_reopens_with_everything_and_refuses_a_newer_format() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reyna.redb");
    let store = reyna_store::Store::open(&path).unwrap();
    let meta = store
        .create_blob(new_blob("text-input-v1", b"kept"), vec![])
        .await
        .unwrap();
    drop(store);

    let store = reyna_store::Store::open(&path).unwrap();
    assert_eq!(
        store.get_blob_data(TENANT, meta.id).unwrap().unwrap(),
        b"kept"
    );
    // New events continue the sequence.
    let next = store
        .create_blob(new_blob("text-input-v1", b"next"), vec![])
        .await
        .unwrap();
    let seqs: Vec<u64> = store
        .events_after(None, 0, 10)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, [1, 2]);
    assert!(store.get_blob(TENANT, next.id).unwrap().is_some());
    drop(store);

    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            set_format(&txn, 99);
        }
        txn.commit().unwrap();
    }
    let err = reyna_store::Store::open(&path).unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::UnsupportedFormat {
                found: 99,
                supported: 7
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("newer than this build"), "{err}");
}

#[tokio::test]
async fn a_format_1_file_with_json_records_opens_and_is_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reyna.redb");
    let store = reyna_store::Store::open(&path).unwrap();
    let blob = store
        .create_blob(new_blob("text-v1", b"hello"), vec![spec("p", "text-v1")])
        .await
        .unwrap();
    let job = store.jobs_for_blob(TENANT, blob.id).unwrap().remove(0);
    let event = store.events_after(None, 0, 10).unwrap().remove(0);
    drop(store);

    // Rewrite the records as format 1 did: all JSON.
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let bytes = redb::TableDefinition::<u128, &[u8]>::new;
            let mut t = txn.open_table(bytes("blobs")).unwrap();
            let json = serde_json::to_vec(&blob).unwrap();
            t.insert(blob.id.key(), json.as_slice()).unwrap();
            let mut t = txn.open_table(bytes("jobs")).unwrap();
            let json = serde_json::to_vec(&job).unwrap();
            t.insert(job.id.key(), json.as_slice()).unwrap();
            let mut t = txn
                .open_table(redb::TableDefinition::<u64, &[u8]>::new("events"))
                .unwrap();
            let json = serde_json::to_vec(&event).unwrap();
            t.insert(event.seq, json.as_slice()).unwrap();
            set_format(&txn, 1);
        }
        txn.commit().unwrap();
    }

    let store = reyna_store::Store::open(&path).unwrap();
    assert_eq!(store.get_blob(TENANT, blob.id).unwrap(), Some(blob.clone()));
    assert_eq!(store.get_job(job.id).unwrap(), Some(job.clone()));
    assert_eq!(store.events_after(None, 0, 10).unwrap(), vec![event]);
    // The old JSON job is updated in the new form by a claim.
    let claimed = store.claim_due_jobs(u64::MAX, 10, None).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(store.check().unwrap().problems.is_empty());
    drop(store);

    let db = redb::Database::open(&path).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    assert_eq!(format_of(&txn), 7);
}

#[tokio::test]
async fn a_format_2_idempotency_record_is_rekeyed_when_the_file_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reyna.redb");
    let store = reyna_store::Store::open(&path).unwrap();
    let key = |input: &[u8]| IdemKey {
        component_digest: Digest::of(b"component"),
        config_digest: Digest::of(b"config"),
        input_digest: Digest::of(input),
    };
    let mut outputs = Vec::new();
    for (input, idem) in [(&b"moved"[..], true), (&b"legacy"[..], false)] {
        store
            .create_blob(
                new_blob("text-input-v1", input),
                vec![spec("expand", "text-input-v1")],
            )
            .await
            .unwrap();
        let job = store
            .claim_due_jobs(LATER, 1, None)
            .await
            .unwrap()
            .remove(0);
        let done = store
            .complete_job(
                job.id,
                Completion {
                    idempotency_key: idem.then(|| key(input)),
                    ..completion(vec![output("a-v1", input)])
                },
            )
            .await
            .unwrap();
        outputs.push((job.id, done));
    }
    drop(store);

    // A format 2 file whose migration was cut short: the first record is
    // already under its new key, the second still in the old table (four
    // strings → JSON), and the version not yet raised.
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn
                .open_table(
                    redb::TableDefinition::<(&str, &str, &str, &str), &[u8]>::new("idempotency"),
                )
                .unwrap();
            let (job, done) = &outputs[1];
            let ids: Vec<_> = done.iter().map(|m| m.id).collect();
            let json =
                serde_json::to_vec(&serde_json::json!({ "job_id": job, "outputs": ids })).unwrap();
            let legacy = key(b"legacy");
            let (component, config, input) = (
                legacy.component_digest.to_string(),
                legacy.config_digest.hex(),
                legacy.input_digest.hex(),
            );
            let k = (TENANT, component.as_str(), config.as_str(), input.as_str());
            t.insert(k, json.as_slice()).unwrap();
            set_format(&txn, 2);
        }
        txn.commit().unwrap();
    }

    let store = reyna_store::Store::open(&path).unwrap();
    for (input, (_, done)) in [&b"moved"[..], &b"legacy"[..]].into_iter().zip(&outputs) {
        assert_eq!(
            store.find_idempotent(TENANT, &key(input)).unwrap().as_ref(),
            Some(done)
        );
        assert_eq!(store.find_idempotent("globex", &key(input)).unwrap(), None);
    }
    assert!(store.check().unwrap().problems.is_empty());
    drop(store);

    let db = redb::Database::open(&path).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    assert_eq!(format_of(&txn), 7);
    let names: Vec<String> = txn
        .list_tables()
        .unwrap()
        .map(|h| redb::TableHandle::name(&h).to_owned())
        .collect();
    assert!(!names.contains(&"idempotency".to_owned()), "{names:?}");
    assert!(names.contains(&"idempotency_v3".to_owned()), "{names:?}");
}

#[tokio::test]
async fn concurrent_writes_share_commits_and_wake_job_watchers() {
    let (_dir, store) = open();
    let mut jobs = store.watch_jobs();
    jobs.borrow_and_update();
    let before = store.writer_stats();
    let mut tasks = Vec::new();
    for i in 0..256u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .create_blob(
                    new_blob("text-input-v1", &i.to_be_bytes()),
                    vec![spec("expand", "text-input-v1")],
                )
                .await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let after = store.writer_stats();
    let (ops, commits) = (after.ops - before.ops, after.commits - before.commits);
    assert_eq!(ops, 256);
    // Writers queue behind the commit in flight and share the next one.
    assert!(commits <= ops / 2, "{ops} writes took {commits} commits");
    assert_eq!(after.failed_commits, 0);
    assert!(
        jobs.has_changed().unwrap(),
        "new pending jobs wake the dispatcher"
    );
    assert_eq!(store.counts().unwrap().jobs_pending, 256);
}

/// An ingested blob and its `split` job, stored claimed.
async fn split_job(store: &reyna_store::Store) -> (BlobMeta, Job) {
    let (blob, mut claimed) = store
        .create_blob_and_claim(
            new_blob("text-input-v1", b"in"),
            vec![spec("split", "text-input-v1")],
            1,
            Default::default(),
            false,
        )
        .await
        .unwrap();
    (blob, claimed.remove(0))
}

fn stored(completed: Completed) -> (Vec<BlobMeta>, Vec<Job>) {
    match completed {
        Completed::Stored { outputs, claimed } => (outputs, claimed),
        other => panic!("not stored: {other:?}"),
    }
}

#[tokio::test]
async fn a_completion_past_the_tree_budget_stores_nothing_and_dead_letters_the_job() {
    let (_dir, store) = open();
    let (root, job) = split_job(&store).await;
    assert_eq!(
        job.tree, root.id,
        "a job on an ingested blob roots its tree"
    );
    let mut c = completion(vec![output("part-v1", b"a"), output("part-v1", b"b")]);
    c.next_jobs = vec![vec![spec("upper", "part-v1")]; 2];
    c.max_tree_blobs = Some(3);
    let (outputs, next) = stored(store.complete_job_and_claim(job.id, c, 2).await.unwrap());
    assert_eq!(store.tree_size(root.id).unwrap(), 2);
    for j in &next {
        assert_eq!(j.tree, root.id, "next jobs inherit the tree");
    }

    // One more fits (3 of 3); then the tree is full.
    let mut one = completion(vec![output("final-v1", b"A")]);
    one.max_tree_blobs = Some(3);
    stored(
        store
            .complete_job_and_claim(next[0].id, one.clone(), 0)
            .await
            .unwrap(),
    );
    assert_eq!(store.tree_size(root.id).unwrap(), 3);
    let before = store.counts().unwrap();
    let Completed::OverTreeBudget {
        dead_letter,
        reason,
    } = store
        .complete_job_and_claim(next[1].id, one, 0)
        .await
        .unwrap()
    else {
        panic!("the budget must refuse the fourth blob");
    };
    assert!(reason.starts_with("tree-budget: "), "{reason}");
    assert!(
        reason.contains(&root.id.to_string()) && reason.contains("at most 3"),
        "{reason}"
    );
    let after = store.counts().unwrap();
    assert_eq!(
        after.blobs, before.blobs,
        "nothing of the outputs is stored"
    );
    assert_eq!(after.jobs_dead, before.jobs_dead + 1);
    assert_eq!(store.tree_size(root.id).unwrap(), 3);
    let letter = store.get_dead_letter(dead_letter).unwrap().unwrap();
    assert_eq!(letter.reason, reason);
    assert_eq!(letter.job.state, JobState::Dead);
    assert_eq!(
        store
            .get_job(next[1].id)
            .unwrap()
            .unwrap()
            .last_error
            .as_deref(),
        Some(reason.as_str())
    );
    assert_eq!(outputs.len(), 2);
    assert_consistent(&store);
}

#[tokio::test]
async fn a_format_3_file_has_its_trees_counted_when_it_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reyna.redb");
    let root = {
        let store = reyna_store::Store::open(&path).unwrap();
        let (root, job) = split_job(&store).await;
        let c = completion(vec![output("part-v1", b"a"), output("part-v1", b"b")]);
        store.complete_job(job.id, c).await.unwrap();
        root.id
    };
    // As format 3 left it: no tree counts.
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        set_format(&txn, 3);
        assert!(txn.delete_table(TREES).unwrap());
        txn.commit().unwrap();
    }
    let store = reyna_store::Store::open(&path).unwrap();
    assert_eq!(store.tree_size(root).unwrap(), 2);
    assert!(store.check().unwrap().problems.is_empty());
    drop(store);
    let db = redb::Database::open(&path).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    assert_eq!(format_of(&txn), 7);
}

#[tokio::test]
async fn a_format_6_file_has_what_each_tenant_holds_counted_when_it_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reyna.redb");
    {
        let store = reyna_store::Store::open(&path).unwrap();
        queue_jobs(&store, "acme", 7).await;
        queue_jobs(&store, "globex", 3).await;
        store.claim_due_jobs(LATER, 2, None).await.unwrap();
    }
    // As format 6 left it: no tenant counts.
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        set_format(&txn, 6);
        let counts: redb::TableDefinition<'_, (&str, &str), u64> =
            redb::TableDefinition::new("tenant_counts");
        assert!(txn.delete_table(counts).unwrap());
        txn.commit().unwrap();
    }
    let store = reyna_store::Store::open(&path).unwrap();
    let (acme, globex) = (
        store.holdings("acme").unwrap(),
        store.holdings("globex").unwrap(),
    );
    assert_eq!(acme.queued_jobs + globex.queued_jobs, 8);
    assert_eq!(
        acme.stored_bytes,
        (0..7)
            .map(|i: usize| format!("{{\"i\":{i}}}").len() as u64)
            .sum::<u64>()
    );
    assert_consistent(&store);
    drop(store);
    let db = redb::Database::open(&path).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    assert_eq!(format_of(&txn), 7);
}

#[tokio::test]
async fn a_format_4_file_gets_tenant_records_and_its_admin_tokens_become_operators() {
    use reyna_store::{NewAudit, NewToken, Role};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reyna.redb");
    {
        let store = reyna_store::Store::open(&path).unwrap();
        store
            .put_tenant("default", "Default", NewAudit::default())
            .await
            .unwrap();
        for (role, name) in [(Role::Admin, "ops"), (Role::Writer, "app")] {
            let token = NewToken {
                tenant: "default".into(),
                role,
                name: name.into(),
                hash: format!("hash-{name}"),
            };
            store.put_token(token, NewAudit::default()).await.unwrap();
        }
        // A tenant known only from its blobs (format 4 had no tenant records).
        let mut theirs = new_blob("t-v1", b"{}");
        theirs.tenant = "globex".into();
        store.create_blob(theirs, vec![]).await.unwrap();
    }
    // As format 4 left it: no tenant records.
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        set_format(&txn, 4);
        let tenants: redb::TableDefinition<'static, &str, &[u8]> =
            redb::TableDefinition::new("tenants");
        assert!(txn.delete_table(tenants).unwrap());
        txn.commit().unwrap();
    }
    let store = reyna_store::Store::open(&path).unwrap();
    let mut ids: Vec<String> = store
        .list_tenants()
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    ids.sort();
    assert_eq!(ids, ["default", "globex"]);
    let roles: std::collections::BTreeMap<String, Role> = store
        .list_tokens(None)
        .unwrap()
        .into_iter()
        .map(|t| (t.name, t.role))
        .collect();
    assert_eq!(roles["ops"], Role::Operator, "admin meant operator before");
    assert_eq!(roles["app"], Role::Writer);
    assert!(store.check().unwrap().problems.is_empty());
    // Tokens of the migrated tenants can be made; of unknown ones not.
    let token = |tenant: &str| NewToken {
        tenant: tenant.into(),
        role: Role::Reader,
        name: "r".into(),
        hash: format!("hash-r-{tenant}"),
    };
    store
        .put_token(token("globex"), NewAudit::default())
        .await
        .unwrap();
    let err = store
        .put_token(token("initech"), NewAudit::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TenantNotFound { .. }), "{err}");
    drop(store);
    let db = redb::Database::open(&path).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    assert_eq!(format_of(&txn), 7);
}

/// Creates `n` blobs of `tenant`, each with one job, concurrently (group
/// commit shares the writes).
async fn queue_jobs(store: &reyna_store::Store, tenant: &str, n: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let store = store.clone();
        let tenant = tenant.to_owned();
        tasks.spawn(async move {
            let mut blob = new_blob("t-v1", format!("{{\"i\":{i}}}").as_bytes());
            blob.tenant = tenant;
            store
                .create_blob(blob, vec![spec("p", "t-v1")])
                .await
                .unwrap();
        });
        if tasks.len() >= 256 {
            tasks.join_next().await.unwrap().unwrap();
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenants_backlog_delays_anothers_job_by_one_round_not_by_the_backlog() {
    let (_dir, store) = open();
    // acme queues 10,000 jobs, then zeta one.
    queue_jobs(&store, "acme", 10_000).await;
    let mine = {
        let mut blob = new_blob("t-v1", b"{}");
        blob.tenant = "zeta".into();
        store
            .create_blob(blob, vec![spec("p", "t-v1")])
            .await
            .unwrap()
    };
    let now = reyna_store::now_ms() + 1;
    let (mut theirs_before, mut after) = (0, None);
    loop {
        let jobs = store.claim_due_jobs(now, 4, after.clone()).await.unwrap();
        assert!(!jobs.is_empty(), "zeta's job was never claimed");
        after = jobs.last().map(|j| j.tenant.clone());
        match jobs.iter().position(|j| j.tenant == "zeta") {
            Some(at) => {
                theirs_before += at;
                assert_eq!(jobs[at].blob_id, mine.id);
                break;
            }
            None => theirs_before += jobs.len(),
        }
    }
    assert!(
        theirs_before <= 1,
        "zeta's job waited behind {theirs_before} of acme's 10,000"
    );
    // A new job while jobs wait does not take a worker first: it queues.
    let mut late = new_blob("t-v1", b"{}");
    late.tenant = "initech".into();
    let (_, claimed) = store
        .create_blob_and_claim(late, vec![spec("p", "t-v1")], 1, Default::default(), false)
        .await
        .unwrap();
    assert!(claimed.is_empty(), "a backlog is served in turn");
    // Within a tenant, the oldest due job first; none is claimed twice.
    let jobs = store
        .claim_due_jobs(reyna_store::now_ms() + 1, 10, None)
        .await
        .unwrap();
    let tenants: Vec<&str> = jobs.iter().map(|j| j.tenant.as_str()).collect();
    assert_eq!(&tenants[..2], ["acme", "initech"], "{tenants:?}");
    let mut ids: Vec<_> = jobs.iter().map(|j| j.id).collect();
    ids.dedup();
    assert_eq!(ids.len(), jobs.len());
    assert_consistent(&store);
}
